package clientapi_test

import (
	"net/http"
	"net/url"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
)

func whoisPath(user id.UserID) string {
	return "/_matrix/client/v3/admin/whois/" + url.PathEscape(string(user))
}

func lockPath(user id.UserID) string {
	return "/_matrix/client/v1/admin/lock/" + url.PathEscape(string(user))
}

func suspendPath(user id.UserID) string {
	return "/_matrix/client/v1/admin/suspend/" + url.PathEscape(string(user))
}

func TestWhois(t *testing.T) {
	ts := testserver.New(t)
	admin := ts.RegisterAdmin("admin")
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")

	// Alice's own request is what the server saw of her device last.
	for _, c := range []*mautrix.Client{alice, admin} {
		r := acctDo(t, c, http.MethodGet, whoisPath(alice.UserID), nil)
		acctExpect(t, "whois alice as "+string(c.UserID), r, http.StatusOK, "")
		if r.Body["user_id"] != string(alice.UserID) {
			t.Fatalf("user_id %v", r.Body["user_id"])
		}
		devices, _ := r.Body["devices"].(map[string]any)
		dev, _ := devices[string(alice.DeviceID)].(map[string]any)
		sessions, _ := dev["sessions"].([]any)
		if len(devices) != 1 || len(sessions) != 1 {
			t.Fatalf("devices %v", devices)
		}
		conns, _ := sessions[0].(map[string]any)["connections"].([]any)
		if len(conns) != 1 {
			t.Fatalf("connections %v", sessions[0])
		}
		conn := conns[0].(map[string]any)
		if conn["ip"] != "127.0.0.1" || conn["user_agent"] != alice.UserAgent {
			t.Fatalf("connection %v, want 127.0.0.1 and %q", conn, alice.UserAgent)
		}
		if seen, _ := conn["last_seen"].(float64); seen <= 0 {
			t.Fatalf("last_seen %v", conn["last_seen"])
		}
	}

	acctExpect(t, "whois someone else", acctDo(t, bob, http.MethodGet, whoisPath(alice.UserID), nil), http.StatusForbidden, "M_FORBIDDEN")
	acctExpect(t, "whois a remote user", acctDo(t, admin, http.MethodGet, whoisPath("@alice:elsewhere.example"), nil), http.StatusBadRequest, "M_INVALID_PARAM")
	acctExpect(t, "whois without a token", acctDo(t, ts.Client(), http.MethodGet, whoisPath(alice.UserID), nil), http.StatusUnauthorized, "M_MISSING_TOKEN")
	r := acctDo(t, admin, http.MethodGet, whoisPath("@nobody:"+id.UserID(ts.ServerName())), nil)
	acctExpect(t, "whois an unknown user", r, http.StatusOK, "")
	if devices, _ := r.Body["devices"].(map[string]any); len(devices) != 0 {
		t.Fatalf("unknown user has devices %v", devices)
	}
}

