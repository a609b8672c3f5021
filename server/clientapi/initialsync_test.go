package clientapi_test

import (
	"context"
	"net/url"
	"slices"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
	"github.com/palpo-im/palpo-desktop/server/syncer"
)

// isRoomSync calls GET /rooms/{roomId}/initialSync with a raw query.
func isRoomSync(t *testing.T, ts *testserver.Server, c *mautrix.Client, roomID id.RoomID, query string) (*syncer.RoomInitialSyncResponse, error) {
	t.Helper()
	var resp syncer.RoomInitialSyncResponse
	err := evGet(t, ts, c, "/v3/rooms/"+url.PathEscape(string(roomID))+"/initialSync?"+query, &resp)
	return &resp, err
}

// isState finds a state event in a snapshot's state.
func isState(state []*event.Event, evType event.Type, stateKey string) *event.Event {
	for _, ev := range state {
		if ev.Type.Type == evType.Type && ev.GetStateKey() == stateKey {
			return ev
		}
	}
	return nil
}

func isTypes(evs []*event.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.Type.Type
	}
	return out
}

func TestRoomInitialSync(t *testing.T) {
	ts, alice, bob, roomID := pairInRoom(t, "Snapshots")
	ctx := context.Background()
	ids := ctxSendTexts(t, alice, roomID, "m0", "m1", "m2")
	if err := alice.AddTag(ctx, roomID, "u.work", 0.5); err != nil {
		t.Fatal(err)
	}
	if err := bob.MarkRead(ctx, roomID, ids[2]); err != nil {
		t.Fatal(err)
	}
	if err := bob.SetPresence(ctx, mautrix.ReqPresence{Presence: event.PresenceOnline, StatusMsg: "here"}); err != nil {
		t.Fatal(err)
	}

	snap, err := isRoomSync(t, ts, alice, roomID, "limit=2")
	if err != nil {
		t.Fatal(err)
	}
	if snap.RoomID != roomID || snap.Membership != event.MembershipJoin || snap.Visibility != "private" {
		t.Fatalf("room %s membership %q visibility %q", snap.RoomID, snap.Membership, snap.Visibility)
	}
	if b := ctxBodies(snap.Messages.Chunk); !slices.Equal(b, []string{"m1", "m2"}) || snap.Messages.Start == "" || snap.Messages.End == "" {
		t.Fatalf("messages: %v %+v", b, snap.Messages)
	}
	if isState(snap.State, event.StateCreate, "") == nil || isState(snap.State, event.StateMember, string(bob.UserID)) == nil ||
		isState(snap.State, event.StateRoomName, "") == nil {
		t.Fatalf("state: %v", isTypes(snap.State))
	}
	if !slices.Contains(isTypes(snap.AccountData), "m.tag") {
		t.Fatalf("account_data: %v", isTypes(snap.AccountData))
	}
	if len(snap.Receipts) != 1 || snap.Receipts[0].RoomID != roomID || snap.Receipts[0].Content.Raw[string(ids[2])] == nil {
		t.Fatalf("receipts: %+v", snap.Receipts)
	}
	if i := slices.IndexFunc(snap.Presence, func(ev *event.Event) bool { return ev.Sender == bob.UserID }); i < 0 ||
		snap.Presence[i].Content.Raw["status_msg"] != "here" {
		t.Fatalf("presence: %+v", snap.Presence)
	}
	// start pages back through /messages to what the snapshot left out.
	older, err := alice.Messages(ctx, roomID, snap.Messages.Start, "", mautrix.DirectionBackward, nil, 1)
	if err != nil || !slices.Equal(ctxBodies(older.Chunk), []string{"m0"}) {
		t.Fatalf("paging back from start: %v %v", older, err)
	}
	// limit=0 gives no messages; no limit gives ten.
	if none, err := isRoomSync(t, ts, alice, roomID, "limit=0"); err != nil || len(none.Messages.Chunk) != 0 || none.Messages.End == "" {
		t.Fatalf("limit=0: %+v %v", none.Messages, err)
	}
	if dflt, err := isRoomSync(t, ts, alice, roomID, ""); err != nil || len(dflt.Messages.Chunk) != 10 {
		t.Fatalf("default limit: %d events, %v", len(dflt.Messages.Chunk), err)
	}

	// Bob, once gone, sees the room as he left it.
	if _, err := bob.LeaveRoom(ctx, roomID); err != nil {
		t.Fatal(err)
	}
	ctxSendTexts(t, alice, roomID, "after bob")
	if _, err := alice.SendStateEvent(ctx, roomID, event.StateTopic, "", map[string]any{"topic": "new"}); err != nil {
		t.Fatal(err)
	}
	parted, err := isRoomSync(t, ts, bob, roomID, "limit=3")
	if err != nil {
		t.Fatal(err)
	}
	chunk := parted.Messages.Chunk
	if parted.Membership != event.MembershipLeave || len(chunk) != 3 || chunk[2].GetStateKey() != string(bob.UserID) ||
		slices.Contains(ctxBodies(chunk), "after bob") {
		t.Fatalf("left room: %q %v", parted.Membership, ctxBodies(chunk))
	}
	if m := isState(parted.State, event.StateMember, string(bob.UserID)); m == nil || m.Content.Raw["membership"] != "leave" ||
		isState(parted.State, event.StateTopic, "") != nil {
		t.Fatalf("left room state: %v", isTypes(parted.State))
	}
}

