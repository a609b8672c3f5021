package clientapi_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
)

// ctxSendTexts sends messages with the given bodies and returns their IDs.
func ctxSendTexts(t *testing.T, c *mautrix.Client, roomID id.RoomID, bodies ...string) []id.EventID {
	t.Helper()
	ids := make([]id.EventID, len(bodies))
	for i, b := range bodies {
		resp, err := c.SendText(context.Background(), roomID, b)
		if err != nil {
			t.Fatalf("send %q: %v", b, err)
		}
		ids[i] = resp.EventID
	}
	return ids
}

// ctxBodies lists the bodies of the messages among evs, in order; other
// events show as their type.
func ctxBodies(evs []*event.Event) []string {
	out := make([]string, 0, len(evs))
	for _, ev := range evs {
		if body, ok := ev.Content.Raw["body"].(string); ok && ev.Type == event.EventMessage {
			out = append(out, body)
		} else {
			out = append(out, ev.Type.Type)
		}
	}
	return out
}

func ctxSeq(prefix string, from, to int) []string {
	var out []string
	if from <= to {
		for i := from; i <= to; i++ {
			out = append(out, fmt.Sprintf("%s%02d", prefix, i))
		}
	} else {
		for i := from; i >= to; i-- {
			out = append(out, fmt.Sprintf("%s%02d", prefix, i))
		}
	}
	return out
}

// ctxRaw calls /context with raw query parameters (mautrix leaves out a
// zero limit).
func ctxRaw(c *mautrix.Client, ts *testserver.Server, roomID id.RoomID, evID id.EventID, query string) (*mautrix.RespContext, error) {
	var resp mautrix.RespContext
	u := ts.URL + "/_matrix/client/v3/rooms/" + url.PathEscape(string(roomID)) + "/context/" + url.PathEscape(string(evID))
	if query != "" {
		u += "?" + query
	}
	_, err := c.MakeRequest(context.Background(), http.MethodGet, u, nil, &resp)
	return &resp, err
}

