package clientapi_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
)

// roomErr checks that err is a Matrix error with the given code and status.
func roomErr(t *testing.T, what string, err error, status int, code string) {
	t.Helper()
	var httpErr mautrix.HTTPError
	if !errors.As(err, &httpErr) || httpErr.RespError == nil {
		t.Fatalf("%s: want %d %s, got %v", what, status, code, err)
	}
	if httpErr.Response.StatusCode != status || httpErr.RespError.ErrCode != code {
		t.Fatalf("%s: want %d %s, got %d %s (%s)", what, status, code, httpErr.Response.StatusCode, httpErr.RespError.ErrCode, httpErr.RespError.Err)
	}
}

func roomCreate(t *testing.T, c *mautrix.Client, req *mautrix.ReqCreateRoom) id.RoomID {
	t.Helper()
	resp, err := c.CreateRoom(context.Background(), req)
	if err != nil {
		t.Fatalf("create room: %v", err)
	}
	return resp.RoomID
}

func TestCreateRoomDefaults(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")
	roomID := roomCreate(t, alice, &mautrix.ReqCreateRoom{Name: "Tea", Topic: "All about tea", RoomAliasName: "tea"})
	// Room version 12: the room ID is the create event's ID with '!'.
	if !strings.HasPrefix(string(roomID), "!") || strings.Contains(string(roomID), ":") {
		t.Fatalf("v12 room ID expected, got %s", roomID)
	}
	state, err := alice.State(ctx, roomID)
	if err != nil {
		t.Fatal(err)
	}
	create := state[event.StateCreate][""]
	if create == nil || create.Content.AsCreate().RoomVersion != id.RoomV12 || create.Sender != alice.UserID {
		t.Fatalf("create event: %+v", create)
	}
	if "!"+strings.TrimPrefix(string(create.ID), "$") != string(roomID) {
		t.Fatalf("room ID %s does not derive from create event %s", roomID, create.ID)
	}
	if m := state[event.StateMember][string(alice.UserID)]; m == nil || m.Content.AsMember().Membership != event.MembershipJoin || m.Content.AsMember().Displayname != "alice" {
		t.Fatalf("creator membership: %+v", m)
	}
	pl := state[event.StatePowerLevels][""].Content.AsPowerLevels()
	if _, listed := pl.Users[alice.UserID]; listed {
		t.Fatal("v12 creators must not be listed in power levels users")
	}
	if pl.Events[event.StateTombstone.Type] <= pl.StateDefault() {
		t.Fatal("tombstone power must exceed state_default in v12")
	}
	if jr := state[event.StateJoinRules][""].Content.AsJoinRules(); jr.JoinRule != event.JoinRuleInvite {
		t.Fatalf("private preset join rule %s", jr.JoinRule)
	}
	if n := state[event.StateRoomName][""].Content.AsRoomName(); n.Name != "Tea" {
		t.Fatalf("name %q", n.Name)
	}
	if a := state[event.StateCanonicalAlias][""].Content.AsCanonicalAlias(); a.Alias != "#tea:localhost" {
		t.Fatalf("alias %q", a.Alias)
	}
	joined, err := alice.JoinedRooms(ctx)
	if err != nil || len(joined.JoinedRooms) != 1 || joined.JoinedRooms[0] != roomID {
		t.Fatalf("joined rooms %v %v", joined, err)
	}
	// The alias is taken now.
	_, err = alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{RoomAliasName: "tea"})
	roomErr(t, "duplicate alias", err, 400, "M_ROOM_IN_USE")
}

