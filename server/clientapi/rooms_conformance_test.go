package clientapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
)

// Room behaviours where clients (and the Matrix test suites) expect what
// Synapse does: joins, member content, rich topics, unsigned data on the
// read endpoints, /messages and /members edge cases, v12 creators, invites.

// rawJoin POSTs a join body to path (relative to /_matrix/client/v3).
func rawJoin(t *testing.T, ts *testserver.Server, c *mautrix.Client, path string, body any) (id.RoomID, error) {
	t.Helper()
	var resp struct {
		RoomID id.RoomID `json:"room_id"`
	}
	_, err := c.MakeFullRequest(context.Background(), mautrix.FullRequest{
		Method: http.MethodPost, URL: ts.URL + "/_matrix/client/v3" + path, RequestJSON: body, ResponseJSON: &resp, MaxAttempts: 1,
	})
	return resp.RoomID, err
}

// memberEvent is a user's current member event in a room.
func memberEvent(t *testing.T, c *mautrix.Client, roomID id.RoomID, user id.UserID) *event.Event {
	t.Helper()
	ev, err := c.FullStateEvent(context.Background(), roomID, event.StateMember, string(user))
	if err != nil {
		t.Fatalf("member event of %s: %v", user, err)
	}
	return ev
}

func TestJoinWhenJoinedIsIdempotent(t *testing.T) {
	ts, alice, bob, roomID := pairInRoom(t, "")
	ctx := context.Background()
	first := memberEvent(t, alice, roomID, bob.UserID).ID

	// Joining again with nothing new: 200 with the room ID, and no event.
	for _, path := range []string{"/join/" + url.PathEscape(string(roomID)), "/rooms/" + url.PathEscape(string(roomID)) + "/join"} {
		got, err := rawJoin(t, ts, bob, path, map[string]any{})
		if err != nil || got != roomID {
			t.Fatalf("join again via %s: %v %v", path, got, err)
		}
		if again := memberEvent(t, alice, roomID, bob.UserID).ID; again != first {
			t.Fatalf("join again via %s sent a new member event %s (was %s)", path, again, first)
		}
	}
	// The creator too.
	creator := memberEvent(t, alice, roomID, alice.UserID).ID
	if _, err := alice.JoinRoomByID(ctx, roomID); err != nil {
		t.Fatal(err)
	}
	if memberEvent(t, alice, roomID, alice.UserID).ID != creator {
		t.Fatal("the creator's join again sent a new member event")
	}

	// New content (a custom field) is a change: one new event, and the
	// same content again is not.
	if _, err := rawJoin(t, ts, bob, "/join/"+url.PathEscape(string(roomID)), map[string]any{"org.example.status": "busy"}); err != nil {
		t.Fatal(err)
	}
	changed := memberEvent(t, alice, roomID, bob.UserID)
	if changed.ID == first || changed.Content.Raw["org.example.status"] != "busy" {
		t.Fatalf("join with new content: %s %v", changed.ID, changed.Content.Raw)
	}
	if _, err := rawJoin(t, ts, bob, "/rooms/"+url.PathEscape(string(roomID))+"/join", map[string]any{"org.example.status": "busy"}); err != nil {
		t.Fatal(err)
	}
	if again := memberEvent(t, alice, roomID, bob.UserID).ID; again != changed.ID {
		t.Fatalf("the same content again sent %s (was %s)", again, changed.ID)
	}
	// A new display name is a change as well.
	if err := bob.SetDisplayName(ctx, "Bobby"); err != nil {
		t.Fatal(err)
	}
	renamed := memberEvent(t, alice, roomID, bob.UserID)
	if renamed.Content.Raw["displayname"] != "Bobby" {
		t.Fatalf("after a rename: %v", renamed.Content.Raw)
	}
	if _, err := bob.JoinRoomByID(ctx, roomID); err != nil {
		t.Fatal(err)
	}
	// A plain join drops the custom field: that is new content.
	plain := memberEvent(t, alice, roomID, bob.UserID)
	if _, kept := plain.Content.Raw["org.example.status"]; plain.ID == renamed.ID || kept || plain.Content.Raw["displayname"] != "Bobby" {
		t.Fatalf("a plain join after a custom one: %s %v", plain.ID, plain.Content.Raw)
	}
}