func TestContextAroundEvent(t *testing.T) {
	ts, alice, bob, roomID := pairInRoom(t, "")
	ctx := context.Background()
	ids := ctxSendTexts(t, alice, roomID, ctxSeq("m", 0, 19)...)

	// An even limit splits evenly; before is newest first, after oldest first.
	resp, err := alice.Context(ctx, roomID, ids[10], nil, 6)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Event == nil || resp.Event.ID != ids[10] || resp.Event.Content.Raw["body"] != "m10" {
		t.Fatalf("event: %+v", resp.Event)
	}
	if got := ctxBodies(resp.EventsBefore); !slices.Equal(got, ctxSeq("m", 9, 7)) {
		t.Fatalf("events_before %v", got)
	}
	if got := ctxBodies(resp.EventsAfter); !slices.Equal(got, ctxSeq("m", 11, 13)) {
		t.Fatalf("events_after %v", got)
	}
	// The sending device sees its transaction ID, as in /sync.
	if resp.Event.Unsigned.TransactionID == "" {
		t.Fatal("no transaction_id for the sender's own event")
	}
	if other, err := bob.Context(ctx, roomID, ids[10], nil, 2); err != nil || other.Event.Unsigned.TransactionID != "" {
		t.Fatalf("someone else sees the transaction_id: %+v %v", other, err)
	}

	// The tokens page with /messages to exactly the adjacent events.
	back, err := alice.Messages(ctx, roomID, resp.Start, "", mautrix.DirectionBackward, nil, 3)
	if err != nil {
		t.Fatal(err)
	}
	if got := ctxBodies(back.Chunk); !slices.Equal(got, ctxSeq("m", 6, 4)) {
		t.Fatalf("backwards from start: %v", got)
	}
	fwd, err := alice.Messages(ctx, roomID, resp.End, "", mautrix.DirectionForward, nil, 3)
	if err != nil {
		t.Fatal(err)
	}
	if got := ctxBodies(fwd.Chunk); !slices.Equal(got, ctxSeq("m", 14, 16)) {
		t.Fatalf("forwards from end: %v", got)
	}

	// An odd limit gives the extra event to events_after; no limit means 10.
	odd, err := alice.Context(ctx, roomID, ids[10], nil, 5)
	if err != nil || len(odd.EventsBefore) != 2 || len(odd.EventsAfter) != 3 {
		t.Fatalf("limit 5: %d before, %d after, %v", len(odd.EventsBefore), len(odd.EventsAfter), err)
	}
	def, err := alice.Context(ctx, roomID, ids[10], nil, 0)
	if err != nil || len(def.EventsBefore) != 5 || len(def.EventsAfter) != 5 {
		t.Fatalf("default limit: %d before, %d after, %v", len(def.EventsBefore), len(def.EventsAfter), err)
	}
	// limit=0: the event alone, with tokens right around it.
	zero, err := ctxRaw(alice, ts, roomID, ids[10], "limit=0")
	if err != nil || zero.Event == nil || len(zero.EventsBefore)+len(zero.EventsAfter) != 0 {
		t.Fatalf("limit 0: %+v %v", zero, err)
	}
	back, err = alice.Messages(ctx, roomID, zero.Start, "", mautrix.DirectionBackward, nil, 1)
	if err != nil || !slices.Equal(ctxBodies(back.Chunk), []string{"m09"}) {
		t.Fatalf("backwards from a limit-0 start: %v %v", ctxBodies(back.Chunk), err)
	}
	fwd, err = alice.Messages(ctx, roomID, zero.End, "", mautrix.DirectionForward, nil, 1)
	if err != nil || !slices.Equal(ctxBodies(fwd.Chunk), []string{"m11"}) {
		t.Fatalf("forwards from a limit-0 end: %v %v", ctxBodies(fwd.Chunk), err)
	}

	// At the start of the room: events_before reach the create event and
	// start pages to nothing.
	first, err := alice.Context(ctx, roomID, ids[0], nil, 100)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(first.EventsBefore); n == 0 || first.EventsBefore[n-1].Type != event.StateCreate {
		t.Fatalf("events before the first message: %v", ctxBodies(first.EventsBefore))
	}
	if got := ctxBodies(first.EventsAfter); !slices.Equal(got, ctxSeq("m", 1, 19)) {
		t.Fatalf("events after the first message: %v", got)
	}
	back, err = alice.Messages(ctx, roomID, first.Start, "", mautrix.DirectionBackward, nil, 10)
	if err != nil || len(back.Chunk) != 0 {
		t.Fatalf("backwards from the room's start: %v %v", ctxBodies(back.Chunk), err)
	}
	// At the end: end pages forwards to what is sent next.
	last, err := alice.Context(ctx, roomID, ids[19], nil, 4)
	if err != nil || len(last.EventsAfter) != 0 || len(last.EventsBefore) != 2 {
		t.Fatalf("context of the newest event: %+v %v", last, err)
	}
	fwd, err = alice.Messages(ctx, roomID, last.End, "", mautrix.DirectionForward, nil, 10)
	if err != nil || len(fwd.Chunk) != 0 {
		t.Fatalf("forwards from the newest: %v %v", ctxBodies(fwd.Chunk), err)
	}
	ctxSendTexts(t, bob, roomID, "later")
	fwd, err = alice.Messages(ctx, roomID, last.End, "", mautrix.DirectionForward, nil, 10)
	if err != nil || !slices.Equal(ctxBodies(fwd.Chunk), []string{"later"}) {
		t.Fatalf("forwards from the newest after a send: %v %v", ctxBodies(fwd.Chunk), err)
	}
}

