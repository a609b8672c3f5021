package clientapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/config"
	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
)

// Helpers of the session, device and profile tests carry a "sess" prefix:
// every test file of the package shares one namespace.

// sessResp is a raw response: status, headers and the JSON body.
type sessResp struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (r sessResp) str(key string) string {
	s, _ := r.body[key].(string)
	return s
}

// sessRaw sends body (a string sent as is, or a value sent as JSON, or nil
// for no body) with token (if any) and returns what came back.
func sessRaw(t *testing.T, ts *testserver.Server, token, method, path string, body any) sessResp {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, ts.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := sessResp{status: resp.StatusCode, header: resp.Header, raw: string(b)}
	if len(b) > 0 {
		if err := json.Unmarshal(b, &r.body); err != nil {
			t.Fatalf("%s %s: body %q is not a JSON object: %v", method, path, b, err)
		}
	}
	return r
}

// sessExpect checks a raw response's status and errcode ("" for success).
func sessExpect(t *testing.T, what string, r sessResp, status int, errcode string) {
	t.Helper()
	if r.status != status || r.str("errcode") != errcode {
		t.Fatalf("%s: got %d %s, want %d %s (body %s)", what, r.status, r.str("errcode"), status, errcode, r.raw)
	}
}

// sessErr checks that err is a Matrix error with status and errcode, and
// returns it.
func sessErr(t *testing.T, what string, err error, status int, errcode string) *mautrix.RespError {
	t.Helper()
	var he mautrix.HTTPError
	if !errors.As(err, &he) || he.Response == nil {
		t.Fatalf("%s: want %d %s, got %v", what, status, errcode, err)
	}
	resp := he.RespError
	if resp == nil {
		// A body without errcode, such as the first UIA answer.
		resp = &mautrix.RespError{}
	}
	if he.Response.StatusCode != status || resp.ErrCode != errcode {
		t.Fatalf("%s: got %d %s (%s), want %d %s", what, he.Response.StatusCode, resp.ErrCode, resp.Err, status, errcode)
	}
	return resp
}

// sessPassword is a password login request for user.
func sessPassword(user, password string) *mautrix.ReqLogin {
	return &mautrix.ReqLogin{
		Type:       mautrix.AuthTypePassword,
		Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: user},
		Password:   password,
	}
}