func TestJoinKeepsCustomContent(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	carol := ts.RegisterUser("carol")
	roomID := roomCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})

	// Extra keys stay, and so does a per-room display name (as Synapse
	// keeps it); membership comes from the server, the global profile fills
	// what the client left out; third_party_signed is a join parameter, not
	// content.
	body := map[string]any{
		"foo": "bar", "nested": map[string]any{"n": 1}, "reason": "hello",
		"membership": "leave", "displayname": "Not Bob", "third_party_signed": map[string]any{"x": 1},
	}
	if _, err := rawJoin(t, ts, bob, "/join/"+url.PathEscape(string(roomID)), body); err != nil {
		t.Fatal(err)
	}
	c := memberEvent(t, alice, roomID, bob.UserID).Content.Raw
	if c["foo"] != "bar" || c["reason"] != "hello" || c["membership"] != "join" || c["displayname"] != "Not Bob" {
		t.Fatalf("member content %v", c)
	}
	if n, _ := c["nested"].(map[string]any); n["n"] != float64(1) {
		t.Fatalf("nested custom content %v", c["nested"])
	}
	if _, ok := c["third_party_signed"]; ok {
		t.Fatalf("third_party_signed kept in content: %v", c)
	}
	// The /rooms/{roomId}/join form too.
	if _, err := rawJoin(t, ts, carol, "/rooms/"+url.PathEscape(string(roomID))+"/join", map[string]any{"foo": "baz"}); err != nil {
		t.Fatal(err)
	}
	if c := memberEvent(t, alice, roomID, carol.UserID).Content.Raw; c["foo"] != "baz" || c["displayname"] != "carol" {
		t.Fatalf("carol's member content %v", c)
	}
	// A reason that is not a string, custom content that is not canonical
	// JSON (a float) and a body that is not an object are bad JSON.
	_, err := rawJoin(t, ts, carol, "/join/"+url.PathEscape(string(roomID)), map[string]any{"reason": 5})
	roomErr(t, "non-string reason", err, 400, "M_BAD_JSON")
	_, err = rawJoin(t, ts, carol, "/join/"+url.PathEscape(string(roomID)), map[string]any{"foo": 1.5})
	roomErr(t, "float in custom content", err, 400, "M_BAD_JSON")
	_, err = rawJoin(t, ts, carol, "/join/"+url.PathEscape(string(roomID)), []string{"not", "an", "object"})
	roomErr(t, "body not an object", err, 400, "M_BAD_JSON")
}