func TestContextStateAndFilter(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	roomID := roomCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Topic: "first topic"})
	if _, err := bob.JoinRoomByID(ctx, roomID); err != nil {
		t.Fatal(err)
	}
	ids := ctxSendTexts(t, alice, roomID, ctxSeq("a", 0, 4)...)
	if _, err := alice.SendStateEvent(ctx, roomID, event.StateTopic, "", map[string]any{"topic": "second topic"}); err != nil {
		t.Fatal(err)
	}
	ids = append(ids, ctxSendTexts(t, bob, roomID, "b05")...)

	topicOf := func(state []*event.Event) string {
		for _, ev := range state {
			if ev.Type == event.StateTopic {
				return ev.Content.Raw["topic"].(string)
			}
		}
		return ""
	}
	members := func(state []*event.Event) []string {
		var out []string
		for _, ev := range state {
			if ev.Type == event.StateMember {
				out = append(out, *ev.StateKey)
			}
		}
		slices.Sort(out)
		return out
	}
	// The state is the state at the last event returned.
	resp, err := alice.Context(ctx, roomID, ids[2], nil, 2)
	if err != nil {
		t.Fatal(err)
	}
	if topic := topicOf(resp.State); topic != "first topic" {
		t.Fatalf("state at a03 has topic %q", topic)
	}
	if got := members(resp.State); !slices.Equal(got, []string{string(alice.UserID), string(bob.UserID)}) {
		t.Fatalf("state members %v", got)
	}
	resp, err = alice.Context(ctx, roomID, ids[4], nil, 4)
	if err != nil {
		t.Fatal(err)
	}
	if got := ctxBodies(resp.EventsAfter); !slices.Equal(got, []string{"m.room.topic", "b05"}) {
		t.Fatalf("events after a04: %v", got)
	}
	if topic := topicOf(resp.State); topic != "second topic" {
		t.Fatalf("state at b05 has topic %q", topic)
	}

	// lazy_load_members: member events only for the senders of the events
	// returned (and the caller).
	lazy := &mautrix.FilterPart{LazyLoadMembers: true}
	resp, err = bob.Context(ctx, roomID, ids[2], lazy, 2)
	if err != nil {
		t.Fatal(err)
	}
	if got := members(resp.State); !slices.Equal(got, []string{string(alice.UserID), string(bob.UserID)}) {
		t.Fatalf("lazy members for bob: %v", got)
	}
	resp, err = alice.Context(ctx, roomID, ids[2], lazy, 2)
	if err != nil {
		t.Fatal(err)
	}
	if got := members(resp.State); !slices.Equal(got, []string{string(alice.UserID)}) {
		t.Fatalf("lazy members for alice around her own messages: %v", got)
	}
	if topicOf(resp.State) == "" {
		t.Fatal("lazy loading dropped non-member state")
	}

	// A filter applies to the events around and the state, not the event.
	onlyBob := &mautrix.FilterPart{Senders: []id.UserID{bob.UserID}}
	resp, err = alice.Context(ctx, roomID, ids[2], onlyBob, 10)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Event.ID != ids[2] {
		t.Fatal("the filter hid the event itself")
	}
	for _, ev := range append(append(resp.EventsBefore, resp.EventsAfter...), resp.State...) {
		if ev.Sender != bob.UserID {
			t.Fatalf("filter let through %s from %s", ev.Type.Type, ev.Sender)
		}
	}
	if got := ctxBodies(resp.EventsAfter); !slices.Equal(got, []string{"b05"}) {
		t.Fatalf("bob's events after a02: %v", got)
	}
	if got := ctxBodies(resp.EventsBefore); !slices.Equal(got, []string{"m.room.member"}) {
		t.Fatalf("bob's events before a02: %v", got)
	}
	onlyMessages := &mautrix.FilterPart{Types: []event.Type{event.EventMessage}}
	resp, err = alice.Context(ctx, roomID, ids[0], onlyMessages, 4)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.EventsBefore) != 0 || !slices.Equal(ctxBodies(resp.EventsAfter), []string{"a01", "a02"}) {
		t.Fatalf("message-only context of a00: %v / %v", ctxBodies(resp.EventsBefore), ctxBodies(resp.EventsAfter))
	}
	// The filter skipped every earlier event, so start pages to nothing more.
	back, err := alice.Messages(ctx, roomID, resp.Start, "", mautrix.DirectionBackward, onlyMessages, 10)
	if err != nil || len(back.Chunk) != 0 {
		t.Fatalf("backwards past a filtered start: %v %v", ctxBodies(back.Chunk), err)
	}
	notHere := &mautrix.FilterPart{NotRooms: []id.RoomID{roomID}}
	resp, err = alice.Context(ctx, roomID, ids[2], notHere, 10)
	if err != nil || len(resp.EventsBefore)+len(resp.EventsAfter)+len(resp.State) != 0 || resp.Event == nil {
		t.Fatalf("not_rooms: %+v %v", resp, err)
	}
}

