package clientapi_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
)

func presenceOf(resp *mautrix.RespSync, user id.UserID) *event.Event {
	var found *event.Event
	for _, ev := range resp.Presence.Events {
		if ev.Sender == user {
			found = ev
		}
	}
	return found
}

func TestPresence(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	eve := ts.RegisterUser("eve")
	roomID := roomCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if _, err := bob.JoinRoomByID(ctx, roomID); err != nil {
		t.Fatal(err)
	}
	// Syncing makes alice online; bob sees it on his initial sync.
	syncOnce(t, alice, "", "", 0)
	first := syncOnce(t, bob, "", "", 0)
	if p := presenceOf(first, alice.UserID); p == nil || p.Content.Raw["presence"] != "online" {
		t.Fatalf("alice's presence in bob's sync: %+v", first.Presence)
	}
	// A status change wakes bob's long-poll.
	since := first.NextBatch
	done := make(chan *mautrix.RespSync, 1)
	go func() {
		resp, err := bob.FullSyncRequest(ctx, mautrix.ReqSync{Since: since, Timeout: 20000})
		if err != nil {
			t.Error(err)
		}
		done <- resp
	}()
	waitForWaiters(t, ts, 1)
	if err := alice.SetPresence(ctx, mautrix.ReqPresence{Presence: event.PresenceUnavailable, StatusMsg: "lunch"}); err != nil {
		t.Fatal(err)
	}
	resp := <-done
	p := presenceOf(resp, alice.UserID)
	if p == nil || p.Content.Raw["presence"] != "unavailable" || p.Content.Raw["status_msg"] != "lunch" {
		t.Fatalf("presence change: %+v", resp.Presence)
	}
	got, err := bob.GetPresence(ctx, alice.UserID)
	if err != nil || got.Presence != event.PresenceUnavailable || got.StatusMsg != "lunch" {
		t.Fatalf("GET presence: %+v %v", got, err)
	}
	// Eve shares no room with alice: she may not see her presence, nor get
	// it in her sync.
	_, err = eve.GetPresence(ctx, alice.UserID)
	roomErr(t, "stranger's presence", err, 403, "M_FORBIDDEN")
	if p := presenceOf(syncOnce(t, eve, "", "", 0), alice.UserID); p != nil {
		t.Fatal("presence leaked to a stranger")
	}
	// Going quiet: after the idle time the sweeper shows alice offline.
	since = resp.NextBatch
	ts.Sync().SweepPresence(ctx, time.Now().Add(time.Hour))
	resp = syncOnce(t, bob, since, "", 0)
	if p := presenceOf(resp, alice.UserID); p == nil || p.Content.Raw["presence"] != "offline" {
		t.Fatalf("after idling: %+v", resp.Presence)
	}
	// Bad input.
	err = bob.SetPresence(ctx, mautrix.ReqPresence{Presence: "dancing"})
	roomErr(t, "bad presence", err, 400, "M_INVALID_PARAM")
	_, err = bob.MakeFullRequest(ctx, mautrix.FullRequest{Method: http.MethodPut, URL: ts.URL + "/_matrix/client/v3/presence/" + string(alice.UserID) + "/status", RequestJSON: map[string]any{"presence": "online"}})
	roomErr(t, "someone else's presence", err, 403, "M_FORBIDDEN")
	_, err = bob.GetPresence(ctx, "@nobody:localhost")
	roomErr(t, "unknown user", err, 403, "M_FORBIDDEN")
	_, err = bob.MakeRequest(ctx, http.MethodGet, ts.URL+"/_matrix/client/v3/sync?set_presence=dancing", nil, nil)
	roomErr(t, "bad set_presence", err, 400, "M_INVALID_PARAM")
}

// TestPresenceNewlySharedRoom: users who come to share a room get each
// other's current presence in their next incremental sync, although it did
// not change in the sync's range (as Synapse does): the joiner gets the
// room's members', the members get the joiner's.
func TestPresenceNewlySharedRoom(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	roomID := roomCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	// Both come online; the tokens are taken after that change.
	syncOnce(t, alice, "", "", 0)
	syncOnce(t, bob, "", "", 0)
	aliceSince := syncOnce(t, alice, "", "", 0).NextBatch
	bobSince := syncOnce(t, bob, "", "", 0).NextBatch
	if _, err := bob.JoinRoomByID(ctx, roomID); err != nil {
		t.Fatal(err)
	}
	resp := syncOnce(t, alice, aliceSince, "", 0)
	if p := presenceOf(resp, bob.UserID); p == nil || p.Content.Raw["presence"] != "online" {
		t.Fatalf("alice's sync after bob joined lacks bob's presence: %+v", resp.Presence)
	}
	resp = syncOnce(t, bob, bobSince, "", 0)
	if p := presenceOf(resp, alice.UserID); p == nil || p.Content.Raw["presence"] != "online" {
		t.Fatalf("bob's sync after he joined lacks alice's presence: %+v", resp.Presence)
	}
	// Once told, it is not repeated while nothing changes.
	if p := presenceOf(syncOnce(t, bob, resp.NextBatch, "", 0), alice.UserID); p != nil {
		t.Fatalf("alice's unchanged presence sent again: %+v", p)
	}
	// A presence filter still applies.
	filter, err := alice.CreateFilter(ctx, &mautrix.Filter{Presence: &mautrix.FilterPart{NotSenders: []id.UserID{bob.UserID}}})
	if err != nil {
		t.Fatal(err)
	}
	if p := presenceOf(syncOnce(t, alice, aliceSince, filter.FilterID, 0), bob.UserID); p != nil {
		t.Fatalf("presence filter ignored: %+v", p)
	}
}

// A user who never set any presence (nor synced) is offline, as Synapse
// answers, not 404; an unknown user is still refused like a stranger.
func TestPresenceNeverSet(t *testing.T) {
	ts, alice, carol, _ := pairInRoom(t, "presence")
	for _, viewer := range []*mautrix.Client{carol, alice} {
		r := sessRaw(t, ts, viewer.AccessToken, http.MethodGet, "/_matrix/client/v3/presence/"+string(carol.UserID)+"/status", nil)
		sessExpect(t, "presence never set", r, http.StatusOK, "")
		if r.body["presence"] != "offline" || r.body["last_active_ago"] != nil {
			t.Fatalf("presence never set, seen by %s: %s", viewer.UserID, r.raw)
		}
	}
}
