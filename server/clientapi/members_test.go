package clientapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
)

// memList returns "localpart=membership" for each member event, in the
// order the server sent them.
func memList(t *testing.T, c *mautrix.Client, roomID id.RoomID, req mautrix.ReqMembers) []string {
	t.Helper()
	resp, err := c.Members(context.Background(), roomID, req)
	if err != nil {
		t.Fatalf("members of %s as %s (%+v): %v", roomID, c.UserID, req, err)
	}
	out := make([]string, 0, len(resp.Chunk))
	for _, ev := range resp.Chunk {
		if ev.Type != event.StateMember || ev.StateKey == nil || ev.RoomID != roomID {
			t.Fatalf("not a member event of the room: %+v", ev)
		}
		local, _, _ := id.UserID(*ev.StateKey).Parse()
		out = append(out, local+"="+ev.Content.Raw["membership"].(string))
	}
	return out
}

func memExpect(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s: got %v, want %v", what, got, want)
	}
}

func TestMembersLists(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	carol := ts.RegisterUser("carol")
	dave := ts.RegisterUser("dave")
	erin := ts.RegisterUser("erin")
	frank := ts.RegisterUser("frank")
	roomID := roomCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if _, err := bob.JoinRoomByID(ctx, roomID); err != nil {
		t.Fatal(err)
	}
	early := syncOnce(t, alice, "", "", 0).NextBatch
	if _, err := alice.InviteUser(ctx, roomID, &mautrix.ReqInviteUser{UserID: carol.UserID}); err != nil {
		t.Fatal(err)
	}
	if _, err := dave.JoinRoomByID(ctx, roomID); err != nil {
		t.Fatal(err)
	}
	if _, err := dave.LeaveRoom(ctx, roomID); err != nil {
		t.Fatal(err)
	}
	if _, err := erin.JoinRoomByID(ctx, roomID); err != nil {
		t.Fatal(err)
	}

	all := []string{"alice=join", "bob=join", "carol=invite", "dave=leave", "erin=join"}
	memExpect(t, "current members", memList(t, alice, roomID, mautrix.ReqMembers{}), all...)
	memExpect(t, "membership=join", memList(t, alice, roomID, mautrix.ReqMembers{Membership: event.MembershipJoin}),
		"alice=join", "bob=join", "erin=join")
	memExpect(t, "membership=leave", memList(t, alice, roomID, mautrix.ReqMembers{Membership: event.MembershipLeave}), "dave=leave")
	memExpect(t, "not_membership=leave", memList(t, alice, roomID, mautrix.ReqMembers{NotMembership: event.MembershipLeave}),
		"alice=join", "bob=join", "carol=invite", "erin=join")
	// Both together must both hold (as every server implements it).
	memExpect(t, "membership=join&not_membership=leave",
		memList(t, alice, roomID, mautrix.ReqMembers{Membership: event.MembershipJoin, NotMembership: event.MembershipLeave}),
		"alice=join", "bob=join", "erin=join")
	memExpect(t, "membership=join&not_membership=join",
		memList(t, alice, roomID, mautrix.ReqMembers{Membership: event.MembershipJoin, NotMembership: event.MembershipJoin}))

	// at: the members as of a sync token, filters included.
	memExpect(t, "at an early token", memList(t, alice, roomID, mautrix.ReqMembers{At: early}), "alice=join", "bob=join")
	memExpect(t, "at an early token, invites", memList(t, alice, roomID, mautrix.ReqMembers{At: early, Membership: event.MembershipInvite}))
	now := syncOnce(t, alice, "", "", 0)
	memExpect(t, "at the newest token", memList(t, alice, roomID, mautrix.ReqMembers{At: now.NextBatch}), all...)
	// A timeline's prev_batch works too: the members before the timeline.
	prev := now.Rooms.Join[roomID].Timeline.PrevBatch
	if got := memList(t, alice, roomID, mautrix.ReqMembers{At: prev}); slices.Contains(got, "erin=join") == slices.Contains(
		timelineMembers(now, roomID), string(erin.UserID)) {
		t.Fatalf("at prev_batch %s: %v", prev, got)
	}

	// Dave left: he sees the members as they were when he left, his own
	// leave included, and no later, even with a newer at.
	whenDaveLeft := []string{"alice=join", "bob=join", "carol=invite", "dave=leave"}
	memExpect(t, "dave after leaving", memList(t, dave, roomID, mautrix.ReqMembers{}), whenDaveLeft...)
	memExpect(t, "dave at a newer token", memList(t, dave, roomID, mautrix.ReqMembers{At: now.NextBatch}), whenDaveLeft...)
	// Before he joined, the shared history was not his to see: like an
	// event, the state at a point is hidden once he is gone (Synapse's
	// reading of "shared" as well).
	_, err := dave.Members(ctx, roomID, mautrix.ReqMembers{At: early})
	roomErr(t, "dave at a token from before he joined", err, 403, "M_FORBIDDEN")

	// Never in the room, or only invited: 403, for both lists.
	_, err = frank.Members(ctx, roomID)
	roomErr(t, "members, never in the room", err, 403, "M_FORBIDDEN")
	_, err = carol.Members(ctx, roomID)
	roomErr(t, "members, invited only", err, 403, "M_FORBIDDEN")
	for _, c := range []*mautrix.Client{frank, carol, dave} {
		_, err = c.JoinedMembers(ctx, roomID)
		roomErr(t, "joined_members as "+string(c.UserID), err, 403, "M_FORBIDDEN")
	}
	// world_readable opens /members (current members) but not
	// /joined_members.
	if _, err := alice.SendStateEvent(ctx, roomID, event.StateHistoryVisibility, "", map[string]any{"history_visibility": "world_readable"}); err != nil {
		t.Fatal(err)
	}
	memExpect(t, "stranger, world_readable", memList(t, frank, roomID, mautrix.ReqMembers{}), all...)
	_, err = frank.JoinedMembers(ctx, roomID)
	roomErr(t, "joined_members, world_readable stranger", err, 403, "M_FORBIDDEN")
}