func TestContextHistoryVisibility(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	roomID := roomCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if _, err := alice.SendStateEvent(ctx, roomID, event.StateHistoryVisibility, "", map[string]any{"history_visibility": "joined"}); err != nil {
		t.Fatal(err)
	}
	early := ctxSendTexts(t, alice, roomID, ctxSeq("h", 0, 4)...)
	if _, err := bob.JoinRoomByID(ctx, roomID); err != nil {
		t.Fatal(err)
	}
	late := ctxSendTexts(t, alice, roomID, ctxSeq("h", 5, 9)...)

	resp, err := bob.Context(ctx, roomID, late[1], nil, 40)
	if err != nil {
		t.Fatal(err)
	}
	// Bob sees h05 and his join, then nothing of h00–h04; the room's
	// creation is visible again, sent while the history was shared.
	got := ctxBodies(resp.EventsBefore)
	if len(got) < 3 || !slices.Equal(got[:3], []string{"h05", "m.room.member", "m.room.history_visibility"}) {
		t.Fatalf("bob sees before h06: %v", got)
	}
	for _, b := range got {
		if strings.HasPrefix(b, "h0") && b != "h05" {
			t.Fatalf("bob sees %s from before he joined: %v", b, got)
		}
	}
	// Alice, there all along, sees everything before.
	all, err := alice.Context(ctx, roomID, late[1], nil, 40)
	if err != nil || !slices.Contains(ctxBodies(all.EventsBefore), "h00") {
		t.Fatalf("alice's context: %v %v", ctxBodies(all.EventsBefore), err)
	}
	// Paging back from a context that stops at bob's join skips the hidden
	// messages and carries on with what he may see.
	short, err := bob.Context(ctx, roomID, late[1], nil, 4)
	if err != nil || !slices.Equal(ctxBodies(short.EventsBefore), []string{"h05", "m.room.member"}) {
		t.Fatalf("short context: %v %v", ctxBodies(short.EventsBefore), err)
	}
	back, err := bob.Messages(ctx, roomID, short.Start, "", mautrix.DirectionBackward, nil, 3)
	if err != nil {
		t.Fatal(err)
	}
	if got := ctxBodies(back.Chunk); len(got) == 0 || got[0] != "m.room.history_visibility" {
		t.Fatalf("paging back from start shows bob %v", got)
	}
	_, err = bob.Context(ctx, roomID, early[2], nil, 4)
	roomErr(t, "event from before bob joined", err, 404, "M_NOT_FOUND")

	if _, err := bob.LeaveRoom(ctx, roomID); err != nil {
		t.Fatal(err)
	}
	ctxSendTexts(t, alice, roomID, "after bob left")
	resp, err = bob.Context(ctx, roomID, late[4], nil, 10)
	if err != nil {
		t.Fatal(err)
	}
	if got := ctxBodies(resp.EventsAfter); !slices.Equal(got, []string{"m.room.member"}) {
		t.Fatalf("bob sees after he left: %v", got)
	}
	stranger := ts.RegisterUser("stranger")
	_, err = stranger.Context(ctx, roomID, late[4], nil, 10)
	roomErr(t, "never in the room", err, 403, "M_FORBIDDEN")
}

func TestContextBadInput(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")
	roomID := roomCreate(t, alice, &mautrix.ReqCreateRoom{})
	other := roomCreate(t, alice, &mautrix.ReqCreateRoom{})
	evID := ctxSendTexts(t, alice, roomID, "here")[0]
	otherEv := ctxSendTexts(t, alice, other, "there")[0]

	_, err := alice.Context(ctx, "!unknown:localhost", evID, nil, 2)
	roomErr(t, "unknown room", err, 404, "M_NOT_FOUND")
	_, err = ctxRaw(alice, ts, "no-bang", evID, "")
	roomErr(t, "malformed room ID", err, 400, "M_INVALID_PARAM")
	_, err = alice.Context(ctx, roomID, "$unknown", nil, 2)
	roomErr(t, "unknown event", err, 404, "M_NOT_FOUND")
	_, err = alice.Context(ctx, roomID, otherEv, nil, 2)
	roomErr(t, "event of another room", err, 404, "M_NOT_FOUND")
	for _, q := range []string{"limit=-1", "limit=ten", "limit=1.5"} {
		_, err = ctxRaw(alice, ts, roomID, evID, q)
		roomErr(t, q, err, 400, "M_INVALID_PARAM")
	}
	_, err = ctxRaw(alice, ts, roomID, evID, "filter="+url.QueryEscape(`{"types":`))
	roomErr(t, "filter not JSON", err, 400, "M_NOT_JSON")
	_, err = ctxRaw(alice, ts, roomID, evID, "filter="+url.QueryEscape(`{"types":"m.room.message"}`))
	roomErr(t, "filter of the wrong shape", err, 400, "M_BAD_JSON")
	_, err = ctxRaw(alice, ts, roomID, evID, "filter="+url.QueryEscape(`{"senders":["not a user"]}`))
	roomErr(t, "filter with a bad user ID", err, 400, "M_BAD_JSON")
	_, err = alice.MakeRequest(ctx, http.MethodGet, ts.URL+"/_matrix/client/v3/rooms/"+url.PathEscape(string(roomID))+"/messages?dir=b&filter="+url.QueryEscape(`{"not_rooms":["nope"]}`), nil, nil)
	roomErr(t, "/messages filter with a bad room ID", err, 400, "M_BAD_JSON")
	_, err = ts.Client().Context(ctx, roomID, evID, nil, 2)
	roomErr(t, "no token", err, 401, "M_MISSING_TOKEN")
}
