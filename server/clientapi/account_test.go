package clientapi_test

import (
	"net/http"
	"strings"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
)

const (
	passwordPath   = "/_matrix/client/v3/account/password"
	deactivatePath = "/_matrix/client/v3/account/deactivate"
	threepidPath   = "/_matrix/client/v3/account/3pid"
	newPassword    = "a brand new password"
)

// passwordAuth is an m.login.password auth dict for a UIA session.
func passwordAuth(user, password, session string) map[string]any {
	return map[string]any{
		"type":       "m.login.password",
		"identifier": map[string]any{"type": "m.id.user", "user": user},
		"password":   password,
		"session":    session,
	}
}

// acctPasswordUIA runs an account endpoint's UIA with the user's password:
// a first request without auth must get the [[m.login.password]] challenge;
// the second, with body plus auth, is returned.
func acctPasswordUIA(t *testing.T, c *mautrix.Client, path, user, password string, body map[string]any) acctResp {
	t.Helper()
	session := acctUIA(t, path+" without auth", acctDo(t, c, http.MethodPost, path, body), "", []string{"m.login.password"})
	withAuth := map[string]any{"auth": passwordAuth(user, password, session)}
	for k, v := range body {
		withAuth[k] = v
	}
	return acctDo(t, c, http.MethodPost, path, withAuth)
}

// acctLoginErr tries a password login and returns its error code ("" on
// success).
func acctLoginErr(t *testing.T, ts *testserver.Server, user, password string) string {
	t.Helper()
	_, err := ts.Client().Login(t.Context(), &mautrix.ReqLogin{
		Type:       mautrix.AuthTypePassword,
		Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: user},
		Password:   password,
	})
	if err == nil {
		return ""
	}
	_, code := acctErr(t, err)
	return code
}

// acctTokenErr returns the error code whoami answers for c's token ("" when
// the token works).
func acctTokenErr(t *testing.T, c *mautrix.Client) string {
	t.Helper()
	if _, err := c.Whoami(t.Context()); err != nil {
		status, code := acctErr(t, err)
		if status != http.StatusUnauthorized {
			t.Fatalf("whoami: status %d with %s", status, code)
		}
		return code
	}
	return ""
}

func TestWhoami(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	r := acctDo(t, alice, http.MethodGet, "/_matrix/client/v3/account/whoami", nil)
	acctExpect(t, "whoami", r, http.StatusOK, "")
	if r.Body["user_id"] != "@alice:localhost" || r.Body["device_id"] != alice.DeviceID.String() || r.Body["is_guest"] != false {
		t.Fatalf("whoami answered %v", r.Body)
	}
	other := ts.Login("alice", testserver.DefaultPassword)
	who, err := other.Whoami(t.Context())
	if err != nil || who.DeviceID != other.DeviceID || who.DeviceID == alice.DeviceID {
		t.Fatalf("whoami on a second device: %+v, %v", who, err)
	}
}

func TestChangePassword(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	other := ts.Login("alice", testserver.DefaultPassword)
	ts.RegisterUser("bob")

	body := map[string]any{"new_password": newPassword}
	r := acctDo(t, alice, http.MethodPost, passwordPath, body)
	session := acctUIA(t, "no auth", r, "", []string{"m.login.password"})

	r = acctDo(t, alice, http.MethodPost, passwordPath, map[string]any{"new_password": "short"})
	acctExpect(t, "weak password", r, http.StatusBadRequest, "M_WEAK_PASSWORD")

	r = acctDo(t, alice, http.MethodPost, passwordPath, map[string]any{"new_password": newPassword, "auth": passwordAuth("alice", "wrong password", session)})
	acctUIA(t, "wrong password", r, "M_FORBIDDEN", []string{"m.login.password"})

	// Bob's password does not authorise a change of Alice's.
	r = acctDo(t, alice, http.MethodPost, passwordPath, map[string]any{"new_password": newPassword, "auth": passwordAuth("bob", testserver.DefaultPassword, session)})
	acctExpect(t, "someone else's password", r, http.StatusForbidden, "M_FORBIDDEN")

	// Alice's session cannot be finished from Bob's account.
	bob := ts.Login("bob", testserver.DefaultPassword)
	r = acctDo(t, bob, http.MethodPost, passwordPath, map[string]any{"new_password": newPassword, "auth": passwordAuth("bob", testserver.DefaultPassword, session)})
	acctExpect(t, "another user's session", r, http.StatusForbidden, "M_FORBIDDEN")

	if code := acctLoginErr(t, ts, "alice", testserver.DefaultPassword); code != "" {
		t.Fatalf("password changed by failed attempts: %s", code)
	}

	// logout_devices is absent: it defaults to true.
	r = acctDo(t, alice, http.MethodPost, passwordPath, map[string]any{"new_password": newPassword, "auth": passwordAuth("@alice:localhost", testserver.DefaultPassword, session)})
	acctExpect(t, "change", r, http.StatusOK, "")
	if len(r.Body) != 0 {
		t.Fatalf("change answered %v, want {}", r.Body)
	}
	if code := acctTokenErr(t, other); code != "M_UNKNOWN_TOKEN" {
		t.Fatalf("other device's token: %q, want M_UNKNOWN_TOKEN", code)
	}
	if code := acctTokenErr(t, alice); code != "" {
		t.Fatalf("caller's token: %s", code)
	}
	if code := acctLoginErr(t, ts, "alice", testserver.DefaultPassword); code != "M_FORBIDDEN" {
		t.Fatalf("old password login: %q, want M_FORBIDDEN", code)
	}
	if code := acctLoginErr(t, ts, "alice", newPassword); code != "" {
		t.Fatalf("new password login: %s", code)
	}
	// Bob is untouched.
	if code := acctTokenErr(t, bob); code != "" {
		t.Fatalf("bob's token: %s", code)
	}
}