func TestCreateRoomVersionsAndPresets(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	for _, v := range []id.RoomVersion{id.RoomV6, id.RoomV9, id.RoomV10, id.RoomV11} {
		roomID := roomCreate(t, alice, &mautrix.ReqCreateRoom{RoomVersion: v, Preset: "public_chat"})
		if !strings.HasSuffix(string(roomID), ":localhost") {
			t.Fatalf("v%s room ID %s", v, roomID)
		}
		var pl event.PowerLevelsEventContent
		if err := alice.StateEvent(ctx, roomID, event.StatePowerLevels, "", &pl); err != nil {
			t.Fatal(err)
		}
		if pl.Users[alice.UserID] != 100 {
			t.Fatalf("v%s creator power %d", v, pl.Users[alice.UserID])
		}
		// Public: bob can join without an invite.
		if _, err := bob.JoinRoomByID(ctx, roomID); err != nil {
			t.Fatalf("v%s public join: %v", v, err)
		}
	}
	_, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{RoomVersion: "13"})
	roomErr(t, "room v13", err, 400, "M_UNSUPPORTED_ROOM_VERSION")
	_, err = alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{RoomVersion: "banana"})
	roomErr(t, "unknown version", err, 400, "M_UNSUPPORTED_ROOM_VERSION")
	_, err = alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "party"})
	roomErr(t, "unknown preset", err, 400, "M_INVALID_PARAM")

	// Trusted private chat in v12 makes invitees additional creators.
	roomID := roomCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "trusted_private_chat", Invite: []id.UserID{bob.UserID}, IsDirect: true})
	create, err := alice.FullStateEvent(ctx, roomID, event.StateCreate, "")
	if err != nil {
		t.Fatal(err)
	}
	if ac := create.Content.AsCreate().AdditionalCreators; len(ac) != 1 || ac[0] != bob.UserID {
		t.Fatalf("additional_creators %v", ac)
	}
	inv, err := alice.FullStateEvent(ctx, roomID, event.StateMember, string(bob.UserID))
	if err != nil || inv.Content.AsMember().Membership != event.MembershipInvite || !inv.Content.AsMember().IsDirect {
		t.Fatalf("direct invite: %+v %v", inv, err)
	}
}

func TestCreateRoomBadInput(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	post := func(body string) error {
		_, err := alice.MakeFullRequest(context.Background(), mautrix.FullRequest{
			Method: http.MethodPost, URL: ts.URL + "/_matrix/client/v3/createRoom", RequestBytes: []byte(body),
		})
		return err
	}
	roomErr(t, "malformed", post("{"), 400, "M_NOT_JSON")
	roomErr(t, "wrong type", post(`{"name": 5}`), 400, "M_BAD_JSON")
	roomErr(t, "bad invite", post(`{"invite": ["not-a-user"]}`), 400, "M_INVALID_PARAM")
	roomErr(t, "float in initial state", post(`{"initial_state": [{"type": "x.y", "content": {"f": 1.5}}]}`), 400, "M_BAD_JSON")
	roomErr(t, "locked-out override", post(`{"power_level_content_override": {"state_default": 200, "events": {}}, "name": "x", "room_version": "11"}`), 400, "M_INVALID_ROOM_STATE")
	roomErr(t, "create in initial state", post(`{"initial_state": [{"type": "m.room.create", "content": {}}]}`), 400, "M_INVALID_PARAM")
	anon := ts.Client()
	_, err := anon.CreateRoom(context.Background(), &mautrix.ReqCreateRoom{})
	roomErr(t, "no token", err, 401, "M_MISSING_TOKEN")
}

