package server_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	mfed "maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
)

// fedRequest makes a federation request from one server to another with
// its signed client (unsigned when sign is false).
func fedRequest(t *testing.T, from *testserver.Server, to string, method string, path mfed.URLPath, query url.Values, body, out any, sign bool) error {
	t.Helper()
	_, _, err := from.Federation().Client().MakeFullRequest(context.Background(), mfed.RequestParams{
		ServerName: to, Method: method, Path: path, Query: query, Authenticate: sign, RequestJSON: body, ResponseJSON: out,
	})
	return err
}

// wantErr checks that err is a Matrix error with the status and code.
func wantErr(t *testing.T, what string, err error, status int, code string) {
	t.Helper()
	var httpErr mautrix.HTTPError
	if !asHTTPError(err, &httpErr) || httpErr.Response == nil || httpErr.RespError == nil {
		t.Fatalf("%s: got %v, want %d %s", what, err, status, code)
	}
	if httpErr.Response.StatusCode != status || httpErr.RespError.ErrCode != code {
		t.Fatalf("%s: got %d %s (%s), want %d %s", what, httpErr.Response.StatusCode, httpErr.RespError.ErrCode, httpErr.RespError.Err, status, code)
	}
}

func publicRoomIDs(resp *mautrix.RespPublicRooms) []id.RoomID {
	var out []id.RoomID
	for _, r := range resp.Chunk {
		out = append(out, r.RoomID)
	}
	return out
}