func TestRoomTopicRichContent(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")
	roomID := roomCreate(t, alice, &mautrix.ReqCreateRoom{Topic: "All about tea"})
	var topic event.TopicEventContent
	if err := alice.StateEvent(ctx, roomID, event.StateTopic, "", &topic); err != nil {
		t.Fatal(err)
	}
	if topic.Topic != "All about tea" || topic.ExtensibleTopic == nil || len(topic.ExtensibleTopic.Text) != 1 ||
		topic.ExtensibleTopic.Text[0].Body != "All about tea" || topic.ExtensibleTopic.Text[0].MimeType != "text/plain" {
		t.Fatalf("createRoom topic content %+v (m.topic %+v)", topic, topic.ExtensibleTopic)
	}
	// createRoom's topic wins over one in initial_state, in both forms.
	roomID = roomCreate(t, alice, &mautrix.ReqCreateRoom{Topic: "Tea", InitialState: []*event.Event{{
		Type: event.StateTopic, Content: event.Content{Raw: map[string]any{"topic": "Coffee"}},
	}}})
	topic = event.TopicEventContent{}
	if err := alice.StateEvent(ctx, roomID, event.StateTopic, "", &topic); err != nil {
		t.Fatal(err)
	}
	if topic.Topic != "Tea" || topic.ExtensibleTopic == nil || topic.ExtensibleTopic.Text[0].Body != "Tea" {
		t.Fatalf("topic with initial_state %+v", topic)
	}
	// A client's rich topic is kept as sent.
	rich := map[string]any{"topic": "Plain", "m.topic": map[string]any{"m.text": []any{
		map[string]any{"mimetype": "text/html", "body": "<b>Rich</b>"},
		map[string]any{"body": "Plain"},
	}}}
	if _, err := alice.SendStateEvent(ctx, roomID, event.StateTopic, "", rich); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := alice.StateEvent(ctx, roomID, event.StateTopic, "", &got); err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(rich)
	if have, _ := json.Marshal(got); string(have) != string(want) {
		t.Fatalf("client topic %s, want %s", have, want)
	}
}

// rawEvent fetches GET /rooms/{roomId}/event/{eventId} as JSON.
func rawEvent(t *testing.T, ts *testserver.Server, c *mautrix.Client, roomID id.RoomID, evID id.EventID) map[string]any {
	t.Helper()
	var out map[string]any
	_, err := c.MakeFullRequest(context.Background(), mautrix.FullRequest{
		Method: http.MethodGet, ResponseJSON: &out, MaxAttempts: 1,
		URL: ts.URL + "/_matrix/client/v3/rooms/" + url.PathEscape(string(roomID)) + "/event/" + url.PathEscape(string(evID)),
	})
	if err != nil {
		t.Fatalf("get event %s as %s: %v", evID, c.UserID, err)
	}
	return out
}

func unsignedOf(ev map[string]any) map[string]any {
	u, _ := ev["unsigned"].(map[string]any)
	return u
}

func TestGetEventTransactionID(t *testing.T) {
	ts, alice, bob, roomID := pairInRoom(t, "")
	ctx := context.Background()
	resp, err := alice.SendMessageEvent(ctx, roomID, event.EventMessage, map[string]any{"msgtype": "m.text", "body": "hi"}, mautrix.ReqSendEvent{TransactionID: "txn-42"})
	if err != nil {
		t.Fatal(err)
	}
	if got := unsignedOf(rawEvent(t, ts, alice, roomID, resp.EventID))["transaction_id"]; got != "txn-42" {
		t.Fatalf("sender's device: transaction_id %v", got)
	}
	// Another device of the same user, and another user, do not see it.
	other := ts.Login("alice", testserver.DefaultPassword)
	for _, c := range []*mautrix.Client{other, bob} {
		if got, ok := unsignedOf(rawEvent(t, ts, c, roomID, resp.EventID))["transaction_id"]; ok {
			t.Fatalf("%s/%s sees transaction_id %v", c.UserID, c.DeviceID, got)
		}
	}
}