// timelineMembers lists the state keys of member events in a joined
// room's timeline.
func timelineMembers(resp *mautrix.RespSync, roomID id.RoomID) []string {
	var out []string
	for _, ev := range resp.Rooms.Join[roomID].Timeline.Events {
		if ev.Type == event.StateMember {
			out = append(out, *ev.StateKey)
		}
	}
	return out
}

func TestMembersAtHonoursHistoryVisibility(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	roomID := roomCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if _, err := alice.SendStateEvent(ctx, roomID, event.StateHistoryVisibility, "", map[string]any{"history_visibility": "joined"}); err != nil {
		t.Fatal(err)
	}
	// The history visibility event itself is judged by the visibility
	// before it (shared): a message after it is the first joined-only point.
	if _, err := alice.SendText(ctx, roomID, "members only from here"); err != nil {
		t.Fatal(err)
	}
	before := syncOnce(t, alice, "", "", 0).NextBatch
	if _, err := bob.JoinRoomByID(ctx, roomID); err != nil {
		t.Fatal(err)
	}
	// Bob was not there at that point and the history is joined-only.
	_, err := bob.Members(ctx, roomID, mautrix.ReqMembers{At: before})
	roomErr(t, "members before bob joined", err, 403, "M_FORBIDDEN")
	memExpect(t, "alice at the same point", memList(t, alice, roomID, mautrix.ReqMembers{At: before}), "alice=join")
	memExpect(t, "bob now", memList(t, bob, roomID, mautrix.ReqMembers{}), "alice=join", "bob=join")
	// A token from before the room's first event (a sync's prev_batch when
	// its timeline begins with the room's creation) reads as the room's
	// start, once its creator joined.
	memExpect(t, "before the room", memList(t, alice, roomID, mautrix.ReqMembers{At: "s0"}), "alice=join")
}

