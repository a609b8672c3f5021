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
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
)

// ephEvent returns the ephemeral event of a type in a joined room of a
// sync response, or nil.
func ephEvent(resp *mautrix.RespSync, roomID id.RoomID, evType string) *event.Event {
	jr := resp.Rooms.Join[roomID]
	if jr == nil {
		return nil
	}
	for _, ev := range jr.Ephemeral.Events {
		if ev.Type.Type == evType {
			return ev
		}
	}
	return nil
}

// typUsers returns the user_ids of a room's m.typing event in a sync
// response, and whether there was one.
func typUsers(t *testing.T, resp *mautrix.RespSync, roomID id.RoomID) ([]string, bool) {
	t.Helper()
	ev := ephEvent(resp, roomID, event.EphemeralEventTyping.Type)
	if ev == nil {
		return nil, false
	}
	raw, ok := ev.Content.Raw["user_ids"].([]any)
	if !ok {
		t.Fatalf("m.typing without a user_ids list: %v", ev.Content.Raw)
	}
	out := []string{}
	for _, u := range raw {
		out = append(out, u.(string))
	}
	return out, true
}

type ephPollResult struct {
	resp *mautrix.RespSync
	took time.Duration
}

// ephPoll starts a long-poll sync in the background.
func ephPoll(t *testing.T, c *mautrix.Client, since string, filter string) chan ephPollResult {
	ch := make(chan ephPollResult, 1)
	go func() {
		start := time.Now()
		resp, err := c.FullSyncRequest(context.Background(), mautrix.ReqSync{Since: since, FilterID: filter, Timeout: 30000})
		if err != nil {
			t.Error(err)
		}
		ch <- ephPollResult{resp, time.Since(start)}
	}()
	return ch
}

// ephWait long-polls from since until a response satisfies cond (other
// news, like presence, may end a poll first) and returns it with the time
// it took. Take since from a sync made just before, so old news does not
// end the first poll.
func ephWait(t *testing.T, ts *testserver.Server, c *mautrix.Client, since string, change func(), cond func(*mautrix.RespSync) bool) ephPollResult {
	t.Helper()
	start := time.Now()
	ch := ephPoll(t, c, since, "")
	waitForWaiters(t, ts, 1)
	change()
	for {
		r := <-ch
		if r.resp == nil {
			t.FailNow()
		}
		if cond(r.resp) {
			return ephPollResult{r.resp, time.Since(start)}
		}
		if time.Since(start) > 20*time.Second {
			t.Fatal("the expected sync response never came")
		}
		ch = ephPoll(t, c, r.resp.NextBatch, "")
	}
}

