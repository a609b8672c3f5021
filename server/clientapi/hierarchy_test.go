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

// hierChild adds a room to a space.
func hierChild(t *testing.T, c *mautrix.Client, space id.RoomID, child id.RoomID, content map[string]any) {
	t.Helper()
	if _, err := c.SendStateEvent(context.Background(), space, event.StateSpaceChild, string(child), content); err != nil {
		t.Fatalf("add %s to %s: %v", child, space, err)
	}
}

// hierWalk fetches one page of a hierarchy.
func hierWalk(t *testing.T, c *mautrix.Client, root id.RoomID, req *mautrix.ReqHierarchy) *mautrix.RespHierarchy {
	t.Helper()
	resp, err := c.Hierarchy(context.Background(), root, req)
	if err != nil {
		t.Fatalf("hierarchy of %s as %s (%+v): %v", root, c.UserID, req, err)
	}
	return resp
}

func hierIDs(resp *mautrix.RespHierarchy) []id.RoomID {
	var out []id.RoomID
	for _, r := range resp.Rooms {
		out = append(out, r.RoomID)
	}
	return out
}

func hierDepth(n int) *int { return &n }

// hierSetup builds this tree, alice owning everything:
//
//	S (space, public)
//	├── T (space, public; order "a")
//	│   ├── C (knock; order "x")
//	│   └── S (a loop; order "y")
//	├── A (public; order "b"; suggested)
//	├── B (invite-only; no order)
//	└── !unknown:localhost (no order; never created)
//
// plus children that do not count: one with an empty via list, one whose
// via is not a list of strings.
type hierTree struct {
	S, T, C, A, B, Junk id.RoomID
}

func hierSetup(t *testing.T, alice *mautrix.Client) hierTree {
	t.Helper()
	ctx := context.Background()
	space := map[string]any{"type": "m.space"}
	var h hierTree
	h.S = roomCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Space S", CreationContent: space, RoomAliasName: "s"})
	h.T = roomCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Space T", CreationContent: space})
	h.C = roomCreate(t, alice, &mautrix.ReqCreateRoom{Name: "Knock C"})
	if _, err := alice.SendStateEvent(ctx, h.C, event.StateJoinRules, "", map[string]any{"join_rule": "knock"}); err != nil {
		t.Fatal(err)
	}
	h.A = roomCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Room A", Topic: "about A"})
	h.B = roomCreate(t, alice, &mautrix.ReqCreateRoom{Name: "Private B"})
	h.Junk = roomCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	via := []string{"localhost"}
	hierChild(t, alice, h.S, h.B, map[string]any{"via": via})
	hierChild(t, alice, h.S, "!unknown:localhost", map[string]any{"via": via})
	hierChild(t, alice, h.S, h.A, map[string]any{"via": via, "order": "b", "suggested": true})
	hierChild(t, alice, h.S, h.T, map[string]any{"via": via, "order": "a"})
	hierChild(t, alice, h.S, h.Junk, map[string]any{"via": []string{}})
	hierChild(t, alice, h.T, h.C, map[string]any{"via": via, "order": "x"})
	hierChild(t, alice, h.T, h.S, map[string]any{"via": via, "order": "y"})
	hierChild(t, alice, h.T, h.Junk, map[string]any{"via": []any{1}})
	return h
}