// TestFederationPublicRooms: a user of B lists A's published room
// directory through B (GET and the filtered POST, with pagination), B's own
// name lists B's, an unreachable server is a 502, and A's federation
// endpoint refuses bad input and unsigned requests.
func TestFederationPublicRooms(t *testing.T) {
	a, b := fedPair(t)
	ctx := context.Background()
	alice := a.RegisterUser("alice")
	bob := b.RegisterUser("bob")
	garden, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", Visibility: "public", Name: "Garden", Topic: "flowers"})
	if err != nil {
		t.Fatal(err)
	}
	space, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", Visibility: "public", Name: "Family space",
		CreationContent: map[string]any{"type": "m.space"}})
	if err != nil {
		t.Fatal(err)
	}
	// Not published: not listed.
	if _, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Hidden"}); err != nil {
		t.Fatal(err)
	}

	all, err := bob.PublicRooms(ctx, &mautrix.ReqPublicRooms{Server: a.ServerName()})
	if err != nil {
		t.Fatalf("A's directory through B: %v", err)
	}
	if got := publicRoomIDs(all); len(got) != 2 || !slices.Contains(got, garden.RoomID) || !slices.Contains(got, space.RoomID) {
		t.Fatalf("A's directory through B: %v", got)
	}
	for _, r := range all.Chunk {
		if r.RoomID == garden.RoomID && (r.Name != "Garden" || r.Topic != "flowers" || r.JoinRule != event.JoinRulePublic) {
			t.Fatalf("garden as listed: %+v", r)
		}
	}
	// Pagination tokens are A's and pass through B.
	first, err := bob.PublicRooms(ctx, &mautrix.ReqPublicRooms{Server: a.ServerName(), Limit: 1})
	if err != nil || len(first.Chunk) != 1 || first.NextBatch == "" {
		t.Fatalf("first page: %+v, %v", first, err)
	}
	second, err := bob.PublicRooms(ctx, &mautrix.ReqPublicRooms{Server: a.ServerName(), Limit: 1, Since: first.NextBatch})
	if err != nil || len(second.Chunk) != 1 || second.Chunk[0].RoomID == first.Chunk[0].RoomID {
		t.Fatalf("second page: %+v, %v", second, err)
	}

	// The filtered POST.
	post := func(server string, body map[string]any) (*mautrix.RespPublicRooms, error) {
		var resp mautrix.RespPublicRooms
		u := bob.BuildURLWithQuery(mautrix.ClientURLPath{"v3", "publicRooms"}, map[string]string{"server": server})
		_, err := bob.MakeRequest(ctx, http.MethodPost, u, body, &resp)
		return &resp, err
	}
	found, err := post(a.ServerName(), map[string]any{"filter": map[string]any{"generic_search_term": "gard"}})
	if err != nil || !slices.Equal(publicRoomIDs(found), []id.RoomID{garden.RoomID}) {
		t.Fatalf("search A's directory for gard: %v, %v", publicRoomIDs(found), err)
	}
	spaces, err := post(a.ServerName(), map[string]any{"filter": map[string]any{"room_types": []any{"m.space"}}})
	if err != nil || !slices.Equal(publicRoomIDs(spaces), []id.RoomID{space.RoomID}) {
		t.Fatalf("A's spaces: %v, %v", publicRoomIDs(spaces), err)
	}

	// Our own name is our own directory: B has none published.
	own, err := bob.PublicRooms(ctx, &mautrix.ReqPublicRooms{Server: b.ServerName()})
	if err != nil || len(own.Chunk) != 0 {
		t.Fatalf("B's own directory: %+v, %v", own, err)
	}

	// A server nobody runs.
	nobody := "127.0.0.1:" + strconv.Itoa(testserver.FreePort(t))
	_, err = bob.PublicRooms(ctx, &mautrix.ReqPublicRooms{Server: nobody})
	wantErr(t, "unreachable server", err, http.StatusBadGateway, "M_UNKNOWN")
	_, err = post(nobody, map[string]any{"filter": map[string]any{"generic_search_term": "x"}})
	wantErr(t, "unreachable server, POST", err, http.StatusBadGateway, "M_UNKNOWN")
	_, err = bob.PublicRooms(ctx, &mautrix.ReqPublicRooms{Server: "bad!name"})
	wantErr(t, "bad server name", err, http.StatusBadRequest, "M_INVALID_PARAM")
	_, err = bob.PublicRooms(ctx, &mautrix.ReqPublicRooms{Server: a.ServerName(), Since: "garbage"})
	wantErr(t, "A refuses a bad token", err, http.StatusBadRequest, "M_INVALID_PARAM")

	// A's federation endpoint, asked directly.
	path := mfed.URLPath{"v1", "publicRooms"}
	var page mautrix.RespPublicRooms
	if err := fedRequest(t, b, a.ServerName(), http.MethodGet, path, nil, nil, &page, true); err != nil || len(page.Chunk) != 2 {
		t.Fatalf("federation GET /publicRooms: %+v, %v", page, err)
	}
	page = mautrix.RespPublicRooms{}
	if err := fedRequest(t, b, a.ServerName(), http.MethodPost, path, nil, map[string]any{"limit": 5, "filter": map[string]any{"generic_search_term": "family"}}, &page, true); err != nil ||
		!slices.Equal(publicRoomIDs(&page), []id.RoomID{space.RoomID}) {
		t.Fatalf("federation POST /publicRooms: %v, %v", publicRoomIDs(&page), err)
	}
	wantErr(t, "limit not a number", fedRequest(t, b, a.ServerName(), http.MethodGet, path, url.Values{"limit": {"ten"}}, nil, nil, true), http.StatusBadRequest, "M_INVALID_PARAM")
	wantErr(t, "include_all_networks not a bool", fedRequest(t, b, a.ServerName(), http.MethodGet, path, url.Values{"include_all_networks": {"maybe"}}, nil, nil, true), http.StatusBadRequest, "M_INVALID_PARAM")
	wantErr(t, "all networks and one network", fedRequest(t, b, a.ServerName(), http.MethodGet, path,
		url.Values{"include_all_networks": {"true"}, "third_party_instance_id": {"irc"}}, nil, nil, true), http.StatusBadRequest, "M_INVALID_PARAM")
	wantErr(t, "bad since", fedRequest(t, b, a.ServerName(), http.MethodGet, path, url.Values{"since": {"garbage"}}, nil, nil, true), http.StatusBadRequest, "M_INVALID_PARAM")
	wantErr(t, "POST limit of the wrong type", fedRequest(t, b, a.ServerName(), http.MethodPost, path, nil, map[string]any{"limit": "ten"}, nil, true), http.StatusBadRequest, "M_BAD_JSON")
	wantErr(t, "unsigned", fedRequest(t, b, a.ServerName(), http.MethodGet, path, nil, nil, nil, false), http.StatusUnauthorized, "M_UNAUTHORIZED")
}

