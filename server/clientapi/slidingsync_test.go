package clientapi_test

import (
	"context"
	"encoding/json"
	"fmt"
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

// Tests of simplified sliding sync (MSC4186), written from the MSC and
// from what Element X (matrix-rust-sdk through ruma) sends and reads. The
// response is decoded into the client's view below, not the server's
// types, so a renamed field fails here.

const ssPath = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"

type ssResp struct {
	Pos        string                         `json:"pos"`
	TxnID      string                         `json:"txn_id"`
	Lists      map[string]struct{ Count int } `json:"lists"`
	Rooms      map[id.RoomID]*ssRoom          `json:"rooms"`
	Extensions ssExtensions                   `json:"extensions"`
}

type ssRoom struct {
	Name              *string         `json:"name"`
	Avatar            json.RawMessage `json:"avatar"`
	Heroes            []ssHero        `json:"heroes"`
	Initial           bool            `json:"initial"`
	ExpandedTimeline  bool            `json:"expanded_timeline"`
	IsDM              *bool           `json:"is_dm"`
	RequiredState     []*event.Event  `json:"required_state"`
	Timeline          []*event.Event  `json:"timeline"`
	InviteState       []*event.Event  `json:"invite_state"`
	PrevBatch         string          `json:"prev_batch"`
	Limited           *bool           `json:"limited"`
	NumLive           *int            `json:"num_live"`
	JoinedCount       *int            `json:"joined_count"`
	InvitedCount      *int            `json:"invited_count"`
	NotificationCount *int            `json:"notification_count"`
	HighlightCount    *int            `json:"highlight_count"`
	BumpStamp         *int64          `json:"bump_stamp"`
	Membership        string          `json:"membership"`
	Lists             []string        `json:"lists"`
}

type ssHero struct {
	UserID      id.UserID `json:"user_id"`
	DisplayName string    `json:"displayname"`
}

type ssExtensions struct {
	ToDevice *struct {
		NextBatch string         `json:"next_batch"`
		Events    []*event.Event `json:"events"`
	} `json:"to_device"`
	E2EE *struct {
		DeviceLists *struct {
			Changed []id.UserID `json:"changed"`
			Left    []id.UserID `json:"left"`
		} `json:"device_lists"`
		OTKCount     map[string]int `json:"device_one_time_keys_count"`
		FallbackKeys []string       `json:"device_unused_fallback_key_types"`
	} `json:"e2ee"`
	AccountData *struct {
		Global []*event.Event               `json:"global"`
		Rooms  map[id.RoomID][]*event.Event `json:"rooms"`
	} `json:"account_data"`
	Receipts *struct {
		Rooms map[id.RoomID]*event.Event `json:"rooms"`
	} `json:"receipts"`
	Typing *struct {
		Rooms map[id.RoomID]*event.Event `json:"rooms"`
	} `json:"typing"`
}

// ssCall makes one sliding sync request the way Element X does: pos and
// timeout in the query, the rest in the body.
func ssCall(c *mautrix.Client, ts *testserver.Server, pos string, timeout time.Duration, body any) (*ssResp, error) {
	q := url.Values{}
	if pos != "" {
		q.Set("pos", pos)
	}
	if timeout > 0 {
		q.Set("timeout", fmt.Sprint(timeout.Milliseconds()))
	}
	var out ssResp
	req := mautrix.FullRequest{Method: http.MethodPost, URL: ts.URL + ssPath + "?" + q.Encode(), ResponseJSON: &out}
	if s, ok := body.(string); ok {
		req.RequestBytes = []byte(s)
	} else {
		req.RequestJSON = body
	}
	_, err := c.MakeFullRequest(context.Background(), req)
	return &out, err
}

func ss(t *testing.T, c *mautrix.Client, ts *testserver.Server, pos string, body any) *ssResp {
	t.Helper()
	resp, err := ssCall(c, ts, pos, 0, body)
	if err != nil {
		t.Fatalf("sliding sync: %v", err)
	}
	if resp.Pos == "" {
		t.Fatal("sliding sync: no pos")
	}
	return resp
}

// ssList is a one-list request body.
func ssList(rng [2]int, timelineLimit int, requiredState any, filters map[string]any) map[string]any {
	l := map[string]any{"ranges": [][2]int{rng}, "timeline_limit": timelineLimit}
	if requiredState != nil {
		l["required_state"] = requiredState
	}
	if filters != nil {
		l["filters"] = filters
	}
	return map[string]any{"lists": map[string]any{"all": l}}
}

func ssSend(t *testing.T, c *mautrix.Client, roomID id.RoomID, body string) id.EventID {
	t.Helper()
	resp, err := c.SendMessageEvent(context.Background(), roomID, event.EventMessage, map[string]any{"msgtype": "m.text", "body": body})
	if err != nil {
		t.Fatalf("send %q: %v", body, err)
	}
	return resp.EventID
}

func ssBodies(evs []*event.Event) []string {
	var out []string
	for _, ev := range evs {
		if ev.Type == event.EventMessage {
			out = append(out, ev.Content.Raw["body"].(string))
		}
	}
	return out
}

// ssStateKeys lists required_state as "type|state_key".
func ssStateKeys(evs []*event.Event) []string {
	var out []string
	for _, ev := range evs {
		out = append(out, ev.Type.Type+"|"+*ev.StateKey)
	}
	slices.Sort(out)
	return out
}

// ssOrder returns the rooms of a response ordered by bump_stamp, newest
// first (how Element X sorts its list).
func ssOrder(resp *ssResp) []id.RoomID {
	var ids []id.RoomID
	for roomID := range resp.Rooms {
		ids = append(ids, roomID)
	}
	slices.SortFunc(ids, func(a, b id.RoomID) int { return int(*resp.Rooms[b].BumpStamp - *resp.Rooms[a].BumpStamp) })
	return ids
}

func TestSlidingSyncAdvertised(t *testing.T) {
	ts := testserver.New(t)
	resp, err := ts.Client().Versions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !resp.UnstableFeatures["org.matrix.simplified_msc3575"] {
		t.Fatalf("/versions does not advertise sliding sync: %v", resp.UnstableFeatures)
	}
}

func TestSlidingSyncListFollowsMessages(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	var roomIDs []id.RoomID
	for i := range 4 {
		roomIDs = append(roomIDs, roomCreate(t, alice, &mautrix.ReqCreateRoom{Name: fmt.Sprintf("Room %d", i)}))
		ssSend(t, alice, roomIDs[i], fmt.Sprintf("hello %d", i))
	}
	body := ssList([2]int{0, 1}, 1, [][2]string{{"m.room.name", ""}}, nil)
	first := ss(t, alice, ts, "", body)
	if first.Lists["all"].Count != 4 {
		t.Fatalf("list count %d, want 4", first.Lists["all"].Count)
	}
	if got := ssOrder(first); !slices.Equal(got, []id.RoomID{roomIDs[3], roomIDs[2]}) {
		t.Fatalf("window %v, want the two newest rooms %v then %v", got, roomIDs[3], roomIDs[2])
	}
	r3 := first.Rooms[roomIDs[3]]
	if !r3.Initial || r3.Name == nil || *r3.Name != "Room 3" || !slices.Equal(ssBodies(r3.Timeline), []string{"hello 3"}) ||
		r3.Limited == nil || !*r3.Limited || r3.PrevBatch == "" || r3.Membership != "join" || !slices.Equal(r3.Lists, []string{"all"}) {
		t.Fatalf("room 3 %+v", r3)
	}
	if *r3.NumLive != 0 {
		t.Fatalf("num_live %d on a connection's first response", *r3.NumLive)
	}
	if got := ssStateKeys(r3.RequiredState); !slices.Equal(got, []string{"m.room.name|"}) {
		t.Fatalf("required_state %v", got)
	}

	// Nothing happened: an immediate answer with no rooms.
	same := ss(t, alice, ts, first.Pos, body)
	if len(same.Rooms) != 0 {
		t.Fatalf("rooms resent without news: %v", same.Rooms)
	}

	// A message in the oldest room moves it to the top: it enters the
	// window (sent from scratch), room 2 drops out, room 3 has no news.
	ssSend(t, alice, roomIDs[0], "news in 0")
	moved := ss(t, alice, ts, same.Pos, body)
	if len(moved.Rooms) != 1 || moved.Rooms[roomIDs[0]] == nil {
		t.Fatalf("after a message in room 0: %v", moved.Rooms)
	}
	r0 := moved.Rooms[roomIDs[0]]
	if !r0.Initial || !slices.Equal(ssBodies(r0.Timeline), []string{"news in 0"}) || *r0.NumLive != 1 || *r0.BumpStamp <= *r3.BumpStamp {
		t.Fatalf("room 0 %+v (bump %d vs %d)", r0, *r0.BumpStamp, *r3.BumpStamp)
	}

	// A new message in a room already sent is incremental: only it.
	ssSend(t, alice, roomIDs[3], "more in 3")
	inc := ss(t, alice, ts, moved.Pos, body)
	r3b := inc.Rooms[roomIDs[3]]
	if r3b == nil || r3b.Initial || !slices.Equal(ssBodies(r3b.Timeline), []string{"more in 3"}) || r3b.Limited == nil || *r3b.Limited || r3b.Name != nil || *r3b.NumLive != 1 {
		t.Fatalf("incremental room 3 %+v", r3b)
	}
	if len(r3b.RequiredState) != 0 {
		t.Fatalf("unchanged state resent: %v", ssStateKeys(r3b.RequiredState))
	}

	// Growing the window sends the room never sent (room 1), and not room
	// 2, which the client has and which has no news.
	body = ssList([2]int{0, 9}, 1, [][2]string{{"m.room.name", ""}}, nil)
	grown := ss(t, alice, ts, inc.Pos, body)
	if len(grown.Rooms) != 1 || grown.Rooms[roomIDs[1]] == nil || !grown.Rooms[roomIDs[1]].Initial {
		t.Fatalf("grown window: %v", grown.Rooms)
	}
	// prev_batch lets the client page back with /messages.
	msgs, err := alice.Messages(context.Background(), roomIDs[3], r3b.PrevBatch, "", mautrix.DirectionBackward, nil, 10)
	if err != nil {
		t.Fatal(err)
	}
	if got := ssBodies(msgs.Chunk); len(got) == 0 || got[0] != "hello 3" {
		t.Fatalf("/messages from prev_batch: %v", got)
	}
	// So does a pos, as the MSC allows.
	msgs, err = alice.Messages(context.Background(), roomIDs[3], grown.Pos, "", mautrix.DirectionBackward, nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := ssBodies(msgs.Chunk); !slices.Equal(got, []string{"more in 3"}) {
		t.Fatalf("/messages from a pos: %v", got)
	}
}

func TestSlidingSyncRequiredStateAndLazyMembers(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	carol := ts.RegisterUser("carol")
	roomID := roomCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Lazy", Topic: "members"})
	for _, c := range []*mautrix.Client{bob, carol} {
		if _, err := c.JoinRoomByID(ctx, roomID); err != nil {
			t.Fatal(err)
		}
	}
	ssSend(t, bob, roomID, "from bob")

	// Element X's form: pairs with $LAZY and $ME.
	elementX := [][2]string{{"m.room.name", ""}, {"m.room.member", "$LAZY"}, {"m.room.member", "$ME"}}
	body := ssList([2]int{0, 0}, 1, elementX, nil)
	first := ss(t, alice, ts, "", body)
	r := first.Rooms[roomID]
	if r == nil {
		t.Fatalf("no room: %+v", first)
	}
	want := []string{"m.room.member|" + bob.UserID.String(), "m.room.member|" + alice.UserID.String(), "m.room.name|"}
	slices.Sort(want)
	if got := ssStateKeys(r.RequiredState); !slices.Equal(got, want) {
		t.Fatalf("lazy required_state %v, want %v (bob sent the timeline, $ME is alice; not carol)", got, want)
	}
	if *r.JoinedCount != 3 || *r.InvitedCount != 0 {
		t.Fatalf("counts %d/%d", *r.JoinedCount, *r.InvitedCount)
	}

	// Carol speaks: her membership comes now; bob's is not sent again.
	ssSend(t, carol, roomID, "from carol")
	inc := ss(t, alice, ts, first.Pos, body)
	if got := ssStateKeys(inc.Rooms[roomID].RequiredState); !slices.Equal(got, []string{"m.room.member|" + carol.UserID.String()}) {
		t.Fatalf("incremental lazy members %v", got)
	}
	// A state change the config asks for comes in required_state.
	if _, err := alice.SendStateEvent(ctx, roomID, event.StateRoomName, "", map[string]any{"name": "Renamed"}); err != nil {
		t.Fatal(err)
	}
	renamed := ss(t, alice, ts, inc.Pos, body)
	rr := renamed.Rooms[roomID]
	if rr == nil || rr.Name == nil || *rr.Name != "Renamed" || !slices.Contains(ssStateKeys(rr.RequiredState), "m.room.name|") {
		t.Fatalf("rename: %+v", rr)
	}

	// Everything: ["*", "*"] in a new connection.
	all := ss(t, alice, ts, "", ssList([2]int{0, 0}, 1, [][2]string{{"*", "*"}}, nil))
	got := ssStateKeys(all.Rooms[roomID].RequiredState)
	for _, k := range []string{"m.room.create|", "m.room.topic|", "m.room.member|" + carol.UserID.String(), "m.room.power_levels|"} {
		if !slices.Contains(got, k) {
			t.Fatalf("[*,*] lacks %s: %v", k, got)
		}
	}
	// The MSC's newer form: all state but members, which come lazily.
	newForm := ss(t, alice, ts, "", ssList([2]int{0, 0}, 1, map[string]any{
		"include": []map[string]any{{}}, "exclude": []map[string]any{{"type": "m.room.topic"}}, "lazy_members": true,
	}, nil))
	got = ssStateKeys(newForm.Rooms[roomID].RequiredState)
	if slices.Contains(got, "m.room.topic|") || !slices.Contains(got, "m.room.create|") ||
		slices.Contains(got, "m.room.member|"+bob.UserID.String()) || !slices.Contains(got, "m.room.member|"+alice.UserID.String()) {
		t.Fatalf("include/exclude/lazy_members: %v (want no topic, create, alice who sent the rename, not bob)", got)
	}
	// A type wildcard for one state key.
	byKey := ss(t, alice, ts, "", ssList([2]int{0, 0}, 0, [][2]string{{"m.room.member", "*"}}, nil))
	if got := ssStateKeys(byKey.Rooms[roomID].RequiredState); len(got) != 3 {
		t.Fatalf("[m.room.member, *]: %v", got)
	}
	if tl := byKey.Rooms[roomID].Timeline; len(tl) != 0 {
		t.Fatalf("timeline_limit 0 gave %d events", len(tl))
	}
}

func TestSlidingSyncNamelessRoomHeroes(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	if err := bob.SetDisplayName(ctx, "Bob B"); err != nil {
		t.Fatal(err)
	}
	roomID := roomCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "trusted_private_chat", Invite: []id.UserID{bob.UserID}, IsDirect: true})
	direct := map[id.UserID][]id.RoomID{bob.UserID: {roomID}}
	if err := alice.SetAccountData(ctx, "m.direct", direct); err != nil {
		t.Fatal(err)
	}
	resp := ss(t, alice, ts, "", ssList([2]int{0, 0}, 1, nil, map[string]any{"is_dm": true}))
	r := resp.Rooms[roomID]
	if r == nil || r.Name != nil || len(r.Heroes) != 1 || r.Heroes[0].UserID != bob.UserID || r.Heroes[0].DisplayName != "Bob B" {
		t.Fatalf("nameless DM: %+v", r)
	}
	if r.IsDM == nil || !*r.IsDM || *r.InvitedCount != 1 {
		t.Fatalf("is_dm / invited_count: %+v", r)
	}
	notDM := ss(t, alice, ts, "", ssList([2]int{0, 0}, 1, nil, map[string]any{"is_dm": false}))
	if len(notDM.Rooms) != 0 || notDM.Lists["all"].Count != 0 {
		t.Fatalf("is_dm false matched the DM: %+v", notDM)
	}
	// Bob's side: an invite sent with is_direct is a DM before he lists it.
	invite := ss(t, bob, ts, "", ssList([2]int{0, 0}, 1, nil, map[string]any{"is_dm": true}))
	if r := invite.Rooms[roomID]; r == nil || r.Membership != "invite" || r.IsDM == nil || !*r.IsDM {
		t.Fatalf("DM invite: %+v", invite.Rooms)
	}
}

