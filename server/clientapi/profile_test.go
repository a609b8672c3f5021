package clientapi_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
)

func TestProfileGetAndSet(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	if err := alice.SetDisplayName(sessCtx, "Alice Liddell"); err != nil {
		t.Fatal(err)
	}
	avatar := id.ContentURI{Homeserver: ts.ServerName(), FileID: "abcDEF123"}
	if err := alice.SetAvatarURL(sessCtx, avatar); err != nil {
		t.Fatal(err)
	}
	// Profiles are public: an anonymous client reads them.
	anon := ts.Client()
	p, err := anon.GetProfile(sessCtx, alice.UserID)
	if err != nil || p.DisplayName != "Alice Liddell" || p.AvatarURL != avatar {
		t.Fatalf("profile %+v %v", p, err)
	}
	dn, err := anon.GetDisplayName(sessCtx, alice.UserID)
	if err != nil || dn.DisplayName != "Alice Liddell" {
		t.Fatalf("displayname %+v %v", dn, err)
	}
	if got, err := anon.GetAvatarURL(sessCtx, alice.UserID); err != nil || got != avatar {
		t.Fatalf("avatar_url %v %v", got, err)
	}
	r := sessRaw(t, ts, "", "GET", "/_matrix/client/r0/profile/"+string(alice.UserID)+"/displayname", nil)
	if r.status != 200 || r.raw != `{"displayname":"Alice Liddell"}` {
		t.Fatalf("GET displayname: %d %s", r.status, r.raw)
	}

	// An empty string clears a field, as clients have long done.
	if err := alice.SetDisplayName(sessCtx, ""); err != nil {
		t.Fatal(err)
	}
	r = sessRaw(t, ts, "", "GET", "/_matrix/client/v3/profile/"+string(alice.UserID), nil)
	if r.status != 200 || r.raw != `{"avatar_url":"mxc://`+ts.ServerName()+`/abcDEF123"}` {
		t.Fatalf("profile after clearing displayname: %d %s", r.status, r.raw)
	}
	sessExpect(t, "GET cleared field", sessRaw(t, ts, "", "GET", "/_matrix/client/v3/profile/"+string(alice.UserID)+"/displayname", nil), 404, "M_NOT_FOUND")

	// A user without profile fields has an empty profile, not none.
	bob := ts.RegisterUser("bob")
	if err := bob.DeleteProfileField(sessCtx, "displayname"); err != nil {
		t.Fatal(err)
	}
	r = sessRaw(t, ts, "", "GET", "/_matrix/client/v3/profile/"+string(bob.UserID), nil)
	if r.status != 200 || r.raw != `{}` {
		t.Fatalf("empty profile: %d %s", r.status, r.raw)
	}

	for _, tc := range []struct {
		what, path string
		status     int
		errcode    string
	}{
		{"unknown user", "/profile/@nobody:" + ts.ServerName(), 404, "M_NOT_FOUND"},
		{"field of unknown user", "/profile/@nobody:" + ts.ServerName() + "/displayname", 404, "M_NOT_FOUND"},
		{"remote user", "/profile/@alice:elsewhere.example", 404, "M_NOT_FOUND"},
		{"unset field", "/profile/" + string(bob.UserID) + "/avatar_url", 404, "M_NOT_FOUND"},
		{"unset custom field", "/profile/" + string(bob.UserID) + "/com.example.x", 404, "M_NOT_FOUND"},
		{"not a user ID", "/profile/alice", 400, "M_INVALID_PARAM"},
		{"not a user ID, field", "/profile/alice/displayname", 400, "M_INVALID_PARAM"},
	} {
		sessExpect(t, tc.what, sessRaw(t, ts, "", "GET", "/_matrix/client/v3"+tc.path, nil), tc.status, tc.errcode)
	}
}

