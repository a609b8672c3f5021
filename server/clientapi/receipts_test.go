package clientapi_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
)

// rcptReceipts returns a room's m.receipt content from a sync response as
// event ID → receipt type → user → receipt (nil when there is none).
func rcptReceipts(t *testing.T, resp *mautrix.RespSync, roomID id.RoomID) map[string]map[string]map[string]map[string]any {
	t.Helper()
	ev := ephEvent(resp, roomID, event.EphemeralEventReceipt.Type)
	if ev == nil {
		return nil
	}
	out := map[string]map[string]map[string]map[string]any{}
	for evID, byType := range ev.Content.Raw {
		out[evID] = map[string]map[string]map[string]any{}
		for typ, byUser := range byType.(map[string]any) {
			out[evID][typ] = map[string]map[string]any{}
			for user, r := range byUser.(map[string]any) {
				out[evID][typ][user] = r.(map[string]any)
			}
		}
	}
	return out
}

// rcptHas tells whether a sync response shows user's receipt of a type on
// an event, and returns it.
func rcptHas(t *testing.T, resp *mautrix.RespSync, roomID id.RoomID, evID id.EventID, typ string, user id.UserID) (map[string]any, bool) {
	t.Helper()
	r, ok := rcptReceipts(t, resp, roomID)[string(evID)][typ][string(user)]
	return r, ok
}