func TestSlidingSyncRoomSubscription(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	old := roomCreate(t, alice, &mautrix.ReqCreateRoom{Name: "Old"})
	for i := range 5 {
		ssSend(t, alice, old, fmt.Sprintf("old %d", i))
	}
	newer := roomCreate(t, alice, &mautrix.ReqCreateRoom{Name: "Newer"})
	bobsRoom := roomCreate(t, bob, &mautrix.ReqCreateRoom{Name: "Bob's"})

	body := ssList([2]int{0, 0}, 1, nil, nil)
	body["room_subscriptions"] = map[string]any{
		old.String():                     map[string]any{"timeline_limit": 3, "required_state": [][2]string{{"m.room.create", ""}}},
		bobsRoom.String():                map[string]any{"timeline_limit": 3},
		"!nosuchroom:" + ts.ServerName(): map[string]any{"timeline_limit": 3},
	}
	resp := ss(t, alice, ts, "", body)
	if len(resp.Rooms) != 2 || resp.Rooms[newer] == nil || resp.Rooms[old] == nil {
		t.Fatalf("rooms %v: want the window's room and the subscribed one, not bob's or an unknown room", resp.Rooms)
	}
	sub := resp.Rooms[old]
	if got := ssBodies(sub.Timeline); !slices.Equal(got, []string{"old 2", "old 3", "old 4"}) || sub.Lists != nil {
		t.Fatalf("subscribed room timeline %v lists %v", got, sub.Lists)
	}
	if got := ssStateKeys(sub.RequiredState); !slices.Equal(got, []string{"m.room.create|"}) {
		t.Fatalf("subscription required_state %v", got)
	}
	// Raising the subscription's timeline_limit resends older events,
	// marked as an expanded timeline.
	body["room_subscriptions"] = map[string]any{old.String(): map[string]any{"timeline_limit": 5}}
	expanded := ss(t, alice, ts, resp.Pos, body)
	r := expanded.Rooms[old]
	if r == nil || !r.ExpandedTimeline || r.Initial || !slices.Equal(ssBodies(r.Timeline), []string{"old 0", "old 1", "old 2", "old 3", "old 4"}) {
		t.Fatalf("expanded timeline: %+v", r)
	}
}