func TestProfileCustomFields(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	pronouns := map[string]any{"en": "she/her"}
	if err := alice.SetProfileField(sessCtx, "io.example.pronouns", pronouns); err != nil {
		t.Fatal(err)
	}
	if err := alice.SetProfileField(sessCtx, "m.tz", "Europe/London"); err != nil {
		t.Fatal(err)
	}
	if err := alice.SetProfileField(sessCtx, "org.example.count", 3); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := ts.Client().GetProfileField(sessCtx, alice.UserID, "io.example.pronouns", &got); err != nil {
		t.Fatal(err)
	}
	if got["io.example.pronouns"].(map[string]any)["en"] != "she/her" || len(got) != 1 {
		t.Fatalf("custom field %v", got)
	}
	p, err := ts.Client().GetProfile(sessCtx, alice.UserID)
	if err != nil || p.Extra["m.tz"] != "Europe/London" || p.Extra["org.example.count"] != float64(3) {
		t.Fatalf("profile %+v %v", p, err)
	}
	if err := alice.DeleteProfileField(sessCtx, "io.example.pronouns"); err != nil {
		t.Fatal(err)
	}
	sessExpect(t, "deleted field", sessRaw(t, ts, "", "GET", "/_matrix/client/v3/profile/"+string(alice.UserID)+"/io.example.pronouns", nil), 404, "M_NOT_FOUND")
	// Deleting what is not there succeeds.
	if err := alice.DeleteProfileField(sessCtx, "io.example.pronouns"); err != nil {
		t.Fatal(err)
	}
	if err := alice.DeleteProfileField(sessCtx, "displayname"); err != nil {
		t.Fatal(err)
	}

	// The total profile must stay under 64 KiB.
	big := strings.Repeat("x", 40*1024)
	if err := alice.SetProfileField(sessCtx, "org.example.big1", big); err != nil {
		t.Fatal(err)
	}
	err = alice.SetProfileField(sessCtx, "org.example.big2", big)
	sessErr(t, "profile over 64 KiB", err, 400, "M_PROFILE_TOO_LARGE")
	// Replacing a field counts its new size, not both.
	if err := alice.SetProfileField(sessCtx, "org.example.big1", big+"y"); err != nil {
		t.Fatal(err)
	}
	sessExpect(t, "refused field", sessRaw(t, ts, "", "GET", "/_matrix/client/v3/profile/"+string(alice.UserID)+"/org.example.big2", nil), 404, "M_NOT_FOUND")
}

func TestProfileBadInput(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	base := "/_matrix/client/v3/profile/" + string(alice.UserID) + "/"
	before := sessRaw(t, ts, "", "GET", "/_matrix/client/v3/profile/"+string(alice.UserID), nil).raw
	for _, tc := range []struct {
		what, key string
		body      any
		status    int
		errcode   string
	}{
		{"displayname not a string", "displayname", map[string]any{"displayname": 5}, 400, "M_INVALID_PARAM"},
		{"displayname null", "displayname", map[string]any{"displayname": nil}, 400, "M_INVALID_PARAM"},
		{"displayname too long", "displayname", map[string]any{"displayname": strings.Repeat("a", 257)}, 400, "M_INVALID_PARAM"},
		{"avatar_url not a string", "avatar_url", map[string]any{"avatar_url": []int{1}}, 400, "M_INVALID_PARAM"},
		{"displayname with NUL", "displayname", map[string]any{"displayname": "Al\x00ice"}, 400, "M_INVALID_PARAM"},
		{"displayname with newline", "displayname", map[string]any{"displayname": "Alice\nAdmin"}, 400, "M_INVALID_PARAM"},
		{"displayname with escape", "displayname", map[string]any{"displayname": "\x1b[31mAlice"}, 400, "M_INVALID_PARAM"},
		{"displayname with C1 control", "displayname", map[string]any{"displayname": "Alice\u0085"}, 400, "M_INVALID_PARAM"},
		{"avatar_url too long", "avatar_url", map[string]any{"avatar_url": "mxc://a/" + strings.Repeat("b", 1000)}, 400, "M_INVALID_PARAM"},
		{"m.tz not a string", "m.tz", map[string]any{"m.tz": 1}, 400, "M_INVALID_PARAM"},
		{"custom null", "org.example.x", map[string]any{"org.example.x": nil}, 400, "M_INVALID_PARAM"},
		{"key not in body", "displayname", map[string]any{"avatar_url": "mxc://a/b"}, 400, "M_MISSING_PARAM"},
		{"empty body object", "displayname", map[string]any{}, 400, "M_MISSING_PARAM"},
		{"key not namespaced", "pronouns", map[string]any{"pronouns": "x"}, 400, "M_INVALID_PARAM"},
		{"key in upper case", "Org.Example.X", map[string]any{"Org.Example.X": "x"}, 400, "M_INVALID_PARAM"},
		{"key too long", "org.example." + strings.Repeat("k", 250), map[string]any{"org.example." + strings.Repeat("k", 250): "x"}, 400, "M_KEY_TOO_LARGE"},
		{"array body", "displayname", `["x"]`, 400, "M_BAD_JSON"},
		{"malformed JSON", "displayname", `{"displayname": "x`, 400, "M_NOT_JSON"},
		{"no body", "displayname", nil, 400, "M_NOT_JSON"},
	} {
		sessExpect(t, tc.what, sessRaw(t, ts, alice.AccessToken, "PUT", base+tc.key, tc.body), tc.status, tc.errcode)
	}
	r := sessRaw(t, ts, "", "GET", "/_matrix/client/v3/profile/"+string(alice.UserID), nil)
	if r.raw != before {
		t.Fatalf("refused changes changed the profile: %s", r.raw)
	}
	sessExpect(t, "DELETE invalid key", sessRaw(t, ts, alice.AccessToken, "DELETE", base+"Bad", nil), 400, "M_INVALID_PARAM")
	sessExpect(t, "PUT not a user ID", sessRaw(t, ts, alice.AccessToken, "PUT", "/_matrix/client/v3/profile/alice/displayname", map[string]any{"displayname": "x"}), 400, "M_INVALID_PARAM")
}