func TestUnsignedMembership(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	roomID := roomCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	pre := relText(t, alice, roomID, "prejoin", nil)
	if _, err := bob.JoinRoomByID(ctx, roomID); err != nil {
		t.Fatal(err)
	}
	post := relText(t, alice, roomID, "postjoin", nil)
	reply := relText(t, alice, roomID, "reply", map[string]any{"rel_type": "m.thread", "event_id": string(pre)})

	want := map[id.EventID]event.Membership{pre: event.MembershipLeave, post: event.MembershipJoin, reply: event.MembershipJoin}
	check := func(where string, evs []*event.Event) {
		t.Helper()
		seen := 0
		for _, ev := range evs {
			if w, ok := want[ev.ID]; ok {
				seen++
				if ev.Unsigned.Membership != w {
					t.Fatalf("%s: %s has unsigned.membership %q, want %q", where, ev.ID, ev.Unsigned.Membership, w)
				}
			}
			if ev.Type == event.StateMember && ev.GetStateKey() == string(bob.UserID) && ev.Unsigned.Membership != event.MembershipJoin {
				t.Fatalf("%s: bob's own join has unsigned.membership %q", where, ev.Unsigned.Membership)
			}
		}
		if seen == 0 {
			t.Fatalf("%s: none of the events checked", where)
		}
	}

	// /sync: events before the join say leave, the join and after join.
	resp := syncOnce(t, bob, "", "", 0)
	check("sync", resp.Rooms.Join[roomID].Timeline.Events)
	msgs, err := bob.Messages(ctx, roomID, "", "", mautrix.DirectionBackward, nil, 50)
	if err != nil {
		t.Fatal(err)
	}
	check("messages", msgs.Chunk)
	cx, err := bob.Context(ctx, roomID, post, nil, 10)
	if err != nil {
		t.Fatal(err)
	}
	check("context", append(append([]*event.Event{cx.Event}, cx.EventsBefore...), cx.EventsAfter...))
	for _, evID := range []id.EventID{pre, post} {
		ev, err := bob.GetEvent(ctx, roomID, evID)
		if err != nil {
			t.Fatal(err)
		}
		check("event", []*event.Event{ev})
	}
	rels := relList(t, bob, roomID, pre, &mautrix.ReqGetRelations{})
	check("relations", rels.Chunk)
	check("threads", thrMust(t, bob, ts, roomID, "").Chunk)
	// Alice was joined for all of these.
	ev, err := alice.GetEvent(ctx, roomID, pre)
	if err != nil || ev.Unsigned.Membership != event.MembershipJoin {
		t.Fatalf("alice's membership at prejoin: %+v %v", ev, err)
	}
}

// rawMessages calls /messages with a raw query string.
func rawMessages(c *mautrix.Client, ts *testserver.Server, roomID id.RoomID, query string) (map[string]any, error) {
	var out map[string]any
	_, err := c.MakeFullRequest(context.Background(), mautrix.FullRequest{
		Method: http.MethodGet, ResponseJSON: &out, MaxAttempts: 1,
		URL: ts.URL + "/_matrix/client/v3/rooms/" + url.PathEscape(string(roomID)) + "/messages?" + query,
	})
	return out, err
}

func TestMessagesForbiddenBeforeBadParameters(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	eve := ts.RegisterUser("eve")
	roomID := roomCreate(t, alice, &mautrix.ReqCreateRoom{})
	for _, q := range []string{"dir=b", "dir=x", "dir=b&from=nonsense", "limit=-1&dir=b", ""} {
		_, err := rawMessages(eve, ts, roomID, q)
		roomErr(t, "stranger, "+q, err, 403, "M_FORBIDDEN")
		// An unknown room answers the same as a room one may not see.
		_, err = rawMessages(eve, ts, "!unknown:localhost", q)
		roomErr(t, "unknown room, "+q, err, 403, "M_FORBIDDEN")
	}
	// Members still get the parameter errors.
	_, err := rawMessages(alice, ts, roomID, "dir=x")
	roomErr(t, "member, bad dir", err, 400, "M_INVALID_PARAM")
}