func TestSlidingSyncInvitesAndLeaves(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	mine := roomCreate(t, alice, &mautrix.ReqCreateRoom{Name: "Mine"})
	body := map[string]any{"lists": map[string]any{
		"all":     map[string]any{"ranges": [][2]int{{0, 9}}, "timeline_limit": 2},
		"invites": map[string]any{"ranges": [][2]int{{0, 9}}, "timeline_limit": 0, "filters": map[string]any{"is_invite": true}},
	}}
	first := ss(t, alice, ts, "", body)
	if first.Lists["all"].Count != 1 || first.Lists["invites"].Count != 0 {
		t.Fatalf("lists %+v", first.Lists)
	}

	roomID := roomCreate(t, bob, &mautrix.ReqCreateRoom{Name: "Bob invites"})
	if _, err := bob.InviteUser(ctx, roomID, &mautrix.ReqInviteUser{UserID: alice.UserID}); err != nil {
		t.Fatal(err)
	}
	invited := ss(t, alice, ts, first.Pos, body)
	r := invited.Rooms[roomID]
	if r == nil || r.Membership != "invite" || !r.Initial || len(r.InviteState) == 0 || len(r.Timeline) != 0 {
		t.Fatalf("invite: %+v", r)
	}
	if !slices.Contains(r.Lists, "invites") || invited.Lists["invites"].Count != 1 || invited.Lists["all"].Count != 2 {
		t.Fatalf("invite lists %v, counts %+v", r.Lists, invited.Lists)
	}
	var name string
	for _, ev := range r.InviteState {
		if ev.Type == event.StateRoomName {
			name, _ = ev.Content.Raw["name"].(string)
		}
	}
	if name != "Bob invites" {
		t.Fatalf("invite_state has no room name: %v", r.InviteState)
	}

	// Joining moves the room from the invites list to a joined room, sent
	// from scratch with its timeline.
	if _, err := alice.JoinRoomByID(ctx, roomID); err != nil {
		t.Fatal(err)
	}
	joined := ss(t, alice, ts, invited.Pos, body)
	r = joined.Rooms[roomID]
	if r == nil || r.Membership != "join" || !r.Initial || len(r.Timeline) == 0 || joined.Lists["invites"].Count != 0 {
		t.Fatalf("after join: %+v lists %+v", r, joined.Lists)
	}

	// Being kicked: the room stays listed, with the kick in its timeline.
	if _, err := bob.KickUser(ctx, roomID, &mautrix.ReqKickUser{UserID: alice.UserID, Reason: "bye"}); err != nil {
		t.Fatal(err)
	}
	kicked := ss(t, alice, ts, joined.Pos, body)
	r = kicked.Rooms[roomID]
	if r == nil || r.Membership != "leave" || r.Initial || len(r.Timeline) == 0 || r.Timeline[len(r.Timeline)-1].Type != event.StateMember {
		t.Fatalf("after kick: %+v", r)
	}
	// What happens in the room after the kick is not the user's to see.
	ssSend(t, bob, roomID, "secret after kick")
	after := ss(t, alice, ts, kicked.Pos, body)
	if r := after.Rooms[roomID]; r != nil && len(ssBodies(r.Timeline)) > 0 {
		t.Fatalf("events after the kick leaked: %v", ssBodies(r.Timeline))
	}
	// A new connection still lists the kicked room but not one the user
	// left on their own, nor one they were banned from without joining.
	if _, err := alice.LeaveRoom(ctx, mine); err != nil {
		t.Fatal(err)
	}
	preBanned := roomCreate(t, bob, &mautrix.ReqCreateRoom{Name: "Pre-banned"})
	if _, err := bob.BanUser(ctx, preBanned, &mautrix.ReqBanUser{UserID: alice.UserID}); err != nil {
		t.Fatal(err)
	}
	fresh := ss(t, alice, ts, "", body)
	if fresh.Rooms[roomID] == nil || fresh.Rooms[mine] != nil || fresh.Lists["all"].Count != 1 {
		t.Fatalf("fresh connection: rooms %v count %d (want the kicked room only)", fresh.Rooms, fresh.Lists["all"].Count)
	}
}

