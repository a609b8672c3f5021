package oauth_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"

	"github.com/palpo-im/palpo-desktop/server/config"
	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
)

func TestServerMetadata(t *testing.T) {
	e := newEnv(t)
	resp, err := http.Get(e.URL + "/_matrix/client/v1/auth_metadata")
	if err != nil {
		t.Fatal(err)
	}
	status, m := decode(t, resp)
	if status != http.StatusOK {
		t.Fatalf("status %d", status)
	}
	for key, want := range map[string]string{
		"issuer":                        e.URL + "/",
		"authorization_endpoint":        e.URL + "/oauth2/authorize",
		"token_endpoint":                e.URL + "/oauth2/token",
		"registration_endpoint":         e.URL + "/oauth2/register",
		"revocation_endpoint":           e.URL + "/oauth2/revoke",
		"device_authorization_endpoint": e.URL + "/oauth2/device",
		"account_management_uri":        e.URL + "/account",
	} {
		if m[key] != want {
			t.Errorf("%s = %v, want %s", key, m[key], want)
		}
	}
	for key, want := range map[string][]string{
		"response_types_supported":         {"code"},
		"grant_types_supported":            {"authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code"},
		"response_modes_supported":         {"query", "fragment"},
		"code_challenge_methods_supported": {"S256"},
		"prompt_values_supported":          {"create"},
	} {
		got, _ := m[key].([]any)
		if len(got) != len(want) {
			t.Errorf("%s = %v, want %v", key, got, want)
			continue
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("%s = %v, want %v", key, got, want)
			}
		}
	}

	// public_baseurl, when set, is the issuer whatever address was used.
	pub := newEnv(t, func(c *config.Config) { c.PublicBaseURL = "https://matrix.example.org/" })
	_, m = decode(t, mustGet(t, pub.URL+"/_matrix/client/v1/auth_metadata"))
	if m["issuer"] != "https://matrix.example.org/" || m["token_endpoint"] != "https://matrix.example.org/oauth2/token" {
		t.Errorf("with public_baseurl: %v", m)
	}
}