func TestMembersAtSyncPrevBatch(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	carol := ts.RegisterUser("carol")
	roomID := roomCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if _, err := alice.SendText(ctx, roomID, "Hello world"); err != nil {
		t.Fatal(err)
	}
	// The whole room fits in the timeline: prev_batch is the room's start.
	first := syncOnce(t, alice, "", "", 0)
	at := first.Rooms.Join[roomID].Timeline.PrevBatch
	if _, err := bob.JoinRoomByID(ctx, roomID); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.InviteUser(ctx, roomID, &mautrix.ReqInviteUser{UserID: carol.UserID}); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SendText(ctx, roomID, "Hello back"); err != nil {
		t.Fatal(err)
	}
	memExpect(t, "at the first sync's prev_batch", memList(t, alice, roomID, mautrix.ReqMembers{At: at}), "alice=join")
	memExpect(t, "at the first sync's next_batch", memList(t, alice, roomID, mautrix.ReqMembers{At: first.NextBatch}), "alice=join")
	now := syncOnce(t, alice, first.NextBatch, "", 0).NextBatch
	memExpect(t, "now", memList(t, alice, roomID, mautrix.ReqMembers{At: now}), "alice=join", "bob=join", "carol=invite")
	memExpect(t, "now, joined", memList(t, alice, roomID, mautrix.ReqMembers{At: now, Membership: event.MembershipJoin}), "alice=join", "bob=join")
	memExpect(t, "now, not joined", memList(t, alice, roomID, mautrix.ReqMembers{At: now, NotMembership: event.MembershipJoin}), "carol=invite")
	memExpect(t, "prev_batch, not joined", memList(t, alice, roomID, mautrix.ReqMembers{At: at, NotMembership: event.MembershipJoin}))
}

// pageAll pages /messages from the newest event backwards with the given
// limit until end is left out, returning the event IDs and the pages.
func pageAll(t *testing.T, c *mautrix.Client, roomID id.RoomID, limit int) ([]id.EventID, []*mautrix.RespMessages) {
	t.Helper()
	var ids []id.EventID
	var pages []*mautrix.RespMessages
	from := ""
	for range 100 {
		resp, err := c.Messages(context.Background(), roomID, from, "", mautrix.DirectionBackward, nil, limit)
		if err != nil {
			t.Fatal(err)
		}
		pages = append(pages, resp)
		for _, ev := range resp.Chunk {
			ids = append(ids, ev.ID)
		}
		if resp.End == "" {
			return ids, pages
		}
		from = resp.End
	}
	t.Fatal("pagination did not end")
	return nil, nil
}

func TestMessagesEndOmittedAtRoomStart(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")
	roomID := roomCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	ctxSendTexts(t, alice, roomID, ctxSeq("m", 1, 4)...)
	all, _ := pageAll(t, alice, roomID, 1000)
	n := len(all)
	// Every page size, including one that ends exactly on the create event:
	// the page holding the create event is the last, with no end, and no
	// event is lost or repeated.
	for _, limit := range []int{1, 2, 3, n - 1, n, n + 1} {
		ids, pages := pageAll(t, alice, roomID, limit)
		if !slices.Equal(ids, all) {
			t.Fatalf("limit %d: %v, want %v", limit, ids, all)
		}
		last := pages[len(pages)-1]
		if len(last.Chunk) == 0 || last.Chunk[len(last.Chunk)-1].Type != event.StateCreate {
			t.Fatalf("limit %d: the last page does not end with the create event (%d events)", limit, len(last.Chunk))
		}
		for _, p := range pages[:len(pages)-1] {
			if p.End == "" || len(p.Chunk) == 0 {
				t.Fatalf("limit %d: a page before the last has no end or no events", limit)
			}
		}
	}
	// Forwards from before the create event, the newest page has no end.
	resp, err := alice.Messages(ctx, roomID, "", "", mautrix.DirectionForward, nil, n)
	if err != nil || len(resp.Chunk) != n || resp.End != "" {
		t.Fatalf("forwards over the whole room: %d events, end %q, %v", len(resp.Chunk), resp.End, err)
	}
}

