package server_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// syncReader long-polls one client's /sync from where it left off.
type syncReader struct {
	t     *testing.T
	c     *mautrix.Client
	since string
}

// until syncs until check finds what it waits for in a response; check's
// last error says what was missing when the deadline passed. The sync
// does not set the user's presence (set_presence=offline), so reading
// never changes what the test looks at.
func (r *syncReader) until(what string, check func(*mautrix.RespSync) error) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	last := errors.New("no sync yet")
	for {
		resp, err := r.c.SyncRequest(ctx, 5000, r.since, "", false, event.PresenceOffline)
		if err != nil {
			r.t.Fatalf("%s waiting for %s: %v (last: %v)", r.c.UserID, what, err, last)
		}
		r.since = resp.NextBatch
		if last = check(resp); last == nil {
			return
		}
	}
}

// presenceOf finds user's m.presence in a sync response.
func presenceOf(resp *mautrix.RespSync, user id.UserID) *event.PresenceEventContent {
	for _, ev := range resp.Presence.Events {
		if ev.Sender == user {
			_ = ev.Content.ParseRaw(event.EphemeralEventPresence)
			return ev.Content.AsPresence()
		}
	}
	return nil
}

// ephemeralOf finds the ephemeral event of type evType of room in a sync
// response.
func ephemeralOf(resp *mautrix.RespSync, room id.RoomID, evType event.Type) *event.Event {
	jr, ok := resp.Rooms.Join[room]
	if !ok {
		return nil
	}
	for _, ev := range jr.Ephemeral.Events {
		if ev.Type.Type == evType.Type {
			ev.Type.Class = event.EphemeralEventType
			_ = ev.Content.ParseRaw(ev.Type)
			return ev
		}
	}
	return nil
}

// typingUsers is who an m.typing event says is typing.
func typingUsers(ev *event.Event) []id.UserID {
	if ev == nil {
		return nil
	}
	return ev.Content.AsTyping().UserIDs
}

// readBy tells whether an m.receipt event has user's m.read receipt of
// evID.
func readBy(ev *event.Event, evID id.EventID, user id.UserID) bool {
	if ev == nil {
		return false
	}
	_, ok := (*ev.Content.AsReceipt())[evID][event.ReceiptTypeRead][user]
	return ok
}

// slidingEphemeral long-polls sliding sync, subscribed to room with the
// typing and receipts extensions on, until check finds what it waits for
// in the extensions' events of room.
func slidingEphemeral(t *testing.T, c *mautrix.Client, room id.RoomID, what string, check func(typing, receipt *event.Event) error) {
	t.Helper()
	const ss = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	on := map[string]any{"enabled": true}
	body := map[string]any{
		"room_subscriptions": map[id.RoomID]any{room: map[string]any{"timeline_limit": 1}},
		"extensions":         map[string]any{"typing": on, "receipts": on},
	}
	pos := ""
	last := errors.New("no response yet")
	for {
		q := url.Values{"timeout": {"5000"}}
		if pos != "" {
			q.Set("pos", pos)
		}
		var resp struct {
			Pos        string `json:"pos"`
			Extensions struct {
				Typing, Receipts *struct {
					Rooms map[id.RoomID]*event.Event `json:"rooms"`
				}
			} `json:"extensions"`
		}
		if _, err := c.MakeRequest(ctx, http.MethodPost, c.HomeserverURL.String()+ss+"?"+q.Encode(), body, &resp); err != nil {
			t.Fatalf("%s: sliding sync waiting for %s: %v (last: %v)", c.UserID, what, err, last)
		}
		pos = resp.Pos
		var typing, receipt *event.Event
		if e := resp.Extensions.Typing; e != nil && e.Rooms[room] != nil {
			typing = e.Rooms[room]
			typing.Type = event.EphemeralEventTyping
			_ = typing.Content.ParseRaw(typing.Type)
		}
		if e := resp.Extensions.Receipts; e != nil && e.Rooms[room] != nil {
			receipt = e.Rooms[room]
			receipt.Type = event.EphemeralEventReceipt
			_ = receipt.Content.ParseRaw(receipt.Type)
		}
		if last = check(typing, receipt); last == nil {
			return
		}
	}
}