// sessClient is a client acting with an access token.
func sessClient(t *testing.T, ts *testserver.Server, userID id.UserID, token string) *mautrix.Client {
	t.Helper()
	c, err := mautrix.NewClient(ts.URL, userID, token)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// sessWorks tells whether an access token is accepted.
func sessWorks(t *testing.T, ts *testserver.Server, token string) bool {
	t.Helper()
	r := sessRaw(t, ts, token, "GET", "/_matrix/client/v3/devices", nil)
	switch {
	case r.status == 200:
		return true
	case r.status == 401 && r.str("errcode") == "M_UNKNOWN_TOKEN":
		return false
	}
	t.Fatalf("token check: unexpected %d %s", r.status, r.raw)
	return false
}

// sessAtClock runs the accounts service with its clock moved by d until
// the returned function is called.
func sessAtClock(ts *testserver.Server, d time.Duration) (restore func()) {
	acc := ts.Accounts()
	old := acc.Now
	acc.Now = func() time.Time { return time.Now().Add(d) }
	return func() { acc.Now = old }
}

var sessCtx = context.Background()

func TestLoginFlows(t *testing.T) {
	ts := testserver.New(t)
	for _, prefix := range []string{"/_matrix/client/v3", "/_matrix/client/r0"} {
		r := sessRaw(t, ts, "", "GET", prefix+"/login", nil)
		sessExpect(t, "GET /login", r, 200, "")
		flows, _ := r.body["flows"].([]any)
		types := map[string]map[string]any{}
		for _, f := range flows {
			m := f.(map[string]any)
			types[m["type"].(string)] = m
		}
		if len(types) != 2 || types["m.login.password"] == nil || types["m.login.token"] == nil {
			t.Fatalf("flows %s", r.raw)
		}
		if types["m.login.token"]["get_login_token"] != true {
			t.Fatalf("m.login.token lacks get_login_token: %s", r.raw)
		}
		if _, ok := types["m.login.password"]["get_login_token"]; ok {
			t.Fatalf("m.login.password has get_login_token: %s", r.raw)
		}
	}
}

func TestLoginWithPassword(t *testing.T) {
	ts := testserver.New(t)
	ts.RegisterUser("alice")
	alice := ts.Accounts().UserID("alice")
	for _, user := range []string{"alice", string(alice), "ALICE", "@Alice:" + ts.ServerName()} {
		c := ts.Client()
		resp, err := c.Login(sessCtx, sessPassword(user, testserver.DefaultPassword))
		if err != nil {
			t.Fatalf("login as %q: %v", user, err)
		}
		if resp.UserID != alice || resp.AccessToken == "" || resp.DeviceID == "" {
			t.Fatalf("login as %q: %+v", user, resp)
		}
		if resp.WellKnown == nil || resp.WellKnown.Homeserver.BaseURL != ts.ClientURL() {
			t.Fatalf("login as %q: well_known %+v, want base_url %s", user, resp.WellKnown, ts.ClientURL())
		}
		if resp.RefreshToken != "" || resp.ExpiresInMS != 0 {
			t.Fatalf("refresh token given unasked: %+v", resp)
		}
		if !sessWorks(t, ts, resp.AccessToken) {
			t.Fatalf("login as %q: token refused", user)
		}
	}

	// The deprecated top-level "user" field, the deprecated home_server in
	// the answer, and the device name.
	r := sessRaw(t, ts, "", "POST", "/_matrix/client/r0/login", map[string]any{
		"type": "m.login.password", "user": "alice", "password": testserver.DefaultPassword,
		"initial_device_display_name": "Old phone",
	})
	sessExpect(t, "legacy login", r, 200, "")
	if r.str("home_server") != ts.ServerName() || r.str("user_id") != string(alice) {
		t.Fatalf("legacy login answer %s", r.raw)
	}
	c := sessClient(t, ts, alice, r.str("access_token"))
	dev, err := c.GetDeviceInfo(sessCtx, id.DeviceID(r.str("device_id")))
	if err != nil || dev.DisplayName != "Old phone" {
		t.Fatalf("device after login: %+v %v", dev, err)
	}
	devices, err := c.GetDevicesInfo(sessCtx)
	if err != nil || len(devices.Devices) != 6 { // RegisterUser's, four logins above, this one
		t.Fatalf("devices after 6 logins: %+v %v", devices, err)
	}
}

func TestLoginFailures(t *testing.T) {
	ts := testserver.New(t)
	ts.RegisterUser("alice")
	ts.RegisterUser("gone")
	if err := ts.Accounts().Deactivate(sessCtx, ts.Accounts().UserID("gone"), false); err != nil {
		t.Fatal(err)
	}
	c := ts.Client()

	_, err := c.Login(sessCtx, sessPassword("alice", "wrong password"))
	wrong := sessErr(t, "wrong password", err, 403, "M_FORBIDDEN")
	// An unknown user gets exactly the same answer, so logins do not tell
	// which accounts exist.
	for _, user := range []string{"nobody", "@alice:other.example", "@nobody:" + ts.ServerName(), "not a user!"} {
		_, err = c.Login(sessCtx, sessPassword(user, testserver.DefaultPassword))
		if e := sessErr(t, "unknown user "+user, err, 403, "M_FORBIDDEN"); e.Err != wrong.Err {
			t.Fatalf("unknown user %q: message %q differs from wrong password's %q", user, e.Err, wrong.Err)
		}
	}
	_, err = c.Login(sessCtx, sessPassword("gone", testserver.DefaultPassword))
	sessErr(t, "deactivated", err, 403, "M_USER_DEACTIVATED")

	const path = "/_matrix/client/v3/login"
	good := map[string]any{"type": "m.login.password", "identifier": map[string]any{"type": "m.id.user", "user": "alice"}, "password": testserver.DefaultPassword}
	with := func(k string, v any) map[string]any {
		m := map[string]any{}
		for kk, vv := range good {
			m[kk] = vv
		}
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	for _, tc := range []struct {
		what    string
		body    any
		status  int
		errcode string
	}{
		{"unknown login type", with("type", "m.login.magic"), 400, "M_UNKNOWN"},
		{"no login type", with("type", nil), 400, "M_MISSING_PARAM"},
		{"unknown identifier type", with("identifier", map[string]any{"type": "m.id.telepathy", "user": "alice"}), 400, "M_UNKNOWN"},
		{"email identifier", with("identifier", map[string]any{"type": "m.id.thirdparty", "medium": "email", "address": "a@example.org"}), 400, "M_UNKNOWN"},
		{"phone identifier", with("identifier", map[string]any{"type": "m.id.phone", "country": "GB", "phone": "123"}), 400, "M_UNKNOWN"},
		{"legacy medium", map[string]any{"type": "m.login.password", "medium": "email", "address": "a@example.org", "password": "x"}, 400, "M_UNKNOWN"},
		{"identifier without user", with("identifier", map[string]any{"type": "m.id.user"}), 400, "M_MISSING_PARAM"},
		{"identifier without type", with("identifier", map[string]any{"user": "alice"}), 400, "M_MISSING_PARAM"},
		{"no identifier", with("identifier", nil), 400, "M_MISSING_PARAM"},
		{"no password", with("password", nil), 400, "M_MISSING_PARAM"},
		{"token login without token", map[string]any{"type": "m.login.token"}, 400, "M_MISSING_PARAM"},
		{"unknown login token", map[string]any{"type": "m.login.token", "token": "plt_nonsense"}, 403, "M_FORBIDDEN"},
		{"password of wrong type", with("password", 12345), 400, "M_BAD_JSON"},
		{"identifier of wrong type", with("identifier", "alice"), 400, "M_BAD_JSON"},
		{"refresh_token of wrong type", with("refresh_token", "yes"), 400, "M_BAD_JSON"},
		{"device_id too long", with("device_id", strings.Repeat("D", 513)), 400, "M_INVALID_PARAM"},
		{"array body", `[1]`, 400, "M_BAD_JSON"},
		{"malformed JSON", `{"type": "m.login.password",`, 400, "M_NOT_JSON"},
		{"empty body", ``, 400, "M_NOT_JSON"},
	} {
		sessExpect(t, tc.what, sessRaw(t, ts, "", "POST", path, tc.body), tc.status, tc.errcode)
	}
	// A long initial device name is cut, not refused.
	r := sessRaw(t, ts, "", "POST", path, with("initial_device_display_name", strings.Repeat("é", 300)))
	sessExpect(t, "long device name", r, 200, "")
	dev, err := sessClient(t, ts, "", r.str("access_token")).GetDeviceInfo(sessCtx, id.DeviceID(r.str("device_id")))
	if err != nil || dev.DisplayName != strings.Repeat("é", 100) {
		t.Fatalf("long device name stored as %q (%v)", dev.DisplayName, err)
	}
}

func TestLoginWithDeviceIDReplacesItsToken(t *testing.T) {
	ts := testserver.New(t)
	ts.RegisterUser("alice")
	login := func(name string) *mautrix.RespLogin {
		req := sessPassword("alice", testserver.DefaultPassword)
		req.DeviceID, req.InitialDeviceDisplayName = "MYLAPTOP", name
		resp, err := ts.Client().Login(sessCtx, req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.DeviceID != "MYLAPTOP" {
			t.Fatalf("device ID %q, want the one asked for", resp.DeviceID)
		}
		return resp
	}
	first := login("Laptop")
	second := login("Renamed")
	if sessWorks(t, ts, first.AccessToken) {
		t.Fatal("the device's old token still works after logging in again with its ID")
	}
	if !sessWorks(t, ts, second.AccessToken) {
		t.Fatal("new token refused")
	}
	c := sessClient(t, ts, second.UserID, second.AccessToken)
	devices, err := c.GetDevicesInfo(sessCtx)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, d := range devices.Devices {
		if d.DeviceID == "MYLAPTOP" {
			n++
			// initial_device_display_name is ignored for a known device.
			if d.DisplayName != "Laptop" {
				t.Fatalf("known device renamed to %q by a login", d.DisplayName)
			}
		}
	}
	if n != 1 || len(devices.Devices) != 2 {
		t.Fatalf("devices %+v", devices.Devices)
	}
}

func TestAccessTokenErrors(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	sessExpect(t, "no token", sessRaw(t, ts, "", "GET", "/_matrix/client/v3/devices", nil), 401, "M_MISSING_TOKEN")
	sessExpect(t, "forged token", sessRaw(t, ts, "pat_forged", "GET", "/_matrix/client/v3/devices", nil), 401, "M_UNKNOWN_TOKEN")
	r := sessRaw(t, ts, alice.AccessToken+"x", "POST", "/_matrix/client/v3/logout", nil)
	sessExpect(t, "logout with a forged token", r, 401, "M_UNKNOWN_TOKEN")
	if r.body["soft_logout"] == true {
		t.Fatal("a forged token is not a soft logout")
	}
	// Old clients put the token in the query string.
	sessExpect(t, "query token", sessRaw(t, ts, "", "GET", "/_matrix/client/v3/devices?access_token="+alice.AccessToken, nil), 200, "")
}

func TestLogout(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	phone := ts.Login("alice", testserver.DefaultPassword)
	if _, err := phone.Logout(sessCtx); err != nil {
		t.Fatal(err)
	}
	_, err := phone.GetDevicesInfo(sessCtx)
	sessErr(t, "after logout", err, 401, "M_UNKNOWN_TOKEN")
	_, err = phone.Logout(sessCtx)
	sessErr(t, "second logout", err, 401, "M_UNKNOWN_TOKEN")
	devices, err := alice.GetDevicesInfo(sessCtx)
	if err != nil {
		t.Fatal(err)
	}
	if len(devices.Devices) != 1 || devices.Devices[0].DeviceID != alice.DeviceID {
		t.Fatalf("logout left devices %+v", devices.Devices)
	}
	// A client that sends no body at all is fine too.
	laptop := ts.Login("alice", testserver.DefaultPassword)
	sessExpect(t, "logout without body", sessRaw(t, ts, laptop.AccessToken, "POST", "/_matrix/client/v3/logout", nil), 200, "")
	if sessWorks(t, ts, laptop.AccessToken) {
		t.Fatal("token works after logout")
	}
	sessExpect(t, "logout without token", sessRaw(t, ts, "", "POST", "/_matrix/client/v3/logout", nil), 401, "M_MISSING_TOKEN")
}

func TestLogoutAll(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	phone := ts.Login("alice", testserver.DefaultPassword)
	refreshing, err := ts.Client().Login(sessCtx, &mautrix.ReqLogin{
		Type: mautrix.AuthTypePassword, Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "alice"},
		Password: testserver.DefaultPassword, RefreshToken: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := phone.LogoutAll(sessCtx); err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{alice.AccessToken, phone.AccessToken, refreshing.AccessToken} {
		if sessWorks(t, ts, tok) {
			t.Fatal("a token survived logout/all")
		}
	}
	// Refresh tokens go with their devices.
	sessExpect(t, "refresh after logout/all", sessRaw(t, ts, "", "POST", "/_matrix/client/v3/refresh",
		map[string]string{"refresh_token": refreshing.RefreshToken}), 401, "M_UNKNOWN_TOKEN")
	if !sessWorks(t, ts, bob.AccessToken) {
		t.Fatal("another user's token died in alice's logout/all")
	}
	again := ts.Login("alice", testserver.DefaultPassword)
	devices, err := again.GetDevicesInfo(sessCtx)
	if err != nil || len(devices.Devices) != 1 {
		t.Fatalf("devices after logout/all and a new login: %+v %v", devices, err)
	}
}

func sessLoginRefreshing(t *testing.T, ts *testserver.Server, user string) *mautrix.RespLogin {
	t.Helper()
	req := sessPassword(user, testserver.DefaultPassword)
	req.RefreshToken = true
	resp, err := ts.Client().Login(sessCtx, req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.RefreshToken == "" || resp.ExpiresInMS != int64(ts.Config.Auth.AccessTokenLifetimeSeconds)*1000 {
		t.Fatalf("refreshing login answer %+v", resp)
	}
	return resp
}

func sessRefresh(t *testing.T, ts *testserver.Server, refreshToken string) sessResp {
	t.Helper()
	return sessRaw(t, ts, "", "POST", "/_matrix/client/v3/refresh", map[string]string{"refresh_token": refreshToken})
}

func TestRefresh(t *testing.T) {
	ts := testserver.New(t)
	ts.RegisterUser("alice")
	login := sessLoginRefreshing(t, ts, "alice")

	r1 := sessRefresh(t, ts, login.RefreshToken)
	sessExpect(t, "refresh", r1, 200, "")
	at1, rt1 := r1.str("access_token"), r1.str("refresh_token")
	if at1 == "" || rt1 == "" || rt1 == login.RefreshToken || r1.body["expires_in_ms"] != float64(3600*1000) {
		t.Fatalf("refresh answer %s", r1.raw)
	}
	if sessWorks(t, ts, login.AccessToken) {
		t.Fatal("the refreshed access token still works")
	}
	// The answer may have been lost: until the new pair is used, the old
	// refresh token still works, and replaces the unused pair.
	r2 := sessRefresh(t, ts, login.RefreshToken)
	sessExpect(t, "retried refresh", r2, 200, "")
	at2, rt2 := r2.str("access_token"), r2.str("refresh_token")
	if sessWorks(t, ts, at1) {
		t.Fatal("the pair a retried refresh replaced still works")
	}
	sessExpect(t, "replaced refresh token", sessRefresh(t, ts, rt1), 401, "M_UNKNOWN_TOKEN")
	// Using the new access token retires the old refresh token.
	if !sessWorks(t, ts, at2) {
		t.Fatal("refreshed token refused")
	}
	sessExpect(t, "old refresh token after the new one was used", sessRefresh(t, ts, login.RefreshToken), 401, "M_UNKNOWN_TOKEN")

	// Using the new refresh token (rather than the access token) retires
	// its predecessor too.
	r3 := sessRefresh(t, ts, rt2)
	sessExpect(t, "refresh again", r3, 200, "")
	r4 := sessRefresh(t, ts, r3.str("refresh_token"))
	sessExpect(t, "refresh with an unused refresh token", r4, 200, "")
	sessExpect(t, "refresh token whose successor was used", sessRefresh(t, ts, rt2), 401, "M_UNKNOWN_TOKEN")
	if !sessWorks(t, ts, r4.str("access_token")) {
		t.Fatal("latest token refused")
	}

	// The device stays the same throughout.
	c := sessClient(t, ts, login.UserID, r4.str("access_token"))
	if d, err := c.GetDeviceInfo(sessCtx, login.DeviceID); err != nil || d.DeviceID != login.DeviceID {
		t.Fatalf("device after refreshes: %+v %v", d, err)
	}

	for _, tc := range []struct {
		what    string
		body    any
		status  int
		errcode string
	}{
		{"unknown refresh token", map[string]string{"refresh_token": "prt_unknown"}, 401, "M_UNKNOWN_TOKEN"},
		{"an access token as refresh token", map[string]string{"refresh_token": r4.str("access_token")}, 401, "M_UNKNOWN_TOKEN"},
		{"missing refresh token", map[string]string{}, 400, "M_MISSING_PARAM"},
		{"refresh token of wrong type", map[string]int{"refresh_token": 5}, 400, "M_BAD_JSON"},
		{"malformed JSON", `{"refresh_token"`, 400, "M_NOT_JSON"},
	} {
		sessExpect(t, tc.what, sessRaw(t, ts, "", "POST", "/_matrix/client/v3/refresh", tc.body), tc.status, tc.errcode)
	}
}

func TestSoftLogoutOnExpiredToken(t *testing.T) {
	ts := testserver.New(t)
	ts.RegisterUser("alice")
	login := sessLoginRefreshing(t, ts, "alice")
	lifetime := time.Duration(ts.Config.Auth.AccessTokenLifetimeSeconds) * time.Second

	restore := sessAtClock(ts, lifetime+time.Minute)
	defer restore()
	r := sessRaw(t, ts, login.AccessToken, "GET", "/_matrix/client/v3/devices", nil)
	sessExpect(t, "expired token", r, 401, "M_UNKNOWN_TOKEN")
	if r.body["soft_logout"] != true {
		t.Fatalf("expired token is not a soft logout: %s", r.raw)
	}
	// The client refreshes and carries on with the same device.
	rr := sessRefresh(t, ts, login.RefreshToken)
	sessExpect(t, "refresh after soft logout", rr, 200, "")
	if !sessWorks(t, ts, rr.str("access_token")) {
		t.Fatal("refreshed token refused")
	}
	restore()

	// Tokens of clients that cannot refresh never expire.
	plain := ts.Login("alice", testserver.DefaultPassword)
	defer sessAtClock(ts, 365*24*time.Hour)()
	if !sessWorks(t, ts, plain.AccessToken) {
		t.Fatal("a token without refresh token expired")
	}
}

// sessPasswordAuth is the m.login.password UIA stage for user.
func sessPasswordAuth(user, password, session string) map[string]any {
	return map[string]any{
		"type": "m.login.password", "session": session, "password": password,
		"identifier": map[string]any{"type": "m.id.user", "user": user},
	}
}

func TestLoginToken(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	const path = "/_matrix/client/v1/login/get_token"

	// UIA first: the flows, then a wrong password, then the right one.
	r := sessRaw(t, ts, alice.AccessToken, "POST", path, map[string]any{})
	sessExpect(t, "get_token without auth", r, 401, "")
	if !strings.Contains(r.raw, `"flows":[{"stages":["m.login.password"]}]`) || r.str("session") == "" {
		t.Fatalf("UIA answer %s", r.raw)
	}
	session := r.str("session")
	r = sessRaw(t, ts, alice.AccessToken, "POST", path, map[string]any{"auth": sessPasswordAuth("alice", "wrong", session)})
	sessExpect(t, "get_token with a wrong password", r, 401, "M_FORBIDDEN")
	// Bob's password does not get alice a token.
	r = sessRaw(t, ts, alice.AccessToken, "POST", path, map[string]any{"auth": sessPasswordAuth("bob", testserver.DefaultPassword, session)})
	sessExpect(t, "get_token as someone else", r, 403, "M_FORBIDDEN")
	r = sessRaw(t, ts, alice.AccessToken, "POST", path, map[string]any{"auth": sessPasswordAuth("alice", testserver.DefaultPassword, session)})
	sessExpect(t, "get_token", r, 200, "")
	if r.body["expires_in_ms"] != float64(ts.Config.Auth.LoginTokenLifetimeSeconds*1000) || !strings.HasPrefix(r.str("login_token"), "plt_") {
		t.Fatalf("get_token answer %s", r.raw)
	}
	token := r.str("login_token")
	// The session is spent: replaying the completed auth does not mint
	// another token (the spec says to re-prompt every time).
	r = sessRaw(t, ts, alice.AccessToken, "POST", path, map[string]any{"auth": sessPasswordAuth("alice", testserver.DefaultPassword, session)})
	sessExpect(t, "replayed UIA session", r, 400, "M_UNKNOWN")
	getToken := func(c *mautrix.Client, user string) string {
		t.Helper()
		r := sessRaw(t, ts, c.AccessToken, "POST", path, map[string]any{})
		r = sessRaw(t, ts, c.AccessToken, "POST", path, map[string]any{"auth": sessPasswordAuth(user, testserver.DefaultPassword, r.str("session"))})
		sessExpect(t, "get_token", r, 200, "")
		return r.str("login_token")
	}

	tokenLogin := &mautrix.ReqLogin{Type: mautrix.AuthTypeToken, Token: token, InitialDeviceDisplayName: "Scanned QR"}
	resp, err := ts.Client().Login(sessCtx, tokenLogin)
	if err != nil {
		t.Fatal(err)
	}
	if resp.UserID != alice.UserID || resp.DeviceID == alice.DeviceID || !sessWorks(t, ts, resp.AccessToken) {
		t.Fatalf("token login %+v", resp)
	}
	_, err = ts.Client().Login(sessCtx, tokenLogin)
	sessErr(t, "second use of a login token", err, 403, "M_FORBIDDEN")

	// An expired token is refused, and stays spent.
	expiring := getToken(alice, "alice")
	restore := sessAtClock(ts, time.Duration(ts.Config.Auth.LoginTokenLifetimeSeconds+1)*time.Second)
	_, err = ts.Client().Login(sessCtx, &mautrix.ReqLogin{Type: mautrix.AuthTypeToken, Token: expiring})
	restore()
	sessErr(t, "expired login token", err, 403, "M_FORBIDDEN")
	_, err = ts.Client().Login(sessCtx, &mautrix.ReqLogin{Type: mautrix.AuthTypeToken, Token: expiring})
	sessErr(t, "expired login token, once the clock is back", err, 403, "M_FORBIDDEN")

	// Login tokens are rate-limited strictly: a third within the minute
	// works, a fourth does not, and bob is not affected.
	getToken(alice, "alice")
	r = sessRaw(t, ts, alice.AccessToken, "POST", path, map[string]any{})
	sessExpect(t, "fourth get_token", r, 429, "M_LIMIT_EXCEEDED")
	if ms, _ := r.body["retry_after_ms"].(float64); ms <= 0 || ms > 60000 {
		t.Fatalf("retry_after_ms %v", r.body["retry_after_ms"])
	}
	getToken(bob, "bob")

	sessExpect(t, "get_token without access token", sessRaw(t, ts, "", "POST", path, map[string]any{}), 401, "M_MISSING_TOKEN")
	sessExpect(t, "get_token with malformed JSON", sessRaw(t, ts, bob.AccessToken, "POST", path, `{"auth":`), 400, "M_NOT_JSON")
	sessExpect(t, "get_token with auth of wrong type", sessRaw(t, ts, bob.AccessToken, "POST", path, `{"auth": 5}`), 400, "M_BAD_JSON")
}

// Strangers' wrong guesses exhaust the account's failure budget, but not
// for an address the account's devices were last seen from: the owner
// signs in again from home while the guesser stays locked out. Someone
// guessing from the owner's address has that address's own budget.
func TestLoginLockoutSparesKnownAddress(t *testing.T) {
	ts := testserver.New(t, func(c *config.Config) {
		c.RateLimits.LoginPerAccount = config.RateLimit{PerSecond: 0.001, Burst: 3}
	})
	ts.RegisterUser("alice")
	ts.Login("alice", testserver.DefaultPassword) // from 127.0.0.1: alice's device was seen there
	stranger := ts.Client()
	stranger.Client = &http.Client{Transport: &http.Transport{
		DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}).DialContext,
	}}
	for range 3 {
		_, err := stranger.Login(sessCtx, sessPassword("alice", "guess"))
		sessErr(t, "stranger's guess", err, 403, "M_FORBIDDEN")
	}
	_, err := stranger.Login(sessCtx, sessPassword("alice", testserver.DefaultPassword))
	sessErr(t, "stranger after the budget", err, 429, "M_LIMIT_EXCEEDED")
	// The owner, from where they use the account.
	if _, err := ts.Client().Login(sessCtx, sessPassword("alice", testserver.DefaultPassword)); err != nil {
		t.Fatalf("owner locked out by a stranger: %v", err)
	}
	// Guesses from the owner's address are limited too.
	for range 3 {
		_, err := ts.Client().Login(sessCtx, sessPassword("alice", "guess"))
		sessErr(t, "guess from the owner's address", err, 403, "M_FORBIDDEN")
	}
	_, err = ts.Client().Login(sessCtx, sessPassword("alice", testserver.DefaultPassword))
	sessErr(t, "owner's address after its budget", err, 429, "M_LIMIT_EXCEEDED")
}

func TestLoginRateLimits(t *testing.T) {
	ts := testserver.New(t, func(c *config.Config) {
		c.RateLimits.LoginPerAccount = config.RateLimit{PerSecond: 0.001, Burst: 3}
	})
	ts.RegisterUser("alice")
	ts.RegisterUser("bob")
	c := ts.Client()
	for range 3 {
		_, err := c.Login(sessCtx, sessPassword("alice", "guess"))
		sessErr(t, "failed login", err, 403, "M_FORBIDDEN")
	}
	// The account is now limited: even the right password is refused,
	// so a guesser cannot tell when they found it.
	for _, password := range []string{"guess", testserver.DefaultPassword} {
		r := sessRaw(t, ts, "", "POST", "/_matrix/client/v3/login", sessPassword("alice", password))
		sessExpect(t, "limited login", r, 429, "M_LIMIT_EXCEEDED")
		ms, _ := r.body["retry_after_ms"].(float64)
		if ms < 1 || ms > 1000*1000 {
			t.Fatalf("retry_after_ms %v", r.body["retry_after_ms"])
		}
		if r.header.Get("Retry-After") == "" {
			t.Fatal("no Retry-After header")
		}
	}
	// Other accounts are not limited by alice's failures.
	if _, err := c.Login(sessCtx, sessPassword("bob", testserver.DefaultPassword)); err != nil {
		t.Fatal(err)
	}
	// Successful logins do not count against an account.
	for range 5 {
		if _, err := c.Login(sessCtx, sessPassword("bob", testserver.DefaultPassword)); err != nil {
			t.Fatal(err)
		}
	}

	// The per-address limit counts every attempt, right or wrong.
	ts2 := testserver.New(t, func(c *config.Config) {
		c.RateLimits.LoginPerAddress = config.RateLimit{PerSecond: 0.001, Burst: 2}
	})
	ts2.RegisterUser("carol")
	c2 := ts2.Client()
	for range 2 {
		if _, err := c2.Login(sessCtx, sessPassword("carol", testserver.DefaultPassword)); err != nil {
			t.Fatal(err)
		}
	}
	_, err := c2.Login(sessCtx, sessPassword("carol", testserver.DefaultPassword))
	sessErr(t, "address limit", err, 429, "M_LIMIT_EXCEEDED")
	_, err = c2.Login(sessCtx, &mautrix.ReqLogin{Type: mautrix.AuthTypeToken, Token: "plt_x"})
	sessErr(t, "address limit on token login", err, 429, "M_LIMIT_EXCEEDED")
}