func TestRestrictedRoomRejoin(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	space := roomCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	restricted := restrictedRoom(t, alice, space)
	if _, err := bob.JoinRoomByID(ctx, space); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.JoinRoomByID(ctx, restricted); err != nil {
		t.Fatal(err)
	}
	// Bob leaves the allowed room: being in the restricted room already,
	// he may still join it again (to change his member event).
	if _, err := bob.LeaveRoom(ctx, space); err != nil {
		t.Fatal(err)
	}
	if _, err := rawJoin(t, ts, bob, "/join/"+url.PathEscape(string(restricted)), map[string]any{"org.example.note": "again"}); err != nil {
		t.Fatalf("join again through /join: %v", err)
	}
	if c := memberEvent(t, alice, restricted, bob.UserID).Content.Raw; c["org.example.note"] != "again" || c["membership"] != "join" {
		t.Fatalf("member content after joining again: %v", c)
	}
	// A member PUT with join, naming an authoriser that means nothing for
	// a join after a join: the key is dropped, not checked.
	if _, err := bob.SendStateEvent(ctx, restricted, event.StateMember, string(bob.UserID), map[string]any{
		"membership": "join", "displayname": "Room Bob", "join_authorised_via_users_server": "unused",
	}); err != nil {
		t.Fatalf("member PUT with join: %v", err)
	}
	if c := memberEvent(t, alice, restricted, bob.UserID).Content.Raw; c["displayname"] != "Room Bob" || c["join_authorised_via_users_server"] != nil {
		t.Fatalf("member content after the PUT: %v", c)
	}
	if err := bob.SetDisplayName(ctx, "Bobby"); err != nil {
		t.Fatal(err)
	}
	if c := memberEvent(t, alice, restricted, bob.UserID).Content.Raw; c["displayname"] != "Bobby" {
		t.Fatalf("profile change in the restricted room: %v", c)
	}
	// Someone never in the room still needs the allowed room, through
	// /join and through a member PUT alike; with it, the PUT names an
	// authoriser as /join does.
	carol := ts.RegisterUser("carol")
	_, err := carol.JoinRoomByID(ctx, restricted)
	roomErr(t, "carol, not in the allowed room", err, 403, "M_FORBIDDEN")
	_, err = carol.SendStateEvent(ctx, restricted, event.StateMember, string(carol.UserID), map[string]any{"membership": "join"})
	roomErr(t, "carol's member PUT, not in the allowed room", err, 403, "M_FORBIDDEN")
	if _, err := carol.JoinRoomByID(ctx, space); err != nil {
		t.Fatal(err)
	}
	if _, err := carol.SendStateEvent(ctx, restricted, event.StateMember, string(carol.UserID), map[string]any{"membership": "join"}); err != nil {
		t.Fatalf("carol's member PUT through the allowed room: %v", err)
	}
	if c := memberEvent(t, alice, restricted, carol.UserID).Content.Raw; c["join_authorised_via_users_server"] != string(alice.UserID) {
		t.Fatalf("carol's member content: %v", c)
	}
}