func TestMembershipFlow(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	carol := ts.RegisterUser("carol")
	roomID := roomCreate(t, alice, &mautrix.ReqCreateRoom{})

	// Private room: bob cannot join uninvited.
	_, err := bob.JoinRoomByID(ctx, roomID)
	roomErr(t, "uninvited join", err, 403, "M_FORBIDDEN")
	if _, err := alice.InviteUser(ctx, roomID, &mautrix.ReqInviteUser{UserID: bob.UserID}); err != nil {
		t.Fatal(err)
	}
	_, err = alice.InviteUser(ctx, roomID, &mautrix.ReqInviteUser{UserID: alice.UserID})
	roomErr(t, "invite a member", err, 403, "M_FORBIDDEN")
	if _, err := bob.JoinRoom(ctx, string(roomID), nil); err != nil {
		t.Fatalf("invited join: %v", err)
	}
	// Bob (power 0) may not kick or ban.
	_, err = bob.KickUser(ctx, roomID, &mautrix.ReqKickUser{UserID: alice.UserID})
	roomErr(t, "kick without power", err, 403, "M_FORBIDDEN")
	_, err = bob.BanUser(ctx, roomID, &mautrix.ReqBanUser{UserID: alice.UserID})
	roomErr(t, "ban without power", err, 403, "M_FORBIDDEN")
	// Alice kicks bob; he can no longer send.
	if _, err := alice.KickUser(ctx, roomID, &mautrix.ReqKickUser{UserID: bob.UserID, Reason: "bye"}); err != nil {
		t.Fatal(err)
	}
	_, err = bob.SendText(ctx, roomID, "still here?")
	roomErr(t, "send after kick", err, 403, "M_FORBIDDEN")
	// Ban carol (never in the room), then she cannot be invited or join.
	if _, err := alice.BanUser(ctx, roomID, &mautrix.ReqBanUser{UserID: carol.UserID}); err != nil {
		t.Fatal(err)
	}
	_, err = alice.InviteUser(ctx, roomID, &mautrix.ReqInviteUser{UserID: carol.UserID})
	roomErr(t, "invite banned", err, 403, "M_FORBIDDEN")
	_, err = carol.JoinRoomByID(ctx, roomID)
	roomErr(t, "banned join", err, 403, "M_FORBIDDEN")
	_, err = alice.UnbanUser(ctx, roomID, &mautrix.ReqUnbanUser{UserID: bob.UserID})
	roomErr(t, "unban someone not banned", err, 403, "M_FORBIDDEN")
	if _, err := alice.UnbanUser(ctx, roomID, &mautrix.ReqUnbanUser{UserID: carol.UserID}); err != nil {
		t.Fatal(err)
	}
	if m, err := alice.FullStateEvent(ctx, roomID, event.StateMember, string(carol.UserID)); err != nil || m.Content.AsMember().Membership != event.MembershipLeave {
		t.Fatalf("after unban: %+v %v", m, err)
	}
	// Leave and forget.
	if _, err := alice.InviteUser(ctx, roomID, &mautrix.ReqInviteUser{UserID: carol.UserID}); err != nil {
		t.Fatal(err)
	}
	if _, err := carol.JoinRoomByID(ctx, roomID); err != nil {
		t.Fatal(err)
	}
	_, err = carol.ForgetRoom(ctx, roomID)
	roomErr(t, "forget while joined", err, 400, "M_UNKNOWN")
	if _, err := carol.LeaveRoom(ctx, roomID); err != nil {
		t.Fatal(err)
	}
	if _, err := carol.ForgetRoom(ctx, roomID); err != nil {
		t.Fatal(err)
	}
	joined, _ := carol.JoinedRooms(ctx)
	if len(joined.JoinedRooms) != 0 {
		t.Fatalf("carol still in %v", joined.JoinedRooms)
	}
	// Unknown room and bad IDs.
	_, err = bob.JoinRoomByID(ctx, "!nope")
	roomErr(t, "unknown room", err, 404, "M_NOT_FOUND")
	_, err = bob.JoinRoom(ctx, "#nope:localhost", nil)
	roomErr(t, "unknown alias", err, 404, "M_NOT_FOUND")
	_, err = bob.JoinRoom(ctx, "nonsense", nil)
	roomErr(t, "bad room", err, 400, "M_INVALID_PARAM")
	_, err = alice.InviteUser(ctx, roomID, &mautrix.ReqInviteUser{UserID: "not a user"})
	roomErr(t, "bad user ID", err, 400, "M_INVALID_PARAM")
	_, err = carol.LeaveRoom(ctx, "!nope")
	roomErr(t, "leave unknown room", err, 404, "M_NOT_FOUND")
}

func TestJoinByAliasAndKnock(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	roomID := roomCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", RoomAliasName: "lobby"})
	resp, err := bob.JoinRoom(ctx, "#lobby:localhost", nil)
	if err != nil || resp.RoomID != roomID {
		t.Fatalf("join by alias: %v %v", resp, err)
	}
	knockRoom := roomCreate(t, alice, &mautrix.ReqCreateRoom{InitialState: []*event.Event{{
		Type: event.StateJoinRules, Content: event.Content{Parsed: &event.JoinRulesEventContent{JoinRule: event.JoinRuleKnock}},
	}}})
	if _, err := bob.KnockRoom(ctx, string(knockRoom), &mautrix.ReqKnockRoom{Reason: "let me in"}); err != nil {
		t.Fatalf("knock: %v", err)
	}
	m, err := alice.FullStateEvent(ctx, knockRoom, event.StateMember, string(bob.UserID))
	if err != nil || m.Content.AsMember().Membership != event.MembershipKnock {
		t.Fatalf("knock membership: %+v %v", m, err)
	}
	inviteOnly := roomCreate(t, alice, &mautrix.ReqCreateRoom{})
	_, err = bob.KnockRoom(ctx, string(inviteOnly), nil)
	roomErr(t, "knock on invite-only", err, 403, "M_FORBIDDEN")
}