func TestTypingStartStop(t *testing.T) {
	ts, alice, bob, roomID := pairInRoom(t, "")
	ctx := context.Background()
	since := syncOnce(t, bob, "", "", 0).NextBatch

	// Alice starts typing: bob's long-poll wakes with her in the list, and
	// the room shows up although it has no new timeline events.
	hasTyping := func(resp *mautrix.RespSync) bool { _, ok := typUsers(t, resp, roomID); return ok }
	r := ephWait(t, ts, bob, since, func() {
		if _, err := alice.UserTyping(ctx, roomID, true, 30*time.Second); err != nil {
			t.Error(err)
		}
	}, hasTyping)
	if users, ok := typUsers(t, r.resp, roomID); !ok || !slices.Equal(users, []string{string(alice.UserID)}) || r.took > 10*time.Second {
		t.Fatalf("typing start: %v %v after %v", users, ok, r.took)
	}
	if n := len(r.resp.Rooms.Join[roomID].Timeline.Events); n != 0 {
		t.Fatalf("typing only: %d timeline events", n)
	}
	since = r.resp.NextBatch

	// An initial sync shows who is typing now.
	if users, ok := typUsers(t, syncOnce(t, bob, "", "", 0), roomID); !ok || !slices.Equal(users, []string{string(alice.UserID)}) {
		t.Fatalf("initial sync typing: %v %v", users, ok)
	}
	// Typing again only extends the timeout: no news.
	if _, err := alice.UserTyping(ctx, roomID, true, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, ok := typUsers(t, syncOnce(t, bob, since, "", 0), roomID); ok {
		t.Fatal("typing again while typing was reported as a change")
	}

	// Bob types too; both are listed, sorted.
	if _, err := bob.UserTyping(ctx, roomID, true, 0); err != nil {
		t.Fatal(err)
	}
	resp := syncOnce(t, bob, since, "", 0)
	if users, _ := typUsers(t, resp, roomID); !slices.Equal(users, []string{string(alice.UserID), string(bob.UserID)}) {
		t.Fatalf("two typing: %v", users)
	}
	since = resp.NextBatch

	// Alice stops: the long-poll wakes with only bob left.
	r = ephWait(t, ts, bob, since, func() {
		if _, err := alice.UserTyping(ctx, roomID, false, 0); err != nil {
			t.Error(err)
		}
	}, hasTyping)
	if users, ok := typUsers(t, r.resp, roomID); !ok || !slices.Equal(users, []string{string(bob.UserID)}) || r.took > 10*time.Second {
		t.Fatalf("typing stop: %v %v after %v", users, ok, r.took)
	}
	since = r.resp.NextBatch
	// Stopping when not typing changes nothing.
	if _, err := alice.UserTyping(ctx, roomID, false, 0); err != nil {
		t.Fatal(err)
	}
	if _, ok := typUsers(t, syncOnce(t, bob, since, "", 0), roomID); ok {
		t.Fatal("stopping twice was reported as a change")
	}

	// Bob leaves while typing: he is no longer typing there.
	aliceSince := syncOnce(t, alice, "", "", 0).NextBatch
	if _, err := bob.LeaveRoom(ctx, roomID); err != nil {
		t.Fatal(err)
	}
	if users, ok := typUsers(t, syncOnce(t, alice, aliceSince, "", 0), roomID); !ok || len(users) != 0 {
		t.Fatalf("typing after leaving: %v %v", users, ok)
	}
}

func TestTypingExpires(t *testing.T) {
	ts, alice, bob, roomID := pairInRoom(t, "")
	ctx := context.Background()
	since := syncOnce(t, bob, "", "", 0).NextBatch

	if _, err := alice.UserTyping(ctx, roomID, true, 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	resp := syncOnce(t, bob, since, "", 0)
	users, ok := typUsers(t, resp, roomID)
	if !ok {
		t.Fatal("typing not in sync")
	}
	if len(users) == 1 {
		// Still typing: the expiry must wake the waiting long-poll, long
		// before the poll's own 30 s timeout.
		r := ephWait(t, ts, bob, resp.NextBatch, func() {}, func(resp *mautrix.RespSync) bool {
			_, ok := typUsers(t, resp, roomID)
			return ok
		})
		users, ok = typUsers(t, r.resp, roomID)
		if r.took > 10*time.Second {
			t.Fatalf("expiry woke the long-poll only after %v", r.took)
		}
	} else {
		t.Log("typing expired before the first sync (slow machine): the wake-up was not exercised")
	}
	if !ok || len(users) != 0 {
		t.Fatalf("after expiry: %v %v", users, ok)
	}
	// Nobody typing: an initial sync has no m.typing.
	if _, ok := typUsers(t, syncOnce(t, bob, "", "", 0), roomID); ok {
		t.Fatal("initial sync shows typing when nobody is typing")
	}
}

// Typing positions are seeded from the clock, so a token from before a
// restart is behind the restarted server's positions: it is accepted and
// new typing shows up for it.
func TestTypingAcrossRestart(t *testing.T) {
	ts, alice, bob, roomID := pairInRoom(t, "")
	ctx := context.Background()
	// Some typing activity before the restart moves the typing position.
	for i := range 3 {
		if _, err := alice.UserTyping(ctx, roomID, i%2 == 0, 0); err != nil {
			t.Fatal(err)
		}
	}
	since := syncOnce(t, bob, "", "", 0).NextBatch
	ts.Restart()
	alice = ts.Login("alice", testserver.DefaultPassword)
	bob = ts.Login("bob", testserver.DefaultPassword)
	if _, err := alice.UserTyping(ctx, roomID, true, 0); err != nil {
		t.Fatal(err)
	}
	if users, ok := typUsers(t, syncOnce(t, bob, since, "", 0), roomID); !ok || !slices.Equal(users, []string{string(alice.UserID)}) {
		t.Fatalf("typing after restart for an old token: %v %v", users, ok)
	}
}

func TestTypingFilter(t *testing.T) {
	_, alice, bob, roomID := pairInRoom(t, "")
	ctx := context.Background()
	other := sharedRoom(t, alice, bob, "")
	for _, r := range []id.RoomID{roomID, other} {
		if _, err := alice.UserTyping(ctx, r, true, 0); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		filter    string
		want      bool // typing shown in roomID
		wantOther bool
	}{
		{`{}`, true, true},
		{`{"room":{"ephemeral":{"not_types":["m.typing"]}}}`, false, false},
		{`{"room":{"ephemeral":{"types":["m.receipt"]}}}`, false, false},
		{`{"room":{"ephemeral":{"types":["m.*"]}}}`, true, true},
		{`{"room":{"ephemeral":{"not_rooms":["` + string(other) + `"]}}}`, true, false},
		{`{"room":{"rooms":["` + string(other) + `"]}}`, false, true},
	} {
		resp := syncOnce(t, bob, "", tc.filter, 0)
		_, got := typUsers(t, resp, roomID)
		_, gotOther := typUsers(t, resp, other)
		if got != tc.want || gotOther != tc.wantOther {
			t.Errorf("filter %s: typing in room %v, other %v; want %v, %v", tc.filter, got, gotOther, tc.want, tc.wantOther)
		}
	}
}

func TestTypingBadInput(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	carol := ts.RegisterUser("carol")
	roomID := sharedRoom(t, alice, bob, "")
	path := func(roomID id.RoomID, user id.UserID) string {
		return "/_matrix/client/v3/rooms/" + url.PathEscape(string(roomID)) + "/typing/" + url.PathEscape(string(user))
	}
	ok := map[string]any{"typing": true, "timeout": 1000}
	for _, tc := range []struct {
		what    string
		c       *mautrix.Client
		path    string
		body    any
		status  int
		errcode string
	}{
		{"someone else's typing", alice, path(roomID, bob.UserID), ok, http.StatusForbidden, "M_FORBIDDEN"},
		{"not a member", carol, path(roomID, carol.UserID), ok, http.StatusForbidden, "M_FORBIDDEN"},
		{"unknown room", alice, path("!nowhere:localhost", alice.UserID), ok, http.StatusForbidden, "M_FORBIDDEN"},
		{"bad room ID", alice, path("nowhere", alice.UserID), ok, http.StatusBadRequest, "M_INVALID_PARAM"},
		{"malformed JSON", alice, path(roomID, alice.UserID), `{"typing":`, http.StatusBadRequest, "M_NOT_JSON"},
		{"empty body", alice, path(roomID, alice.UserID), ``, http.StatusBadRequest, "M_NOT_JSON"},
		{"not an object", alice, path(roomID, alice.UserID), `[true]`, http.StatusBadRequest, "M_BAD_JSON"},
		{"typing not a boolean", alice, path(roomID, alice.UserID), map[string]any{"typing": "yes"}, http.StatusBadRequest, "M_BAD_JSON"},
		{"timeout not a number", alice, path(roomID, alice.UserID), map[string]any{"typing": true, "timeout": "soon"}, http.StatusBadRequest, "M_BAD_JSON"},
		{"missing typing", alice, path(roomID, alice.UserID), map[string]any{"timeout": 1000}, http.StatusBadRequest, "M_MISSING_PARAM"},
		{"negative timeout", alice, path(roomID, alice.UserID), map[string]any{"typing": true, "timeout": -5}, http.StatusBadRequest, "M_INVALID_PARAM"},
		{"no token", ts.Client(), path(roomID, alice.UserID), ok, http.StatusUnauthorized, "M_MISSING_TOKEN"},
	} {
		acctExpect(t, tc.what, acctDo(t, tc.c, http.MethodPut, tc.path, tc.body), tc.status, tc.errcode)
	}
	// None of it made anyone typing.
	if _, ok := typUsers(t, syncOnce(t, bob, "", "", 0), roomID); ok {
		t.Fatal("a refused typing request took effect")
	}
	// A huge timeout is accepted (and capped).
	acctExpect(t, "huge timeout", acctDo(t, alice, http.MethodPut, path(roomID, alice.UserID), map[string]any{"typing": true, "timeout": int64(1) << 60}), http.StatusOK, "")
}