func TestSlidingSyncUnknownPos(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	roomCreate(t, alice, &mautrix.ReqCreateRoom{Name: "R"})
	body := ssList([2]int{0, 9}, 1, nil, nil)
	first := ss(t, alice, ts, "", body)
	for _, pos := range []string{"garbage", "999999/s1", "-1/s0", "/s1"} {
		_, err := ssCall(alice, ts, pos, 0, body)
		roomErr(t, "pos "+pos, err, http.StatusBadRequest, "M_UNKNOWN_POS")
	}
	// Another user cannot continue alice's connection.
	_, err := ssCall(bob, ts, first.Pos, 0, body)
	roomErr(t, "someone else's pos", err, http.StatusBadRequest, "M_UNKNOWN_POS")
	// A retry with the same pos works (the client may cancel and resend)…
	ss(t, alice, ts, first.Pos, body)
	retry := ss(t, alice, ts, first.Pos, body)
	// …but once a newer pos was used, the older one is gone.
	ss(t, alice, ts, retry.Pos, body)
	_, err = ssCall(alice, ts, first.Pos, 0, body)
	roomErr(t, "superseded pos", err, http.StatusBadRequest, "M_UNKNOWN_POS")
	// A new connection with the same conn_id replaces the old one.
	conn := map[string]any{"conn_id": "main", "lists": body["lists"]}
	a := ss(t, alice, ts, "", conn)
	ss(t, alice, ts, "", conn)
	_, err = ssCall(alice, ts, a.Pos, 0, conn)
	roomErr(t, "pos of a replaced connection", err, http.StatusBadRequest, "M_UNKNOWN_POS")
	// After a restart the connection is gone: start over.
	b := ss(t, alice, ts, "", conn)
	ts.Restart()
	_, err = ssCall(alice, ts, b.Pos, 0, conn)
	roomErr(t, "pos from before a restart", err, http.StatusBadRequest, "M_UNKNOWN_POS")
}