// TestFederationTypingReceiptsPresence: alice on A and bob on B share a
// room. bob sees alice type, stop typing, read his message and come
// online with a status message, in /sync and (typing and receipts) in
// sliding sync's extensions; carol on B, who shares no room with alice,
// sees none of alice's presence, and alice none of carol's; once bob
// leaves, alice's presence is kept from him though carol, on his server,
// now shares a room with her.
func TestFederationTypingReceiptsPresence(t *testing.T) {
	ctx := context.Background()
	f := newFedRoom(t, "")
	alice, bob := f.Alice, f.Bob
	carol := f.B.RegisterUser("carol")
	bobSync := &syncReader{t: t, c: bob}
	carolSync := &syncReader{t: t, c: carol}
	aliceSync := &syncReader{t: t, c: alice}
	// Everyone has synced once: what follows comes incrementally.
	for _, r := range []*syncReader{bobSync, carolSync, aliceSync} {
		r.until("an initial sync", func(*mautrix.RespSync) error { return nil })
	}
	waitSyncMembership(ctx, t, alice, f.Room, bob.UserID, event.MembershipJoin)

	t.Run("typing", func(t *testing.T) {
		if _, err := alice.UserTyping(ctx, f.Room, true, 30*time.Second); err != nil {
			t.Fatal(err)
		}
		bobSync.until("alice typing", func(resp *mautrix.RespSync) error {
			if u := typingUsers(ephemeralOf(resp, f.Room, event.EphemeralEventTyping)); !slices.Equal(u, []id.UserID{alice.UserID}) {
				return fmt.Errorf("typing: %v", u)
			}
			return nil
		})
		slidingEphemeral(t, bob, f.Room, "alice typing", func(typing, _ *event.Event) error {
			if u := typingUsers(typing); !slices.Equal(u, []id.UserID{alice.UserID}) {
				return fmt.Errorf("typing: %v", u)
			}
			return nil
		})
		if _, err := alice.UserTyping(ctx, f.Room, false, 0); err != nil {
			t.Fatal(err)
		}
		bobSync.until("alice no longer typing", func(resp *mautrix.RespSync) error {
			ev := ephemeralOf(resp, f.Room, event.EphemeralEventTyping)
			if ev == nil || len(typingUsers(ev)) != 0 {
				return fmt.Errorf("typing event %v", ev)
			}
			return nil
		})
	})

	t.Run("receipts", func(t *testing.T) {
		sent, err := bob.SendText(ctx, f.Room, "did you read this?")
		if err != nil {
			t.Fatal(err)
		}
		waitForMessage(t, alice, f.Room, "did you read this?")
		if err := alice.SendReceipt(ctx, f.Room, sent.EventID, event.ReceiptTypeRead, nil); err != nil {
			t.Fatalf("alice marks read: %v", err)
		}
		bobSync.until("alice's read receipt", func(resp *mautrix.RespSync) error {
			if ev := ephemeralOf(resp, f.Room, event.EphemeralEventReceipt); !readBy(ev, sent.EventID, alice.UserID) {
				return fmt.Errorf("receipts: %v", ev)
			}
			return nil
		})
		slidingEphemeral(t, bob, f.Room, "alice's read receipt", func(_, receipt *event.Event) error {
			if !readBy(receipt, sent.EventID, alice.UserID) {
				return fmt.Errorf("receipts: %v", receipt)
			}
			return nil
		})
	})

	t.Run("presence", func(t *testing.T) {
		if err := alice.SetPresence(ctx, mautrix.ReqPresence{Presence: event.PresenceOnline, StatusMsg: "on A"}); err != nil {
			t.Fatal(err)
		}
		if err := carol.SetPresence(ctx, mautrix.ReqPresence{Presence: event.PresenceOnline, StatusMsg: "carol on B"}); err != nil {
			t.Fatal(err)
		}
		bobSync.until("alice's presence", func(resp *mautrix.RespSync) error {
			p := presenceOf(resp, alice.UserID)
			if p == nil || p.Presence != event.PresenceOnline || p.StatusMessage != "on A" {
				return fmt.Errorf("presence %+v", p)
			}
			return nil
		})
		if p, err := bob.GetPresence(ctx, alice.UserID); err != nil || p.Presence != event.PresenceOnline || p.StatusMsg != "on A" {
			t.Errorf("bob reading alice's presence: %+v (%v)", p, err)
		}
		// carol's own presence reaches carol: once she has it, the same
		// stream has passed alice's update, which must not be there.
		seen := false
		carolSync.until("carol's own presence", func(resp *mautrix.RespSync) error {
			if presenceOf(resp, alice.UserID) != nil {
				seen = true
			}
			if presenceOf(resp, carol.UserID) == nil {
				return errors.New("not yet")
			}
			return nil
		})
		if seen {
			t.Error("carol, sharing no room with alice, got her presence in /sync")
		}
		// Nor does alice hear of carol, though she hears of bob's
		// presence change on the same server after carol's.
		if err := bob.SetPresence(ctx, mautrix.ReqPresence{Presence: event.PresenceUnavailable, StatusMsg: "away on B"}); err != nil {
			t.Fatal(err)
		}
		seen = false
		aliceSync.until("bob's presence", func(resp *mautrix.RespSync) error {
			if presenceOf(resp, carol.UserID) != nil {
				seen = true
			}
			p := presenceOf(resp, bob.UserID)
			if p == nil || p.Presence != event.PresenceUnavailable || p.StatusMessage != "away on B" {
				return fmt.Errorf("presence of bob %+v", p)
			}
			return nil
		})
		if seen {
			t.Error("alice, sharing no room with carol, got her presence in /sync")
		}
		if _, err := carol.GetPresence(ctx, alice.UserID); !errors.Is(err, mautrix.MForbidden) {
			t.Errorf("carol reading alice's presence: got %v, want M_FORBIDDEN", err)
		}
	})
	// bob leaves while carol, on the same server, now shares a room with
	// alice: B still takes in alice's presence, and must keep it from bob.
	t.Run("presence after leaving", func(t *testing.T) {
		room2, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := carol.JoinRoom(ctx, room2.RoomID.String(), &mautrix.ReqJoinRoom{Via: []string{f.A.ServerName()}}); err != nil {
			t.Fatalf("carol joins alice's second room: %v", err)
		}
		if _, err := bob.LeaveRoom(ctx, f.Room); err != nil {
			t.Fatal(err)
		}
		waitSyncMembership(ctx, t, alice, f.Room, bob.UserID, event.MembershipLeave)
		if err := alice.SetPresence(ctx, mautrix.ReqPresence{Presence: event.PresenceUnavailable, StatusMsg: "after bob left"}); err != nil {
			t.Fatal(err)
		}
		carolSync.until("alice's presence", func(resp *mautrix.RespSync) error {
			if p := presenceOf(resp, alice.UserID); p == nil || p.StatusMessage != "after bob left" {
				return fmt.Errorf("presence of alice %+v", p)
			}
			return nil
		})
		// B has alice's update; bob's own later change marks how far his
		// presence stream has gone past it.
		if err := bob.SetPresence(ctx, mautrix.ReqPresence{Presence: event.PresenceOnline, StatusMsg: "back on B"}); err != nil {
			t.Fatal(err)
		}
		seen := false
		bobSync.until("bob's own presence", func(resp *mautrix.RespSync) error {
			if presenceOf(resp, alice.UserID) != nil {
				seen = true
			}
			if p := presenceOf(resp, bob.UserID); p == nil || p.StatusMessage != "back on B" {
				return errors.New("not yet")
			}
			return nil
		})
		if seen {
			t.Error("bob got alice's presence in /sync after leaving their only shared room")
		}
		if _, err := bob.GetPresence(ctx, alice.UserID); !errors.Is(err, mautrix.MForbidden) {
			t.Errorf("bob reading alice's presence after leaving: got %v, want M_FORBIDDEN", err)
		}
		if p, err := carol.GetPresence(ctx, alice.UserID); err != nil || p.StatusMsg != "after bob left" {
			t.Errorf("carol reading alice's presence: %+v (%v)", p, err)
		}
	})
}