func rcptSend(t *testing.T, c *mautrix.Client, roomID id.RoomID, body string) id.EventID {
	t.Helper()
	resp, err := c.SendText(context.Background(), roomID, body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.EventID
}

func rcptPath(roomID id.RoomID, typ string, evID id.EventID) string {
	return "/_matrix/client/v3/rooms/" + url.PathEscape(string(roomID)) + "/receipt/" + url.PathEscape(typ) + "/" + url.PathEscape(string(evID))
}

func TestReceiptsInSync(t *testing.T) {
	ts, alice, bob, roomID := pairInRoom(t, "")
	ctx := context.Background()
	m1 := rcptSend(t, bob, roomID, "one")
	m2 := rcptSend(t, bob, roomID, "two")
	since := syncOnce(t, bob, "", "", 0).NextBatch

	// Alice reads m1: bob's long-poll wakes with her receipt, and the room
	// is in rooms.join with nothing but it.
	before := time.Now().UnixMilli()
	r := ephWait(t, ts, bob, since, func() {
		if err := alice.MarkRead(ctx, roomID, m1); err != nil {
			t.Error(err)
		}
	}, func(resp *mautrix.RespSync) bool { return rcptReceipts(t, resp, roomID) != nil })
	got, ok := rcptHas(t, r.resp, roomID, m1, "m.read", alice.UserID)
	if !ok || r.took > 10*time.Second {
		t.Fatalf("receipt not delivered (after %v): %v", r.took, rcptReceipts(t, r.resp, roomID))
	}
	if ts, _ := got["ts"].(float64); int64(ts) < before || int64(ts) > time.Now().UnixMilli() {
		t.Fatalf("receipt ts %v", got["ts"])
	}
	if _, threaded := got["thread_id"]; threaded {
		t.Fatalf("unthreaded receipt has a thread_id: %v", got)
	}
	if n := len(r.resp.Rooms.Join[roomID].Timeline.Events); n != 0 {
		t.Fatalf("receipt only: %d timeline events", n)
	}
	since = r.resp.NextBatch

	// Alice reads m2: only the change comes down an incremental sync.
	if err := alice.MarkRead(ctx, roomID, m2); err != nil {
		t.Fatal(err)
	}
	resp := syncOnce(t, bob, since, "", 0)
	if rs := rcptReceipts(t, resp, roomID); len(rs) != 1 || rs[string(m2)]["m.read"][string(alice.UserID)] == nil {
		t.Fatalf("second receipt: %v", rs)
	}
	since = resp.NextBatch

	// A receipt for an older event is ignored (as Synapse does): no news,
	// and the receipt stays on m2.
	if err := alice.MarkRead(ctx, roomID, m1); err != nil {
		t.Fatal(err)
	}
	if err := alice.MarkRead(ctx, roomID, m2); err != nil {
		t.Fatal(err)
	}
	if rs := rcptReceipts(t, syncOnce(t, bob, since, "", 0), roomID); rs != nil {
		t.Fatalf("an older or repeated receipt was delivered: %v", rs)
	}
	// Initial syncs show the latest receipts, to everyone in the room.
	for _, c := range []*mautrix.Client{alice, bob} {
		resp := syncOnce(t, c, "", "", 0)
		rs := rcptReceipts(t, resp, roomID)
		if _, ok := rs[string(m2)]["m.read"][string(alice.UserID)]; !ok || rs[string(m1)] != nil {
			t.Fatalf("initial sync of %s: %v", c.UserID, rs)
		}
	}
	// Bob's own receipt sits beside alice's on the same event.
	if err := bob.MarkRead(ctx, roomID, m2); err != nil {
		t.Fatal(err)
	}
	if rs := rcptReceipts(t, syncOnce(t, alice, "", "", 0), roomID); len(rs[string(m2)]["m.read"]) != 2 {
		t.Fatalf("two readers: %v", rs)
	}
	// A filter can leave receipts out.
	if rs := rcptReceipts(t, syncOnce(t, bob, "", `{"room":{"ephemeral":{"not_types":["m.receipt"]}}}`, 0), roomID); rs != nil {
		t.Fatalf("filtered receipts: %v", rs)
	}
}

func TestPrivateReceipts(t *testing.T) {
	ts, alice, bob, roomID := pairInRoom(t, "")
	ctx := context.Background()
	m1 := rcptSend(t, bob, roomID, "one")
	bobSince := syncOnce(t, bob, "", "", 0).NextBatch
	aliceSince := syncOnce(t, alice, "", "", 0).NextBatch

	// The private receipt wakes its owner's long-poll...
	r := ephWait(t, ts, alice, aliceSince, func() {
		if err := alice.SendReceipt(ctx, roomID, m1, event.ReceiptTypeReadPrivate, nil); err != nil {
			t.Error(err)
		}
	}, func(resp *mautrix.RespSync) bool { return rcptReceipts(t, resp, roomID) != nil })
	if _, ok := rcptHas(t, r.resp, roomID, m1, "m.read.private", alice.UserID); !ok || r.took > 10*time.Second {
		t.Fatalf("owner does not see the private receipt: %v", rcptReceipts(t, r.resp, roomID))
	}
	if _, ok := rcptHas(t, syncOnce(t, alice, "", "", 0), roomID, m1, "m.read.private", alice.UserID); !ok {
		t.Fatal("owner's initial sync lacks the private receipt")
	}
	// ...and nobody else ever sees it.
	for _, since := range []string{bobSince, ""} {
		if rs := rcptReceipts(t, syncOnce(t, bob, since, "", 0), roomID); rs != nil {
			t.Fatalf("bob sees alice's private receipt (since %q): %v", since, rs)
		}
	}
	// A public receipt next to it is seen by bob, without the private one.
	m2 := rcptSend(t, bob, roomID, "two")
	if err := alice.SetReadMarkers(ctx, roomID, &mautrix.ReqSetReadMarkers{Read: m1, ReadPrivate: m2}); err != nil {
		t.Fatal(err)
	}
	rs := rcptReceipts(t, syncOnce(t, bob, "", "", 0), roomID)
	if rs[string(m1)]["m.read"][string(alice.UserID)] == nil || rs[string(m2)]["m.read.private"] != nil || rs[string(m1)]["m.read.private"] != nil {
		t.Fatalf("bob's view: %v", rs)
	}
	rs = rcptReceipts(t, syncOnce(t, alice, "", "", 0), roomID)
	if rs[string(m1)]["m.read"][string(alice.UserID)] == nil || rs[string(m2)]["m.read.private"][string(alice.UserID)] == nil {
		t.Fatalf("alice's view: %v", rs)
	}
}

func TestThreadedReceipts(t *testing.T) {
	_, alice, bob, roomID := pairInRoom(t, "")
	ctx := context.Background()
	root := rcptSend(t, bob, roomID, "root")
	reply, err := bob.SendMessageEvent(ctx, roomID, event.EventMessage, map[string]any{
		"msgtype": "m.text", "body": "in thread",
		"m.relates_to": map[string]any{"rel_type": "m.thread", "event_id": root},
	})
	if err != nil {
		t.Fatal(err)
	}
	reaction, err := bob.SendMessageEvent(ctx, roomID, event.EventReaction, map[string]any{
		"m.relates_to": map[string]any{"rel_type": "m.annotation", "event_id": reply.EventID, "key": "👍"},
	})
	if err != nil {
		t.Fatal(err)
	}
	plain := rcptSend(t, bob, roomID, "main timeline")

	send := func(evID id.EventID, thread string) acctResp {
		return acctDo(t, alice, http.MethodPost, rcptPath(roomID, "m.read", evID), map[string]any{"thread_id": thread})
	}
	for _, tc := range []struct {
		what   string
		evID   id.EventID
		thread string
		status int
	}{
		{"reply in its thread", reply.EventID, string(root), http.StatusOK},
		{"reaction to a reply, in the thread", reaction.EventID, string(root), http.StatusOK},
		{"root of the thread", root, string(root), http.StatusOK},
		{"plain message in main", plain, "main", http.StatusOK},
		{"root in main", root, "main", http.StatusOK},
		{"reply in main", reply.EventID, "main", http.StatusBadRequest},
		{"reaction to a reply in main", reaction.EventID, "main", http.StatusBadRequest},
		{"plain message in the thread", plain, string(root), http.StatusBadRequest},
		{"reply in another thread", reply.EventID, string(plain), http.StatusBadRequest},
		{"thread ID neither main nor an event", plain, "elsewhere", http.StatusBadRequest},
	} {
		code := ""
		if tc.status != http.StatusOK {
			code = "M_INVALID_PARAM"
		}
		acctExpect(t, tc.what, send(tc.evID, tc.thread), tc.status, code)
	}
	// Threaded receipts carry their thread_id in sync, and the main and
	// thread receipts are kept apart.
	resp := syncOnce(t, bob, "", "", 0)
	if r, ok := rcptHas(t, resp, roomID, reaction.EventID, "m.read", alice.UserID); !ok || r["thread_id"] != string(root) {
		t.Fatalf("thread receipt: %v", rcptReceipts(t, resp, roomID))
	}
	if r, ok := rcptHas(t, resp, roomID, plain, "m.read", alice.UserID); !ok || r["thread_id"] != "main" {
		t.Fatalf("main receipt: %v", rcptReceipts(t, resp, roomID))
	}
	// The spec's thread_id errors.
	for _, tc := range []struct {
		what string
		body any
	}{
		{"empty thread_id", map[string]any{"thread_id": ""}},
		{"thread_id not a string", map[string]any{"thread_id": 5}},
		{"thread_id null", `{"thread_id": null}`},
	} {
		acctExpect(t, tc.what, acctDo(t, alice, http.MethodPost, rcptPath(roomID, "m.read", plain), tc.body), http.StatusBadRequest, "M_INVALID_PARAM")
	}
	acctExpect(t, "thread_id on m.fully_read", acctDo(t, alice, http.MethodPost, rcptPath(roomID, "m.fully_read", plain), map[string]any{"thread_id": "main"}),
		http.StatusBadRequest, "M_INVALID_PARAM")
}

func TestFullyRead(t *testing.T) {
	ts, alice, bob, roomID := pairInRoom(t, "")
	ctx := context.Background()
	m1 := rcptSend(t, bob, roomID, "one")
	m2 := rcptSend(t, bob, roomID, "two")
	bobSince := syncOnce(t, bob, "", "", 0).NextBatch
	aliceSince := syncOnce(t, alice, "", "", 0).NextBatch

	fullyRead := func(resp *mautrix.RespSync) id.EventID {
		jr := resp.Rooms.Join[roomID]
		if jr == nil {
			return ""
		}
		for _, ev := range jr.AccountData.Events {
			if ev.Type.Type == "m.fully_read" {
				s, _ := ev.Content.Raw["event_id"].(string)
				return id.EventID(s)
			}
		}
		return ""
	}
	// Through the receipt endpoint: room account data, woken long-poll.
	r := ephWait(t, ts, alice, aliceSince, func() {
		if err := alice.SendReceipt(ctx, roomID, m1, "m.fully_read", nil); err != nil {
			t.Error(err)
		}
	}, func(resp *mautrix.RespSync) bool { return fullyRead(resp) != "" })
	if got := fullyRead(r.resp); got != m1 || r.took > 10*time.Second {
		t.Fatalf("m.fully_read in sync: %q after %v", got, r.took)
	}
	if rcptReceipts(t, r.resp, roomID) != nil {
		t.Fatal("m.fully_read showed up as a receipt")
	}
	var content event.FullyReadEventContent
	if err := alice.GetRoomAccountData(ctx, roomID, "m.fully_read", &content); err != nil || content.EventID != m1 {
		t.Fatalf("m.fully_read account data: %+v %v", content, err)
	}
	// Through /read_markers, together with a receipt.
	if err := alice.SetReadMarkers(ctx, roomID, &mautrix.ReqSetReadMarkers{FullyRead: m2, Read: m2}); err != nil {
		t.Fatal(err)
	}
	resp := syncOnce(t, alice, r.resp.NextBatch, "", 0)
	if got := fullyRead(resp); got != m2 {
		t.Fatalf("m.fully_read after read_markers: %q", got)
	}
	if _, ok := rcptHas(t, resp, roomID, m2, "m.read", alice.UserID); !ok {
		t.Fatal("m.read from read_markers missing")
	}
	// The marker does not move back.
	if err := alice.SetReadMarkers(ctx, roomID, &mautrix.ReqSetReadMarkers{FullyRead: m1}); err != nil {
		t.Fatal(err)
	}
	if err := alice.GetRoomAccountData(ctx, roomID, "m.fully_read", &content); err != nil || content.EventID != m2 {
		t.Fatalf("m.fully_read moved back: %+v %v", content, err)
	}
	// Bob sees neither alice's marker nor any account data of hers.
	if got := fullyRead(syncOnce(t, bob, bobSince, "", 0)); got != "" {
		t.Fatalf("bob sees alice's read marker %s", got)
	}
	// Clients cannot set m.fully_read directly.
	err := alice.SetRoomAccountData(ctx, roomID, "m.fully_read", map[string]any{"event_id": m1})
	if status, _ := acctErr(t, err); status != http.StatusMethodNotAllowed {
		t.Fatalf("direct m.fully_read: %v", err)
	}
	// An empty read_markers body changes nothing.
	acctExpect(t, "empty read markers", acctDo(t, alice, http.MethodPost, "/_matrix/client/v3/rooms/"+url.PathEscape(string(roomID))+"/read_markers", map[string]any{}), http.StatusOK, "")
}

func TestReceiptsBadInput(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	carol := ts.RegisterUser("carol")
	roomID := sharedRoom(t, alice, bob, "")
	otherRoom := roomCreate(t, carol, &mautrix.ReqCreateRoom{})
	m1 := rcptSend(t, bob, roomID, "one")
	foreign := rcptSend(t, carol, otherRoom, "elsewhere")
	// A room whose history bob cannot see from before he joined.
	hidden := roomCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", InitialState: []*event.Event{{
		Type: event.StateHistoryVisibility, Content: event.Content{Raw: map[string]any{"history_visibility": "joined"}},
	}}})
	secret := rcptSend(t, alice, hidden, "before bob")
	if _, err := bob.JoinRoomByID(ctx, hidden); err != nil {
		t.Fatal(err)
	}
	bobSince := syncOnce(t, bob, "", "", 0).NextBatch
	markers := "/_matrix/client/v3/rooms/" + url.PathEscape(string(roomID)) + "/read_markers"

	for _, tc := range []struct {
		what    string
		c       *mautrix.Client
		path    string
		body    any
		status  int
		errcode string
	}{
		{"not a member", carol, rcptPath(roomID, "m.read", m1), map[string]any{}, http.StatusForbidden, "M_FORBIDDEN"},
		{"unknown room", alice, rcptPath("!nowhere:localhost", "m.read", m1), map[string]any{}, http.StatusForbidden, "M_FORBIDDEN"},
		{"bad room ID", alice, rcptPath("nowhere", "m.read", m1), map[string]any{}, http.StatusBadRequest, "M_INVALID_PARAM"},
		{"unknown event", alice, rcptPath(roomID, "m.read", "$nope"), map[string]any{}, http.StatusNotFound, "M_NOT_FOUND"},
		{"event of another room", alice, rcptPath(roomID, "m.read", foreign), map[string]any{}, http.StatusNotFound, "M_NOT_FOUND"},
		{"event hidden by history visibility", bob, rcptPath(hidden, "m.read", secret), map[string]any{}, http.StatusNotFound, "M_NOT_FOUND"},
		{"bad event ID", alice, rcptPath(roomID, "m.read", "nope"), map[string]any{}, http.StatusBadRequest, "M_INVALID_PARAM"},
		{"bad receipt type", alice, rcptPath(roomID, "m.seen", m1), map[string]any{}, http.StatusBadRequest, "M_INVALID_PARAM"},
		{"malformed JSON", alice, rcptPath(roomID, "m.read", m1), `{"thread_id":`, http.StatusBadRequest, "M_NOT_JSON"},
		{"not an object", alice, rcptPath(roomID, "m.read", m1), `["main"]`, http.StatusBadRequest, "M_BAD_JSON"},
		{"no token", ts.Client(), rcptPath(roomID, "m.read", m1), map[string]any{}, http.StatusUnauthorized, "M_MISSING_TOKEN"},
		{"markers: not a member", carol, markers, map[string]any{"m.read": m1}, http.StatusForbidden, "M_FORBIDDEN"},
		{"markers: unknown event", alice, markers, map[string]any{"m.fully_read": "$nope", "m.read": m1}, http.StatusNotFound, "M_NOT_FOUND"},
		{"markers: event of another room", alice, markers, map[string]any{"m.read": m1, "m.read.private": foreign}, http.StatusNotFound, "M_NOT_FOUND"},
		{"markers: bad event ID", alice, markers, map[string]any{"m.read": "nope"}, http.StatusBadRequest, "M_INVALID_PARAM"},
		{"markers: event ID not a string", alice, markers, map[string]any{"m.read": 5}, http.StatusBadRequest, "M_BAD_JSON"},
		{"markers: malformed JSON", alice, markers, `{`, http.StatusBadRequest, "M_NOT_JSON"},
		{"markers: no token", ts.Client(), markers, map[string]any{"m.read": m1}, http.StatusUnauthorized, "M_MISSING_TOKEN"},
	} {
		acctExpect(t, tc.what, acctDo(t, tc.c, http.MethodPost, tc.path, tc.body), tc.status, tc.errcode)
	}
	// Nothing of it took effect: no receipt (the markers requests with one
	// bad event did not apply their good m.read either), no read marker.
	resp := syncOnce(t, bob, bobSince, "", 0)
	if rs := rcptReceipts(t, resp, roomID); rs != nil {
		t.Fatalf("a refused receipt took effect: %v", rs)
	}
	var content event.FullyReadEventContent
	if err := alice.GetRoomAccountData(ctx, roomID, "m.fully_read", &content); err == nil {
		t.Fatalf("a refused read marker took effect: %+v", content)
	}
	// A receipt with no body at all is accepted (older clients send none).
	acctExpect(t, "no body", acctDo(t, alice, http.MethodPost, rcptPath(roomID, "m.read", m1), ""), http.StatusOK, "")
	if _, ok := rcptHas(t, syncOnce(t, bob, bobSince, "", 0), roomID, m1, "m.read", alice.UserID); !ok {
		t.Fatal("receipt without a body was not stored")
	}
}