func TestSlidingSyncLongPollWakes(t *testing.T) {
	ts, alice, bob, roomID := pairInRoom(t, "")
	body := ssList([2]int{0, 9}, 5, nil, nil)
	first := ss(t, alice, ts, "", body)

	// With nothing new the long-poll waits for its timeout…
	start := time.Now()
	idle, err := ssCall(alice, ts, first.Pos, 300*time.Millisecond, body)
	if err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < 250*time.Millisecond || len(idle.Rooms) != 0 {
		t.Fatalf("idle long-poll returned after %v with %v", waited, idle.Rooms)
	}
	// …and a message wakes it at once.
	go func() {
		time.Sleep(200 * time.Millisecond)
		if _, err := bob.SendText(context.Background(), roomID, "wake up"); err != nil {
			t.Error(err)
		}
	}()
	start = time.Now()
	woke, err := ssCall(alice, ts, idle.Pos, 20*time.Second, body)
	if err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited > 10*time.Second {
		t.Fatalf("long-poll took %v", waited)
	}
	if r := woke.Rooms[roomID]; r == nil || !slices.Equal(ssBodies(r.Timeline), []string{"wake up"}) {
		t.Fatalf("woken response %+v", woke.Rooms)
	}
}

func TestSlidingSyncExtensions(t *testing.T) {
	ts, alice, bob, roomID := pairInRoom(t, "Ext")
	ctx := context.Background()
	evID := ssSend(t, bob, roomID, "read me")
	if err := bob.SetReadMarkers(ctx, roomID, &mautrix.ReqSetReadMarkers{Read: evID}); err != nil {
		t.Fatal(err)
	}
	if err := alice.SetAccountData(ctx, "org.example.global", map[string]any{"v": 1}); err != nil {
		t.Fatal(err)
	}
	if err := alice.SetRoomAccountData(ctx, roomID, "org.example.room", map[string]any{"v": 2}); err != nil {
		t.Fatal(err)
	}
	on := map[string]any{"enabled": true}
	body := ssList([2]int{0, 9}, 5, nil, nil)
	body["extensions"] = map[string]any{"to_device": on, "e2ee": on, "account_data": on, "receipts": on, "typing": on}

	first := ss(t, alice, ts, "", body)
	ext := first.Extensions
	if ext.E2EE == nil || ext.E2EE.OTKCount == nil || ext.E2EE.FallbackKeys == nil {
		t.Fatalf("e2ee: %+v", ext.E2EE)
	}
	if _, ok := ext.E2EE.OTKCount["signed_curve25519"]; !ok {
		t.Fatalf("signed_curve25519 count missing: %v", ext.E2EE.OTKCount)
	}
	globals := map[string]bool{}
	for _, ev := range ext.AccountData.Global {
		globals[ev.Type.Type] = true
	}
	if !globals["org.example.global"] || !globals["m.push_rules"] {
		t.Fatalf("global account data %v", globals)
	}
	if evs := ext.AccountData.Rooms[roomID]; len(evs) != 1 || evs[0].Type.Type != "org.example.room" {
		t.Fatalf("room account data %v", ext.AccountData.Rooms)
	}
	rcpt := ext.Receipts.Rooms[roomID]
	if rcpt == nil || rcpt.Content.Raw[evID.String()] == nil {
		t.Fatalf("receipts %+v", ext.Receipts)
	}
	if ext.ToDevice == nil || ext.ToDevice.NextBatch == "" || len(ext.ToDevice.Events) != 0 {
		t.Fatalf("to_device %+v", ext.ToDevice)
	}

	// Typing wakes a long-poll and is delivered in the typing extension.
	go func() {
		time.Sleep(100 * time.Millisecond)
		if _, err := bob.UserTyping(ctx, roomID, true, 10*time.Second); err != nil {
			t.Error(err)
		}
	}()
	typing, err := ssCall(alice, ts, first.Pos, 10*time.Second, body)
	if err != nil {
		t.Fatal(err)
	}
	if ty := typing.Extensions.Typing.Rooms[roomID]; ty == nil || fmt.Sprint(ty.Content.Raw["user_ids"]) != fmt.Sprintf("[%s]", bob.UserID) {
		t.Fatalf("typing %+v", typing.Extensions.Typing)
	}
	// Delivered once: not in the next response.
	quiet := ss(t, alice, ts, typing.Pos, body)
	if len(quiet.Extensions.Typing.Rooms) != 0 || len(quiet.Extensions.Receipts.Rooms) != 0 || len(quiet.Extensions.AccountData.Global) != 0 {
		t.Fatalf("repeated: %+v", quiet.Extensions)
	}

	// Stop typing (so it cannot wake the polls below) and give bob a new
	// event to send a receipt for.
	if _, err := bob.UserTyping(ctx, roomID, false, 0); err != nil {
		t.Fatal(err)
	}
	toRead := ssSend(t, alice, roomID, "read this too")
	pos := ss(t, alice, ts, quiet.Pos, body).Pos
	// Receipts, account data and to-device each wake a long-poll.
	steps := []struct {
		name  string
		act   func() error
		check func(*ssResp) bool
	}{
		{"receipt", func() error { return bob.SendReceipt(ctx, roomID, toRead, event.ReceiptTypeRead, nil) },
			func(r *ssResp) bool { return r.Extensions.Receipts.Rooms[roomID] != nil }},
		{"account data", func() error { return alice.SetAccountData(ctx, "org.example.later", map[string]any{}) },
			func(r *ssResp) bool { return len(r.Extensions.AccountData.Global) == 1 }},
		{"to-device", func() error { return toDeviceFrom(bob, alice, map[string]any{"n": 1}) },
			func(r *ssResp) bool { return len(r.Extensions.ToDevice.Events) == 1 }},
	}
	var lastToDevice *ssResp
	for _, st := range steps {
		go func() {
			time.Sleep(100 * time.Millisecond)
			if err := st.act(); err != nil {
				t.Error(err)
			}
		}()
		resp, err := ssCall(alice, ts, pos, 10*time.Second, body)
		if err != nil {
			t.Fatal(err)
		}
		if !st.check(resp) {
			t.Fatalf("%s did not arrive: %+v", st.name, resp.Extensions)
		}
		pos = resp.Pos
		lastToDevice = resp
	}
	// To-device messages stay until acknowledged with since: a request
	// without the new next_batch gets the message again, one with it not.
	next := lastToDevice.Extensions.ToDevice.NextBatch
	body["extensions"].(map[string]any)["to_device"] = map[string]any{"enabled": true, "since": "0"}
	again := ss(t, alice, ts, pos, body)
	if len(again.Extensions.ToDevice.Events) != 1 {
		t.Fatalf("unacknowledged to-device message not resent: %+v", again.Extensions.ToDevice)
	}
	body["extensions"].(map[string]any)["to_device"] = map[string]any{"enabled": true, "since": next}
	acked := ss(t, alice, ts, again.Pos, body)
	if len(acked.Extensions.ToDevice.Events) != 0 {
		t.Fatalf("acknowledged to-device message resent: %+v", acked.Extensions.ToDevice)
	}
	// A since from another database (restored from an older backup) is
	// not an error: nothing is acknowledged, nothing is pending.
	body["extensions"].(map[string]any)["to_device"] = map[string]any{"enabled": true, "since": "999999"}
	if far := ss(t, alice, ts, acked.Pos, body); len(far.Extensions.ToDevice.Events) != 0 {
		t.Fatalf("since beyond the stream: %+v", far.Extensions.ToDevice)
	}
	body["extensions"].(map[string]any)["to_device"] = map[string]any{"enabled": true, "since": "soon"}
	_, err = ssCall(alice, ts, "", 0, body)
	roomErr(t, "to_device.since not a number", err, http.StatusBadRequest, "M_INVALID_PARAM")

	// Scoping: receipts for a list that does not exist cover nothing.
	body["extensions"] = map[string]any{"receipts": map[string]any{"enabled": true, "lists": []string{"other"}}}
	scoped := ss(t, alice, ts, "", body)
	if len(scoped.Extensions.Receipts.Rooms) != 0 {
		t.Fatalf("receipts outside their scope: %v", scoped.Extensions.Receipts.Rooms)
	}
}