func TestRestrictedJoin(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	carol := ts.RegisterUser("carol")
	space := roomCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	restricted := restrictedRoom(t, alice, space)
	if _, err := bob.JoinRoomByID(ctx, space); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.JoinRoomByID(ctx, restricted); err != nil {
		t.Fatalf("restricted join through the allowed room: %v", err)
	}
	m, _ := alice.FullStateEvent(ctx, restricted, event.StateMember, string(bob.UserID))
	if m.Content.AsMember().JoinAuthorisedViaUsersServer != alice.UserID {
		t.Fatalf("join_authorised_via_users_server = %q", m.Content.AsMember().JoinAuthorisedViaUsersServer)
	}
	_, err := carol.JoinRoomByID(ctx, restricted)
	roomErr(t, "restricted join without the allowed room", err, 403, "M_FORBIDDEN")
}

func TestSendStateAndEvents(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	eve := ts.RegisterUser("eve")
	roomID := roomCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if _, err := bob.JoinRoomByID(ctx, roomID); err != nil {
		t.Fatal(err)
	}
	// Idempotent transaction IDs, per device.
	first, err := bob.SendMessageEvent(ctx, roomID, event.EventMessage, map[string]any{"msgtype": "m.text", "body": "hi"}, mautrix.ReqSendEvent{TransactionID: "t1"})
	if err != nil {
		t.Fatal(err)
	}
	again, err := bob.SendMessageEvent(ctx, roomID, event.EventMessage, map[string]any{"msgtype": "m.text", "body": "hi"}, mautrix.ReqSendEvent{TransactionID: "t1"})
	if err != nil || again.EventID != first.EventID {
		t.Fatalf("retried transaction gave %v (%v), want %s", again, err, first.EventID)
	}
	other, err := bob.SendMessageEvent(ctx, roomID, event.EventMessage, map[string]any{"msgtype": "m.text", "body": "hi"}, mautrix.ReqSendEvent{TransactionID: "t2"})
	if err != nil || other.EventID == first.EventID {
		t.Fatalf("new transaction: %v %v", other, err)
	}
	ev, err := alice.GetEvent(ctx, roomID, first.EventID)
	if err != nil || ev.Sender != bob.UserID || ev.Content.Raw["body"] != "hi" {
		t.Fatalf("get event: %+v %v", ev, err)
	}
	// State: bob (power 0) may not set the name; alice may.
	_, err = bob.SendStateEvent(ctx, roomID, event.StateRoomName, "", map[string]any{"name": "bob's"})
	roomErr(t, "insufficient power", err, 403, "M_FORBIDDEN")
	setName, err := alice.SendStateEvent(ctx, roomID, event.StateRoomName, "", map[string]any{"name": "Kitchen"})
	if err != nil {
		t.Fatal(err)
	}
	same, err := alice.SendStateEvent(ctx, roomID, event.StateRoomName, "", map[string]any{"name": "Kitchen"})
	if err != nil || same.EventID != setName.EventID {
		t.Fatalf("identical state should return the existing event: %v %v", same, err)
	}
	var name event.RoomNameEventContent
	if err := bob.StateEvent(ctx, roomID, event.StateRoomName, "", &name); err != nil || name.Name != "Kitchen" {
		t.Fatalf("read state: %+v %v", name, err)
	}
	// A state key starting with @ that is not the sender is forbidden.
	_, err = bob.SendStateEvent(ctx, roomID, event.NewEventType("org.example.state"), string(alice.UserID), map[string]any{})
	roomErr(t, "someone else's state key", err, 403, "M_FORBIDDEN")
	if _, err := bob.SendStateEvent(ctx, roomID, event.NewEventType("org.example.state"), string(bob.UserID), map[string]any{"x": 1}); err != nil {
		// state_default is 50, so bob still cannot.
		roomErr(t, "state below state_default", err, 403, "M_FORBIDDEN")
	}
	roomErr(t, "missing state", bob.StateEvent(ctx, roomID, event.StateTopic, "", &name), 404, "M_NOT_FOUND")

	// Eve is not in the room: she sees nothing and can send nothing.
	_, err = eve.SendText(ctx, roomID, "let me in")
	roomErr(t, "non-member send", err, 403, "M_FORBIDDEN")
	_, err = eve.GetEvent(ctx, roomID, first.EventID)
	roomErr(t, "non-member read", err, 404, "M_NOT_FOUND")
	_, err = eve.State(ctx, roomID)
	roomErr(t, "non-member state", err, 403, "M_FORBIDDEN")
	_, err = alice.GetEvent(ctx, roomID, "$nope")
	roomErr(t, "unknown event", err, 404, "M_NOT_FOUND")

	// Bad content.
	raw := func(method, path, body string) error {
		_, err := bob.MakeFullRequest(ctx, mautrix.FullRequest{Method: method, URL: ts.URL + "/_matrix/client/v3/rooms/" + string(roomID) + path, RequestBytes: []byte(body)})
		return err
	}
	roomErr(t, "malformed", raw("PUT", "/send/m.room.message/t3", "{"), 400, "M_NOT_JSON")
	roomErr(t, "array", raw("PUT", "/send/m.room.message/t4", "[]"), 400, "M_BAD_JSON")
	roomErr(t, "float", raw("PUT", "/send/m.room.message/t5", `{"n": 0.5}`), 400, "M_BAD_JSON")
	roomErr(t, "huge int", raw("PUT", "/send/m.room.message/t6", `{"n": 9007199254740993}`), 400, "M_BAD_JSON")
	big := `{"body": "` + strings.Repeat("x", 70000) + `"}`
	roomErr(t, "too large", raw("PUT", "/send/m.room.message/t7", big), 413, "M_TOO_LARGE")
	roomErr(t, "redaction via send", raw("PUT", "/send/m.room.redaction/t8", `{}`), 403, "M_FORBIDDEN")
}