func TestSpaceHierarchy(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	h := hierSetup(t, alice)

	// Depth first, children in order, each room once (the loop back to S
	// is broken), unknown rooms and invalid children left out.
	resp := hierWalk(t, alice, h.S, nil)
	if got := hierIDs(resp); !slices.Equal(got, []id.RoomID{h.S, h.T, h.C, h.A, h.B}) || resp.NextBatch != "" {
		t.Fatalf("alice's hierarchy: %v (next %q)", got, resp.NextBatch)
	}
	root := resp.Rooms[0]
	if root.Name != "Space S" || root.RoomType != event.RoomTypeSpace || root.CanonicalAlias != "#s:localhost" ||
		root.NumJoinedMembers != 1 || root.JoinRule != event.JoinRulePublic || root.RoomVersion != id.RoomV12 {
		t.Fatalf("root summary: %+v", root.PublicRoomInfo)
	}
	var children []string
	for _, ev := range root.ChildrenState {
		if ev.Type != event.StateSpaceChild || ev.Sender != alice.UserID || ev.Timestamp == 0 {
			t.Fatalf("child state %+v", ev)
		}
		children = append(children, *ev.StateKey)
	}
	if want := []string{string(h.T), string(h.A), string(h.B), "!unknown:localhost"}; !slices.Equal(children, want) {
		t.Fatalf("children_state order: %v, want %v", children, want)
	}
	if a := resp.Rooms[3]; a.Topic != "about A" || a.ChildrenState == nil || len(a.ChildrenState) != 0 {
		t.Fatalf("room A: %+v children %v", a.PublicRoomInfo, a.ChildrenState)
	}
	// children_state is an empty list, not null, for rooms.
	var raw struct {
		Rooms []map[string]json.RawMessage `json:"rooms"`
	}
	if err := dirRequest(t, ts, alice, http.MethodGet, "/v1/rooms/"+url.PathEscape(string(h.A))+"/hierarchy", nil, &raw); err != nil || string(raw.Rooms[0]["children_state"]) != "[]" {
		t.Fatalf("children_state of a room: %s %v", raw.Rooms[0]["children_state"], err)
	}

	// bob is in none of them: he sees what anyone may preview.
	if got := hierIDs(hierWalk(t, bob, h.S, nil)); !slices.Equal(got, []id.RoomID{h.S, h.T, h.C, h.A}) {
		t.Fatalf("bob's hierarchy: %v", got)
	}
	// ...and an invite opens B to him.
	if _, err := alice.InviteUser(ctx, h.B, &mautrix.ReqInviteUser{UserID: bob.UserID}); err != nil {
		t.Fatal(err)
	}
	if got := hierIDs(hierWalk(t, bob, h.S, nil)); !slices.Equal(got, []id.RoomID{h.S, h.T, h.C, h.A, h.B}) {
		t.Fatalf("bob's hierarchy once invited: %v", got)
	}

	// suggested_only keeps only suggested children (the root always shows).
	sugg := hierWalk(t, alice, h.S, &mautrix.ReqHierarchy{SuggestedOnly: true})
	if got := hierIDs(sugg); !slices.Equal(got, []id.RoomID{h.S, h.A}) || len(sugg.Rooms[0].ChildrenState) != 1 {
		t.Fatalf("suggested only: %v", got)
	}
	// max_depth.
	if got := hierIDs(hierWalk(t, alice, h.S, &mautrix.ReqHierarchy{MaxDepth: hierDepth(0)})); !slices.Equal(got, []id.RoomID{h.S}) {
		t.Fatalf("max_depth 0: %v", got)
	}
	if got := hierIDs(hierWalk(t, alice, h.S, &mautrix.ReqHierarchy{MaxDepth: hierDepth(1)})); !slices.Equal(got, []id.RoomID{h.S, h.T, h.A, h.B}) {
		t.Fatalf("max_depth 1: %v", got)
	}
	// Starting inside the loop.
	if got := hierIDs(hierWalk(t, alice, h.T, nil)); !slices.Equal(got, []id.RoomID{h.T, h.C, h.S, h.A, h.B}) {
		t.Fatalf("hierarchy from T: %v", got)
	}

	// Pagination.
	var paged []id.RoomID
	from := ""
	for page := 0; ; page++ {
		if page > 5 {
			t.Fatal("pagination does not end")
		}
		resp := hierWalk(t, alice, h.S, &mautrix.ReqHierarchy{Limit: 2, From: from, MaxDepth: hierDepth(5)})
		if len(resp.Rooms) == 0 {
			t.Fatal("empty page")
		}
		paged = append(paged, hierIDs(resp)...)
		if resp.NextBatch == "" {
			break
		}
		from = resp.NextBatch
	}
	if !slices.Equal(paged, []id.RoomID{h.S, h.T, h.C, h.A, h.B}) {
		t.Fatalf("paginated: %v", paged)
	}
	next := hierWalk(t, alice, h.S, &mautrix.ReqHierarchy{Limit: 2, MaxDepth: hierDepth(5)}).NextBatch

	// Bad input.
	get := func(c *mautrix.Client, room id.RoomID, query string) error {
		return dirRequest(t, ts, c, http.MethodGet, "/v1/rooms/"+url.PathEscape(string(room))+"/hierarchy?"+query, nil, nil)
	}
	roomErr(t, "changed max_depth", get(alice, h.S, "limit=2&max_depth=4&from="+next), http.StatusBadRequest, "M_INVALID_PARAM")
	roomErr(t, "changed suggested_only", get(alice, h.S, "limit=2&max_depth=5&suggested_only=true&from="+next), http.StatusBadRequest, "M_INVALID_PARAM")
	roomErr(t, "token of another room", get(alice, h.T, "max_depth=5&from="+next), http.StatusBadRequest, "M_INVALID_PARAM")
	roomErr(t, "garbage token", get(alice, h.S, "from=garbage"), http.StatusBadRequest, "M_INVALID_PARAM")
	roomErr(t, "zero limit", get(alice, h.S, "limit=0"), http.StatusBadRequest, "M_INVALID_PARAM")
	roomErr(t, "limit not a number", get(alice, h.S, "limit=two"), http.StatusBadRequest, "M_INVALID_PARAM")
	roomErr(t, "negative max_depth", get(alice, h.S, "max_depth=-1"), http.StatusBadRequest, "M_INVALID_PARAM")
	roomErr(t, "bad suggested_only", get(alice, h.S, "suggested_only=maybe"), http.StatusBadRequest, "M_INVALID_PARAM")
	roomErr(t, "unknown room", get(alice, "!unknown:localhost", ""), http.StatusForbidden, "M_FORBIDDEN")
	roomErr(t, "malformed room ID", get(alice, "nope", ""), http.StatusBadRequest, "M_INVALID_PARAM")
	roomErr(t, "no token", get(ts.Client(), h.S, ""), http.StatusUnauthorized, "M_MISSING_TOKEN")
	roomErr(t, "bad token", get(dirBadToken(ts), h.S, ""), http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
	carol := ts.RegisterUser("carol")
	roomErr(t, "root the user may not see", get(carol, h.B, ""), http.StatusForbidden, "M_FORBIDDEN")
	// Banned users may not look in.
	if _, err := alice.BanUser(ctx, h.S, &mautrix.ReqBanUser{UserID: bob.UserID}); err != nil {
		t.Fatal(err)
	}
	roomErr(t, "banned from the root", get(bob, h.S, ""), http.StatusForbidden, "M_FORBIDDEN")
}

func TestSpaceHierarchyRestrictedRooms(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	carol := ts.RegisterUser("carol")
	space := roomCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", CreationContent: map[string]any{"type": "m.space"}})
	members := roomCreate(t, alice, &mautrix.ReqCreateRoom{Name: "Members only"})
	if _, err := alice.SendStateEvent(ctx, members, event.StateJoinRules, "", map[string]any{
		"join_rule": "restricted", "allow": []any{map[string]any{"type": "m.room_membership", "room_id": space}},
	}); err != nil {
		t.Fatal(err)
	}
	hierChild(t, alice, space, members, map[string]any{"via": []string{"localhost"}})
	if _, err := bob.JoinRoomByID(ctx, space); err != nil {
		t.Fatal(err)
	}
	resp := hierWalk(t, bob, space, nil)
	if got := hierIDs(resp); !slices.Equal(got, []id.RoomID{space, members}) {
		t.Fatalf("a space member sees its restricted room: %v", got)
	}
	if r := resp.Rooms[1]; r.JoinRule != event.JoinRuleRestricted || !slices.Equal(r.AllowedRoomIDs, []id.RoomID{space}) {
		t.Fatalf("restricted room summary: %+v", r.PublicRoomInfo)
	}
	if got := hierIDs(hierWalk(t, carol, space, nil)); !slices.Equal(got, []id.RoomID{space}) {
		t.Fatalf("a stranger sees the restricted room: %v", got)
	}
}

func TestRoomSummary(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	public := roomCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Lobby", RoomAliasName: "lobby"})
	private := roomCreate(t, alice, &mautrix.ReqCreateRoom{Name: "Secret"})
	if _, err := alice.SendStateEvent(ctx, private, event.StateEncryption, "", map[string]any{"algorithm": "m.megolm.v1.aes-sha2"}); err != nil {
		t.Fatal(err)
	}
	summary := func(c *mautrix.Client, target string) (*mautrix.RespRoomSummary, error) {
		var out mautrix.RespRoomSummary
		err := dirRequest(t, ts, c, http.MethodGet, "/v1/room_summary/"+url.PathEscape(target), nil, &out)
		return &out, err
	}
	// Anonymous: public rooms only, without a membership.
	s, err := summary(ts.Client(), string(public))
	if err != nil || s.Name != "Lobby" || s.Membership != "" || s.NumJoinedMembers != 1 || s.RoomVersion != id.RoomV12 || s.JoinRule != event.JoinRulePublic {
		t.Fatalf("anonymous summary: %+v %v", s, err)
	}
	_, err = summary(ts.Client(), string(private))
	roomErr(t, "anonymous summary of a private room", err, http.StatusNotFound, "M_NOT_FOUND")
	// By alias, with the caller's membership.
	if s, err = summary(bob, "#lobby:localhost"); err != nil || s.RoomID != public || s.Membership != event.MembershipLeave {
		t.Fatalf("bob's summary by alias: %+v %v", s, err)
	}
	if s, err = summary(alice, string(private)); err != nil || s.Membership != event.MembershipJoin || s.Encryption != id.AlgorithmMegolmV1 {
		t.Fatalf("alice's summary of her private room: %+v %v", s, err)
	}
	_, err = summary(bob, string(private))
	roomErr(t, "summary of a private room", err, http.StatusNotFound, "M_NOT_FOUND")
	_, err = summary(bob, "!unknown:localhost")
	roomErr(t, "unknown room", err, http.StatusNotFound, "M_NOT_FOUND")
	_, err = summary(bob, "#nothing:localhost")
	roomErr(t, "unknown alias", err, http.StatusNotFound, "M_NOT_FOUND")
	_, err = summary(bob, "lobby")
	roomErr(t, "neither ID nor alias", err, http.StatusBadRequest, "M_INVALID_PARAM")
	_, err = summary(dirBadToken(ts), string(public))
	roomErr(t, "bad token", err, http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
}