func TestChangePasswordKeepDevices(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	other := ts.Login("alice", testserver.DefaultPassword)
	r := acctPasswordUIA(t, alice, passwordPath, "alice", testserver.DefaultPassword, map[string]any{"new_password": newPassword, "logout_devices": false})
	acctExpect(t, "change", r, http.StatusOK, "")
	if code := acctTokenErr(t, other); code != "" {
		t.Fatalf("other device logged out despite logout_devices false: %s", code)
	}
	if code := acctLoginErr(t, ts, "alice", testserver.DefaultPassword); code != "M_FORBIDDEN" {
		t.Fatalf("old password login: %q", code)
	}

	// With logout_devices true said explicitly, the other device goes.
	r = acctPasswordUIA(t, alice, passwordPath, "alice", newPassword, map[string]any{"new_password": testserver.DefaultPassword, "logout_devices": true})
	acctExpect(t, "change back", r, http.StatusOK, "")
	if code := acctTokenErr(t, other); code != "M_UNKNOWN_TOKEN" {
		t.Fatalf("other device: %q", code)
	}
}

// Element sends the current password in the first request, with no
// session: one request does it.
func TestChangePasswordInOneRequest(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	r := acctDo(t, alice, http.MethodPost, passwordPath, map[string]any{
		"new_password": newPassword, "logout_devices": false,
		"auth": map[string]any{"type": "m.login.password", "identifier": map[string]any{"type": "m.id.user", "user": "@alice:localhost"}, "password": testserver.DefaultPassword},
	})
	acctExpect(t, "change", r, http.StatusOK, "")
	if code := acctLoginErr(t, ts, "alice", newPassword); code != "" {
		t.Fatalf("new password login: %s", code)
	}
}

// User-interactive auth proves the caller is the account's owner: another
// user's identifier (even with that user's right password) or a session
// another user started is refused with 403 M_FORBIDDEN, as Synapse does,
// and changes nothing.
func TestUIAAsAnotherUser(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	body := map[string]any{"new_password": newPassword, "logout_devices": false}
	withAuth := func(auth map[string]any) map[string]any {
		return map[string]any{"new_password": newPassword, "logout_devices": false, "auth": auth}
	}
	// Bob's identifier and password, in Alice's request.
	session := acctUIA(t, "alice starts", acctDo(t, alice, http.MethodPost, passwordPath, body), "", []string{"m.login.password"})
	r := acctDo(t, alice, http.MethodPost, passwordPath, withAuth(passwordAuth("bob", testserver.DefaultPassword, session)))
	acctExpect(t, "alice authenticating as bob", r, http.StatusForbidden, "M_FORBIDDEN")
	r = acctDo(t, alice, http.MethodPost, passwordPath, withAuth(passwordAuth("@bob:localhost", testserver.DefaultPassword, "")))
	acctExpect(t, "alice authenticating as bob without a session", r, http.StatusForbidden, "M_FORBIDDEN")
	// Bob, with his own password, in the session Alice started.
	r = acctDo(t, bob, http.MethodPost, passwordPath, withAuth(passwordAuth("bob", testserver.DefaultPassword, session)))
	acctExpect(t, "bob in alice's session", r, http.StatusForbidden, "M_FORBIDDEN")
	for _, user := range []string{"alice", "bob"} {
		if code := acctLoginErr(t, ts, user, testserver.DefaultPassword); code != "" {
			t.Fatalf("%s's password changed: %s", user, code)
		}
	}
	// Alice can still finish her own session.
	r = acctDo(t, alice, http.MethodPost, passwordPath, withAuth(passwordAuth("alice", testserver.DefaultPassword, session)))
	acctExpect(t, "alice as herself", r, http.StatusOK, "")
}

