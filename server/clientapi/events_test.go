package clientapi_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"

	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
	"github.com/palpo-im/palpo-desktop/server/syncer"
)

// evGet sends a GET to a client API path and decodes the answer into out.
func evGet(t *testing.T, ts *testserver.Server, c *mautrix.Client, path string, out any) error {
	t.Helper()
	return dirRequest(t, ts, c, http.MethodGet, path, nil, out)
}

// evStream calls GET /events with the given query and fails the test on
// an error.
func evStream(t *testing.T, ts *testserver.Server, c *mautrix.Client, query string) *syncer.EventsResponse {
	t.Helper()
	var resp syncer.EventsResponse
	if err := evGet(t, ts, c, "/v3/events?"+query, &resp); err != nil {
		t.Fatalf("GET /events?%s: %v", query, err)
	}
	return &resp
}

// evPoll starts a long-poll of GET /events in the background and waits
// until the server holds it, so what the test sends next wakes it.
func evPoll(t *testing.T, ts *testserver.Server, c *mautrix.Client, query string) <-chan *syncer.EventsResponse {
	t.Helper()
	ch := make(chan *syncer.EventsResponse, 1)
	go func() {
		var resp syncer.EventsResponse
		if err := dirRequest(t, ts, c, http.MethodGet, "/v3/events?"+query, nil, &resp); err != nil {
			t.Errorf("GET /events?%s: %v", query, err)
		}
		ch <- &resp
	}()
	waitForWaiters(t, ts, 1)
	return ch
}

func TestEventStream(t *testing.T) {
	ts, alice, bob, roomID := pairInRoom(t, "")
	ctx := context.Background()
	ctxSendTexts(t, alice, roomID, "before")
	elsewhere := roomCreate(t, alice, &mautrix.ReqCreateRoom{})

	// Without from, the stream starts now: nothing yet.
	first := evStream(t, ts, bob, "timeout=0")
	if len(first.Chunk) != 0 || first.Start == "" || first.End != first.Start {
		t.Fatalf("stream from now: %+v", first)
	}
	// A long-poll wakes for the next event in one of bob's rooms, and only
	// shows his rooms.
	ch := evPoll(t, ts, bob, "timeout=10000&from="+url.QueryEscape(first.End))
	ctxSendTexts(t, alice, elsewhere, "not for bob")
	ctxSendTexts(t, alice, roomID, "after")
	got := <-ch
	if b := ctxBodies(got.Chunk); !slices.Equal(b, []string{"after"}) || got.Start != first.End || got.Chunk[0].RoomID != roomID {
		t.Fatalf("long-poll: %v %+v", b, got)
	}
	// From its end there is nothing new; from the older token the same
	// event again.
	if again := evStream(t, ts, bob, "timeout=0&from="+url.QueryEscape(got.End)); len(again.Chunk) != 0 || again.End != got.End {
		t.Fatalf("from end: %v, end %s (was %s)", ctxBodies(again.Chunk), again.End, got.End)
	}
	if replay := evStream(t, ts, bob, "timeout=0&from="+url.QueryEscape(first.End)); !slices.Equal(ctxBodies(replay.Chunk), []string{"after"}) {
		t.Fatalf("replay: %v", ctxBodies(replay.Chunk))
	}
	// limit pages the stream: end resumes after the last event returned.
	ctxSendTexts(t, alice, roomID, "p0", "p1", "p2")
	page := evStream(t, ts, bob, "timeout=0&limit=2&from="+url.QueryEscape(got.End))
	rest := evStream(t, ts, bob, "timeout=0&limit=2&from="+url.QueryEscape(page.End))
	if !slices.Equal(ctxBodies(page.Chunk), []string{"p0", "p1"}) || !slices.Equal(ctxBodies(rest.Chunk), []string{"p2"}) {
		t.Fatalf("pages: %v then %v", ctxBodies(page.Chunk), ctxBodies(rest.Chunk))
	}
	got = rest

	// Bob sees his own leave, and nothing of the room after it.
	if _, err := bob.LeaveRoom(ctx, roomID); err != nil {
		t.Fatal(err)
	}
	ctxSendTexts(t, alice, roomID, "bob is gone")
	left := evStream(t, ts, bob, "timeout=0&from="+url.QueryEscape(got.End))
	if len(left.Chunk) != 1 || left.Chunk[0].Type != event.StateMember || left.Chunk[0].GetStateKey() != string(bob.UserID) {
		t.Fatalf("after leaving: %v", ctxBodies(left.Chunk))
	}
	if later := evStream(t, ts, bob, "timeout=0&from="+url.QueryEscape(left.End)); len(later.Chunk) != 0 {
		t.Fatalf("events after leaving: %v", ctxBodies(later.Chunk))
	}
}