func TestRedaction(t *testing.T) {
	_, alice, bob, roomID := pairInRoom(t, "")
	ctx := context.Background()
	aliceMsg, _ := alice.SendText(ctx, roomID, "secret")
	bobMsg, _ := bob.SendText(ctx, roomID, "oops")
	_, err := bob.RedactEvent(ctx, roomID, aliceMsg.EventID)
	roomErr(t, "redact someone else's without power", err, 403, "M_FORBIDDEN")
	red, err := bob.RedactEvent(ctx, roomID, bobMsg.EventID, mautrix.ReqRedact{Reason: "typo", TxnID: "r1"})
	if err != nil {
		t.Fatal(err)
	}
	again, err := bob.RedactEvent(ctx, roomID, bobMsg.EventID, mautrix.ReqRedact{TxnID: "r1"})
	if err != nil || again.EventID != red.EventID {
		t.Fatalf("redaction txn not idempotent: %v %v", again, err)
	}
	ev, err := alice.GetEvent(ctx, roomID, bobMsg.EventID)
	if err != nil {
		t.Fatal(err)
	}
	if len(ev.Content.Raw) != 0 || ev.Unsigned.RedactedBecause == nil || ev.Unsigned.RedactedBecause.ID != red.EventID {
		t.Fatalf("redacted event: content %v, redacted_because %+v", ev.Content.Raw, ev.Unsigned.RedactedBecause)
	}
	// Alice (power 100) may redact bob's messages.
	if _, err := alice.RedactEvent(ctx, roomID, red.EventID); err != nil {
		t.Fatalf("moderator redaction: %v", err)
	}
	_, err = alice.RedactEvent(ctx, roomID, "$unknown")
	roomErr(t, "redact unknown", err, 404, "M_NOT_FOUND")
}