// The admin endpoints' common refusals, for lock and suspend alike.
func TestAccountModerationPermissions(t *testing.T) {
	ts := testserver.New(t)
	admin := ts.RegisterAdmin("admin")
	other := ts.RegisterAdmin("other")
	alice := ts.RegisterUser("alice")
	gone := ts.RegisterUser("gone")
	if err := ts.Accounts().Deactivate(t.Context(), gone.UserID, false); err != nil {
		t.Fatal(err)
	}
	local := func(localpart string) id.UserID { return id.NewUserID(localpart, ts.ServerName()) }
	for _, m := range []struct {
		name string
		path func(id.UserID) string
	}{{"locked", lockPath}, {"suspended", suspendPath}} {
		on := map[string]bool{m.name: true}
		// A non-admin is refused before any lookup, so the answer is the
		// same for someone who does not exist.
		for _, target := range []id.UserID{admin.UserID, local("nobody")} {
			acctExpect(t, m.name+": non-admin GET", acctDo(t, alice, http.MethodGet, m.path(target), nil), http.StatusForbidden, "M_FORBIDDEN")
			acctExpect(t, m.name+": non-admin PUT", acctDo(t, alice, http.MethodPut, m.path(target), on), http.StatusForbidden, "M_FORBIDDEN")
		}
		acctExpect(t, m.name+": no token", acctDo(t, ts.Client(), http.MethodGet, m.path(alice.UserID), nil), http.StatusUnauthorized, "M_MISSING_TOKEN")
		acctExpect(t, m.name+": remote user", acctDo(t, admin, http.MethodGet, m.path("@alice:elsewhere.example"), nil), http.StatusBadRequest, "M_INVALID_PARAM")
		acctExpect(t, m.name+": unknown user", acctDo(t, admin, http.MethodGet, m.path(local("nobody")), nil), http.StatusNotFound, "M_NOT_FOUND")
		acctExpect(t, m.name+": unknown user PUT", acctDo(t, admin, http.MethodPut, m.path(local("nobody")), on), http.StatusNotFound, "M_NOT_FOUND")
		acctExpect(t, m.name+": deactivated user", acctDo(t, admin, http.MethodGet, m.path(gone.UserID), nil), http.StatusNotFound, "M_NOT_FOUND")
		acctExpect(t, m.name+": another admin", acctDo(t, admin, http.MethodGet, m.path(other.UserID), nil), http.StatusForbidden, "M_FORBIDDEN")
		acctExpect(t, m.name+": another admin PUT", acctDo(t, admin, http.MethodPut, m.path(other.UserID), on), http.StatusForbidden, "M_FORBIDDEN")
		acctExpect(t, m.name+": oneself PUT", acctDo(t, admin, http.MethodPut, m.path(admin.UserID), on), http.StatusForbidden, "M_FORBIDDEN")
		r := acctDo(t, admin, http.MethodGet, m.path(admin.UserID), nil)
		acctExpect(t, m.name+": oneself GET", r, http.StatusOK, "")
		if r.Body[m.name] != false {
			t.Fatalf("%s: own status %v", m.name, r.Body)
		}
		// Bad bodies.
		acctExpect(t, m.name+": not JSON", acctDo(t, admin, http.MethodPut, m.path(alice.UserID), "{nope"), http.StatusBadRequest, "M_NOT_JSON")
		acctExpect(t, m.name+": missing field", acctDo(t, admin, http.MethodPut, m.path(alice.UserID), map[string]any{}), http.StatusBadRequest, "M_MISSING_PARAM")
		acctExpect(t, m.name+": wrong type", acctDo(t, admin, http.MethodPut, m.path(alice.UserID), map[string]any{m.name: "yes"}), http.StatusBadRequest, "M_BAD_JSON")
	}

	// Admins are told they may moderate accounts; others are not.
	r := acctDo(t, admin, http.MethodGet, "/_matrix/client/v3/capabilities", nil)
	caps, _ := r.Body["capabilities"].(map[string]any)
	if mod, _ := caps["m.account_moderation"].(map[string]any); mod["lock"] != true || mod["suspend"] != true {
		t.Fatalf("admin's m.account_moderation: %v", caps["m.account_moderation"])
	}
	r = acctDo(t, alice, http.MethodGet, "/_matrix/client/v3/capabilities", nil)
	caps, _ = r.Body["capabilities"].(map[string]any)
	if _, has := caps["m.account_moderation"]; has {
		t.Fatalf("a non-admin is offered m.account_moderation: %v", caps)
	}
}

func TestAccountLock(t *testing.T) {
	ts := testserver.New(t)
	admin := ts.RegisterAdmin("admin")
	bob := ts.RegisterUser("bob")
	bobPhone := ts.Login("bob", testserver.DefaultPassword)
	// A session that refreshes its token.
	r := acctDo(t, ts.Client(), http.MethodPost, "/_matrix/client/v3/login", map[string]any{
		"type": "m.login.password", "identifier": map[string]string{"type": "m.id.user", "user": "bob"},
		"password": testserver.DefaultPassword, "refresh_token": true,
	})
	acctExpect(t, "login with refresh", r, http.StatusOK, "")
	refresh, _ := r.Body["refresh_token"].(string)

	r = acctDo(t, admin, http.MethodPut, lockPath(bob.UserID), map[string]bool{"locked": true})
	acctExpect(t, "lock", r, http.StatusOK, "")
	if r.Body["locked"] != true {
		t.Fatalf("lock answer %v", r.Body)
	}
	r = acctDo(t, admin, http.MethodGet, lockPath(bob.UserID), nil)
	if r.Body["locked"] != true {
		t.Fatalf("GET lock %v", r.Body)
	}

	// Every request but logout: 401 M_USER_LOCKED with soft_logout, so the
	// client keeps its session and keys.
	for _, path := range []string{"/_matrix/client/v3/account/whoami", "/_matrix/client/v3/sync?timeout=0", "/_matrix/client/v3/joined_rooms"} {
		r := acctDo(t, bob, http.MethodGet, path, nil)
		acctExpect(t, "locked "+path, r, http.StatusUnauthorized, "M_USER_LOCKED")
		if r.Body["soft_logout"] != true {
			t.Fatalf("%s: no soft_logout: %v", path, r.Body)
		}
	}
	// No new session either.
	_, err := ts.Client().Login(t.Context(), &mautrix.ReqLogin{
		Type:       mautrix.AuthTypePassword,
		Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "bob"},
		Password:   testserver.DefaultPassword,
	})
	if status, code := acctErr(t, err); status != http.StatusUnauthorized || code != "M_USER_LOCKED" {
		t.Fatalf("locked login: %d %s", status, code)
	}
	acctExpect(t, "locked refresh", acctDo(t, ts.Client(), http.MethodPost, "/_matrix/client/v3/refresh", map[string]string{"refresh_token": refresh}), http.StatusUnauthorized, "M_USER_LOCKED")
	// Logging out still works.
	acctExpect(t, "locked logout", acctDo(t, bobPhone, http.MethodPost, "/_matrix/client/v3/logout", nil), http.StatusOK, "")

	// Unlocked, the same token works again: it was never revoked.
	acctExpect(t, "unlock", acctDo(t, admin, http.MethodPut, lockPath(bob.UserID), map[string]bool{"locked": false}), http.StatusOK, "")
	if _, err := bob.Whoami(t.Context()); err != nil {
		t.Fatalf("whoami after unlock: %v", err)
	}
	if r := acctDo(t, admin, http.MethodGet, lockPath(bob.UserID), nil); r.Body["locked"] != false {
		t.Fatalf("GET lock after unlock %v", r.Body)
	}
}