func TestEventStreamBadInput(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	roomID := roomCreate(t, alice, &mautrix.ReqCreateRoom{})
	for _, c := range []struct{ query, code string }{
		{"from=nonsense&timeout=0", "M_INVALID_PARAM"},
		{"from=s99999999&timeout=0", "M_INVALID_PARAM"}, // ahead of the server
		{"timeout=-1", "M_INVALID_PARAM"},
		{"timeout=soon", "M_INVALID_PARAM"},
		{"timeout=0&limit=-1", "M_INVALID_PARAM"},
		{"timeout=0&limit=ten", "M_INVALID_PARAM"},
		{"timeout=0&room_id=not-a-room", "M_INVALID_PARAM"},
		{"timeout=0&room_id=", "M_INVALID_PARAM"},
	} {
		roomErr(t, c.query, evGet(t, ts, alice, "/v3/events?"+c.query, nil), 400, c.code)
	}
	roomErr(t, "unknown room", evGet(t, ts, alice, "/v3/events?timeout=0&room_id="+url.QueryEscape("!nope:"+alice.UserID.Homeserver()), nil), 404, "M_NOT_FOUND")
	roomErr(t, "no token", evGet(t, ts, dirBadToken(ts), "/v3/events?timeout=0", nil), 401, "M_UNKNOWN_TOKEN")
	// The room form for a room the user is in works like the plain one.
	start := evStream(t, ts, alice, "timeout=0&room_id="+url.QueryEscape(string(roomID)))
	ctxSendTexts(t, alice, roomID, "in the room")
	resp := evStream(t, ts, alice, "timeout=0&room_id="+url.QueryEscape(string(roomID))+"&from="+url.QueryEscape(start.End))
	if b := ctxBodies(resp.Chunk); !slices.Equal(b, []string{"in the room"}) {
		t.Fatalf("room stream of alice's own room: %v", b)
	}
}