func TestChangePasswordBadInput(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	for _, tc := range []struct {
		name, body, errcode string
	}{
		{"not JSON", `{"new_password": `, "M_NOT_JSON"},
		{"new_password not a string", `{"new_password": 12345678}`, "M_BAD_JSON"},
		{"logout_devices not a boolean", `{"new_password": "a long enough one", "logout_devices": "no"}`, "M_BAD_JSON"},
		{"auth not an object", `{"new_password": "a long enough one", "auth": []}`, "M_BAD_JSON"},
	} {
		acctExpect(t, tc.name, acctDo(t, alice, http.MethodPost, passwordPath, tc.body), http.StatusBadRequest, tc.errcode)
	}
	// No new password: user-interactive auth first, then M_MISSING_PARAM.
	r := acctPasswordUIA(t, alice, passwordPath, "alice", testserver.DefaultPassword, map[string]any{})
	acctExpect(t, "no new_password", r, http.StatusBadRequest, "M_MISSING_PARAM")
	if code := acctLoginErr(t, ts, "alice", testserver.DefaultPassword); code != "" {
		t.Fatalf("password changed without a new one: %s", code)
	}
	// A session of another operation does not authorise a password change.
	session := acctUIA(t, "deactivate", acctDo(t, alice, http.MethodPost, deactivatePath, map[string]any{}), "", []string{"m.login.password"})
	r = acctDo(t, alice, http.MethodPost, passwordPath, map[string]any{"new_password": newPassword, "auth": passwordAuth("alice", testserver.DefaultPassword, session)})
	acctExpect(t, "deactivate session", r, http.StatusBadRequest, "M_UNKNOWN")
}