// The lock is stored: it holds across a restart.
func TestAccountLockSurvivesRestart(t *testing.T) {
	ts := testserver.New(t)
	admin := ts.RegisterAdmin("admin")
	bob := ts.RegisterUser("bob")
	acctExpect(t, "lock", acctDo(t, admin, http.MethodPut, lockPath(bob.UserID), map[string]bool{"locked": true}), http.StatusOK, "")
	acctExpect(t, "suspend", acctDo(t, admin, http.MethodPut, suspendPath(bob.UserID), map[string]bool{"suspended": true}), http.StatusOK, "")
	ts.Restart()
	admin.HomeserverURL = mustParse(t, ts.URL)
	if r := acctDo(t, admin, http.MethodGet, lockPath(bob.UserID), nil); r.Body["locked"] != true {
		t.Fatalf("lock after restart %v", r.Body)
	}
	if r := acctDo(t, admin, http.MethodGet, suspendPath(bob.UserID), nil); r.Body["suspended"] != true {
		t.Fatalf("suspension after restart %v", r.Body)
	}
}

func TestAccountSuspension(t *testing.T) {
	ts, alice, bob, roomID := pairInRoom(t, "suspension")
	admin := ts.RegisterAdmin("admin")
	ctx := t.Context()
	aliceMsg, err := alice.SendText(ctx, roomID, "from alice")
	if err != nil {
		t.Fatal(err)
	}
	bobMsg, err := bob.SendText(ctx, roomID, "from bob")
	if err != nil {
		t.Fatal(err)
	}
	other := roomCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})

	r := acctDo(t, admin, http.MethodPut, suspendPath(bob.UserID), map[string]bool{"suspended": true})
	acctExpect(t, "suspend", r, http.StatusOK, "")
	if r.Body["suspended"] != true {
		t.Fatalf("suspend answer %v", r.Body)
	}
	if r := acctDo(t, admin, http.MethodGet, suspendPath(bob.UserID), nil); r.Body["suspended"] != true {
		t.Fatalf("GET suspend %v", r.Body)
	}

	suspended := func(what string, err error) {
		t.Helper()
		if status, code := acctErr(t, err); status != http.StatusForbidden || code != "M_USER_SUSPENDED" {
			t.Fatalf("%s while suspended: %d %s, want 403 M_USER_SUSPENDED", what, status, code)
		}
	}
	_, err = bob.SendText(ctx, roomID, "muted")
	suspended("send", err)
	_, err = bob.SendStateEvent(ctx, roomID, event.StateTopic, "", map[string]string{"topic": "mine"})
	suspended("set state", err)
	suspended("set display name", bob.SetDisplayName(ctx, "Robert"))
	_, err = bob.CreateRoom(ctx, &mautrix.ReqCreateRoom{})
	suspended("create room", err)
	_, err = bob.JoinRoomByID(ctx, other)
	suspended("join", err)
	_, err = bob.InviteUser(ctx, roomID, &mautrix.ReqInviteUser{UserID: admin.UserID})
	suspended("invite", err)
	_, err = bob.RedactEvent(ctx, roomID, aliceMsg.EventID)
	suspended("redact someone else's event", err)

	// Reading, redacting one's own events and leaving still work.
	if _, err := bob.Messages(ctx, roomID, "", "", mautrix.DirectionBackward, nil, 10); err != nil {
		t.Fatalf("read while suspended: %v", err)
	}
	if _, err := bob.SyncRequest(ctx, 0, "", "", false, event.PresenceOnline); err != nil {
		t.Fatalf("sync while suspended: %v", err)
	}
	if _, err := bob.RedactEvent(ctx, roomID, bobMsg.EventID); err != nil {
		t.Fatalf("redact own event while suspended: %v", err)
	}

	// Unsuspended, bob speaks again.
	acctExpect(t, "unsuspend", acctDo(t, admin, http.MethodPut, suspendPath(bob.UserID), map[string]bool{"suspended": false}), http.StatusOK, "")
	if _, err := bob.SendText(ctx, roomID, "back"); err != nil {
		t.Fatalf("send after unsuspension: %v", err)
	}
	acctExpect(t, "suspend again", acctDo(t, admin, http.MethodPut, suspendPath(bob.UserID), map[string]bool{"suspended": true}), http.StatusOK, "")
	if _, err := bob.LeaveRoom(ctx, roomID); err != nil {
		t.Fatalf("leave while suspended: %v", err)
	}
}