func TestSlidingSyncDeviceListsAndUnreadCounts(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	roomID := roomCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	body := ssList([2]int{0, 9}, 1, nil, nil)
	body["extensions"] = map[string]any{"e2ee": map[string]any{"enabled": true}}
	first := ss(t, alice, ts, "", body)
	if first.Extensions.E2EE.DeviceLists != nil {
		t.Fatalf("device lists on a new connection: %+v", first.Extensions.E2EE.DeviceLists)
	}
	if _, err := bob.JoinRoomByID(ctx, roomID); err != nil {
		t.Fatal(err)
	}
	evID := ssSend(t, bob, roomID, "unread")
	inc := ss(t, alice, ts, first.Pos, body)
	dl := inc.Extensions.E2EE.DeviceLists
	if dl == nil || !slices.Contains(dl.Changed, bob.UserID) {
		t.Fatalf("bob joining should put him in device_lists.changed: %+v", dl)
	}
	r := inc.Rooms[roomID]
	if r == nil || *r.NotificationCount != 1 || *r.JoinedCount != 2 {
		t.Fatalf("unread after bob's message: %+v", r)
	}
	// Reading it brings the count down, in a response of its own.
	if err := alice.SendReceipt(ctx, roomID, evID, event.ReceiptTypeRead, nil); err != nil {
		t.Fatal(err)
	}
	read := ss(t, alice, ts, inc.Pos, body)
	if r := read.Rooms[roomID]; r == nil || *r.NotificationCount != 0 || len(r.Timeline) != 0 {
		t.Fatalf("after reading: %+v", read.Rooms[roomID])
	}
}