func profileOf(t *testing.T, ts *testserver.Server, user string) map[string]string {
	t.Helper()
	p, err := ts.DB().GetProfile(t.Context(), id.NewUserID(user, "localhost"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for k, v := range p {
		out[k] = strings.Trim(string(v), `"`)
	}
	return out
}

func TestDeactivate(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	other := ts.Login("alice", testserver.DefaultPassword)

	r := acctDo(t, alice, http.MethodPost, deactivatePath, map[string]any{})
	session := acctUIA(t, "no auth", r, "", []string{"m.login.password"})
	r = acctDo(t, alice, http.MethodPost, deactivatePath, map[string]any{"auth": passwordAuth("alice", "wrong password", session)})
	acctUIA(t, "wrong password", r, "M_FORBIDDEN", []string{"m.login.password"})
	if code := acctTokenErr(t, alice); code != "" {
		t.Fatalf("deactivated by a failed attempt: %s", code)
	}

	r = acctDo(t, alice, http.MethodPost, deactivatePath, map[string]any{"auth": passwordAuth("alice", testserver.DefaultPassword, session), "id_server": "id.example.org"})
	acctExpect(t, "deactivate", r, http.StatusOK, "")
	if r.Body["id_server_unbind_result"] != "success" {
		t.Fatalf("deactivate answered %v", r.Body)
	}
	for _, c := range []*mautrix.Client{alice, other} {
		if code := acctTokenErr(t, c); code != "M_UNKNOWN_TOKEN" {
			t.Fatalf("token after deactivation: %q", code)
		}
	}
	if code := acctLoginErr(t, ts, "alice", testserver.DefaultPassword); code != "M_USER_DEACTIVATED" {
		t.Fatalf("login after deactivation: %q, want M_USER_DEACTIVATED", code)
	}
	// The user ID is never given to anyone else.
	_, err := ts.Client().RegisterAvailable(t.Context(), "alice")
	if status, code := acctErr(t, err); status != http.StatusBadRequest || code != "M_USER_IN_USE" {
		t.Fatalf("available after deactivation: %d %s", status, code)
	}
	// Without erase, the profile stays (others still see the name in rooms).
	if p := profileOf(t, ts, "alice"); p["displayname"] != "alice" {
		t.Fatalf("profile after deactivation without erase: %v", p)
	}
}

func TestDeactivateErase(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	if p := profileOf(t, ts, "alice"); p["displayname"] != "alice" {
		t.Fatalf("profile before: %v", p)
	}
	r := acctPasswordUIA(t, alice, deactivatePath, "alice", testserver.DefaultPassword, map[string]any{"erase": true})
	acctExpect(t, "deactivate", r, http.StatusOK, "")
	if p := profileOf(t, ts, "alice"); len(p) != 0 {
		t.Fatalf("profile after erase: %v", p)
	}
}

func TestDeactivateBadInput(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	acctExpect(t, "not JSON", acctDo(t, alice, http.MethodPost, deactivatePath, `{`), http.StatusBadRequest, "M_NOT_JSON")
	acctExpect(t, "erase not a boolean", acctDo(t, alice, http.MethodPost, deactivatePath, `{"erase": "yes"}`), http.StatusBadRequest, "M_BAD_JSON")
	if code := acctTokenErr(t, alice); code != "" {
		t.Fatalf("bad input deactivated the account: %s", code)
	}
}

func TestThreepidEndpoints(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")

	r := acctDo(t, alice, http.MethodGet, threepidPath, nil)
	acctExpect(t, "list", r, http.StatusOK, "")
	if list, ok := r.Body["threepids"].([]any); !ok || len(list) != 0 {
		t.Fatalf("list answered %v", r.Body)
	}

	creds := map[string]any{"client_secret": "s3cr3t", "id_server": "id.example.org", "id_access_token": "abc", "sid": "123"}
	for _, tc := range []struct {
		name, path string
		body       any
		status     int
		errcode    string
	}{
		// The deprecated bind-through-identity-server endpoint.
		{"3pid", threepidPath, map[string]any{"three_pid_creds": creds}, http.StatusForbidden, "M_THREEPID_AUTH_FAILED"},
		{"3pid no creds", threepidPath, map[string]any{}, http.StatusBadRequest, "M_MISSING_PARAM"},
		{"3pid no sid", threepidPath, map[string]any{"three_pid_creds": map[string]any{"client_secret": "s"}}, http.StatusBadRequest, "M_MISSING_PARAM"},
		{"3pid creds not an object", threepidPath, `{"three_pid_creds": "x"}`, http.StatusBadRequest, "M_BAD_JSON"},
		{"3pid not JSON", threepidPath, `x`, http.StatusBadRequest, "M_NOT_JSON"},

		{"bind", threepidPath + "/bind", creds, http.StatusBadRequest, "M_SERVER_NOT_TRUSTED"},
		{"bind no id_server", threepidPath + "/bind", map[string]any{"client_secret": "s", "sid": "1", "id_access_token": "a"}, http.StatusBadRequest, "M_MISSING_PARAM"},
		{"bind bad client_secret", threepidPath + "/bind", map[string]any{"client_secret": "s s", "sid": "1", "id_server": "x", "id_access_token": "a"}, http.StatusBadRequest, "M_INVALID_PARAM"},
		{"bind not JSON", threepidPath + "/bind", ``, http.StatusBadRequest, "M_NOT_JSON"},

		{"delete", threepidPath + "/delete", map[string]any{"medium": "email", "address": "a@example.org"}, http.StatusOK, ""},
		{"delete msisdn", threepidPath + "/delete", map[string]any{"medium": "msisdn", "address": "447700900001", "id_server": "id.example.org"}, http.StatusOK, ""},
		{"delete bad medium", threepidPath + "/delete", map[string]any{"medium": "pigeon", "address": "a"}, http.StatusBadRequest, "M_INVALID_PARAM"},
		{"delete no address", threepidPath + "/delete", map[string]any{"medium": "email"}, http.StatusBadRequest, "M_MISSING_PARAM"},
		{"delete medium not a string", threepidPath + "/delete", `{"medium": 1, "address": "a"}`, http.StatusBadRequest, "M_BAD_JSON"},

		{"unbind", threepidPath + "/unbind", map[string]any{"medium": "email", "address": "a@example.org"}, http.StatusOK, ""},
		{"unbind no medium", threepidPath + "/unbind", map[string]any{"address": "a@example.org"}, http.StatusBadRequest, "M_MISSING_PARAM"},
		{"unbind not JSON", threepidPath + "/unbind", `{`, http.StatusBadRequest, "M_NOT_JSON"},

		{"add no sid", threepidPath + "/add", map[string]any{"client_secret": "s"}, http.StatusBadRequest, "M_MISSING_PARAM"},
		{"add no client_secret", threepidPath + "/add", map[string]any{"sid": "1"}, http.StatusBadRequest, "M_MISSING_PARAM"},
		{"add not JSON", threepidPath + "/add", `]`, http.StatusBadRequest, "M_NOT_JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := acctDo(t, alice, http.MethodPost, tc.path, tc.body)
			acctExpect(t, tc.name, r, tc.status, tc.errcode)
			if tc.status == http.StatusOK && r.Body["id_server_unbind_result"] != "no-support" {
				t.Fatalf("answered %v", r.Body)
			}
		})
	}

	// /3pid/add: user-interactive auth first, then no validation session
	// can be found (none is ever made).
	r = acctPasswordUIA(t, alice, threepidPath+"/add", "alice", testserver.DefaultPassword, map[string]any{"client_secret": "s3cr3t", "sid": "123"})
	acctExpect(t, "add", r, http.StatusBadRequest, "M_THREEPID_AUTH_FAILED")
	session := acctUIA(t, "add", acctDo(t, alice, http.MethodPost, threepidPath+"/add", map[string]any{"client_secret": "s3cr3t", "sid": "123"}), "", []string{"m.login.password"})
	r = acctDo(t, alice, http.MethodPost, threepidPath+"/add", map[string]any{"client_secret": "s3cr3t", "sid": "123", "auth": passwordAuth("alice", "wrong", session)})
	acctUIA(t, "add with a wrong password", r, "M_FORBIDDEN", []string{"m.login.password"})

	r = acctDo(t, alice, http.MethodGet, threepidPath, nil)
	if list, _ := r.Body["threepids"].([]any); len(list) != 0 {
		t.Fatalf("list after the attempts: %v", r.Body)
	}
}

func TestAccountRequestTokenRefused(t *testing.T) {
	ts := testserver.New(t)
	// Password reset by email or SMS: the endpoint's refusal, 403.
	acctCheckRequestToken(t, ts.Client(), passwordPath, http.StatusForbidden, "M_THREEPID_DENIED")
	// Adding an address: the endpoint defines "medium not supported".
	acctCheckRequestToken(t, ts.Client(), threepidPath, http.StatusBadRequest, "M_THREEPID_MEDIUM_NOT_SUPPORTED")
}

// Every endpoint that needs an access token refuses a request without one
// (M_MISSING_TOKEN) and one with a token the server never issued
// (M_UNKNOWN_TOKEN), before looking at the body.
func TestAccountEndpointsNeedToken(t *testing.T) {
	ts := testserver.New(t)
	ts.RegisterUser("alice")
	anonymous := ts.Client()
	forged, err := mautrix.NewClient(ts.URL, "@alice:localhost", "pat_forged")
	if err != nil {
		t.Fatal(err)
	}
	for _, ep := range []struct{ method, path string }{
		{http.MethodGet, "/_matrix/client/v3/account/whoami"},
		{http.MethodGet, "/_matrix/client/v3/capabilities"},
		{http.MethodPost, passwordPath},
		{http.MethodPost, deactivatePath},
		{http.MethodGet, threepidPath},
		{http.MethodPost, threepidPath},
		{http.MethodPost, threepidPath + "/add"},
		{http.MethodPost, threepidPath + "/bind"},
		{http.MethodPost, threepidPath + "/delete"},
		{http.MethodPost, threepidPath + "/unbind"},
	} {
		var body any
		if ep.method == http.MethodPost {
			body = map[string]any{"new_password": newPassword}
		}
		name := ep.method + " " + ep.path
		acctExpect(t, name+" without a token", acctDo(t, anonymous, ep.method, ep.path, body), http.StatusUnauthorized, "M_MISSING_TOKEN")
		acctExpect(t, name+" with a forged token", acctDo(t, forged, ep.method, ep.path, body), http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
	}
	if code := acctLoginErr(t, ts, "alice", testserver.DefaultPassword); code != "" {
		t.Fatalf("alice's password changed by unauthenticated requests: %s", code)
	}
}