func TestJoinedMembers(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	carol := ts.RegisterUser("carol")
	roomID := roomCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if _, err := bob.JoinRoomByID(ctx, roomID); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.InviteUser(ctx, roomID, &mautrix.ReqInviteUser{UserID: carol.UserID}); err != nil {
		t.Fatal(err)
	}
	if err := alice.SetDisplayName(ctx, "Alice A."); err != nil {
		t.Fatal(err)
	}
	if err := alice.SetAvatarURL(ctx, id.ContentURI{Homeserver: "localhost", FileID: "avatar1"}); err != nil {
		t.Fatal(err)
	}
	// A room-specific name, set by sending a member event by hand.
	if _, err := bob.SendStateEvent(ctx, roomID, event.StateMember, string(bob.UserID), map[string]any{"membership": "join", "displayname": "Bob in here"}); err != nil {
		t.Fatal(err)
	}
	resp, err := bob.JoinedMembers(ctx, roomID)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Joined) != 2 {
		t.Fatalf("joined: %+v", resp.Joined)
	}
	if a := resp.Joined[alice.UserID]; a.DisplayName != "Alice A." || a.AvatarURL != "mxc://localhost/avatar1" {
		t.Fatalf("alice: %+v", a)
	}
	if b := resp.Joined[bob.UserID]; b.DisplayName != "Bob in here" || b.AvatarURL != "" {
		t.Fatalf("bob: %+v", b)
	}
	// Every member has both keys, null for what they do not have (as
	// Synapse answers).
	raw, err := bob.MakeRequest(ctx, http.MethodGet, ts.URL+"/_matrix/client/v3/rooms/"+url.PathEscape(string(roomID))+"/joined_members", nil, nil)
	var body struct {
		Joined map[id.UserID]map[string]any `json:"joined"`
	}
	if err != nil || json.Unmarshal(raw, &body) != nil {
		t.Fatalf("joined_members JSON %s %v", raw, err)
	}
	for user, m := range body.Joined {
		if _, ok := m["avatar_url"]; !ok {
			t.Fatalf("%s has no avatar_url: %s", user, raw)
		}
		if _, ok := m["display_name"]; !ok {
			t.Fatalf("%s has no display_name: %s", user, raw)
		}
	}
	if body.Joined[bob.UserID]["avatar_url"] != nil || body.Joined[alice.UserID]["avatar_url"] != "mxc://localhost/avatar1" {
		t.Fatalf("joined_members JSON %s", raw)
	}
}

func TestMembersBadInput(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")
	roomID := roomCreate(t, alice, &mautrix.ReqCreateRoom{})
	get := func(path string) error {
		_, err := alice.MakeRequest(ctx, http.MethodGet, ts.URL+"/_matrix/client/v3/rooms/"+path, nil, nil)
		return err
	}
	room := url.PathEscape(string(roomID))
	for _, q := range []string{"membership=joined", "not_membership=LEAVE", "membership="} {
		err := get(room + "/members?" + q)
		if q == "membership=" {
			if err != nil {
				t.Fatalf("empty membership means no filter: %v", err)
			}
			continue
		}
		roomErr(t, q, err, 400, "M_INVALID_PARAM")
	}
	for _, at := range []string{"garbage", "s-1", "s1_x", "s999999999"} {
		roomErr(t, "at "+at, get(room+"/members?at="+url.QueryEscape(at)), 400, "M_INVALID_PARAM")
	}
	_, err := alice.Members(ctx, "!unknown:localhost")
	roomErr(t, "members of an unknown room", err, 404, "M_NOT_FOUND")
	_, err = alice.JoinedMembers(ctx, "!unknown:localhost")
	roomErr(t, "joined_members of an unknown room", err, 404, "M_NOT_FOUND")
	roomErr(t, "members, malformed room ID", get("not-a-room/members"), 400, "M_INVALID_PARAM")
	roomErr(t, "joined_members, malformed room ID", get("not-a-room/joined_members"), 400, "M_INVALID_PARAM")
	_, err = ts.Client().Members(ctx, roomID)
	roomErr(t, "members without a token", err, 401, "M_MISSING_TOKEN")
	_, err = ts.Client().JoinedMembers(ctx, roomID)
	roomErr(t, "joined_members without a token", err, 401, "M_MISSING_TOKEN")
}