// spaceChild makes child a child of space, reachable through via.
func spaceChild(t *testing.T, c *mautrix.Client, space, child id.RoomID, order string, suggested bool, via ...string) {
	t.Helper()
	content := map[string]any{"via": via, "order": order, "suggested": suggested}
	if _, err := c.SendStateEvent(context.Background(), space, event.StateSpaceChild, string(child), content); err != nil {
		t.Fatalf("add child %s: %v", child, err)
	}
}

func hierarchyIDs(resp *mautrix.RespHierarchy) []id.RoomID {
	var out []id.RoomID
	for _, r := range resp.Rooms {
		out = append(out, r.RoomID)
	}
	return out
}

// serverHierarchy is the federation /hierarchy answer, as a test reads it.
type serverHierarchy struct {
	Room struct {
		RoomID        id.RoomID `json:"room_id"`
		Name          string    `json:"name"`
		ChildrenState []struct {
			StateKey string `json:"state_key"`
		} `json:"children_state"`
	} `json:"room"`
	Children []struct {
		RoomID id.RoomID `json:"room_id"`
	} `json:"children"`
	Inaccessible []id.RoomID `json:"inaccessible_children"`
}

// TestFederationHierarchy: a space on A, with public, invite-only and
// restricted children, a sub-space, a child nobody knows and one only an
// unreachable server knows. A user of B
// walks it through B: first with B in none of the rooms (everything asked
// of A), then after joining the space (the space from B's own state, the
// children from A's answers, the restricted child now open). A's
// federation endpoint answers per the spec and refuses what it must.
func TestFederationHierarchy(t *testing.T) {
	a, b := fedPair(t)
	ctx := context.Background()
	alice := a.RegisterUser("alice")
	bob := b.RegisterUser("bob")
	mk := func(req *mautrix.ReqCreateRoom) id.RoomID {
		t.Helper()
		resp, err := alice.CreateRoom(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return resp.RoomID
	}
	spaceType := map[string]any{"type": "m.space"}
	// Version 11: its room ID names A, which is how B finds the space
	// before it is in it.
	space := mk(&mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Family", RoomVersion: id.RoomV11, CreationContent: spaceType})
	open := mk(&mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Open"})
	closed := mk(&mautrix.ReqCreateRoom{Preset: "private_chat", Name: "Closed"})
	empty := ""
	restricted := mk(&mautrix.ReqCreateRoom{Preset: "private_chat", Name: "Members only", InitialState: []*event.Event{{
		Type: event.StateJoinRules, StateKey: &empty,
		Content: event.Content{Raw: map[string]any{"join_rule": "restricted", "allow": []any{map[string]any{"type": "m.room_membership", "room_id": string(space)}}}},
	}}})
	sub := mk(&mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Cousins", CreationContent: spaceType})
	deep := mk(&mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Deep"})
	ghost := id.RoomID("!ghost:" + a.ServerName())
	spaceChild(t, alice, space, open, "a", true, a.ServerName())
	spaceChild(t, alice, space, closed, "b", false, a.ServerName())
	spaceChild(t, alice, space, restricted, "c", false, a.ServerName())
	spaceChild(t, alice, space, sub, "d", false, a.ServerName())
	spaceChild(t, alice, space, ghost, "e", false, a.ServerName())
	spaceChild(t, alice, sub, deep, "a", false, a.ServerName())
	// A child only a server nobody runs could tell about.
	nobody := "127.0.0.1:" + strconv.Itoa(testserver.FreePort(t))
	spaceChild(t, alice, space, id.RoomID("!far:"+nobody), "f", false, nobody)

	// B is in none of these rooms.
	resp, err := bob.Hierarchy(ctx, space, &mautrix.ReqHierarchy{})
	if err != nil {
		t.Fatalf("hierarchy of A's space through B: %v", err)
	}
	if got, want := hierarchyIDs(resp), []id.RoomID{space, open, sub, deep}; !slices.Equal(got, want) {
		t.Fatalf("hierarchy through B: %v, want %v", got, want)
	}
	if resp.Rooms[0].Name != "Family" || len(resp.Rooms[0].ChildrenState) != 6 || resp.Rooms[2].Name != "Cousins" || len(resp.Rooms[2].ChildrenState) != 1 {
		t.Fatalf("rooms as described: %+v / %+v", resp.Rooms[0], resp.Rooms[2])
	}
	// Paging through it gives the same rooms.
	p1, err := bob.Hierarchy(ctx, space, &mautrix.ReqHierarchy{Limit: 2})
	if err != nil || !slices.Equal(hierarchyIDs(p1), []id.RoomID{space, open}) || p1.NextBatch == "" {
		t.Fatalf("page 1: %v, %v", p1, err)
	}
	p2, err := bob.Hierarchy(ctx, space, &mautrix.ReqHierarchy{Limit: 2, From: p1.NextBatch})
	if err != nil || !slices.Equal(hierarchyIDs(p2), []id.RoomID{sub, deep}) || p2.NextBatch != "" {
		t.Fatalf("page 2: %v, %v", p2, err)
	}
	suggested, err := bob.Hierarchy(ctx, space, &mautrix.ReqHierarchy{SuggestedOnly: true})
	if err != nil || !slices.Equal(hierarchyIDs(suggested), []id.RoomID{space, open}) {
		t.Fatalf("suggested only: %v, %v", hierarchyIDs(suggested), err)
	}
	// A room nobody can tell B about, and one B may not see.
	_, err = bob.Hierarchy(ctx, id.RoomID("!nowhere:"+a.ServerName()), nil)
	wantErr(t, "unknown root", err, http.StatusForbidden, "M_FORBIDDEN")
	_, err = bob.Hierarchy(ctx, closed, nil)
	wantErr(t, "invite-only root", err, http.StatusForbidden, "M_FORBIDDEN")

	// A's federation endpoint, asked by B.
	path := func(roomID id.RoomID) mfed.URLPath { return mfed.URLPath{"v1", "hierarchy", roomID} }
	var h serverHierarchy
	if err := fedRequest(t, b, a.ServerName(), http.MethodGet, path(space), nil, nil, &h, true); err != nil {
		t.Fatal(err)
	}
	var children []id.RoomID
	for _, c := range h.Children {
		children = append(children, c.RoomID)
	}
	slices.Sort(children)
	slices.Sort(h.Inaccessible)
	wantChildren := []id.RoomID{open, sub}
	slices.Sort(wantChildren)
	wantClosed := []id.RoomID{closed, restricted}
	slices.Sort(wantClosed)
	if h.Room.RoomID != space || len(h.Room.ChildrenState) != 6 || !slices.Equal(children, wantChildren) || !slices.Equal(h.Inaccessible, wantClosed) {
		t.Fatalf("federation hierarchy: %+v", h)
	}
	h = serverHierarchy{}
	if err := fedRequest(t, b, a.ServerName(), http.MethodGet, path(space), url.Values{"suggested_only": {"true"}}, nil, &h, true); err != nil {
		t.Fatal(err)
	}
	if len(h.Room.ChildrenState) != 1 || len(h.Children) != 1 || h.Children[0].RoomID != open || len(h.Inaccessible) != 0 {
		t.Fatalf("federation hierarchy, suggested only: %+v", h)
	}
	wantErr(t, "room B may not see", fedRequest(t, b, a.ServerName(), http.MethodGet, path(closed), nil, nil, nil, true), http.StatusNotFound, "M_NOT_FOUND")
	wantErr(t, "unknown room", fedRequest(t, b, a.ServerName(), http.MethodGet, path(ghost), nil, nil, nil, true), http.StatusNotFound, "M_NOT_FOUND")
	wantErr(t, "not a room ID", fedRequest(t, b, a.ServerName(), http.MethodGet, path("#alias:x"), nil, nil, nil, true), http.StatusBadRequest, "M_INVALID_PARAM")
	wantErr(t, "bad suggested_only", fedRequest(t, b, a.ServerName(), http.MethodGet, path(space), url.Values{"suggested_only": {"maybe"}}, nil, nil, true), http.StatusBadRequest, "M_INVALID_PARAM")
	wantErr(t, "unsigned", fedRequest(t, b, a.ServerName(), http.MethodGet, path(space), nil, nil, nil, false), http.StatusUnauthorized, "M_UNAUTHORIZED")

	// Bob joins the space: B now describes it itself, and the restricted
	// child opens to B (a user of B is in the room it allows) and to bob.
	if _, err := bob.JoinRoom(ctx, string(space), &mautrix.ReqJoinRoom{Via: []string{a.ServerName()}}); err != nil {
		t.Fatalf("join the space: %v", err)
	}
	resp, err = bob.Hierarchy(ctx, space, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := hierarchyIDs(resp), []id.RoomID{space, open, restricted, sub, deep}; !slices.Equal(got, want) {
		t.Fatalf("hierarchy after joining the space: %v, want %v", got, want)
	}
	// A's users see their own server's view, unchanged.
	resp, err = alice.Hierarchy(ctx, space, nil)
	if err != nil || !slices.Equal(hierarchyIDs(resp), []id.RoomID{space, open, closed, restricted, sub, deep}) {
		t.Fatalf("alice's hierarchy: %v, %v", hierarchyIDs(resp), err)
	}
}

// TestFederationOpenIDUserInfo: a service holding an OpenID token of a
// user of A asks A's federation listener whose it is (no signature
// needed); unknown, missing and expired tokens are refused.
func TestFederationOpenIDUserInfo(t *testing.T) {
	a, b := fedPair(t)
	ctx := context.Background()
	alice := a.RegisterUser("alice")
	tok, err := alice.RequestOpenIDToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	info, err := b.Federation().Client().GetOpenIDUserInfo(ctx, a.ServerName(), tok.AccessToken)
	if err != nil || info.Sub != alice.UserID {
		t.Fatalf("userinfo: %+v, %v", info, err)
	}
	path := mfed.URLPath{"v1", "openid", "userinfo"}
	var out map[string]any
	if err := fedRequest(t, b, a.ServerName(), http.MethodGet, path, url.Values{"access_token": {tok.AccessToken}}, nil, &out, false); err != nil || out["sub"] != string(alice.UserID) {
		t.Fatalf("unsigned userinfo: %v, %v", out, err)
	}
	wantErr(t, "unknown token", fedRequest(t, b, a.ServerName(), http.MethodGet, path, url.Values{"access_token": {"poi_nonsense"}}, nil, nil, false), http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
	wantErr(t, "access token as OpenID token", fedRequest(t, b, a.ServerName(), http.MethodGet, path, url.Values{"access_token": {alice.AccessToken}}, nil, nil, false), http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
	wantErr(t, "no token", fedRequest(t, b, a.ServerName(), http.MethodGet, path, nil, nil, nil, false), http.StatusBadRequest, "M_MISSING_PARAM")
	acc := a.Accounts()
	old := acc.Now
	acc.Now = func() time.Time { return time.Now().Add(time.Hour + time.Minute) }
	defer func() { acc.Now = old }()
	wantErr(t, "expired token", fedRequest(t, b, a.ServerName(), http.MethodGet, path, url.Values{"access_token": {tok.AccessToken}}, nil, nil, false), http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
}