func mustGet(t *testing.T, u string) *http.Response {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestClientRegistration(t *testing.T) {
	e := newEnv(t)
	with := func(changes map[string]any) map[string]any {
		m := webClient()
		for k, v := range changes {
			if v == nil {
				delete(m, k)
			} else {
				m[k] = v
			}
		}
		return m
	}
	native := func(redirects ...string) map[string]any {
		return with(map[string]any{"application_type": "native", "client_uri": "https://example.com/", "tos_uri": nil, "policy_uri": nil, "redirect_uris": redirects})
	}
	good := []struct {
		name string
		meta map[string]any
	}{
		{"web", webClient()},
		{"web on a subdomain with a port and query", with(map[string]any{"redirect_uris": []string{"https://login.app.example.org:8443/cb?x=1"}})},
		{"native private-use scheme", native("com.example.app:/callback", "com.example:/", "com.example:callback")},
		{"native loopback", native("http://localhost/callback", "http://127.0.0.1/callback", "http://[::1]/callback")},
		{"native claimed https", native("https://example.com/app")},
		{"defaults (no grant_types, response_types, auth method, application type)", map[string]any{"client_uri": "https://a.example/", "redirect_uris": []string{"https://a.example/cb"}}},
		{"device grant only, no redirect", map[string]any{"client_uri": "https://a.example/", "grant_types": []string{"urn:ietf:params:oauth:grant-type:device_code", "refresh_token"}}},
		{"localized names ignored", with(map[string]any{"client_name#fr": "Appli"})},
	}
	for _, c := range good {
		status, body := e.postJSON(t, "/oauth2/register", c.meta)
		if status != http.StatusCreated || body["client_id"] == "" {
			t.Errorf("%s: %d %v", c.name, status, body)
		}
		if _, ok := body["client_name#fr"]; ok {
			t.Errorf("%s: localized name kept", c.name)
		}
	}
	status, body := e.postJSON(t, "/oauth2/register", with(map[string]any{"grant_types": []string{"authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:token-exchange"}}))
	if status != http.StatusCreated || len(body["grant_types"].([]any)) != 2 || body["token_endpoint_auth_method"] != "none" || body["application_type"] != "web" {
		t.Errorf("unknown grant type not dropped: %v", body)
	}

	bad := []struct {
		name string
		meta any
		want string
	}{
		{"no client_uri", with(map[string]any{"client_uri": nil}), "invalid_client_metadata"},
		{"http client_uri", with(map[string]any{"client_uri": "http://app.example.org/"}), "invalid_client_metadata"},
		{"client_uri with user", with(map[string]any{"client_uri": "https://u:p@app.example.org/"}), "invalid_client_metadata"},
		{"redirect on another host", with(map[string]any{"redirect_uris": []string{"https://evil.example/cb"}}), "invalid_redirect_uri"},
		{"redirect with fragment", with(map[string]any{"redirect_uris": []string{"https://app.example.org/cb#f"}}), "invalid_redirect_uri"},
		{"web http redirect", with(map[string]any{"redirect_uris": []string{"http://app.example.org/cb"}}), "invalid_redirect_uri"},
		{"web localhost redirect", with(map[string]any{"redirect_uris": []string{"http://localhost/"}}), "invalid_redirect_uri"},
		{"no redirect for the code grant", with(map[string]any{"redirect_uris": nil}), "invalid_redirect_uri"},
		{"native scheme not reverse DNS", native("example:/callback"), "invalid_redirect_uri"},
		{"native scheme with authority", native("com.example.app://callback"), "invalid_redirect_uri"},
		{"native https localhost", native("https://localhost/callback"), "invalid_redirect_uri"},
		{"native loopback with port", native("http://localhost:1234/callback"), "invalid_redirect_uri"},
		{"client secret", with(map[string]any{"token_endpoint_auth_method": "client_secret_basic"}), "invalid_client_metadata"},
		{"logo elsewhere", with(map[string]any{"logo_uri": "https://cdn.other.example/logo.png"}), "invalid_client_metadata"},
		{"tos over http", with(map[string]any{"tos_uri": "http://app.example.org/tos"}), "invalid_client_metadata"},
		{"unknown application type", with(map[string]any{"application_type": "desktop"}), "invalid_client_metadata"},
		{"no known grant", with(map[string]any{"grant_types": []string{"implicit"}}), "invalid_client_metadata"},
		{"wrong type", with(map[string]any{"redirect_uris": "https://app.example.org/cb"}), "invalid_client_metadata"},
		{"not an object", []string{"x"}, "invalid_client_metadata"},
	}
	for _, c := range bad {
		status, body := e.postJSON(t, "/oauth2/register", c.meta)
		expectOAuthError(t, c.name, status, body, http.StatusBadRequest, c.want)
	}
	// Bodies that are not JSON at all.
	for name, raw := range map[string]string{"empty body": "", "bad UTF-8": "{\"client_name\":\"\xff\"}", "not JSON": "{"} {
		resp, err := http.Post(e.URL+"/oauth2/register", "application/json", strings.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		status, body := decode(t, resp)
		expectOAuthError(t, name, status, body, http.StatusBadRequest, "invalid_client_metadata")
	}
}

// TestClientRegistrationRateLimited: registering needs no account, so an
// address may register only so many clients.
func TestClientRegistrationRateLimited(t *testing.T) {
	e := newEnv(t, func(c *config.Config) { c.RateLimits.RegisterPerAddress = config.RateLimit{PerSecond: 0.001, Burst: 2} })
	e.register(t, webClient())
	e.register(t, webClient())
	status, body := e.postJSON(t, "/oauth2/register", webClient())
	if status != http.StatusTooManyRequests {
		t.Fatalf("third registration: %d %v", status, body)
	}
}

// TestDeviceAuthorizationRateLimited: each device authorization stores a
// grant and needs no account, so an address may start only so many.
func TestDeviceAuthorizationRateLimited(t *testing.T) {
	e := newEnv(t, func(c *config.Config) { c.RateLimits.RegisterPerAddress = config.RateLimit{PerSecond: 0.001, Burst: 2} })
	clientID := e.register(t, webClient())
	form := url.Values{"client_id": {clientID}, "scope": {"urn:matrix:client:api:* urn:matrix:client:device:TVDEVICE01"}}
	for i := range 2 {
		if status, body := e.postForm(t, "/oauth2/device", form); status != http.StatusOK {
			t.Fatalf("device authorization %d: %d %v", i+1, status, body)
		}
	}
	status, body := e.postForm(t, "/oauth2/device", form)
	if status != http.StatusTooManyRequests {
		t.Fatalf("third device authorization: %d %v", status, body)
	}
}

// TestAuthorizeRefusals: an unknown client or redirect URI gets an error
// page and no redirect; other faults go back to the client with error and
// state.
func TestAuthorizeRefusals(t *testing.T) {
	e := newEnv(t)
	e.RegisterUser("alice")
	clientID := e.register(t, webClient())
	_, challenge := pkce()
	b := e.browser(t)

	for name, u := range map[string]string{
		"unknown client":     authorizeURL("nope", webRedirect, "DEV1234567", challenge, nil),
		"wrong redirect uri": authorizeURL(clientID, "https://app.example.org/other", "DEV1234567", challenge, nil),
		"no redirect uri":    authorizeURL(clientID, "", "DEV1234567", challenge, nil),
	} {
		p := b.get(u)
		if p.Status != http.StatusBadRequest || p.Location != "" || !strings.Contains(p.Body, "sign-in link") {
			t.Errorf("%s: %d %q", name, p.Status, p.Location)
		}
	}
	for _, c := range []struct {
		name  string
		extra url.Values
		want  string
	}{
		{"bad scope", url.Values{"scope": {"urn:matrix:client:api:*"}}, "invalid_scope"},
		{"two devices", url.Values{"scope": {"urn:matrix:client:api:* urn:matrix:client:device:A urn:matrix:client:device:B"}}, "invalid_scope"},
		{"bad device id", url.Values{"scope": {"urn:matrix:client:api:* urn:matrix:client:device:a/b"}}, "invalid_scope"},
		{"unknown matrix scope", url.Values{"scope": {"urn:matrix:client:api:* urn:matrix:client:device:A urn:matrix:client:magic"}}, "invalid_scope"},
		{"no api scope", url.Values{"scope": {"urn:matrix:client:device:A"}}, "invalid_scope"},
		{"no PKCE", url.Values{"code_challenge": {""}, "code_challenge_method": {""}}, "invalid_request"},
		{"plain PKCE", url.Values{"code_challenge_method": {"plain"}}, "invalid_request"},
		{"short challenge", url.Values{"code_challenge": {"abc"}}, "invalid_request"},
		{"token response type", url.Values{"response_type": {"token"}}, "unsupported_response_type"},
		{"bad response mode", url.Values{"response_mode": {"form_post"}}, "invalid_request"},
		{"prompt none", url.Values{"prompt": {"none"}}, "consent_required"},
	} {
		p := b.get(authorizeURL(clientID, webRedirect, "DEV1234567", challenge, c.extra))
		cb := callback(t, p)
		if cb.Get("error") != c.want || cb.Get("state") != "st4te" {
			t.Errorf("%s: callback %v, want error %s", c.name, cb, c.want)
		}
	}
	// The fragment response mode carries the error in the fragment.
	p := b.get(authorizeURL(clientID, webRedirect, "DEV1234567", challenge, url.Values{"response_mode": {"fragment"}, "response_type": {"token"}}))
	if u, _ := url.Parse(p.Location); u == nil || u.RawQuery != "" || !strings.Contains(u.Fragment, "error=unsupported_response_type") {
		t.Errorf("fragment mode error: %q", p.Location)
	}
	// The consent page can be refused. (A login_hint fills the user name in.)
	p = b.get(authorizeURL(clientID, webRedirect, "DEV1234567", challenge, url.Values{"login_hint": {"mxid:@alice:localhost"}}))
	if !strings.Contains(p.Body, `name="username" value="alice"`) {
		t.Errorf("login_hint did not fill the user name in:\n%s", p.Body)
	}
	p = b.signIn(p, "alice", testserver.DefaultPassword)
	cb := callback(t, b.submit(p, "/oauth2/authorize", url.Values{"action": {"deny"}}))
	if cb.Get("error") != "access_denied" || cb.Get("state") != "st4te" || cb.Get("code") != "" {
		t.Errorf("deny: %v", cb)
	}
	// A native client's loopback redirect URI, registered without a port,
	// is accepted on any port.
	nativeID := e.register(t, map[string]any{"client_uri": "https://example.com/", "application_type": "native",
		"redirect_uris": []string{"http://127.0.0.1/callback"}, "grant_types": []string{"authorization_code", "refresh_token"}})
	p = b.get(authorizeURL(nativeID, "http://127.0.0.1:49152/callback", "DEV1234567", challenge, nil))
	if p.Status != http.StatusOK || !strings.Contains(p.Body, "wants to access your account") {
		t.Fatalf("loopback any port: %d %s", p.Status, p.URL)
	}
	res := b.submit(p, "/oauth2/authorize", url.Values{"action": {"allow"}})
	if !strings.HasPrefix(res.Location, "http://127.0.0.1:49152/callback?") {
		t.Errorf("loopback callback %q", res.Location)
	}
	if p := b.get(authorizeURL(nativeID, "http://127.0.0.1:49152/elsewhere", "DEV1234567", challenge, nil)); p.Status != http.StatusBadRequest {
		t.Errorf("loopback other path: %d", p.Status)
	}
}

// TestCodeExchangeRefusals: every check of the token request, each on a
// code of its own (a failed exchange spends the code).
func TestCodeExchangeRefusals(t *testing.T) {
	e := newEnv(t)
	e.RegisterUser("alice")
	clientID := e.register(t, webClient())
	otherID := e.register(t, webClient())
	b := e.browser(t)
	verifier, challenge := pkce()
	ctx := context.Background()

	code := e.signedInCode(t, b, clientID, "DEVWRONGPK", challenge)
	wrong, _ := pkce()
	status, body := e.exchange(t, clientID, code, wrong)
	expectOAuthError(t, "wrong verifier", status, body, 400, "invalid_grant")
	status, body = e.exchange(t, clientID, code, verifier)
	expectOAuthError(t, "code spent by a failed exchange", status, body, 400, "invalid_grant")

	code = e.signedInCode(t, b, clientID, "DEVREDIREC", challenge)
	status, body = e.postForm(t, "/oauth2/token", url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {"https://app.example.org/other"}, "client_id": {clientID}, "code_verifier": {verifier}})
	expectOAuthError(t, "wrong redirect_uri", status, body, 400, "invalid_grant")

	code = e.signedInCode(t, b, clientID, "DEVCLIENTX", challenge)
	status, body = e.exchange(t, otherID, code, verifier)
	expectOAuthError(t, "another client", status, body, 400, "invalid_grant")

	code = e.signedInCode(t, b, clientID, "DEVEXPIRED", challenge)
	e.clock.Advance(11 * time.Minute)
	status, body = e.exchange(t, clientID, code, verifier)
	expectOAuthError(t, "expired code", status, body, 400, "invalid_grant")
	e.clock.Advance(-11 * time.Minute)

	status, body = e.exchange(t, "unknown-client", "x", verifier)
	expectOAuthError(t, "unknown client", status, body, 400, "invalid_client")
	status, body = e.exchange(t, clientID, "never-issued", verifier)
	expectOAuthError(t, "unknown code", status, body, 400, "invalid_grant")
	status, body = e.postForm(t, "/oauth2/token", url.Values{"grant_type": {"authorization_code"}, "client_id": {clientID}})
	expectOAuthError(t, "missing code", status, body, 400, "invalid_request")
	status, body = e.postForm(t, "/oauth2/token", url.Values{"client_id": {clientID}})
	expectOAuthError(t, "missing grant_type", status, body, 400, "invalid_request")
	status, body = e.postForm(t, "/oauth2/token", url.Values{"grant_type": {"password"}, "client_id": {clientID}})
	expectOAuthError(t, "password grant", status, body, 400, "unsupported_grant_type")
	resp, err := http.Post(e.URL+"/oauth2/token", "application/json", strings.NewReader(`{"grant_type":"authorization_code"}`))
	if err != nil {
		t.Fatal(err)
	}
	status, body = decode(t, resp)
	expectOAuthError(t, "JSON body", status, body, 400, "invalid_request")

	// A code used twice: the second use fails and revokes the session
	// the first made.
	code = e.signedInCode(t, b, clientID, "DEVREUSED1", challenge)
	status, body = e.exchange(t, clientID, code, verifier)
	if status != 200 {
		t.Fatalf("exchange: %d %v", status, body)
	}
	c, _ := mautrix.NewClient(e.URL, "", body["access_token"].(string))
	if who, err := c.Whoami(ctx); err != nil || who.UserID != "@alice:localhost" || who.DeviceID != "DEVREUSED1" {
		t.Fatalf("whoami: %+v %v", who, err)
	}
	status, body = e.exchange(t, clientID, code, verifier)
	expectOAuthError(t, "reused code", status, body, 400, "invalid_grant")
	if _, err := c.Whoami(ctx); !errors.Is(err, mautrix.MUnknownToken) {
		t.Errorf("token of a reused code still works: %v", err)
	}
}

// TestRefreshAndRevoke: refresh rotates the tokens of the same device;
// revocation of either token ends the session; unknown tokens are fine.
func TestRefreshAndRevoke(t *testing.T) {
	e := newEnv(t)
	e.RegisterUser("alice")
	clientID := e.register(t, webClient())
	otherID := e.register(t, webClient())
	noRefreshID := e.register(t, map[string]any{"client_uri": "https://app.example.org/", "redirect_uris": []string{webRedirect}})
	b := e.browser(t)
	verifier, challenge := pkce()
	ctx := context.Background()

	code := e.signedInCode(t, b, clientID, "DEVREFRESH", challenge)
	_, tok := e.exchange(t, clientID, code, verifier)
	if tok["token_type"] != "Bearer" || tok["expires_in"].(float64) != 3600 || tok["refresh_token"] == "" ||
		tok["scope"] != "urn:matrix:client:api:* urn:matrix:client:device:DEVREFRESH" {
		t.Fatalf("token response %v", tok)
	}
	refresh := func(client, token string) (int, map[string]any) {
		return e.postForm(t, "/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {token}, "client_id": {client}})
	}
	status, body := refresh(otherID, tok["refresh_token"].(string))
	expectOAuthError(t, "refresh by another client", status, body, 400, "invalid_grant")
	status, body = refresh(noRefreshID, tok["refresh_token"].(string))
	expectOAuthError(t, "client without the refresh grant", status, body, 400, "unauthorized_client")
	status, fresh := refresh(clientID, tok["refresh_token"].(string))
	if status != 200 || fresh["access_token"] == tok["access_token"] || fresh["refresh_token"] == tok["refresh_token"] || fresh["scope"] != tok["scope"] {
		t.Fatalf("refresh: %d %v", status, fresh)
	}
	c, _ := mautrix.NewClient(e.URL, "", "")
	old, _ := mautrix.NewClient(e.URL, "", tok["access_token"].(string))
	if _, err := old.Whoami(ctx); !errors.Is(err, mautrix.MUnknownToken) {
		t.Errorf("old access token still works: %v", err)
	}
	// A second refresh with the same token before the new pair is used is
	// a retry (the client may have lost the answer): it works.
	status, retry := refresh(clientID, tok["refresh_token"].(string))
	if status != 200 {
		t.Fatalf("retried refresh: %d %v", status, retry)
	}
	fresh = retry
	c.AccessToken = fresh["access_token"].(string)
	if who, err := c.Whoami(ctx); err != nil || who.DeviceID != "DEVREFRESH" {
		t.Fatalf("whoami after refresh: %+v %v", who, err)
	}

	// Revoking the refresh token ends the session, access token too.
	status, _ = e.postForm(t, "/oauth2/revoke", url.Values{"token": {fresh["refresh_token"].(string)}, "token_type_hint": {"refresh_token"}, "client_id": {clientID}})
	if status != 200 {
		t.Fatalf("revoke: %d", status)
	}
	if _, err := c.Whoami(ctx); !errors.Is(err, mautrix.MUnknownToken) {
		t.Errorf("access token after revoking its refresh token: %v", err)
	}
	status, body = refresh(clientID, fresh["refresh_token"].(string))
	expectOAuthError(t, "revoked refresh token", status, body, 400, "invalid_grant")
	if _, err := e.Accounts().Device(ctx, "@alice:localhost", "DEVREFRESH"); err == nil {
		t.Error("device kept after revocation")
	}

	// A refresh token used again after its successor was used is a copy:
	// the session ends.
	code = e.signedInCode(t, b, clientID, "DEVREPLAY1", challenge)
	_, tok = e.exchange(t, clientID, code, verifier)
	_, next := refresh(clientID, tok["refresh_token"].(string))
	c.AccessToken = next["access_token"].(string)
	if _, err := c.Whoami(ctx); err != nil {
		t.Fatal(err)
	}
	status, body = refresh(clientID, tok["refresh_token"].(string))
	expectOAuthError(t, "replayed refresh token", status, body, 400, "invalid_grant")
	if _, err := c.Whoami(ctx); !errors.Is(err, mautrix.MUnknownToken) {
		t.Errorf("session of a replayed refresh token still works: %v", err)
	}

	// Unknown tokens are revoked without complaint; no token is a bad request.
	if status, _ := e.postForm(t, "/oauth2/revoke", url.Values{"token": {"pat_nothing"}}); status != 200 {
		t.Errorf("unknown token: %d", status)
	}
	status, body = e.postForm(t, "/oauth2/revoke", url.Values{})
	expectOAuthError(t, "no token", status, body, 400, "invalid_request")

	// A password login's refresh token is not an OAuth session's.
	pw := e.Login("alice", testserver.DefaultPassword)
	status, body = refresh(clientID, "prt_x")
	expectOAuthError(t, "garbage refresh token", status, body, 400, "invalid_grant")
	// Revocation ends any session, though, as /logout would.
	if status, _ := e.postForm(t, "/oauth2/revoke", url.Values{"token": {pw.AccessToken}}); status != 200 {
		t.Fatalf("revoke password session: %d", status)
	}
	if _, err := pw.Whoami(ctx); !errors.Is(err, mautrix.MUnknownToken) {
		t.Errorf("password session after revocation: %v", err)
	}
}

// TestDeviceGrant: a device gets a code, polls (too fast: slow_down), a
// signed-in person approves on the /link page, the poll gets tokens once.
func TestDeviceGrant(t *testing.T) {
	e := newEnv(t)
	e.RegisterUser("alice")
	clientID := e.register(t, webClient())
	codeOnly := e.register(t, map[string]any{"client_uri": "https://app.example.org/", "redirect_uris": []string{webRedirect}})
	ctx := context.Background()
	start := func(device string) map[string]any {
		t.Helper()
		status, body := e.postForm(t, "/oauth2/device", url.Values{"client_id": {clientID},
			"scope": {"urn:matrix:client:api:* urn:matrix:client:device:" + device}})
		if status != 200 {
			t.Fatalf("device authorization: %d %v", status, body)
		}
		return body
	}
	poll := func(client, deviceCode string) (int, map[string]any) {
		return e.postForm(t, "/oauth2/token", url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"},
			"device_code": {deviceCode}, "client_id": {client}})
	}
	d := start("TVDEVICE01")
	userCode := d["user_code"].(string)
	if d["verification_uri"] != e.URL+"/link" || d["verification_uri_complete"] != e.URL+"/link?user_code="+userCode ||
		d["expires_in"].(float64) != 900 || d["interval"].(float64) != 5 || len(userCode) != 9 {
		t.Fatalf("device authorization answer %v", d)
	}
	deviceCode := d["device_code"].(string)
	status, body := poll(clientID, deviceCode)
	expectOAuthError(t, "first poll", status, body, 400, "authorization_pending")
	status, body = poll(clientID, deviceCode)
	expectOAuthError(t, "fast poll", status, body, 400, "slow_down")
	e.clock.Advance(6 * time.Second)
	status, body = poll(clientID, deviceCode)
	expectOAuthError(t, "slow poll", status, body, 400, "authorization_pending")
	status, body = poll(codeOnly, deviceCode)
	expectOAuthError(t, "client without the device grant", status, body, 400, "unauthorized_client")

	// The person types the code (in small letters, without the dash).
	b := e.browser(t)
	p := b.get("/link")
	p = b.signIn(p, "alice", testserver.DefaultPassword)
	if p.URL.Path != "/link" {
		t.Fatalf("after sign-in: %s", p.URL)
	}
	p = b.submit(p, "/link", url.Values{"user_code": {"zzzz-zzzz"}})
	if p.Status != 400 || !strings.Contains(p.Body, "not valid") {
		t.Errorf("wrong user code: %d", p.Status)
	}
	p = b.submit(p, "/link", url.Values{"user_code": {strings.ToLower(strings.ReplaceAll(userCode, "-", ""))}})
	if !strings.Contains(p.Body, "Test App</strong> wants to access your account") {
		t.Fatalf("device consent page: %d\n%s", p.Status, p.Body)
	}
	p = b.submit(p, "/link/decide", url.Values{"action": {"allow"}})
	if p.Status != 200 || !strings.Contains(p.Body, "Device signed in") {
		t.Fatalf("approve: %d\n%s", p.Status, p.Body)
	}
	e.clock.Advance(6 * time.Second)
	status, tok := poll(clientID, deviceCode)
	if status != 200 || tok["scope"] != "urn:matrix:client:api:* urn:matrix:client:device:TVDEVICE01" {
		t.Fatalf("approved poll: %d %v", status, tok)
	}
	c, _ := mautrix.NewClient(e.URL, "", tok["access_token"].(string))
	if who, err := c.Whoami(ctx); err != nil || who.UserID != "@alice:localhost" || who.DeviceID != "TVDEVICE01" {
		t.Fatalf("whoami: %+v %v", who, err)
	}
	e.clock.Advance(6 * time.Second)
	status, body = poll(clientID, deviceCode)
	expectOAuthError(t, "poll after the tokens", status, body, 400, "invalid_grant")

	// Refused, with the complete link.
	d = start("TVDEVICE02")
	p = b.get("/link?user_code=" + d["user_code"].(string))
	p = b.submit(p, "/link/decide", url.Values{"action": {"deny"}})
	if !strings.Contains(p.Body, "Sign-in refused") {
		t.Fatalf("deny: %d\n%s", p.Status, p.Body)
	}
	status, body = poll(clientID, d["device_code"].(string))
	expectOAuthError(t, "denied", status, body, 400, "access_denied")

	// Expired.
	d = start("TVDEVICE03")
	e.clock.Advance(16 * time.Minute)
	status, body = poll(clientID, d["device_code"].(string))
	expectOAuthError(t, "expired", status, body, 400, "expired_token")
	if p := b.get("/link?user_code=" + d["user_code"].(string)); p.Status != 400 {
		t.Errorf("expired code on the page: %d", p.Status)
	}

	status, body = poll(clientID, "never-issued")
	expectOAuthError(t, "unknown device code", status, body, 400, "invalid_grant")
	status, body = e.postForm(t, "/oauth2/device", url.Values{"client_id": {codeOnly}, "scope": {"urn:matrix:client:api:* urn:matrix:client:device:X"}})
	expectOAuthError(t, "device grant not registered", status, body, 400, "unauthorized_client")
	status, body = e.postForm(t, "/oauth2/device", url.Values{"client_id": {"nope"}, "scope": {"urn:matrix:client:api:* urn:matrix:client:device:X"}})
	expectOAuthError(t, "unknown client", status, body, 400, "invalid_client")
	status, body = e.postForm(t, "/oauth2/device", url.Values{"client_id": {clientID}, "scope": {"urn:matrix:client:api:*"}})
	expectOAuthError(t, "no device in scope", status, body, 400, "invalid_scope")
}

// TestPagesNeedCSRF: every form POST without the CSRF token (or with
// another browser's) is refused and changes nothing.
func TestPagesNeedCSRF(t *testing.T) {
	e := newEnv(t)
	e.RegisterUser("alice")
	b := e.browser(t)
	p := b.get("/account/login")
	for _, form := range []url.Values{
		{"username": {"alice"}, "password": {testserver.DefaultPassword}},
		{"username": {"alice"}, "password": {testserver.DefaultPassword}, "csrf": {"forged-forged-forged-forged-forged-forged-f"}},
	} {
		if res := b.post("/account/login", form); res.Status != http.StatusForbidden || !strings.Contains(res.Body, "expired") {
			t.Errorf("sign-in without CSRF: %d", res.Status)
		}
	}
	if res := b.get("/account"); res.URL.Path != "/account/login" {
		t.Errorf("signed in anyway: %s", res.URL)
	}
	// Signed in properly, the session forms need it too.
	p = b.signIn(p, "alice", testserver.DefaultPassword)
	if p.URL.Path != "/account" {
		t.Fatalf("after sign-in: %s", p.URL)
	}
	alice := e.Login("alice", testserver.DefaultPassword)
	for _, path := range []string{"/account/sessions/end", "/account/logout", "/oauth2/authorize", "/link", "/link/decide", "/account/register"} {
		if res := b.post(path, url.Values{"device_id": {string(alice.DeviceID)}}); res.Status != http.StatusForbidden {
			t.Errorf("%s without CSRF: %d", path, res.Status)
		}
	}
	if _, err := alice.Whoami(context.Background()); err != nil {
		t.Errorf("session ended without CSRF: %v", err)
	}
}

// TestCookieFlags: the pages' cookies are HttpOnly and SameSite=Lax, and
// Secure when the server is reached over https (public_baseurl).
func TestCookieFlags(t *testing.T) {
	for _, c := range []struct {
		public string
		secure bool
	}{{"", false}, {"https://matrix.example.org", true}} {
		e := newEnv(t, func(cfg *config.Config) { cfg.PublicBaseURL = c.public })
		e.RegisterUser("alice")
		b := e.browser(t)
		p := b.get("/account/login")
		form := url.Values{"username": {"alice"}, "password": {testserver.DefaultPassword}}
		for _, h := range hiddenRE.FindAllStringSubmatch(p.Body, -1) {
			form.Set(h[1], h[2])
		}
		req, _ := http.NewRequest(http.MethodPost, e.URL+"/account/login", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for _, ck := range b.http.Jar.Cookies(req.URL) {
			req.AddCookie(ck)
		}
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		var session *http.Cookie
		for _, ck := range resp.Cookies() {
			if ck.Name == "palpo_session" {
				session = ck
			}
		}
		if resp.StatusCode != http.StatusSeeOther || session == nil {
			t.Fatalf("sign-in with public_baseurl %q: %d %v", c.public, resp.StatusCode, resp.Header["Set-Cookie"])
		}
		if !session.HttpOnly || session.SameSite != http.SameSiteLaxMode || session.Secure != c.secure || session.Path != "/" {
			t.Errorf("public_baseurl %q: session cookie %+v", c.public, session)
		}
	}
}

// TestAccountPage lists the sessions and signs one out.
func TestAccountPage(t *testing.T) {
	e := newEnv(t)
	e.RegisterUser("alice")
	phone := e.Login("alice", testserver.DefaultPassword)
	b := e.browser(t)
	p := b.signIn(b.get("/account"), "alice", testserver.DefaultPassword)
	if p.URL.Path != "/account" || !strings.Contains(p.Body, string(phone.DeviceID)) {
		t.Fatalf("account page: %s\n%s", p.URL, p.Body)
	}
	var form string
	for _, m := range formRE.FindAllStringSubmatch(p.Body, -1) {
		if strings.Contains(m[2], string(phone.DeviceID)) {
			form = m[2]
		}
	}
	if form == "" {
		t.Fatal("no sign-out form for the phone")
	}
	fields := url.Values{}
	for _, h := range hiddenRE.FindAllStringSubmatch(form, -1) {
		fields.Set(h[1], h[2])
	}
	p = b.post("/account/sessions/end", fields)
	if !strings.Contains(p.Body, "The session was signed out") || strings.Contains(p.Body, string(phone.DeviceID)) {
		t.Errorf("after sign-out: %s", p.Body)
	}
	if _, err := phone.Whoami(context.Background()); !errors.Is(err, mautrix.MUnknownToken) {
		t.Errorf("phone still signed in: %v", err)
	}
	// A signed-in browser going to the sign-in page goes to its account.
	if p := b.get("/account/login"); p.URL.Path != "/account" {
		t.Errorf("sign-in page when signed in: %s", p.URL)
	}
	// Signing the browser out.
	p = b.submit(p, "/account/logout", nil)
	if p.URL.Path != "/account/login" {
		t.Errorf("after browser sign-out: %s", p.URL)
	}
	if p := b.get("/account"); p.URL.Path != "/account/login" {
		t.Errorf("account page after sign-out: %s", p.URL)
	}
	// Wrong passwords are refused with the login rate limits' words.
	p = b.signIn(b.get("/account/login"), "alice", "wrong password")
	if p.Status != 400 || !strings.Contains(p.Body, "Wrong user name or password") {
		t.Errorf("wrong password: %d", p.Status)
	}
}

// TestPasswordChangeSignsBrowsersOut: a browser signed in with the old
// password can no longer approve anything.
func TestPasswordChangeSignsBrowsersOut(t *testing.T) {
	e := newEnv(t)
	e.RegisterUser("alice")
	b := e.browser(t)
	if p := b.signIn(b.get("/account"), "alice", testserver.DefaultPassword); p.URL.Path != "/account" {
		t.Fatalf("sign-in: %s", p.URL)
	}
	if err := e.Accounts().ChangePassword(context.Background(), "@alice:localhost", "a new long password", false, ""); err != nil {
		t.Fatal(err)
	}
	if p := b.get("/account"); p.URL.Path != "/account/login" {
		t.Errorf("still signed in after a password change: %s", p.URL)
	}
}

// TestSignUpRules: the sign-up page applies /register's rules.
func TestSignUpRules(t *testing.T) {
	e := newEnv(t, withInvites)
	e.RegisterUser("taken")
	code := e.newInvite(t)
	b := e.browser(t)
	p := b.get("/account/register?token=" + code)
	if !strings.Contains(p.Body, `value="`+code+`"`) || !strings.Contains(p.Body, `name="invite_code"`) {
		t.Fatalf("invite code not filled in:\n%s", p.Body)
	}
	for _, c := range []struct {
		name   string
		fields url.Values
		want   string
	}{
		{"wrong invite", url.Values{"username": {"bob"}, "password": {"long enough pw"}, "confirm": {"long enough pw"}, "invite_code": {"KKKK-KKKK-KKKK"}}, "invite code is not valid"},
		{"no invite", url.Values{"username": {"bob"}, "password": {"long enough pw"}, "confirm": {"long enough pw"}, "invite_code": {""}}, "Enter the invite code"},
		{"passwords differ", url.Values{"username": {"bob"}, "password": {"long enough pw"}, "confirm": {"long enough pX"}}, "The two passwords differ"},
		{"weak password", url.Values{"username": {"bob"}, "password": {"short"}, "confirm": {"short"}}, "at least 8 characters"},
		{"taken name", url.Values{"username": {"Taken"}, "password": {"long enough pw"}, "confirm": {"long enough pw"}}, "already taken"},
		{"bad name", url.Values{"username": {"bob smith"}, "password": {"long enough pw"}, "confirm": {"long enough pw"}}, "may only contain"},
	} {
		res := b.submit(p, "/account/register", c.fields)
		if res.Status != 400 || !strings.Contains(res.Body, c.want) {
			t.Errorf("%s: %d, want %q in\n%s", c.name, res.Status, c.want, res.Body)
		}
	}
	// The code still works after all that, once.
	res := b.submit(p, "/account/register", url.Values{"username": {"bob"}, "password": {"long enough pw"}, "confirm": {"long enough pw"}, "invite_code": {code}})
	if res.URL.Path != "/account" || !strings.Contains(res.Body, "@bob:localhost") {
		t.Fatalf("sign-up: %d %s\n%s", res.Status, res.URL, res.Body)
	}
	other := e.browser(t)
	p2 := other.get("/account/register?token=" + code)
	res = other.submit(p2, "/account/register", url.Values{"username": {"carol"}, "password": {"long enough pw"}, "confirm": {"long enough pw"}, "invite_code": {code}})
	if res.Status != 400 || !strings.Contains(res.Body, "invite code is not valid") {
		t.Errorf("used-up invite: %d", res.Status)
	}

	closed := newEnv(t, func(c *config.Config) { c.Registration.Mode = config.RegistrationClosed })
	cb := closed.browser(t)
	p = cb.get("/account/register")
	if !strings.Contains(p.Body, "does not let people create accounts") || strings.Contains(p.Body, `name="username"`) {
		t.Errorf("closed registration page:\n%s", p.Body)
	}
}

// TestSignUpRateLimited: the sign-up form spends the same per-address
// registration budget as /register.
func TestSignUpRateLimited(t *testing.T) {
	e := newEnv(t, func(c *config.Config) {
		c.Registration.Mode = config.RegistrationOpen
		c.RateLimits.RegisterPerAddress = config.RateLimit{PerSecond: 0.001, Burst: 2}
	})
	b := e.browser(t)
	p := b.get("/account/register")
	var last *page
	for range 3 {
		last = b.submit(p, "/account/register", url.Values{"username": {"x y"}, "password": {"long enough pw"}, "confirm": {"long enough pw"}})
	}
	if last.Status != 400 || !strings.Contains(last.Body, "Too many attempts") {
		t.Errorf("third sign-up: %d\n%s", last.Status, last.Body)
	}
}

// TestSignUpWithInviteEndToEnd is what Element X does for a new user with
// an invite code: register a client, open the authorization URL with
// prompt=create, sign up with the code on the page, approve, exchange the
// code, sync with the token, refresh, revoke, and be refused after.
func TestSignUpWithInviteEndToEnd(t *testing.T) {
	e := newEnv(t, withInvites)
	code := e.newInvite(t)
	ctx := context.Background()

	clientID := e.register(t, webClient())
	verifier, challenge := pkce()
	b := e.browser(t)
	// The person first opened the invite link the owner sent, in the
	// browser the app's sign-in tab shares.
	if p := b.get("/invite/" + code); p.Status != http.StatusOK {
		t.Fatalf("invite page: %d", p.Status)
	}
	p := b.get(authorizeURL(clientID, webRedirect, "ELEMENTX01", challenge, url.Values{"prompt": {"create"}, "response_mode": {"fragment"}}))
	if p.URL.Path != "/account/register" || !strings.Contains(p.Body, `name="invite_code" value="`+code+`"`) {
		t.Fatalf("prompt=create did not open the sign-up page with the invite code: %s\n%s", p.URL, p.Body)
	}
	p = b.submit(p, "/account/register", url.Values{"username": {"Dana"}, "password": {"a long passphrase"},
		"confirm": {"a long passphrase"}, "invite_code": {strings.ToLower(code)}})
	if !strings.Contains(p.Body, "Test App</strong> wants to access your account <strong>@dana:localhost</strong>") {
		t.Fatalf("consent after sign-up: %d %s\n%s", p.Status, p.URL, p.Body)
	}
	for _, link := range []string{"https://app.example.org/tos", "https://app.example.org/policy"} {
		if !strings.Contains(p.Body, link) {
			t.Errorf("consent page lacks %s", link)
		}
	}
	res := b.submit(p, "/oauth2/authorize", url.Values{"action": {"allow"}})
	if u, _ := url.Parse(res.Location); u == nil || u.RawQuery != "" {
		t.Fatalf("fragment mode callback %q", res.Location)
	}
	cb := callback(t, res)
	status, tok := e.exchange(t, clientID, cb.Get("code"), verifier)
	if status != 200 {
		t.Fatalf("exchange: %d %v", status, tok)
	}

	c, err := mautrix.NewClient(e.URL, "@dana:localhost", tok["access_token"].(string))
	if err != nil {
		t.Fatal(err)
	}
	c.DeviceID = "ELEMENTX01"
	who, err := c.Whoami(ctx)
	if err != nil || who.UserID != "@dana:localhost" || who.DeviceID != "ELEMENTX01" {
		t.Fatalf("whoami: %+v %v", who, err)
	}
	room, err := c.CreateRoom(ctx, &mautrix.ReqCreateRoom{Name: "Family"})
	if err != nil {
		t.Fatal(err)
	}
	sync, err := c.SyncRequest(ctx, 0, "", "", true, "online")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := sync.Rooms.Join[room.RoomID]; !ok {
		t.Fatalf("sync lacks the new room %s", room.RoomID)
	}
	devs, err := c.GetDevicesInfo(ctx)
	if err != nil || len(devs.Devices) != 1 || devs.Devices[0].DisplayName != "Test App" {
		t.Fatalf("devices: %+v %v", devs, err)
	}

	status, fresh := e.postForm(t, "/oauth2/token", url.Values{"grant_type": {"refresh_token"},
		"refresh_token": {tok["refresh_token"].(string)}, "client_id": {clientID}})
	if status != 200 {
		t.Fatalf("refresh: %d %v", status, fresh)
	}
	c.AccessToken = fresh["access_token"].(string)
	if _, err := c.SyncRequest(ctx, 0, sync.NextBatch, "", false, "online"); err != nil {
		t.Fatalf("sync after refresh: %v", err)
	}

	if status, _ := e.postForm(t, "/oauth2/revoke", url.Values{"token": {c.AccessToken}, "client_id": {clientID}}); status != 200 {
		t.Fatalf("revoke: %d", status)
	}
	_, err = c.SyncRequest(ctx, 0, sync.NextBatch, "", false, "online")
	if !errors.Is(err, mautrix.MUnknownToken) {
		t.Fatalf("sync after revocation: %v, want M_UNKNOWN_TOKEN", err)
	}
	// The account page no longer lists the session.
	if p := b.get("/account"); strings.Contains(p.Body, "ELEMENTX01") {
		t.Error("revoked session still listed")
	}
}