func TestHistoryVisibility(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	roomID := roomCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if _, err := alice.SendStateEvent(ctx, roomID, event.StateHistoryVisibility, "", map[string]any{"history_visibility": "joined"}); err != nil {
		t.Fatal(err)
	}
	before, _ := alice.SendText(ctx, roomID, "before bob")
	if _, err := bob.JoinRoomByID(ctx, roomID); err != nil {
		t.Fatal(err)
	}
	after, _ := alice.SendText(ctx, roomID, "after bob joined")
	_, err := bob.GetEvent(ctx, roomID, before.EventID)
	roomErr(t, "joined visibility hides earlier events", err, 404, "M_NOT_FOUND")
	if _, err := bob.GetEvent(ctx, roomID, after.EventID); err != nil {
		t.Fatalf("event while joined: %v", err)
	}
	if _, err := bob.LeaveRoom(ctx, roomID); err != nil {
		t.Fatal(err)
	}
	later, _ := alice.SendText(ctx, roomID, "after bob left")
	_, err = bob.GetEvent(ctx, roomID, later.EventID)
	roomErr(t, "event after leaving", err, 404, "M_NOT_FOUND")
	if _, err := bob.GetEvent(ctx, roomID, after.EventID); err != nil {
		t.Fatalf("event seen while joined stays visible: %v", err)
	}
	// After leaving, bob reads the state as it was when he left.
	if _, err := alice.SendStateEvent(ctx, roomID, event.StateTopic, "", map[string]any{"topic": "new"}); err != nil {
		t.Fatal(err)
	}
	var topic event.TopicEventContent
	roomErr(t, "state set after leaving", bob.StateEvent(ctx, roomID, event.StateTopic, "", &topic), 404, "M_NOT_FOUND")

	// world_readable: anyone logged in may read.
	if _, err := alice.SendStateEvent(ctx, roomID, event.StateHistoryVisibility, "", map[string]any{"history_visibility": "world_readable"}); err != nil {
		t.Fatal(err)
	}
	open, _ := alice.SendText(ctx, roomID, "for everyone")
	stranger := ts.RegisterUser("stranger")
	if _, err := stranger.GetEvent(ctx, roomID, open.EventID); err != nil {
		t.Fatalf("world readable: %v", err)
	}
}

func TestStateSurvivesRestart(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")
	roomID := roomCreate(t, alice, &mautrix.ReqCreateRoom{Name: "Persistent"})
	// Enough state changes to cross a full-snapshot boundary of the delta chain.
	for i := range 60 {
		if _, err := alice.SendStateEvent(ctx, roomID, event.StateTopic, "", map[string]any{"topic": strings.Repeat("t", i+1)}); err != nil {
			t.Fatal(err)
		}
	}
	msg, _ := alice.SendText(ctx, roomID, "hello")
	ts.Restart()
	alice.HomeserverURL = mustParse(t, ts.URL)
	var topic event.TopicEventContent
	if err := alice.StateEvent(ctx, roomID, event.StateTopic, "", &topic); err != nil || len(topic.Topic) != 60 {
		t.Fatalf("topic after restart: %d chars, %v", len(topic.Topic), err)
	}
	if _, err := alice.GetEvent(ctx, roomID, msg.EventID); err != nil {
		t.Fatalf("event after restart: %v", err)
	}
	if _, err := alice.SendText(ctx, roomID, "still works"); err != nil {
		t.Fatalf("send after restart: %v", err)
	}
}