func TestCreateRoomV12CreatorsBadInput(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	create := func(body map[string]any) error {
		_, err := alice.MakeFullRequest(ctx, mautrix.FullRequest{
			Method: http.MethodPost, URL: ts.URL + "/_matrix/client/v3/createRoom", RequestJSON: body, MaxAttempts: 1,
		})
		return err
	}
	creators := func(v any) map[string]any {
		return map[string]any{"room_version": "12", "preset": "public_chat", "creation_content": map[string]any{"additional_creators": v}}
	}
	roomErr(t, "not a list", create(creators("not-an-array")), 400, "M_BAD_JSON")
	roomErr(t, "not strings", create(creators([]any{"@foo:example.com", 42})), 400, "M_BAD_JSON")
	roomErr(t, "not user IDs", create(creators([]any{"@foo:example.com", "not-a-user-id"})), 400, "M_INVALID_PARAM")
	roomErr(t, "bad server name", create(creators([]any{"@invalid:dom$ain$.com"})), 400, "M_INVALID_PARAM")
	if err := create(creators([]any{"@foo:example.com", "@bar:baz.code"})); err != nil {
		t.Fatalf("valid additional_creators: %v", err)
	}
	// Trusted private chats check them the same way.
	bad := creators([]any{"nope"})
	bad["preset"] = "trusted_private_chat"
	roomErr(t, "trusted private chat, not user IDs", create(bad), 400, "M_INVALID_PARAM")
	// A create event in initial_state, whatever its state key: 400.
	for _, key := range []string{"", "x"} {
		err := create(map[string]any{"room_version": "12", "initial_state": []any{map[string]any{"type": "m.room.create", "state_key": key, "content": map[string]any{}}}})
		roomErr(t, "create event in initial_state, key "+key, err, 400, "M_INVALID_PARAM")
	}
	// Nor may a client send one into an existing room, of any version.
	for _, v := range []id.RoomVersion{id.RoomV11, id.RoomV12} {
		roomID := roomCreate(t, alice, &mautrix.ReqCreateRoom{RoomVersion: v})
		_, err := alice.SendStateEvent(ctx, roomID, event.StateCreate, "", map[string]any{"room_version": string(v), "entropy": 100})
		roomErr(t, "create event PUT in a v"+string(v)+" room", err, 400, "M_INVALID_PARAM")
	}
	// Creators have infinite power and are never listed in power levels.
	err := create(map[string]any{"room_version": "12", "power_level_content_override": map[string]any{"users": map[string]any{string(alice.UserID): 100}}})
	if code := httpStatus(err); code != 400 {
		t.Fatalf("override naming the creator: %v", err)
	}
	roomID := roomCreate(t, alice, &mautrix.ReqCreateRoom{RoomVersion: id.RoomV12, Preset: "public_chat", CreationContent: map[string]any{"additional_creators": []id.UserID{bob.UserID}}})
	for _, u := range []id.UserID{alice.UserID, bob.UserID} {
		_, err := alice.SendStateEvent(ctx, roomID, event.StatePowerLevels, "", map[string]any{"users": map[string]any{string(u): 100}})
		roomErr(t, "power levels naming creator "+string(u), err, 400, "M_BAD_JSON")
	}
	// Someone else may be listed.
	if _, err := alice.SendStateEvent(ctx, roomID, event.StatePowerLevels, "", map[string]any{"users": map[string]any{"@carol:localhost": 50}}); err != nil {
		t.Fatalf("power levels naming a non-creator: %v", err)
	}
}

// httpStatus is the HTTP status of a mautrix error (0 for none).
func httpStatus(err error) int {
	var he mautrix.HTTPError
	if err == nil {
		return 0
	}
	if errors.As(err, &he) && he.Response != nil {
		return he.Response.StatusCode
	}
	return -1
}

func TestInviteUnknownLocalUser(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")
	roomID := roomCreate(t, alice, &mautrix.ReqCreateRoom{})
	_, err := alice.InviteUser(ctx, roomID, &mautrix.ReqInviteUser{UserID: "@nobody:localhost"})
	roomErr(t, "invite an unknown local user", err, 404, "M_NOT_FOUND")
	// The same invite sent as a member state event.
	_, err = alice.SendStateEvent(ctx, roomID, event.StateMember, "@nobody:localhost", map[string]any{"membership": "invite"})
	roomErr(t, "invite by state event", err, 404, "M_NOT_FOUND")
	if m, err := alice.Members(ctx, roomID); err != nil || len(m.Chunk) != 1 {
		t.Fatalf("members after the refused invite: %v %v", m, err)
	}
	// createRoom with one: 404 too, and no room made.
	before, _ := alice.JoinedRooms(ctx)
	_, err = alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Invite: []id.UserID{"@nobody:localhost"}})
	roomErr(t, "createRoom inviting an unknown local user", err, 404, "M_NOT_FOUND")
	after, _ := alice.JoinedRooms(ctx)
	if len(after.JoinedRooms) != len(before.JoinedRooms) {
		t.Fatalf("a room was made: %v", after.JoinedRooms)
	}
}