func TestSlidingSyncListFilters(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")
	space := roomCreate(t, alice, &mautrix.ReqCreateRoom{Name: "Space", CreationContent: map[string]any{"type": "m.space"}})
	child := roomCreate(t, alice, &mautrix.ReqCreateRoom{Name: "Child"})
	enc := roomCreate(t, alice, &mautrix.ReqCreateRoom{Name: "Secret", InitialState: []*event.Event{{
		Type: event.StateEncryption, Content: event.Content{Raw: map[string]any{"algorithm": "m.megolm.v1.aes-sha2"}},
	}}})
	hierChild(t, alice, space, child, map[string]any{"via": []string{ts.ServerName()}})
	if err := alice.AddTag(ctx, enc, "m.favourite", 0.5); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		filters map[string]any
		want    []id.RoomID
	}{
		{map[string]any{"not_room_types": []any{"m.space"}}, []id.RoomID{child, enc}},
		{map[string]any{"room_types": []any{"m.space"}}, []id.RoomID{space}},
		{map[string]any{"room_types": []any{nil}}, []id.RoomID{child, enc}},
		{map[string]any{"is_encrypted": true}, []id.RoomID{enc}},
		{map[string]any{"is_encrypted": false, "not_room_types": []any{"m.space"}}, []id.RoomID{child}},
		{map[string]any{"spaces": []id.RoomID{space}}, []id.RoomID{child}},
		{map[string]any{"tags": []string{"m.favourite"}}, []id.RoomID{enc}},
		{map[string]any{"not_tags": []string{"m.favourite"}, "is_invite": false}, []id.RoomID{space, child}},
	}
	for _, c := range cases {
		resp := ss(t, alice, ts, "", ssList([2]int{0, 9}, 0, nil, c.filters))
		var got []id.RoomID
		for roomID := range resp.Rooms {
			got = append(got, roomID)
		}
		slices.Sort(got)
		want := slices.Clone(c.want)
		slices.Sort(want)
		if !slices.Equal(got, want) || resp.Lists["all"].Count != len(want) {
			t.Errorf("filters %v: got %v (count %d), want %v", c.filters, got, resp.Lists["all"].Count, want)
		}
	}
}