// TestEventStreamPeek: GET /events?room_id= follows a world-readable room
// the user is not in (a room preview), and refuses any other room.
func TestEventStreamPeek(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	carol := ts.RegisterUser("carol")
	roomID := roomCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	q := "timeout=0&room_id=" + url.QueryEscape(string(roomID))
	roomErr(t, "peek into a shared room", evGet(t, ts, carol, "/v3/events?"+q, nil), 403, "M_FORBIDDEN")

	setVisibility(t, alice, roomID, "world_readable")
	var snap syncer.RoomInitialSyncResponse
	if err := evGet(t, ts, carol, "/v3/rooms/"+url.PathEscape(string(roomID))+"/initialSync", &snap); err != nil {
		t.Fatal(err)
	}
	ch := evPoll(t, ts, carol, "timeout=10000&room_id="+url.QueryEscape(string(roomID))+"&from="+url.QueryEscape(snap.Messages.End))
	ctxSendTexts(t, alice, roomID, "hello lurkers")
	got := <-ch
	if b := ctxBodies(got.Chunk); !slices.Equal(b, []string{"hello lurkers"}) {
		t.Fatalf("peek: %v", b)
	}
	// Typing in the room wakes a peeker too.
	ch = evPoll(t, ts, carol, "timeout=10000&room_id="+url.QueryEscape(string(roomID))+"&from="+url.QueryEscape(got.End))
	if _, err := alice.UserTyping(context.Background(), roomID, true, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	select {
	case typed := <-ch:
		if !slices.ContainsFunc(typed.Chunk, func(ev *event.Event) bool { return ev.Type == event.EphemeralEventTyping }) {
			t.Fatalf("peek woken without the typing: %v", typed.Chunk)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("typing did not wake the peek")
	}
	// The plain stream is of carol's own rooms: she is in none.
	if resp := evStream(t, ts, carol, "timeout=0&from="+url.QueryEscape(snap.Messages.End)); len(resp.Chunk) != 0 {
		t.Fatalf("carol's own stream: %v", ctxBodies(resp.Chunk))
	}
	// Closing the history ends the preview.
	setVisibility(t, alice, roomID, "joined")
	roomErr(t, "peek after closing", evGet(t, ts, carol, "/v3/events?"+q, nil), 403, "M_FORBIDDEN")
}

// TestEventStreamExtras: besides room events the stream carries typing,
// receipts, account data (tags with their room) and presence, as old
// clients and the test suites wait for them there.
func TestEventStreamExtras(t *testing.T) {
	ts, alice, bob, roomID := pairInRoom(t, "")
	ctx := context.Background()
	msg := ctxSendTexts(t, alice, roomID, "read me")[0]
	from := url.QueryEscape(evStream(t, ts, bob, "timeout=0").End)

	if _, err := alice.UserTyping(ctx, roomID, true, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := alice.MarkRead(ctx, roomID, msg); err != nil {
		t.Fatal(err)
	}
	if err := bob.AddTag(ctx, roomID, "u.later", 0.1); err != nil {
		t.Fatal(err)
	}
	if err := bob.SetAccountData(ctx, "org.example.prefs", map[string]any{"a": 1}); err != nil {
		t.Fatal(err)
	}
	if err := alice.SetPresence(ctx, mautrix.ReqPresence{Presence: event.PresenceOnline}); err != nil {
		t.Fatal(err)
	}
	find := func(chunk []*event.Event, evType string) *event.Event {
		for _, ev := range chunk {
			if ev.Type.Type == evType {
				return ev
			}
		}
		return nil
	}
	got := evStream(t, ts, bob, "timeout=0&from="+from)
	if ev := find(got.Chunk, "m.typing"); ev == nil || ev.RoomID != roomID || !slices.Contains(ev.Content.Raw["user_ids"].([]any), any(string(alice.UserID))) {
		t.Fatalf("typing: %+v", ev)
	}
	if ev := find(got.Chunk, "m.receipt"); ev == nil || ev.RoomID != roomID || ev.Content.Raw[string(msg)] == nil {
		t.Fatalf("receipt: %+v", ev)
	}
	if ev := find(got.Chunk, "m.tag"); ev == nil || ev.RoomID != roomID {
		t.Fatalf("tag: %+v", ev)
	}
	if ev := find(got.Chunk, "org.example.prefs"); ev == nil || ev.RoomID != "" {
		t.Fatalf("account data: %+v", ev)
	}
	if ev := find(got.Chunk, "m.presence"); ev == nil || ev.Sender != alice.UserID || ev.Content.Raw["user_id"] != string(alice.UserID) {
		t.Fatalf("presence: %+v", ev)
	}
	// One room's stream has that room's typing and receipts, not the
	// user's own data.
	one := evStream(t, ts, bob, "timeout=0&room_id="+url.QueryEscape(string(roomID))+"&from="+from)
	if find(one.Chunk, "m.typing") == nil || find(one.Chunk, "m.receipt") == nil || find(one.Chunk, "m.tag") != nil || find(one.Chunk, "m.presence") != nil {
		t.Fatalf("room stream: %v", isTypes(one.Chunk))
	}
	if again := evStream(t, ts, bob, "timeout=0&from="+url.QueryEscape(got.End)); len(again.Chunk) != 0 {
		t.Fatalf("from end: %v", isTypes(again.Chunk))
	}
}
