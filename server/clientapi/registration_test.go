package clientapi_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"

	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/config"
	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
	"github.com/palpo-im/palpo-desktop/server/storage"
)

// acctResp is one HTTP answer as a client sees it.
type acctResp struct {
	Status int
	Header http.Header
	Body   map[string]any
}

func (r acctResp) errcode() string {
	s, _ := r.Body["errcode"].(string)
	return s
}

// acctDo sends a request with c's credentials (if any) and returns the
// answer whatever its status. body is nil (GET: none; POST: {}), a string
// (sent as it is, for malformed JSON) or a value sent as JSON.
func acctDo(t *testing.T, c *mautrix.Client, method, path string, body any) acctResp {
	t.Helper()
	r, err := acctTry(t, c, method, path, body)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// acctTry is acctDo for other goroutines than the test's: it returns
// failures instead of ending the test.
func acctTry(t *testing.T, c *mautrix.Client, method, path string, body any) (acctResp, error) {
	req := mautrix.FullRequest{Method: method, URL: c.HomeserverURL.String() + path}
	switch b := body.(type) {
	case nil:
	case string:
		req.RequestBytes = []byte(b)
		req.Headers = http.Header{"Content-Type": {"application/json"}}
	default:
		req.RequestJSON = b
	}
	data, res, err := c.MakeFullRequestWithResp(t.Context(), req)
	if res == nil {
		return acctResp{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	out := acctResp{Status: res.StatusCode, Header: res.Header}
	if len(data) > 0 {
		if err := json.Unmarshal(data, &out.Body); err != nil {
			return out, fmt.Errorf("%s %s: answer is not a JSON object: %s", method, path, data)
		}
	}
	return out, nil
}

// acctExpect checks an answer's status and errcode ("" for none).
func acctExpect(t *testing.T, what string, r acctResp, status int, errcode string) {
	t.Helper()
	if r.Status != status || r.errcode() != errcode {
		t.Fatalf("%s: got %d %q, want %d %q (body %v)", what, r.Status, r.errcode(), status, errcode, r.Body)
	}
}

// acctErr returns the status and errcode of a mautrix call's error.
func acctErr(t *testing.T, err error) (int, string) {
	t.Helper()
	var httpErr mautrix.HTTPError
	if !errors.As(err, &httpErr) || httpErr.Response == nil {
		t.Fatalf("want an HTTP error answer, got %v", err)
	}
	code := ""
	if httpErr.RespError != nil {
		code = httpErr.RespError.ErrCode
	}
	return httpErr.Response.StatusCode, code
}

// acctUIA checks a user-interactive auth answer: 401 with the given flows,
// params and a session, plus errcode after a failed stage. It returns the
// session.
func acctUIA(t *testing.T, what string, r acctResp, errcode string, flows ...[]string) string {
	t.Helper()
	acctExpect(t, what, r, http.StatusUnauthorized, errcode)
	raw, _ := json.Marshal(r.Body["flows"])
	var got []struct {
		Stages []string `json:"stages"`
	}
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatalf("%s: flows %s: %v", what, raw, err)
	}
	var gotFlows [][]string
	for _, f := range got {
		gotFlows = append(gotFlows, f.Stages)
	}
	if !slices.EqualFunc(gotFlows, flows, slices.Equal) {
		t.Fatalf("%s: flows %v, want %v", what, gotFlows, flows)
	}
	if _, ok := r.Body["params"].(map[string]any); !ok {
		t.Fatalf("%s: no params object in %v", what, r.Body)
	}
	session, _ := r.Body["session"].(string)
	if session == "" {
		t.Fatalf("%s: no session in %v", what, r.Body)
	}
	return session
}

func openRegistration(c *config.Config) { c.Registration.Mode = config.RegistrationOpen }

func closedRegistration(c *config.Config) { c.Registration.Mode = config.RegistrationClosed }

const (
	registerPath = "/_matrix/client/v3/register"
	validityPath = "/_matrix/client/v1/register/m.login.registration_token/validity"
	goodPassword = "a long enough password"
)

func createRegToken(t *testing.T, ts *testserver.Server, token string, uses *int, expiry *int64) {
	t.Helper()
	err := ts.DB().CreateRegistrationToken(t.Context(), &storage.RegistrationToken{
		Token: token, UsesAllowed: uses, ExpiryTime: expiry, CreatedTS: time.Now().UnixMilli(),
	})
	if err != nil {
		t.Fatal(err)
	}
}

func tokenValid(t *testing.T, ts *testserver.Server, token string) bool {
	t.Helper()
	r := acctDo(t, ts.Client(), http.MethodGet, validityPath+"?token="+token, nil)
	acctExpect(t, "validity", r, http.StatusOK, "")
	v, ok := r.Body["valid"].(bool)
	if !ok {
		t.Fatalf("validity: no boolean valid in %v", r.Body)
	}
	return v
}

func TestRegisterOpenDummyThenLogin(t *testing.T) {
	ts := testserver.New(t, openRegistration)
	c := ts.Client()

	// A first request without auth learns the flows.
	r := acctDo(t, c, http.MethodPost, registerPath, map[string]any{"username": "alice", "password": goodPassword})
	acctUIA(t, "no auth", r, "", []string{"m.login.dummy"}, []string{"m.login.registration_token"})

	res, err := c.RegisterDummy(t.Context(), &mautrix.ReqRegister[any]{
		Username: "alice", Password: goodPassword, InitialDeviceDisplayName: "Alice's phone",
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.UserID != "@alice:localhost" || res.AccessToken == "" || res.DeviceID == "" {
		t.Fatalf("register answered %+v", res)
	}
	if res.RefreshToken != "" || res.ExpiresInMS != 0 {
		t.Fatalf("refresh token without asking: %+v", res)
	}
	dev, err := ts.Accounts().Device(t.Context(), res.UserID, res.DeviceID)
	if err != nil || dev.DisplayName != "Alice's phone" {
		t.Fatalf("device %+v, %v", dev, err)
	}

	authed, _ := mautrix.NewClient(ts.URL, res.UserID, res.AccessToken)
	who, err := authed.Whoami(t.Context())
	if err != nil || who.UserID != res.UserID || who.DeviceID != res.DeviceID {
		t.Fatalf("whoami %+v, %v", who, err)
	}
	login := ts.Login("alice", goodPassword)
	if login.UserID != "@alice:localhost" {
		t.Fatalf("login as %s", login.UserID)
	}

	if _, err := c.RegisterAvailable(t.Context(), "alice"); err == nil {
		t.Fatal("alice still available after registering")
	}
}

func TestRegisterGeneratesUserNameAndDevice(t *testing.T) {
	ts := testserver.New(t, openRegistration)
	res, err := ts.Client().RegisterDummy(t.Context(), &mautrix.ReqRegister[any]{Password: goodPassword, DeviceID: "MYDEVICE"})
	if err != nil {
		t.Fatal(err)
	}
	localpart, server, err := res.UserID.Parse()
	if err != nil || server != "localhost" || strings.Trim(localpart, "0123456789") != "" || localpart == "" {
		t.Fatalf("generated user ID %s", res.UserID)
	}
	if res.DeviceID != "MYDEVICE" {
		t.Fatalf("device %s, want the one asked for", res.DeviceID)
	}
}

func TestRegisterTokenFlow(t *testing.T) {
	ts := testserver.New(t) // token mode is the default
	c := ts.Client()
	two := 2
	createRegToken(t, ts, "invite-2", &two, nil)
	body := map[string]any{"username": "carol", "password": goodPassword}

	// Element's flow: first POST without auth gets the flows.
	r := acctDo(t, c, http.MethodPost, registerPath, body)
	session := acctUIA(t, "no auth", r, "", []string{"m.login.registration_token"})

	// m.login.dummy is not offered in token mode.
	body["auth"] = map[string]any{"type": "m.login.dummy", "session": session}
	r = acctDo(t, c, http.MethodPost, registerPath, body)
	acctUIA(t, "dummy in token mode", r, "M_UNRECOGNIZED", []string{"m.login.registration_token"})

	// A wrong token fails the stage: 401 with the flows and M_FORBIDDEN.
	body["auth"] = map[string]any{"type": "m.login.registration_token", "token": "wrong", "session": session}
	r = acctDo(t, c, http.MethodPost, registerPath, body)
	if s := acctUIA(t, "wrong token", r, "M_FORBIDDEN", []string{"m.login.registration_token"}); s != session {
		t.Fatalf("session changed from %s to %s", session, s)
	}

	// A token stage without a token.
	body["auth"] = map[string]any{"type": "m.login.registration_token", "session": session}
	r = acctDo(t, c, http.MethodPost, registerPath, body)
	acctUIA(t, "no token", r, "M_MISSING_PARAM", []string{"m.login.registration_token"})

	if !tokenValid(t, ts, "invite-2") {
		t.Fatal("fresh token not valid")
	}
	body["auth"] = map[string]any{"type": "m.login.registration_token", "token": "invite-2", "session": session}
	r = acctDo(t, c, http.MethodPost, registerPath, body)
	acctExpect(t, "valid token", r, http.StatusOK, "")
	if r.Body["user_id"] != "@carol:localhost" || r.Body["access_token"] == nil || r.Body["device_id"] == nil {
		t.Fatalf("register answered %v", r.Body)
	}
	tok, err := ts.DB().GetRegistrationToken(t.Context(), "invite-2")
	if err != nil || tok.Completed != 1 {
		t.Fatalf("token after one registration: %+v, %v", tok, err)
	}

	// The finished session cannot be replayed.
	body["username"] = "carol2"
	r = acctDo(t, c, http.MethodPost, registerPath, body)
	acctExpect(t, "replayed session", r, http.StatusBadRequest, "M_UNKNOWN")
	if !tokenValid(t, ts, "invite-2") {
		t.Fatal("token with one use left not valid")
	}
}

// registerWithToken runs the two-request registration with a token and
// returns the final answer.
func registerWithToken(t *testing.T, c *mautrix.Client, username, token string) acctResp {
	t.Helper()
	body := map[string]any{"username": username, "password": goodPassword}
	r := acctDo(t, c, http.MethodPost, registerPath, body)
	session := acctUIA(t, "no auth", r, "", []string{"m.login.registration_token"})
	body["auth"] = map[string]any{"type": "m.login.registration_token", "token": token, "session": session}
	return acctDo(t, c, http.MethodPost, registerPath, body)
}

func TestRegisterTokenUsedUp(t *testing.T) {
	ts := testserver.New(t)
	one := 1
	createRegToken(t, ts, "once", &one, nil)
	acctExpect(t, "first use", registerWithToken(t, ts.Client(), "dave", "once"), http.StatusOK, "")
	if tokenValid(t, ts, "once") {
		t.Fatal("used-up token still valid")
	}
	r := registerWithToken(t, ts.Client(), "erin", "once")
	acctUIA(t, "second use", r, "M_FORBIDDEN", []string{"m.login.registration_token"})
	if tok, _ := ts.DB().GetRegistrationToken(t.Context(), "once"); tok.Completed != 1 {
		t.Fatalf("completed = %d", tok.Completed)
	}
	if tokenValid(t, ts, "no-such-token") {
		t.Fatal("unknown token valid")
	}
}

func TestRegisterTokenExpired(t *testing.T) {
	ts := testserver.New(t)
	past := time.Now().Add(-time.Minute).UnixMilli()
	future := time.Now().Add(time.Hour).UnixMilli()
	createRegToken(t, ts, "old", nil, &past)
	createRegToken(t, ts, "fresh", nil, &future)
	if tokenValid(t, ts, "old") {
		t.Fatal("expired token valid")
	}
	acctUIA(t, "expired", registerWithToken(t, ts.Client(), "frank", "old"), "M_FORBIDDEN", []string{"m.login.registration_token"})
	if !tokenValid(t, ts, "fresh") {
		t.Fatal("unexpired token not valid")
	}
	acctExpect(t, "unexpired", registerWithToken(t, ts.Client(), "frank", "fresh"), http.StatusOK, "")
}

// Two people racing for the last use of a token: only one registers.
func TestRegisterTokenRace(t *testing.T) {
	ts := testserver.New(t)
	one := 1
	createRegToken(t, ts, "last", &one, nil)
	const n = 4
	var wg sync.WaitGroup
	results := make([]acctResp, n)
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		c := ts.Client()
		body := map[string]any{"username": "racer" + string(rune('a'+i)), "password": goodPassword}
		session := acctUIA(t, "no auth", acctDo(t, c, http.MethodPost, registerPath, body), "", []string{"m.login.registration_token"})
		body["auth"] = map[string]any{"type": "m.login.registration_token", "token": "last", "session": session}
		wg.Go(func() {
			<-start
			results[i], errs[i] = acctTry(t, c, http.MethodPost, registerPath, body)
		})
	}
	close(start)
	wg.Wait()
	won := 0
	for i, r := range results {
		switch {
		case errs[i] != nil:
			t.Errorf("racer %d: %v", i, errs[i])
		case r.Status == http.StatusOK:
			won++
		case r.Status == http.StatusUnauthorized && r.errcode() == "M_FORBIDDEN",
			r.Status == http.StatusForbidden && r.errcode() == "M_FORBIDDEN":
		default:
			t.Errorf("racer %d: %d %v", i, r.Status, r.Body)
		}
	}
	if won != 1 {
		t.Fatalf("%d registrations with a one-use token", won)
	}
	if tok, _ := ts.DB().GetRegistrationToken(t.Context(), "last"); tok.Completed != 1 {
		t.Fatalf("completed = %d", tok.Completed)
	}
}

// A session that passed the token stage holds a use of it until it
// registers, so the last use is not promised to two people.
func TestRegisterTokenHeldBySession(t *testing.T) {
	ts := testserver.New(t)
	one := 1
	createRegToken(t, ts, "held", &one, nil)
	c := ts.Client()
	// No password: the token stage passes, then the registration stops.
	body := map[string]any{"username": "gina"}
	session := acctUIA(t, "no auth", acctDo(t, c, http.MethodPost, registerPath, body), "", []string{"m.login.registration_token"})
	body["auth"] = map[string]any{"type": "m.login.registration_token", "token": "held", "session": session}
	acctExpect(t, "missing password after UIA", acctDo(t, c, http.MethodPost, registerPath, body), http.StatusBadRequest, "M_MISSING_PARAM")

	if tokenValid(t, ts, "held") {
		t.Fatal("token held by a session reported valid")
	}
	acctUIA(t, "other session", registerWithToken(t, ts.Client(), "hank", "held"), "M_FORBIDDEN", []string{"m.login.registration_token"})

	// The holder finishes with a password (the completed session is reused).
	body["password"] = goodPassword
	body["auth"] = map[string]any{"session": session}
	acctExpect(t, "holder registers", acctDo(t, c, http.MethodPost, registerPath, body), http.StatusOK, "")
}

func TestRegisterMissingPasswordAfterAuth(t *testing.T) {
	ts := testserver.New(t, openRegistration)
	c := ts.Client()
	r := acctDo(t, c, http.MethodPost, registerPath, map[string]any{"username": "ivan"})
	session := acctUIA(t, "no auth", r, "", []string{"m.login.dummy"}, []string{"m.login.registration_token"})
	r = acctDo(t, c, http.MethodPost, registerPath, map[string]any{"username": "ivan", "auth": map[string]any{"type": "m.login.dummy", "session": session}})
	acctExpect(t, "no password", r, http.StatusBadRequest, "M_MISSING_PARAM")
	if _, err := c.RegisterAvailable(t.Context(), "ivan"); err != nil {
		t.Fatalf("ivan registered without a password: %v", err)
	}
}

func TestRegisterClosed(t *testing.T) {
	ts := testserver.New(t, closedRegistration)
	c := ts.Client()
	r := acctDo(t, c, http.MethodPost, registerPath, map[string]any{"username": "jack", "password": goodPassword})
	acctExpect(t, "register", r, http.StatusForbidden, "M_FORBIDDEN")
	if _, err := c.RegisterDummy(t.Context(), &mautrix.ReqRegister[any]{Username: "jack", Password: goodPassword}); err == nil {
		t.Fatal("dummy registration worked on a closed server")
	}
	acctExpect(t, "available", acctDo(t, c, http.MethodGet, registerPath+"/available?username=jack", nil), http.StatusForbidden, "M_FORBIDDEN")
	acctExpect(t, "validity", acctDo(t, c, http.MethodGet, validityPath+"?token=x", nil), http.StatusForbidden, "M_FORBIDDEN")
}

func TestRegisterUserNames(t *testing.T) {
	ts := testserver.New(t, openRegistration, func(c *config.Config) {
		c.Registration.ReservedUsernames = []string{"^admin", "^support$"}
	})
	ts.RegisterUser("taken")
	c := ts.Client()
	for _, tc := range []struct {
		name, username, errcode string
	}{
		{"space", "al ice", "M_INVALID_USERNAME"},
		{"dollar", "ali$ce", "M_INVALID_USERNAME"},
		{"colon", "ali:ce", "M_INVALID_USERNAME"},
		{"non-ascii", "alicé", "M_INVALID_USERNAME"},
		{"leading underscore", "_alice", "M_INVALID_USERNAME"},
		{"all digits", "12345", "M_INVALID_USERNAME"},
		{"too long", strings.Repeat("a", 250), "M_INVALID_USERNAME"},
		{"taken", "taken", "M_USER_IN_USE"},
		{"reserved", "administrator", "M_EXCLUSIVE"},
		{"reserved exact", "support", "M_EXCLUSIVE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.RegisterAvailable(t.Context(), tc.username)
			if status, code := acctErr(t, err); status != http.StatusBadRequest || code != tc.errcode {
				t.Fatalf("available: %d %s, want 400 %s", status, code, tc.errcode)
			}
			// /register refuses it before user-interactive auth.
			r := acctDo(t, c, http.MethodPost, registerPath, map[string]any{"username": tc.username, "password": goodPassword})
			acctExpect(t, "register", r, http.StatusBadRequest, tc.errcode)
		})
	}
	for _, ok := range []string{"alice", "a.b_c=d-e/f+g", "supporter", "x1", strings.Repeat("a", 200)} {
		if _, err := c.RegisterAvailable(t.Context(), ok); err != nil {
			t.Errorf("%q not available: %v", ok, err)
		}
	}
	acctExpect(t, "empty user name", acctDo(t, c, http.MethodPost, registerPath, map[string]any{"username": "", "password": goodPassword}), http.StatusBadRequest, "M_INVALID_USERNAME")
	acctExpect(t, "available without username", acctDo(t, c, http.MethodGet, registerPath+"/available", nil), http.StatusBadRequest, "M_MISSING_PARAM")
}

// /register lower-cases the user name asked for, as Synapse does, and login
// finds the account whatever the case; /register/available, like
// Synapse's, still calls a name with capitals invalid.
func TestRegisterLowerCasesUserName(t *testing.T) {
	ts := testserver.New(t, openRegistration)
	ts.RegisterUser("taken")
	c := ts.Client()
	res, err := c.RegisterDummy(t.Context(), &mautrix.ReqRegister[any]{Username: "NoRa", Password: goodPassword})
	if err != nil {
		t.Fatal(err)
	}
	if res.UserID != "@nora:localhost" {
		t.Fatalf("registered %s", res.UserID)
	}
	for _, name := range []string{"NORA", "@NoRa:localhost", "nora"} {
		if code := acctLoginErr(t, ts, name, goodPassword); code != "" {
			t.Fatalf("login as %s: %s", name, code)
		}
	}
	r := acctDo(t, c, http.MethodPost, registerPath, map[string]any{"username": "Taken", "password": goodPassword})
	acctExpect(t, "taken in capitals", r, http.StatusBadRequest, "M_USER_IN_USE")
	r = acctDo(t, c, http.MethodPost, registerPath, map[string]any{"username": "\u212Aate", "password": goodPassword})
	acctExpect(t, "Kelvin sign", r, http.StatusBadRequest, "M_INVALID_USERNAME")
	_, err = c.RegisterAvailable(t.Context(), "Alice")
	if status, code := acctErr(t, err); status != http.StatusBadRequest || code != "M_INVALID_USERNAME" {
		t.Fatalf("available with capitals: %d %s", status, code)
	}
}

// A body that is not UTF-8 is not JSON: 400 M_NOT_JSON before any
// user-interactive auth, as Synapse answers.
func TestRegisterBadUTF8(t *testing.T) {
	ts := testserver.New(t, openRegistration)
	for _, body := range []string{"{\"username\": \"n\xffra\", \"password\": \"a long enough password\"}", "{\"x\xc3\": 1}"} {
		r := acctDo(t, ts.Client(), http.MethodPost, registerPath, body)
		acctExpect(t, "bad UTF-8", r, http.StatusBadRequest, "M_NOT_JSON")
	}
}

func TestRegisterWeakPassword(t *testing.T) {
	ts := testserver.New(t, openRegistration)
	for _, pw := range []string{"", "short", strings.Repeat("x", 513)} {
		r := acctDo(t, ts.Client(), http.MethodPost, registerPath, map[string]any{"username": "kate", "password": pw})
		acctExpect(t, "weak password", r, http.StatusBadRequest, "M_WEAK_PASSWORD")
	}
}

func TestRegisterInhibitLogin(t *testing.T) {
	ts := testserver.New(t, openRegistration)
	res, err := ts.Client().RegisterDummy(t.Context(), &mautrix.ReqRegister[any]{Username: "liam", Password: goodPassword, InhibitLogin: true, RefreshToken: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.UserID != "@liam:localhost" || res.AccessToken != "" || res.DeviceID != "" || res.RefreshToken != "" || res.ExpiresInMS != 0 {
		t.Fatalf("inhibit_login answered %+v", res)
	}
	devs, err := ts.Accounts().Devices(t.Context(), res.UserID)
	if err != nil || len(devs) != 0 {
		t.Fatalf("devices after inhibit_login: %v, %v", devs, err)
	}
	ts.Login("liam", goodPassword)
}

func TestRegisterRefreshToken(t *testing.T) {
	ts := testserver.New(t, openRegistration)
	res, err := ts.Client().RegisterDummy(t.Context(), &mautrix.ReqRegister[any]{Username: "mia", Password: goodPassword, RefreshToken: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.AccessToken == "" || res.RefreshToken == "" || res.ExpiresInMS != int64(ts.Config.Auth.AccessTokenLifetimeSeconds)*1000 {
		t.Fatalf("refresh registration answered %+v", res)
	}
	authed, _ := mautrix.NewClient(ts.URL, res.UserID, res.AccessToken)
	if _, err := authed.Whoami(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func TestRegisterKind(t *testing.T) {
	ts := testserver.New(t, openRegistration)
	_, _, err := ts.Client().RegisterGuest(t.Context(), &mautrix.ReqRegister[any]{})
	if status, code := acctErr(t, err); status != http.StatusForbidden || code != "M_GUEST_ACCESS_FORBIDDEN" {
		t.Fatalf("guest: %d %s", status, code)
	}
	r := acctDo(t, ts.Client(), http.MethodPost, registerPath+"?kind=robot", map[string]any{})
	acctExpect(t, "unknown kind", r, http.StatusBadRequest, "M_INVALID_PARAM")
	r = acctDo(t, ts.Client(), http.MethodPost, registerPath+"?kind=user", map[string]any{})
	acctUIA(t, "kind=user", r, "", []string{"m.login.dummy"}, []string{"m.login.registration_token"})
}

func TestRegisterBadInput(t *testing.T) {
	ts := testserver.New(t, openRegistration)
	c := ts.Client()
	for _, tc := range []struct {
		name, body, errcode string
	}{
		{"not JSON", `{"username": "nora",`, "M_NOT_JSON"},
		{"empty body", ``, "M_NOT_JSON"},
		{"array", `[]`, "M_BAD_JSON"},
		{"username not a string", `{"username": 5, "password": "a long enough password"}`, "M_BAD_JSON"},
		{"password not a string", `{"username": "nora", "password": true}`, "M_BAD_JSON"},
		{"inhibit_login not a boolean", `{"inhibit_login": "yes"}`, "M_BAD_JSON"},
		{"auth not an object", `{"username": "nora", "password": "a long enough password", "auth": "dummy"}`, "M_BAD_JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			acctExpect(t, tc.name, acctDo(t, c, http.MethodPost, registerPath, tc.body), http.StatusBadRequest, tc.errcode)
		})
	}
	r := acctDo(t, c, http.MethodPost, registerPath, map[string]any{"username": "nora", "password": goodPassword, "auth": map[string]any{"type": "m.login.dummy", "session": "no-such-session"}})
	acctExpect(t, "unknown session", r, http.StatusBadRequest, "M_UNKNOWN")
	r = acctDo(t, c, http.MethodGet, registerPath, nil)
	acctExpect(t, "GET /register", r, http.StatusMethodNotAllowed, "M_UNRECOGNIZED")
}

func TestRegisterRateLimit(t *testing.T) {
	tight := config.RateLimit{PerSecond: 0.001, Burst: 2}
	ts := testserver.New(t, openRegistration, func(c *config.Config) { c.RateLimits.RegisterPerAddress = tight })
	c := ts.Client()
	for range 2 {
		r := acctDo(t, c, http.MethodPost, registerPath, map[string]any{})
		acctUIA(t, "within the burst", r, "", []string{"m.login.dummy"}, []string{"m.login.registration_token"})
	}
	limited := func(what string, r acctResp) {
		t.Helper()
		acctExpect(t, what, r, http.StatusTooManyRequests, "M_LIMIT_EXCEEDED")
		if ms, _ := r.Body["retry_after_ms"].(float64); ms <= 0 {
			t.Fatalf("%s: retry_after_ms %v", what, r.Body["retry_after_ms"])
		}
		if r.Header.Get("Retry-After") == "" {
			t.Fatalf("%s: no Retry-After header", what)
		}
	}
	limited("register past the burst", acctDo(t, c, http.MethodPost, registerPath, map[string]any{"username": "olga", "password": goodPassword}))

	// The user-name and token checks have their own budgets at the same rate.
	for range 2 {
		if _, err := c.RegisterAvailable(t.Context(), "olga"); err != nil {
			t.Fatal(err)
		}
	}
	limited("available past the burst", acctDo(t, c, http.MethodGet, registerPath+"/available?username=olga", nil))
	for range 2 {
		tokenValid(t, ts, "guess")
	}
	limited("validity past the burst", acctDo(t, c, http.MethodGet, validityPath+"?token=guess", nil))
}

func TestRegistrationTokenValidityBadInput(t *testing.T) {
	ts := testserver.New(t)
	acctExpect(t, "no token", acctDo(t, ts.Client(), http.MethodGet, validityPath, nil), http.StatusBadRequest, "M_MISSING_PARAM")
	acctExpect(t, "empty token", acctDo(t, ts.Client(), http.MethodGet, validityPath+"?token=", nil), http.StatusBadRequest, "M_MISSING_PARAM")
}

// Palpo sends no email or SMS: the registration requestToken endpoints check
// their body, then answer 403 M_THREEPID_DENIED.
func TestRegisterRequestTokenRefused(t *testing.T) {
	ts := testserver.New(t, openRegistration)
	acctCheckRequestToken(t, ts.Client(), "/_matrix/client/v3/register", http.StatusForbidden, "M_THREEPID_DENIED")
}

// acctCheckRequestToken runs the */requestToken tests for one family of
// endpoints (prefix + /email/requestToken and /msisdn/requestToken).
func acctCheckRequestToken(t *testing.T, c *mautrix.Client, prefix string, status int, errcode string) {
	t.Helper()
	email := prefix + "/email/requestToken"
	msisdn := prefix + "/msisdn/requestToken"
	for _, tc := range []struct {
		name, path string
		body       any
		status     int
		errcode    string
	}{
		{"email", email, map[string]any{"client_secret": "s3cr3t", "email": "a@example.org", "send_attempt": 1}, status, errcode},
		{"msisdn", msisdn, map[string]any{"client_secret": "s3cr3t", "country": "GB", "phone_number": "07700900001", "send_attempt": 1}, status, errcode},
		{"not JSON", email, `{"client_secret":`, http.StatusBadRequest, "M_NOT_JSON"},
		{"send_attempt not a number", email, `{"client_secret": "s", "email": "a@example.org", "send_attempt": "1"}`, http.StatusBadRequest, "M_BAD_JSON"},
		{"no client_secret", email, map[string]any{"email": "a@example.org", "send_attempt": 1}, http.StatusBadRequest, "M_MISSING_PARAM"},
		{"bad client_secret", email, map[string]any{"client_secret": "not/allowed", "email": "a@example.org", "send_attempt": 1}, http.StatusBadRequest, "M_INVALID_PARAM"},
		{"long client_secret", email, map[string]any{"client_secret": strings.Repeat("s", 256), "email": "a@example.org", "send_attempt": 1}, http.StatusBadRequest, "M_INVALID_PARAM"},
		{"no email", email, map[string]any{"client_secret": "s", "send_attempt": 1}, http.StatusBadRequest, "M_MISSING_PARAM"},
		{"bad email", email, map[string]any{"client_secret": "s", "email": "not an address", "send_attempt": 1}, http.StatusBadRequest, "M_INVALID_PARAM"},
		{"no send_attempt", email, map[string]any{"client_secret": "s", "email": "a@example.org"}, http.StatusBadRequest, "M_MISSING_PARAM"},
		{"no phone_number", msisdn, map[string]any{"client_secret": "s", "country": "GB", "send_attempt": 1}, http.StatusBadRequest, "M_MISSING_PARAM"},
		{"bad country", msisdn, map[string]any{"client_secret": "s", "country": "Britain", "phone_number": "07700900001", "send_attempt": 1}, http.StatusBadRequest, "M_INVALID_PARAM"},
		{"bad phone_number", msisdn, map[string]any{"client_secret": "s", "country": "GB", "phone_number": "call me", "send_attempt": 1}, http.StatusBadRequest, "M_INVALID_PARAM"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			acctExpect(t, tc.name, acctDo(t, c, http.MethodPost, tc.path, tc.body), tc.status, tc.errcode)
		})
	}
}

// An invite code is typed on a phone: small letters, spaces or no dashes
// still find it, and the use is counted on the code itself.
func TestRegisterInviteCodeTypedLoosely(t *testing.T) {
	ts := testserver.New(t)
	code, err := accounts.NewInviteCode()
	if err != nil {
		t.Fatal(err)
	}
	if len(code) != 14 || strings.Count(code, "-") != 2 || strings.ContainsAny(code, "01OILZ2S5B8") {
		t.Fatalf("invite code %q is not three groups of four without look-alikes", code)
	}
	one := 1
	createRegToken(t, ts, code, &one, nil)
	typed := strings.ToLower(strings.ReplaceAll(code, "-", " "))
	if !tokenValid(t, ts, url.QueryEscape(typed)) {
		t.Fatalf("%q (typed for %q) not valid", typed, code)
	}
	acctExpect(t, "loosely typed code", registerWithToken(t, ts.Client(), "frank", strings.ReplaceAll(strings.ToLower(code), "-", "")), http.StatusOK, "")
	if tok, _ := ts.DB().GetRegistrationToken(t.Context(), code); tok.Completed != 1 {
		t.Fatalf("completed = %d on the code", tok.Completed)
	}
	if tokenValid(t, ts, code) {
		t.Fatal("used-up code still valid")
	}
	// Something that is no code is not stretched into one.
	if tokenValid(t, ts, "not-a-code") {
		t.Fatal("unknown token valid")
	}
}

// An invite link opens a page on the invitee's device with the code and
// the address that device reached the server by.
func TestInvitePage(t *testing.T) {
	ts := testserver.New(t)
	resp, err := http.Get(ts.URL + "/invite/K7QM-3XPD-9HFT")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("invite page: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	page := string(body)
	// With OAuth on (the default) it also links to the sign-up page with
	// the code filled in, which is how Element X users sign up.
	for _, want := range []string{"K7QM-3XPD-9HFT", "<code>" + ts.URL + "</code>", "Create account", "Edit", `href="/account/register?token=K7QM-3XPD-9HFT"`} {
		if !strings.Contains(page, want) {
			t.Errorf("invite page lacks %q:\n%s", want, page)
		}
	}
	// A "code" that could carry markup is no invite.
	resp, err = http.Get(ts.URL + "/invite/%3Cscript%3E")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("invite page for markup: %d", resp.StatusCode)
	}
}

// TestRootPageGivesTheAddressUsed: the root page tells a device the address
// it reached the server by, not this computer's localhost.
func TestRootPageGivesTheAddressUsed(t *testing.T) {
	ts := testserver.New(t)
	req, err := http.NewRequest(http.MethodGet, ts.URL+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "192.0.2.9:8008"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "<code>http://192.0.2.9:8008</code>") {
		t.Fatalf("root page reached as 192.0.2.9:8008: %d\n%s", resp.StatusCode, body)
	}
}