func TestUpgradeRoom(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	carol := ts.RegisterUser("carol")
	oldRoom := roomCreate(t, alice, &mautrix.ReqCreateRoom{RoomVersion: id.RoomV10, Preset: "public_chat", Name: "Old", Topic: "Topic", RoomAliasName: "club"})
	if _, err := bob.JoinRoomByID(ctx, oldRoom); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.InviteUser(ctx, oldRoom, &mautrix.ReqInviteUser{UserID: carol.UserID}); err != nil {
		t.Fatal(err)
	}
	upgrade := func(c *mautrix.Client, body string) (string, error) {
		var resp struct {
			ReplacementRoom string `json:"replacement_room"`
		}
		_, err := c.MakeFullRequest(ctx, mautrix.FullRequest{Method: http.MethodPost,
			URL: ts.URL + "/_matrix/client/v3/rooms/" + string(oldRoom) + "/upgrade", RequestBytes: []byte(body), ResponseJSON: &resp})
		return resp.ReplacementRoom, err
	}
	_, err := upgrade(bob, `{"new_version": "12"}`)
	roomErr(t, "upgrade without power", err, 403, "M_FORBIDDEN")
	_, err = upgrade(alice, `{"new_version": "99"}`)
	roomErr(t, "unsupported version", err, 400, "M_UNSUPPORTED_ROOM_VERSION")
	_, err = upgrade(alice, `{}`)
	roomErr(t, "missing version", err, 400, "M_MISSING_PARAM")
	_, err = upgrade(alice, `{`)
	roomErr(t, "malformed", err, 400, "M_NOT_JSON")

	newRoomStr, err := upgrade(alice, `{"new_version": "12"}`)
	if err != nil {
		t.Fatal(err)
	}
	newRoom := id.RoomID(newRoomStr)
	tomb, err := bob.FullStateEvent(ctx, oldRoom, event.StateTombstone, "")
	if err != nil || tomb.Content.AsTombstone().ReplacementRoom != newRoom {
		t.Fatalf("tombstone: %+v %v", tomb, err)
	}
	create, err := alice.FullStateEvent(ctx, newRoom, event.StateCreate, "")
	if err != nil || create.Content.AsCreate().Predecessor == nil || create.Content.AsCreate().Predecessor.RoomID != oldRoom {
		t.Fatalf("predecessor: %+v %v", create, err)
	}
	var name event.RoomNameEventContent
	if err := alice.StateEvent(ctx, newRoom, event.StateRoomName, "", &name); err != nil || name.Name != "Old" {
		t.Fatalf("name not carried over: %+v %v", name, err)
	}
	var jr event.JoinRulesEventContent
	if err := alice.StateEvent(ctx, newRoom, event.StateJoinRules, "", &jr); err != nil || jr.JoinRule != event.JoinRulePublic {
		t.Fatalf("join rules not carried over: %+v %v", jr, err)
	}
	// The alias now leads to the new room, and pending invites were re-sent.
	resp, err := bob.JoinRoom(ctx, "#club:localhost", nil)
	if err != nil || resp.RoomID != newRoom {
		t.Fatalf("alias after upgrade: %v %v", resp, err)
	}
	inv, err := alice.FullStateEvent(ctx, newRoom, event.StateMember, string(carol.UserID))
	if err != nil || inv.Content.AsMember().Membership != event.MembershipInvite {
		t.Fatalf("invite carried over: %+v %v", inv, err)
	}
	// The old room is closed to ordinary members.
	_, err = bob.SendText(ctx, oldRoom, "anyone?")
	roomErr(t, "talking in the old room", err, 403, "M_FORBIDDEN")
	pl := event.PowerLevelsEventContent{}
	if err := alice.StateEvent(ctx, newRoom, event.StatePowerLevels, "", &pl); err != nil {
		t.Fatal(err)
	}
	if _, listed := pl.Users[alice.UserID]; listed {
		t.Fatal("v12 creator listed in power levels after upgrade")
	}
}

// Room names and member display names are one line of text: control
// characters in them are refused with 400 M_INVALID_PARAM, whether the
// room is being made or its state changed.
func TestRoomNamesRefuseControlCharacters(t *testing.T) {
	ts, alice, _, roomID := pairInRoom(t, "plain")
	for _, name := range []string{"Tea\x00Room", "Tea\nRoom", "\x7fTea"} {
		r := sessRaw(t, ts, alice.AccessToken, http.MethodPost, "/_matrix/client/v3/createRoom", map[string]any{"name": name})
		sessExpect(t, fmt.Sprintf("createRoom name %q", name), r, http.StatusBadRequest, "M_INVALID_PARAM")
		r = sessRaw(t, ts, alice.AccessToken, http.MethodPost, "/_matrix/client/v3/createRoom", map[string]any{
			"initial_state": []any{map[string]any{"type": "m.room.name", "state_key": "", "content": map[string]any{"name": name}}},
		})
		sessExpect(t, fmt.Sprintf("createRoom initial_state name %q", name), r, http.StatusBadRequest, "M_INVALID_PARAM")
		r = sessRaw(t, ts, alice.AccessToken, http.MethodPut, "/_matrix/client/v3/rooms/"+string(roomID)+"/state/m.room.name/", map[string]any{"name": name})
		sessExpect(t, fmt.Sprintf("m.room.name %q", name), r, http.StatusBadRequest, "M_INVALID_PARAM")
		r = sessRaw(t, ts, alice.AccessToken, http.MethodPut, "/_matrix/client/v3/rooms/"+string(roomID)+"/state/m.room.member/"+string(alice.UserID),
			map[string]any{"membership": "join", "displayname": name})
		sessExpect(t, fmt.Sprintf("member displayname %q", name), r, http.StatusBadRequest, "M_INVALID_PARAM")
	}
	joined, err := alice.JoinedRooms(context.Background())
	if err != nil || len(joined.JoinedRooms) != 1 {
		t.Fatalf("a refused createRoom made a room: %v %v", joined, err)
	}
	// A name with other Unicode is fine.
	r := sessRaw(t, ts, alice.AccessToken, http.MethodPut, "/_matrix/client/v3/rooms/"+string(roomID)+"/state/m.room.name/", map[string]any{"name": "Tea ☕ Room"})
	sessExpect(t, "plain name", r, http.StatusOK, "")
}