// Avatar URLs are taken as sent, as Synapse takes them: an http(s) URL or
// an mxc URI without a media ID is stored and read back unchanged.
func TestProfileAvatarNotMXC(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	path := "/_matrix/client/v3/profile/" + string(alice.UserID) + "/avatar_url"
	for _, avatar := range []string{"http://somewhere/my-pic.jpg", "mxc://example.org/"} {
		sessExpect(t, "PUT "+avatar, sessRaw(t, ts, alice.AccessToken, "PUT", path, map[string]any{"avatar_url": avatar}), 200, "")
		r := sessRaw(t, ts, "", "GET", path, nil)
		if r.status != 200 || r.str("avatar_url") != avatar {
			t.Fatalf("read back %s: %s", avatar, r.raw)
		}
	}
}

func TestProfileOfOthers(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	root := ts.RegisterAdmin("root")
	if err := bob.SetDisplayName(sessCtx, "Bob"); err != nil {
		t.Fatal(err)
	}
	path := "/_matrix/client/v3/profile/" + string(bob.UserID) + "/displayname"
	sessExpect(t, "PUT someone else's profile", sessRaw(t, ts, alice.AccessToken, "PUT", path, map[string]any{"displayname": "Mallory"}), 403, "M_FORBIDDEN")
	sessExpect(t, "DELETE someone else's field", sessRaw(t, ts, alice.AccessToken, "DELETE", path, nil), 403, "M_FORBIDDEN")
	sessExpect(t, "PUT a remote user's profile", sessRaw(t, ts, alice.AccessToken, "PUT", "/_matrix/client/v3/profile/@bob:elsewhere.example/displayname", map[string]any{"displayname": "x"}), 403, "M_FORBIDDEN")
	sessExpect(t, "PUT without token", sessRaw(t, ts, "", "PUT", path, map[string]any{"displayname": "x"}), 401, "M_MISSING_TOKEN")
	sessExpect(t, "PUT with a bad token", sessRaw(t, ts, "pat_bad", "PUT", path, map[string]any{"displayname": "x"}), 401, "M_UNKNOWN_TOKEN")
	sessExpect(t, "DELETE without token", sessRaw(t, ts, "", "DELETE", path, nil), 401, "M_MISSING_TOKEN")
	if dn, _ := ts.Client().GetDisplayName(sessCtx, bob.UserID); dn.DisplayName != "Bob" {
		t.Fatalf("bob's name is now %q", dn.DisplayName)
	}
	// A server admin may change a local user's profile (as in Synapse), but
	// not a remote one's, and not a user's that does not exist.
	sessExpect(t, "admin PUT", sessRaw(t, ts, root.AccessToken, "PUT", path, map[string]any{"displayname": "Robert"}), 200, "")
	if dn, _ := ts.Client().GetDisplayName(sessCtx, bob.UserID); dn.DisplayName != "Robert" {
		t.Fatalf("admin rename: bob's name is %q", dn.DisplayName)
	}
	sessExpect(t, "admin PUT remote", sessRaw(t, ts, root.AccessToken, "PUT", "/_matrix/client/v3/profile/@bob:elsewhere.example/displayname", map[string]any{"displayname": "x"}), 403, "M_FORBIDDEN")
	sessExpect(t, "admin PUT unknown user", sessRaw(t, ts, root.AccessToken, "PUT", "/_matrix/client/v3/profile/@ghost:"+ts.ServerName()+"/displayname", map[string]any{"displayname": "x"}), 404, "M_NOT_FOUND")
	sessExpect(t, "admin DELETE unknown user", sessRaw(t, ts, root.AccessToken, "DELETE", "/_matrix/client/v3/profile/@ghost:"+ts.ServerName()+"/displayname", nil), 404, "M_NOT_FOUND")
}

// sessPropagator records the users whose profile changed.
type sessPropagator struct {
	mu      sync.Mutex
	changed []id.UserID
}

func (p *sessPropagator) ProfileChanged(_ context.Context, userID id.UserID) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.changed = append(p.changed, userID)
	return nil
}

func (p *sessPropagator) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.changed)
}

func TestProfileChangesReachThePropagator(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	rec := &sessPropagator{}
	prev := ts.Accounts().Profiles
	ts.Accounts().Profiles = rec
	defer func() { ts.Accounts().Profiles = prev }()
	if err := alice.SetDisplayName(sessCtx, "Alice"); err != nil {
		t.Fatal(err)
	}
	if err := alice.SetAvatarURL(sessCtx, id.ContentURI{Homeserver: "a", FileID: "b"}); err != nil {
		t.Fatal(err)
	}
	if err := alice.DeleteProfileField(sessCtx, "displayname"); err != nil {
		t.Fatal(err)
	}
	if rec.count() != 3 || rec.changed[0] != alice.UserID {
		t.Fatalf("propagator saw %v", rec.changed)
	}
	// A refused change propagates nothing.
	_ = alice.SetProfileField(sessCtx, "displayname", 5)
	if rec.count() != 3 {
		t.Fatalf("refused change propagated: %v", rec.changed)
	}
}