func TestSlidingSyncBadInput(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	good := ssList([2]int{0, 9}, 1, nil, nil)
	cases := []struct {
		name string
		pos  string
		body any
		code string
	}{
		{"not JSON", "", "{lists", "M_NOT_JSON"},
		{"lists not an object", "", `{"lists": 5}`, "M_BAD_JSON"},
		{"range backwards", "", ssList([2]int{5, 1}, 1, nil, nil), "M_INVALID_PARAM"},
		{"negative range", "", ssList([2]int{-1, 1}, 1, nil, nil), "M_INVALID_PARAM"},
		{"no timeline_limit", "", `{"lists": {"a": {"ranges": [[0, 1]]}}}`, "M_INVALID_PARAM"},
		{"required_state not pairs", "", `{"lists": {"a": {"ranges": [[0, 1]], "timeline_limit": 1, "required_state": [["a"]]}}}`, "M_BAD_JSON"},
		{"is_dm not a bool", "", `{"lists": {"a": {"timeline_limit": 1, "filters": {"is_dm": "yes"}}}}`, "M_BAD_JSON"},
		{"bad set_presence", "", `{"set_presence": "busy"}`, "M_INVALID_PARAM"},
		{"bad subscription room", "", `{"room_subscriptions": {"#alias:x": {"timeline_limit": 1}}}`, "M_INVALID_PARAM"},
		{"negative timeout", "", `{"timeout": -5}`, "M_INVALID_PARAM"},
	}
	for _, c := range cases {
		_, err := ssCall(alice, ts, c.pos, 0, c.body)
		roomErr(t, c.name, err, http.StatusBadRequest, c.code)
	}
	tooMany := map[string]any{}
	for i := range 101 {
		tooMany[fmt.Sprint("l", i)] = map[string]any{"timeline_limit": 1}
	}
	_, err := ssCall(alice, ts, "", 0, map[string]any{"lists": tooMany})
	roomErr(t, "101 lists", err, http.StatusBadRequest, "M_INVALID_PARAM")

	anon := ts.Client()
	_, err = ssCall(anon, ts, "", 0, good)
	roomErr(t, "no token", err, http.StatusUnauthorized, "M_MISSING_TOKEN")
	forged, _ := mautrix.NewClient(ts.URL, alice.UserID, "forged-token")
	_, err = ssCall(forged, ts, "", 0, good)
	roomErr(t, "forged token", err, http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
	// The MSC's body form of pos and timeout works too.
	first := ss(t, alice, ts, "", good)
	withPos := map[string]any{"pos": first.Pos, "timeout": 0, "lists": good["lists"], "txn_id": "t1"}
	resp := ss(t, alice, ts, "", withPos)
	if len(resp.Rooms) != 0 || resp.TxnID != "t1" {
		t.Fatalf("pos in the body: %+v", resp)
	}
}

// TestSlidingSyncElementXConnections runs Element X's two connections of
// one device side by side: "room-list" (lists, no to-device) and
// "encryption" (to-device and e2ee only), each long-polling. Each wakes for
// its own news, and neither's pos works on the other.
func TestSlidingSyncElementXConnections(t *testing.T) {
	ts, alice, bob, roomID := pairInRoom(t, "Both")
	roomList := ssList([2]int{0, 19}, 1, [][2]string{{"m.room.member", "$LAZY"}, {"m.room.member", "$ME"}, {"m.room.name", ""}}, nil)
	roomList["conn_id"] = "room-list"
	roomList["extensions"] = map[string]any{"account_data": map[string]any{"enabled": true}, "receipts": map[string]any{"enabled": true, "rooms": []string{"*"}}}
	encryption := map[string]any{"conn_id": "encryption", "extensions": map[string]any{
		"to_device": map[string]any{"enabled": true}, "e2ee": map[string]any{"enabled": true},
	}}
	rl := ss(t, alice, ts, "", roomList)
	enc := ss(t, alice, ts, "", encryption)
	if len(enc.Rooms) != 0 || enc.Extensions.E2EE == nil || rl.Rooms[roomID] == nil || rl.Extensions.ToDevice != nil {
		t.Fatalf("first responses: room list %+v, encryption %+v", rl, enc)
	}
	_, err := ssCall(alice, ts, rl.Pos, 0, encryption)
	roomErr(t, "room-list pos on the encryption connection", err, http.StatusBadRequest, "M_UNKNOWN_POS")

	type result struct {
		resp *ssResp
		err  error
	}
	poll := func(pos string, body map[string]any) chan result {
		ch := make(chan result, 1)
		go func() {
			r, err := ssCall(alice, ts, pos, 10*time.Second, body)
			ch <- result{r, err}
		}()
		return ch
	}
	rlCh, encCh := poll(rl.Pos, roomList), poll(enc.Pos, encryption)
	time.Sleep(100 * time.Millisecond)
	if err := toDeviceFrom(bob, alice, map[string]any{"n": 1}); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-encCh:
		if r.err != nil || len(r.resp.Extensions.ToDevice.Events) != 1 {
			t.Fatalf("encryption connection: %+v %v", r.resp, r.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the to-device message did not wake the encryption connection")
	}
	ssSend(t, bob, roomID, "for the room list")
	select {
	case r := <-rlCh:
		if r.err != nil || r.resp.Rooms[roomID] == nil || !slices.Equal(ssBodies(r.resp.Rooms[roomID].Timeline), []string{"for the room list"}) {
			t.Fatalf("room list connection: %+v %v", r.resp, r.err)
		}
		if r.resp.Extensions.ToDevice != nil {
			t.Fatal("the room list connection got to-device messages it did not ask for")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the message did not wake the room list connection")
	}
}
