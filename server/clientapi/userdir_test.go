package clientapi_test

import (
	"context"
	"net/http"
	"slices"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/config"
	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
)

// udSearch searches the user directory and returns the user IDs found.
func udSearch(t *testing.T, c *mautrix.Client, term string, limit int) ([]id.UserID, *mautrix.RespSearchUserDirectory) {
	t.Helper()
	resp, err := c.SearchUserDirectory(context.Background(), term, limit)
	if err != nil {
		t.Fatalf("search %q as %s: %v", term, c.UserID, err)
	}
	var out []id.UserID
	for _, r := range resp.Results {
		out = append(out, r.UserID)
	}
	return out, resp
}

func TestUserDirectorySearch(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	carol := ts.RegisterUser("carol")
	dave := ts.RegisterUser("dave")
	erin := ts.RegisterUser("erin")
	frank := ts.RegisterUser("frank")

	// alice and bob share a private room (erin too, until deactivated);
	// dave sits in a public room alice is not in; carol and frank are in
	// rooms of their own.
	shared := roomCreate(t, alice, &mautrix.ReqCreateRoom{Invite: []id.UserID{bob.UserID, erin.UserID}})
	for _, c := range []*mautrix.Client{bob, erin} {
		if _, err := c.JoinRoomByID(ctx, shared); err != nil {
			t.Fatal(err)
		}
	}
	roomCreate(t, dave, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	roomCreate(t, carol, &mautrix.ReqCreateRoom{})
	// frank's room is invite-only but world-readable: its members are findable.
	readable := roomCreate(t, frank, &mautrix.ReqCreateRoom{})
	if _, err := frank.SendStateEvent(ctx, readable, event.StateHistoryVisibility, "", map[string]any{"history_visibility": "world_readable"}); err != nil {
		t.Fatal(err)
	}
	if err := bob.SetDisplayName(ctx, "Bobby Tables"); err != nil {
		t.Fatal(err)
	}
	if err := erin.SetDisplayName(ctx, "Élodie Erin"); err != nil {
		t.Fatal(err)
	}

	found, resp := udSearch(t, alice, "bob", 10)
	// The spec's key is display_name (mautrix's type expects "displayname",
	// so it lands in Extra).
	if !slices.Equal(found, []id.UserID{bob.UserID}) || resp.Limited || resp.Results[0].Extra["display_name"] != "Bobby Tables" {
		t.Fatalf("search bob: %v %+v", found, resp)
	}
	// Case-insensitive, on display names too, across words, beyond ASCII.
	for term, want := range map[string][]id.UserID{
		"TABLES":       {bob.UserID},
		"bobby tab":    {bob.UserID},
		"élodie":       {erin.UserID},
		"ÉLODIE":       {erin.UserID},
		"@dave:local":  {dave.UserID},
		"frank":        {frank.UserID},
		"carol":        nil, // shares no room, and no public one
		"tables alice": nil, // every word must match
		"   ":          nil,
	} {
		if got, _ := udSearch(t, alice, term, 10); !slices.Equal(got, want) {
			t.Fatalf("search %q: %v, want %v", term, got, want)
		}
	}
	// The best match comes first, and limited says when results were cut.
	if err := carol.SetDisplayName(ctx, "alice's friend"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.InviteUser(ctx, shared, &mautrix.ReqInviteUser{UserID: carol.UserID}); err != nil {
		t.Fatal(err)
	}
	if _, err := carol.JoinRoomByID(ctx, shared); err != nil {
		t.Fatal(err)
	}
	if got, resp := udSearch(t, bob, "alice", 10); !slices.Equal(got, []id.UserID{alice.UserID, carol.UserID}) || resp.Limited {
		t.Fatalf("ranked search: %v", got)
	}
	if got, resp := udSearch(t, bob, "alice", 1); !slices.Equal(got, []id.UserID{alice.UserID}) || !resp.Limited {
		t.Fatalf("limited search: %v %v", got, resp.Limited)
	}
	// Deactivated accounts are not found.
	if err := ts.Accounts().Deactivate(ctx, erin.UserID, false); err != nil {
		t.Fatal(err)
	}
	if got, _ := udSearch(t, alice, "erin", 10); len(got) != 0 {
		t.Fatalf("deactivated user found: %v", got)
	}

	// Bad input.
	search := func(c *mautrix.Client, body any) error {
		return dirRequest(t, ts, c, http.MethodPost, "/v3/user_directory/search", body, nil)
	}
	roomErr(t, "no token", search(ts.Client(), map[string]any{"search_term": "bob"}), http.StatusUnauthorized, "M_MISSING_TOKEN")
	roomErr(t, "bad token", search(dirBadToken(ts), map[string]any{"search_term": "bob"}), http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
	roomErr(t, "missing search_term", search(alice, map[string]any{"limit": 5}), http.StatusBadRequest, "M_MISSING_PARAM")
	roomErr(t, "search_term not a string", search(alice, `{"search_term": 5}`), http.StatusBadRequest, "M_BAD_JSON")
	roomErr(t, "limit not a number", search(alice, `{"search_term": "bob", "limit": "5"}`), http.StatusBadRequest, "M_BAD_JSON")
	roomErr(t, "zero limit", search(alice, map[string]any{"search_term": "bob", "limit": 0}), http.StatusBadRequest, "M_INVALID_PARAM")
	roomErr(t, "malformed JSON", search(alice, `{"search_term": `), http.StatusBadRequest, "M_NOT_JSON")
}

func TestUserDirectorySearchAllUsers(t *testing.T) {
	ts := testserver.New(t, func(c *config.Config) { c.UserDirectory.SearchAllUsers = true })
	alice := ts.RegisterUser("alice")
	carol := ts.RegisterUser("carol")
	ts.RegisterUser("carl")
	if got, _ := udSearch(t, alice, "car", 10); !slices.Equal(got, []id.UserID{"@carl:localhost", carol.UserID}) {
		t.Fatalf("search all users: %v", got)
	}
	if err := ts.Accounts().Deactivate(context.Background(), carol.UserID, false); err != nil {
		t.Fatal(err)
	}
	if got, _ := udSearch(t, alice, "car", 10); !slices.Equal(got, []id.UserID{"@carl:localhost"}) {
		t.Fatalf("deactivated user found: %v", got)
	}
}

// The searcher is never in their own results, whether they share rooms
// with the matches or the server lets everyone find every account.
func TestUserDirectorySearchLeavesOutSearcher(t *testing.T) {
	ts := testserver.New(t, func(c *config.Config) { c.UserDirectory.SearchAllUsers = true })
	alice := ts.RegisterUser("alice")
	alina := ts.RegisterUser("alina")
	roomCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	for _, term := range []string{"alice", "al", "@alice:localhost"} {
		if got, _ := udSearch(t, alice, term, 10); slices.Contains(got, alice.UserID) {
			t.Fatalf("alice found herself searching %q: %v", term, got)
		}
	}
	if got, _ := udSearch(t, alice, "al", 10); !slices.Equal(got, []id.UserID{alina.UserID}) {
		t.Fatalf("search al: %v", got)
	}
}
