package clientapi_test

import (
	"context"
	"encoding/json"
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

// dirRequest sends a request to a client API path and decodes the answer
// into out (when not nil). body is sent as is when it is a string.
func dirRequest(t *testing.T, ts *testserver.Server, c *mautrix.Client, method, path string, body, out any) error {
	t.Helper()
	req := mautrix.FullRequest{Method: method, URL: ts.URL + "/_matrix/client" + path, ResponseJSON: out}
	switch b := body.(type) {
	case nil:
	case string:
		req.RequestBytes = []byte(b)
	default:
		req.RequestJSON = b
	}
	_, err := c.MakeFullRequest(context.Background(), req)
	return err
}

// dirAliasPath is the directory path of an alias, escaped.
func dirAliasPath(alias string) string {
	return "/v3/directory/room/" + url.PathEscape(alias)
}

// dirBadToken is a client whose access token the server never issued.
func dirBadToken(ts *testserver.Server) *mautrix.Client {
	c, _ := mautrix.NewClient(ts.URL, "", "syt_not_a_real_token")
	return c
}

func TestRoomAliasLifecycle(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	anon := ts.Client()
	roomID := roomCreate(t, alice, &mautrix.ReqCreateRoom{Name: "Tea"})

	if _, err := alice.CreateAlias(ctx, "#tea:localhost", roomID); err != nil {
		t.Fatalf("create alias: %v", err)
	}
	// Anyone may resolve an alias, signed in or not.
	res, err := anon.ResolveAlias(ctx, "#tea:localhost")
	if err != nil || res.RoomID != roomID || !slices.Equal(res.Servers, []string{"localhost"}) {
		t.Fatalf("resolve: %+v %v", res, err)
	}
	_, err = alice.CreateAlias(ctx, "#tea:localhost", roomID)
	roomErr(t, "alias in use", err, http.StatusConflict, "M_UNKNOWN")
	_, err = alice.CreateAlias(ctx, "#tea:example.org", roomID)
	roomErr(t, "alias of another server", err, http.StatusBadRequest, "M_INVALID_PARAM")
	for _, bad := range []string{"tea", "#nocolon", "#:localhost", "#two words:localhost", "#tea:bad!server", "#" + strings.Repeat("x", 250) + ":localhost"} {
		_, err = alice.CreateAlias(ctx, id.RoomAlias(bad), roomID)
		roomErr(t, "malformed alias "+bad, err, http.StatusBadRequest, "M_INVALID_PARAM")
	}
	_, err = alice.CreateAlias(ctx, "#ghost:localhost", "!unknown:localhost")
	roomErr(t, "unknown room", err, http.StatusNotFound, "M_NOT_FOUND")
	_, err = bob.CreateAlias(ctx, "#bobs:localhost", roomID)
	roomErr(t, "not a member", err, http.StatusForbidden, "M_FORBIDDEN")
	_, err = ts.Client().CreateAlias(ctx, "#anon:localhost", roomID)
	roomErr(t, "no token", err, http.StatusUnauthorized, "M_MISSING_TOKEN")
	_, err = dirBadToken(ts).CreateAlias(ctx, "#anon:localhost", roomID)
	roomErr(t, "bad token", err, http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
	for body, code := range map[string]string{
		`{`:                       "M_NOT_JSON",
		`{"room_id": 5}`:          "M_BAD_JSON",
		`{}`:                      "M_MISSING_PARAM",
		`{"room_id": "nope"}`:     "M_INVALID_PARAM",
		`["!a:localhost"]`:        "M_BAD_JSON",
		`{"room_id": "!a:b", "x"`: "M_NOT_JSON",
	} {
		err = dirRequest(t, ts, alice, http.MethodPut, dirAliasPath("#body:localhost"), body, nil)
		roomErr(t, "body "+body, err, http.StatusBadRequest, code)
	}

	// Resolving.
	_, err = anon.ResolveAlias(ctx, "#nothing:localhost")
	roomErr(t, "unknown alias", err, http.StatusNotFound, "M_NOT_FOUND")
	_, err = anon.ResolveAlias(ctx, "#tea:example.org")
	roomErr(t, "remote alias", err, http.StatusNotFound, "M_NOT_FOUND")
	_, err = anon.ResolveAlias(ctx, "tea")
	roomErr(t, "malformed alias", err, http.StatusBadRequest, "M_INVALID_PARAM")

	// The local aliases of a room: members only.
	if list, err := alice.GetAliases(ctx, roomID); err != nil || !slices.Equal(list.Aliases, []id.RoomAlias{"#tea:localhost"}) {
		t.Fatalf("aliases: %+v %v", list, err)
	}
	_, err = bob.GetAliases(ctx, roomID)
	roomErr(t, "aliases as a non-member", err, http.StatusForbidden, "M_FORBIDDEN")
	_, err = bob.GetAliases(ctx, "!unknown:localhost")
	roomErr(t, "aliases of an unknown room", err, http.StatusForbidden, "M_FORBIDDEN")
	err = dirRequest(t, ts, alice, http.MethodGet, "/v3/rooms/nope/aliases", nil, nil)
	roomErr(t, "aliases of a malformed room ID", err, http.StatusBadRequest, "M_INVALID_PARAM")
	_, err = ts.Client().GetAliases(ctx, roomID)
	roomErr(t, "aliases without a token", err, http.StatusUnauthorized, "M_MISSING_TOKEN")
	root := ts.RegisterAdmin("root")
	if list, err := root.GetAliases(ctx, roomID); err != nil || len(list.Aliases) != 1 {
		t.Fatalf("admin reads aliases: %+v %v", list, err)
	}
	// An empty list is a list.
	other := roomCreate(t, alice, &mautrix.ReqCreateRoom{})
	var raw map[string]json.RawMessage
	if err := dirRequest(t, ts, alice, http.MethodGet, "/v3/rooms/"+url.PathEscape(string(other))+"/aliases", nil, &raw); err != nil || string(raw["aliases"]) != "[]" {
		t.Fatalf("empty aliases: %s %v", raw["aliases"], err)
	}
	// World-readable rooms show their aliases to anyone signed in.
	if _, err := alice.SendStateEvent(ctx, roomID, event.StateHistoryVisibility, "", map[string]any{"history_visibility": "world_readable"}); err != nil {
		t.Fatal(err)
	}
	if list, err := bob.GetAliases(ctx, roomID); err != nil || len(list.Aliases) != 1 {
		t.Fatalf("world-readable aliases: %+v %v", list, err)
	}

	// Deleting: the creator of an alias, or a moderator of the room.
	if _, err := alice.InviteUser(ctx, roomID, &mautrix.ReqInviteUser{UserID: bob.UserID}); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.JoinRoomByID(ctx, roomID); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.CreateAlias(ctx, "#bobs:localhost", roomID); err != nil {
		t.Fatalf("member creates alias: %v", err)
	}
	_, err = bob.DeleteAlias(ctx, "#tea:localhost")
	roomErr(t, "delete someone else's alias without power", err, http.StatusForbidden, "M_FORBIDDEN")
	if _, err := alice.DeleteAlias(ctx, "#bobs:localhost"); err != nil {
		t.Fatalf("moderator deletes a member's alias: %v", err)
	}
	_, err = alice.DeleteAlias(ctx, "#bobs:localhost")
	roomErr(t, "delete a deleted alias", err, http.StatusNotFound, "M_NOT_FOUND")
	_, err = alice.DeleteAlias(ctx, "#tea:example.org")
	roomErr(t, "delete another server's alias", err, http.StatusBadRequest, "M_INVALID_PARAM")
	_, err = alice.DeleteAlias(ctx, "tea")
	roomErr(t, "delete a malformed alias", err, http.StatusBadRequest, "M_INVALID_PARAM")
	_, err = ts.Client().DeleteAlias(ctx, "#tea:localhost")
	roomErr(t, "delete without a token", err, http.StatusUnauthorized, "M_MISSING_TOKEN")
	if _, err := bob.CreateAlias(ctx, "#bobs:localhost", roomID); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.DeleteAlias(ctx, "#bobs:localhost"); err != nil {
		t.Fatalf("creator deletes own alias: %v", err)
	}
	_, err = bob.ResolveAlias(ctx, "#bobs:localhost")
	roomErr(t, "resolve a deleted alias", err, http.StatusNotFound, "M_NOT_FOUND")
	// A server admin may delete any alias.
	if _, err := alice.CreateAlias(ctx, "#admins:localhost", roomID); err != nil {
		t.Fatal(err)
	}
	if _, err := root.DeleteAlias(ctx, "#admins:localhost"); err != nil {
		t.Fatalf("admin deletes alias: %v", err)
	}
	// And create one for a room they are not in.
	if _, err := root.CreateAlias(ctx, "#admins:localhost", roomID); err != nil {
		t.Fatalf("admin creates alias: %v", err)
	}
}

func TestCanonicalAliasValidation(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	roomID := roomCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", RoomAliasName: "tea"})
	other := roomCreate(t, alice, &mautrix.ReqCreateRoom{RoomAliasName: "coffee"})
	if _, err := alice.CreateAlias(ctx, "#green:localhost", roomID); err != nil {
		t.Fatal(err)
	}
	setAlias := func(content map[string]any) error {
		_, err := alice.SendStateEvent(ctx, roomID, event.StateCanonicalAlias, "", content)
		return err
	}
	if err := setAlias(map[string]any{"alias": "#tea:localhost", "alt_aliases": []string{"#green:localhost"}}); err != nil {
		t.Fatalf("valid canonical alias: %v", err)
	}
	for name, c := range map[string]struct {
		content map[string]any
		code    string
	}{
		"unknown alias":          {map[string]any{"alias": "#nothing:localhost"}, "M_BAD_ALIAS"},
		"another room's alias":   {map[string]any{"alias": "#coffee:localhost"}, "M_BAD_ALIAS"},
		"another room's alt":     {map[string]any{"alias": "#tea:localhost", "alt_aliases": []string{"#coffee:localhost"}}, "M_BAD_ALIAS"},
		"another server's alias": {map[string]any{"alias": "#tea:example.org"}, "M_BAD_ALIAS"},
		"malformed alias":        {map[string]any{"alias": "tea"}, "M_INVALID_PARAM"},
		"malformed alt":          {map[string]any{"alt_aliases": []string{"#nocolon"}}, "M_INVALID_PARAM"},
		"alias not a string":     {map[string]any{"alias": 7}, "M_INVALID_PARAM"},
		"alt_aliases not a list": {map[string]any{"alt_aliases": "#tea:localhost"}, "M_INVALID_PARAM"},
		"alt entry not a string": {map[string]any{"alt_aliases": []any{1}}, "M_INVALID_PARAM"},
	} {
		roomErr(t, name, setAlias(c.content), http.StatusBadRequest, c.code)
	}
	var cur event.CanonicalAliasEventContent
	if err := alice.StateEvent(ctx, roomID, event.StateCanonicalAlias, "", &cur); err != nil || cur.Alias != "#tea:localhost" || len(cur.AltAliases) != 1 {
		t.Fatalf("refused events changed the state: %+v %v", cur, err)
	}
	// Removing aliases is never refused, and clearing the alias is allowed.
	if err := setAlias(map[string]any{"alias": "#tea:localhost"}); err != nil {
		t.Fatalf("remove alt alias: %v", err)
	}
	if err := setAlias(map[string]any{}); err != nil {
		t.Fatalf("clear canonical alias: %v", err)
	}
	if _, err := alice.SendStateEvent(ctx, other, event.StateCanonicalAlias, "", map[string]any{"alias": "#coffee:localhost"}); err != nil {
		t.Fatalf("the other room's own alias: %v", err)
	}

	// Aliases already in the event are not checked again: bob creates an
	// alias, alice lists it, bob deletes it (he cannot update the event, but
	// the alias goes all the same), and alice can still re-send the event.
	if _, err := bob.JoinRoomByID(ctx, roomID); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.CreateAlias(ctx, "#bobs:localhost", roomID); err != nil {
		t.Fatal(err)
	}
	if err := setAlias(map[string]any{"alias": "#tea:localhost", "alt_aliases": []string{"#bobs:localhost", "#green:localhost"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.DeleteAlias(ctx, "#bobs:localhost"); err != nil {
		t.Fatalf("creator deletes own alias without power over the room: %v", err)
	}
	if err := alice.StateEvent(ctx, roomID, event.StateCanonicalAlias, "", &cur); err != nil || !slices.Contains(cur.AltAliases, "#bobs:localhost") {
		t.Fatalf("bob could not have changed the event: %+v %v", cur, err)
	}
	if err := setAlias(map[string]any{"alias": "#tea:localhost", "alt_aliases": []string{"#bobs:localhost", "#green:localhost"}, "note": "again"}); err != nil {
		t.Fatalf("re-sending existing aliases: %v", err)
	}
	// Deleting an alias takes it out of the canonical alias event.
	if _, err := alice.DeleteAlias(ctx, "#green:localhost"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.DeleteAlias(ctx, "#tea:localhost"); err != nil {
		t.Fatal(err)
	}
	cur = event.CanonicalAliasEventContent{}
	if err := alice.StateEvent(ctx, roomID, event.StateCanonicalAlias, "", &cur); err != nil || cur.Alias != "" || !slices.Equal(cur.AltAliases, []id.RoomAlias{"#bobs:localhost"}) {
		t.Fatalf("canonical alias after deletes: %+v %v", cur, err)
	}
}

func TestRoomDirectoryVisibility(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	carol := ts.RegisterUser("carol")
	roomID := roomCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if _, err := bob.JoinRoomByID(ctx, roomID); err != nil {
		t.Fatal(err)
	}
	path := "/v3/directory/list/room/" + url.PathEscape(string(roomID))
	visibility := func() string {
		t.Helper()
		var out struct{ Visibility string }
		if err := dirRequest(t, ts, ts.Client(), http.MethodGet, path, nil, &out); err != nil {
			t.Fatalf("get visibility: %v", err)
		}
		return out.Visibility
	}
	if v := visibility(); v != "private" {
		t.Fatalf("new room visibility %q", v)
	}
	put := func(c *mautrix.Client, body any) error {
		return dirRequest(t, ts, c, http.MethodPut, path, body, nil)
	}
	roomErr(t, "member without power", put(bob, map[string]any{"visibility": "public"}), http.StatusForbidden, "M_FORBIDDEN")
	roomErr(t, "non-member", put(carol, map[string]any{"visibility": "public"}), http.StatusForbidden, "M_FORBIDDEN")
	roomErr(t, "no token", put(ts.Client(), map[string]any{"visibility": "public"}), http.StatusUnauthorized, "M_MISSING_TOKEN")
	roomErr(t, "bad token", put(dirBadToken(ts), map[string]any{"visibility": "public"}), http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
	roomErr(t, "unknown visibility", put(alice, map[string]any{"visibility": "secret"}), http.StatusBadRequest, "M_INVALID_PARAM")
	roomErr(t, "visibility not a string", put(alice, `{"visibility": true}`), http.StatusBadRequest, "M_BAD_JSON")
	roomErr(t, "malformed JSON", put(alice, `{"visibility"`), http.StatusBadRequest, "M_NOT_JSON")
	roomErr(t, "unknown room", dirRequest(t, ts, alice, http.MethodPut, "/v3/directory/list/room/!unknown:localhost", map[string]any{}, nil), http.StatusNotFound, "M_NOT_FOUND")
	roomErr(t, "get unknown room", dirRequest(t, ts, alice, http.MethodGet, "/v3/directory/list/room/!unknown:localhost", nil, nil), http.StatusNotFound, "M_NOT_FOUND")
	roomErr(t, "malformed room ID", dirRequest(t, ts, alice, http.MethodGet, "/v3/directory/list/room/nope", nil, nil), http.StatusBadRequest, "M_INVALID_PARAM")
	if v := visibility(); v != "private" {
		t.Fatalf("refused changes published the room: %q", v)
	}
	// No visibility means public, as the spec says.
	if err := put(alice, map[string]any{}); err != nil {
		t.Fatal(err)
	}
	if v := visibility(); v != "public" {
		t.Fatalf("visibility %q after publishing", v)
	}
	if err := put(alice, map[string]any{"visibility": "private"}); err != nil {
		t.Fatal(err)
	}
	if v := visibility(); v != "private" {
		t.Fatalf("visibility %q after unpublishing", v)
	}
	// Moderators may; so may server admins outside the room.
	if _, err := alice.SendStateEvent(ctx, roomID, event.StatePowerLevels, "", map[string]any{
		"users": map[string]any{string(bob.UserID): 50}, "state_default": 50,
		"events": map[string]any{"m.room.canonical_alias": 50},
	}); err != nil {
		t.Fatal(err)
	}
	if err := put(bob, map[string]any{"visibility": "public"}); err != nil {
		t.Fatalf("moderator publishes: %v", err)
	}
	root := ts.RegisterAdmin("root")
	if err := put(root, map[string]any{"visibility": "private"}); err != nil {
		t.Fatalf("admin unpublishes: %v", err)
	}
	if v := visibility(); v != "private" {
		t.Fatalf("visibility %q after the admin's change", v)
	}
}

// dirPublic lists the public rooms with a GET.
func dirPublic(t *testing.T, c *mautrix.Client, req *mautrix.ReqPublicRooms) *mautrix.RespPublicRooms {
	t.Helper()
	resp, err := c.PublicRooms(context.Background(), req)
	if err != nil {
		t.Fatalf("public rooms %+v: %v", req, err)
	}
	return resp
}

// dirSearch lists the public rooms with a POST.
func dirSearch(t *testing.T, ts *testserver.Server, c *mautrix.Client, body map[string]any) *mautrix.RespPublicRooms {
	t.Helper()
	var resp mautrix.RespPublicRooms
	if err := dirRequest(t, ts, c, http.MethodPost, "/v3/publicRooms", body, &resp); err != nil {
		t.Fatalf("public rooms %v: %v", body, err)
	}
	return &resp
}

func dirRoomIDs(resp *mautrix.RespPublicRooms) []id.RoomID {
	var out []id.RoomID
	for _, r := range resp.Chunk {
		out = append(out, r.RoomID)
	}
	return out
}

func TestPublicRooms(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")
	users := []*mautrix.Client{ts.RegisterUser("u1"), ts.RegisterUser("u2"), ts.RegisterUser("u3")}
	anon := ts.Client()

	// big (4 members), mid (3), small (1, a space), and rooms that must not
	// be listed: unpublished, and published but invite-only.
	big := roomCreate(t, alice, &mautrix.ReqCreateRoom{Visibility: "public", Name: "Big Tea", Topic: "All about oolong", RoomAliasName: "big"})
	mid := roomCreate(t, alice, &mautrix.ReqCreateRoom{Visibility: "public", Name: "Coffee"})
	small := roomCreate(t, alice, &mautrix.ReqCreateRoom{Visibility: "public", Name: "Space", CreationContent: map[string]any{"type": "m.space"}})
	roomCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Unlisted"})
	hidden := roomCreate(t, alice, &mautrix.ReqCreateRoom{Visibility: "public", Preset: "private_chat", Name: "Invite only"})
	for i, u := range users {
		if _, err := u.JoinRoomByID(ctx, big); err != nil {
			t.Fatal(err)
		}
		if i < 2 {
			if _, err := u.JoinRoomByID(ctx, mid); err != nil {
				t.Fatal(err)
			}
		}
	}

	// Anyone may list; the order is by joined members.
	resp := dirPublic(t, anon, nil)
	if got := dirRoomIDs(resp); !slices.Equal(got, []id.RoomID{big, mid, small}) || resp.TotalRoomCountEstimate != 3 || resp.NextBatch != "" || resp.PrevBatch != "" {
		t.Fatalf("directory: %v (total %d, next %q, prev %q)", got, resp.TotalRoomCountEstimate, resp.NextBatch, resp.PrevBatch)
	}
	first := resp.Chunk[0]
	if first.Name != "Big Tea" || first.Topic != "All about oolong" || first.CanonicalAlias != "#big:localhost" || first.NumJoinedMembers != 4 ||
		first.JoinRule != event.JoinRulePublic || first.WorldReadable || first.GuestCanJoin || first.RoomType != "" {
		t.Fatalf("big room entry: %+v", first)
	}
	if resp.Chunk[2].RoomType != event.RoomTypeSpace {
		t.Fatalf("space entry: %+v", resp.Chunk[2])
	}
	// An invite-only room appears once its history is world-readable.
	if _, err := alice.SendStateEvent(ctx, hidden, event.StateHistoryVisibility, "", map[string]any{"history_visibility": "world_readable"}); err != nil {
		t.Fatal(err)
	}
	resp = dirPublic(t, alice, nil)
	if i := slices.Index(dirRoomIDs(resp), hidden); len(resp.Chunk) != 4 || i < 0 || !resp.Chunk[i].WorldReadable || resp.Chunk[i].JoinRule != event.JoinRuleInvite {
		t.Fatalf("world-readable room missing: %v", dirRoomIDs(resp))
	}
	if _, err := alice.SendStateEvent(ctx, hidden, event.StateHistoryVisibility, "", map[string]any{"history_visibility": "shared"}); err != nil {
		t.Fatal(err)
	}

	// Pagination, one room a page, forward then back.
	var seen []id.RoomID
	since := ""
	var last *mautrix.RespPublicRooms
	for range 5 {
		last = dirPublic(t, alice, &mautrix.ReqPublicRooms{Limit: 1, Since: since})
		seen = append(seen, dirRoomIDs(last)...)
		if last.NextBatch == "" {
			break
		}
		if since != "" && last.PrevBatch == "" {
			t.Fatal("a later page has no prev_batch")
		}
		since = last.NextBatch
	}
	if !slices.Equal(seen, []id.RoomID{big, mid, small}) {
		t.Fatalf("paged forward: %v", seen)
	}
	back := dirPublic(t, alice, &mautrix.ReqPublicRooms{Limit: 1, Since: last.PrevBatch})
	if got := dirRoomIDs(back); !slices.Equal(got, []id.RoomID{mid}) || back.PrevBatch == "" || back.NextBatch == "" {
		t.Fatalf("paged back: %v (prev %q next %q)", got, back.PrevBatch, back.NextBatch)
	}
	back = dirPublic(t, alice, &mautrix.ReqPublicRooms{Limit: 5, Since: back.PrevBatch})
	if got := dirRoomIDs(back); !slices.Equal(got, []id.RoomID{big}) || back.PrevBatch != "" {
		t.Fatalf("paged back to the start: %v (prev %q)", got, back.PrevBatch)
	}
	two := dirSearch(t, ts, alice, map[string]any{"limit": 2})
	if got := dirRoomIDs(two); !slices.Equal(got, []id.RoomID{big, mid}) || two.NextBatch == "" {
		t.Fatalf("POST limit 2: %v", got)
	}
	rest := dirSearch(t, ts, alice, map[string]any{"limit": 2, "since": two.NextBatch})
	if got := dirRoomIDs(rest); !slices.Equal(got, []id.RoomID{small}) || rest.NextBatch != "" || rest.PrevBatch == "" {
		t.Fatalf("POST second page: %v", got)
	}

	// Filters.
	for term, want := range map[string][]id.RoomID{
		"OOLONG":         {big},
		"#big:localhost": {big},
		"coff":           {mid},
		"nothing here":   nil,
	} {
		got := dirRoomIDs(dirSearch(t, ts, alice, map[string]any{"filter": map[string]any{"generic_search_term": term}}))
		if !slices.Equal(got, want) {
			t.Fatalf("search %q: %v, want %v", term, got, want)
		}
	}
	if got := dirRoomIDs(dirSearch(t, ts, alice, map[string]any{"filter": map[string]any{"room_types": []any{"m.space"}}})); !slices.Equal(got, []id.RoomID{small}) {
		t.Fatalf("spaces only: %v", got)
	}
	if got := dirRoomIDs(dirSearch(t, ts, alice, map[string]any{"filter": map[string]any{"room_types": []any{nil}}})); !slices.Equal(got, []id.RoomID{big, mid}) {
		t.Fatalf("rooms without a type: %v", got)
	}
	if got := dirRoomIDs(dirSearch(t, ts, alice, map[string]any{"include_all_networks": true})); len(got) != 3 {
		t.Fatalf("include_all_networks: %v", got)
	}
	if got := dirSearch(t, ts, alice, map[string]any{"third_party_instance_id": "irc"}); len(got.Chunk) != 0 {
		t.Fatalf("a third-party network lists rooms: %v", dirRoomIDs(got))
	}
	if got := dirRoomIDs(dirPublic(t, alice, &mautrix.ReqPublicRooms{Server: "localhost"})); len(got) != 3 {
		t.Fatalf("server=localhost: %v", got)
	}

	// Bad input.
	get := func(query string) error {
		return dirRequest(t, ts, alice, http.MethodGet, "/v3/publicRooms?"+query, nil, nil)
	}
	roomErr(t, "bad since", get("since=garbage"), http.StatusBadRequest, "M_INVALID_PARAM")
	roomErr(t, "since with a bad count", get("since=nx_!a:b"), http.StatusBadRequest, "M_INVALID_PARAM")
	roomErr(t, "negative limit", get("limit=-1"), http.StatusBadRequest, "M_INVALID_PARAM")
	roomErr(t, "limit not a number", get("limit=ten"), http.StatusBadRequest, "M_INVALID_PARAM")
	roomErr(t, "include_all_networks not a boolean", get("include_all_networks=maybe"), http.StatusBadRequest, "M_INVALID_PARAM")
	roomErr(t, "another server", get("server=example.org"), http.StatusNotFound, "M_NOT_FOUND")
	roomErr(t, "bad server name", get("server=bad!name"), http.StatusBadRequest, "M_INVALID_PARAM")
	roomErr(t, "bad token on GET", dirRequest(t, ts, dirBadToken(ts), http.MethodGet, "/v3/publicRooms", nil, nil), http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
	post := func(c *mautrix.Client, body any) error {
		return dirRequest(t, ts, c, http.MethodPost, "/v3/publicRooms", body, nil)
	}
	roomErr(t, "POST without a token", post(anon, map[string]any{}), http.StatusUnauthorized, "M_MISSING_TOKEN")
	roomErr(t, "POST malformed JSON", post(alice, `{"limit":`), http.StatusBadRequest, "M_NOT_JSON")
	roomErr(t, "POST limit of the wrong type", post(alice, `{"limit": "ten"}`), http.StatusBadRequest, "M_BAD_JSON")
	roomErr(t, "POST filter of the wrong type", post(alice, `{"filter": []}`), http.StatusBadRequest, "M_BAD_JSON")
	roomErr(t, "POST bad since", post(alice, map[string]any{"since": "p1"}), http.StatusBadRequest, "M_INVALID_PARAM")
	roomErr(t, "POST network and all networks", post(alice, map[string]any{"include_all_networks": true, "third_party_instance_id": "irc"}), http.StatusBadRequest, "M_INVALID_PARAM")

	// An upgraded room hands its listing to its replacement.
	var up struct {
		ReplacementRoom id.RoomID `json:"replacement_room"`
	}
	if err := dirRequest(t, ts, alice, http.MethodPost, "/v3/rooms/"+url.PathEscape(string(mid))+"/upgrade", map[string]any{"new_version": "12"}, &up); err != nil {
		t.Fatal(err)
	}
	got := dirRoomIDs(dirPublic(t, alice, nil))
	if slices.Contains(got, mid) || !slices.Contains(got, up.ReplacementRoom) {
		t.Fatalf("after upgrade: %v (old %s, new %s)", got, mid, up.ReplacementRoom)
	}
}