func TestRoomInitialSyncRefusals(t *testing.T) {
	ts, alice, _, roomID := pairInRoom(t, "")
	ctx := context.Background()
	carol := ts.RegisterUser("carol")
	_, err := isRoomSync(t, ts, carol, roomID, "")
	roomErr(t, "stranger, shared history", err, 403, "M_FORBIDDEN")
	// An invite is not enough: the invitee has not seen the room yet.
	if _, err := alice.InviteUser(ctx, roomID, &mautrix.ReqInviteUser{UserID: carol.UserID}); err != nil {
		t.Fatal(err)
	}
	_, err = isRoomSync(t, ts, carol, roomID, "")
	roomErr(t, "invited", err, 403, "M_FORBIDDEN")
	for _, q := range []string{"limit=-1", "limit=many"} {
		_, err = isRoomSync(t, ts, alice, roomID, q)
		roomErr(t, q, err, 400, "M_INVALID_PARAM")
	}
	_, err = isRoomSync(t, ts, alice, "not-a-room", "")
	roomErr(t, "bad room ID", err, 400, "M_INVALID_PARAM")
	_, err = isRoomSync(t, ts, alice, id.RoomID("!nope:"+alice.UserID.Homeserver()), "")
	roomErr(t, "unknown room", err, 404, "M_NOT_FOUND")
	_, err = isRoomSync(t, ts, dirBadToken(ts), roomID, "")
	roomErr(t, "bad token", err, 401, "M_UNKNOWN_TOKEN")
}

func TestInitialSync(t *testing.T) {
	ts, alice, bob, joined := pairInRoom(t, "Joined")
	ctx := context.Background()
	ctxSendTexts(t, alice, joined, "j0", "j1")
	invited := roomCreate(t, bob, &mautrix.ReqCreateRoom{Name: "Invited"})
	if _, err := bob.InviteUser(ctx, invited, &mautrix.ReqInviteUser{UserID: alice.UserID}); err != nil {
		t.Fatal(err)
	}
	left := sharedRoom(t, bob, alice, "Left")
	ctxSendTexts(t, bob, left, "before alice left")
	if _, err := alice.LeaveRoom(ctx, left); err != nil {
		t.Fatal(err)
	}
	if err := alice.SetAccountData(ctx, "org.example.settings", map[string]any{"theme": "dark"}); err != nil {
		t.Fatal(err)
	}
	if err := bob.SetPresence(ctx, mautrix.ReqPresence{Presence: event.PresenceUnavailable}); err != nil {
		t.Fatal(err)
	}

	get := func(query string) *syncer.InitialSyncResponse {
		t.Helper()
		var resp syncer.InitialSyncResponse
		if err := evGet(t, ts, alice, "/v3/initialSync?"+query, &resp); err != nil {
			t.Fatalf("initialSync?%s: %v", query, err)
		}
		return &resp
	}
	byRoom := func(resp *syncer.InitialSyncResponse) map[id.RoomID]*syncer.RoomSnapshot {
		out := map[id.RoomID]*syncer.RoomSnapshot{}
		for _, r := range resp.Rooms {
			out[r.RoomID] = r
		}
		return out
	}
	resp := get("limit=1")
	rooms := byRoom(resp)
	if len(rooms) != 2 || rooms[left] != nil {
		t.Fatalf("rooms without archived: %v", rooms)
	}
	j := rooms[joined]
	if j == nil || j.Membership != event.MembershipJoin || !slices.Equal(ctxBodies(j.Messages.Chunk), []string{"j1"}) ||
		isState(j.State, event.StateRoomName, "") == nil {
		t.Fatalf("joined room: %+v", j)
	}
	inv := rooms[invited]
	if inv == nil || inv.Membership != event.MembershipInvite || inv.Invite == nil || inv.Invite.GetStateKey() != string(alice.UserID) ||
		inv.Invite.Sender != bob.UserID || inv.Messages != nil {
		t.Fatalf("invited room: %+v", inv)
	}
	if !slices.Contains(isTypes(resp.AccountData), "org.example.settings") {
		t.Fatalf("account_data: %v", isTypes(resp.AccountData))
	}
	if !slices.ContainsFunc(resp.Presence, func(ev *event.Event) bool {
		return ev.Sender == bob.UserID && ev.Content.Raw["user_id"] == string(bob.UserID) && ev.Content.Raw["presence"] == "unavailable"
	}) {
		t.Fatalf("presence: %+v", resp.Presence)
	}
	archived := byRoom(get("archived=true"))
	if l := archived[left]; l == nil || l.Membership != event.MembershipLeave ||
		!slices.Contains(ctxBodies(l.Messages.Chunk), "before alice left") {
		t.Fatalf("archived: %+v", archived[left])
	}

	// end is where GET /events carries on.
	ch := evPoll(t, ts, alice, "timeout=10000&from="+url.QueryEscape(resp.End))
	ctxSendTexts(t, bob, joined, "next")
	if got := <-ch; !slices.Equal(ctxBodies(got.Chunk), []string{"next"}) {
		t.Fatalf("events after initialSync: %v", ctxBodies(got.Chunk))
	}

	for _, q := range []string{"limit=-2", "archived=maybe"} {
		roomErr(t, q, evGet(t, ts, alice, "/v3/initialSync?"+q, nil), 400, "M_INVALID_PARAM")
	}
	roomErr(t, "bad token", evGet(t, ts, dirBadToken(ts), "/v3/initialSync", nil), 401, "M_UNKNOWN_TOKEN")
}
