package clientapi_test

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
)

// openIDUserInfo asks the server, as a widget or integration manager
// would (no access token of its own), whose OpenID token tok is.
func openIDUserInfo(t *testing.T, ts *testserver.Server, tok string) acctResp {
	t.Helper()
	return acctDo(t, ts.Client(), http.MethodGet, "/_matrix/federation/v1/openid/userinfo?access_token="+url.QueryEscape(tok), nil)
}

func TestOpenIDToken(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")

	resp, err := alice.RequestOpenIDToken(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if resp.AccessToken == "" || resp.TokenType != "Bearer" || resp.MatrixServerName != ts.ServerName() || resp.ExpiresIn != 3600 {
		t.Fatalf("token response %+v", resp)
	}
	r := openIDUserInfo(t, ts, resp.AccessToken)
	acctExpect(t, "userinfo", r, http.StatusOK, "")
	if r.Body["sub"] != string(alice.UserID) {
		t.Fatalf("sub %v, want %s", r.Body["sub"], alice.UserID)
	}

	// It is no access token.
	impostor := ts.Client()
	impostor.AccessToken = resp.AccessToken
	acctExpect(t, "OpenID token as access token", acctDo(t, impostor, http.MethodGet, "/_matrix/client/v3/account/whoami", nil), http.StatusUnauthorized, "M_UNKNOWN_TOKEN")

	// Bad input and someone else's name.
	acctExpect(t, "unknown token", openIDUserInfo(t, ts, "poi_nonsense"), http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
	acctExpect(t, "access token as OpenID token", openIDUserInfo(t, ts, alice.AccessToken), http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
	acctExpect(t, "no token", acctDo(t, ts.Client(), http.MethodGet, "/_matrix/federation/v1/openid/userinfo", nil), http.StatusBadRequest, "M_MISSING_PARAM")
	path := "/_matrix/client/v3/user/" + url.PathEscape(string(alice.UserID)) + "/openid/request_token"
	acctExpect(t, "for someone else", acctDo(t, bob, http.MethodPost, path, map[string]any{}), http.StatusForbidden, "M_FORBIDDEN")
	acctExpect(t, "without a token", acctDo(t, ts.Client(), http.MethodPost, path, map[string]any{}), http.StatusUnauthorized, "M_MISSING_TOKEN")
	acctExpect(t, "body not JSON", acctDo(t, alice, http.MethodPost, path, "{nope"), http.StatusBadRequest, "M_NOT_JSON")

	// Tokens are stored: a restart keeps them.
	ts.Restart()
	acctExpect(t, "userinfo after restart", openIDUserInfo(t, ts, resp.AccessToken), http.StatusOK, "")

	// After an hour the token is gone.
	restore := sessAtClock(ts, time.Hour+time.Minute)
	defer restore()
	acctExpect(t, "expired token", openIDUserInfo(t, ts, resp.AccessToken), http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
}
