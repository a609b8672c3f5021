package oauth_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/config"
	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
)

// clock is a test clock: the real time moved by an offset, changed
// atomically while the server runs.
type clock struct{ offset atomic.Int64 }

func (c *clock) Now() time.Time                { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) Advance(d time.Duration)       { c.offset.Add(int64(d)) }
func (c *clock) install(ts *testserver.Server) { ts.OAuth().Now = c.Now }

// env is a test server with a clock on its OAuth service.
type env struct {
	*testserver.Server
	clock *clock
}

func newEnv(t *testing.T, opts ...testserver.Option) *env {
	t.Helper()
	ts := testserver.New(t, opts...)
	c := &clock{}
	c.install(ts)
	return &env{Server: ts, clock: c}
}

// webClient is the metadata of a web client whose redirect URI is on
// another host, where the test's browser stops.
func webClient() map[string]any {
	return map[string]any{
		"client_name":                "Test App",
		"client_uri":                 "https://app.example.org/",
		"tos_uri":                    "https://app.example.org/tos",
		"policy_uri":                 "https://app.example.org/policy",
		"redirect_uris":              []string{"https://app.example.org/callback"},
		"grant_types":                []string{"authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code"},
		"response_types":             []string{"code"},
		"token_endpoint_auth_method": "none",
		"application_type":           "web",
	}
}

const webRedirect = "https://app.example.org/callback"

// postJSON posts a JSON body and decodes the JSON answer.
func (e *env) postJSON(t *testing.T, path string, body any) (int, map[string]any) {
	t.Helper()
	b, _ := json.Marshal(body)
	resp, err := http.Post(e.URL+path, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return decode(t, resp)
}

// postForm posts a form to an OAuth endpoint and decodes the JSON answer.
func (e *env) postForm(t *testing.T, path string, form url.Values) (int, map[string]any) {
	t.Helper()
	resp, err := http.PostForm(e.URL+path, form)
	if err != nil {
		t.Fatal(err)
	}
	return decode(t, resp)
}

func decode(t *testing.T, resp *http.Response) (int, map[string]any) {
	t.Helper()
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("%d answer is not JSON: %s", resp.StatusCode, raw)
		}
	}
	return resp.StatusCode, m
}

// register registers a client and returns its ID.
func (e *env) register(t *testing.T, meta map[string]any) string {
	t.Helper()
	status, body := e.postJSON(t, "/oauth2/register", meta)
	if status != http.StatusCreated {
		t.Fatalf("register client: %d %v", status, body)
	}
	return body["client_id"].(string)
}

// pkce returns a verifier and its S256 challenge.
func pkce() (string, string) {
	b := make([]byte, 32)
	rand.Read(b)
	v := base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(v))
	return v, base64.RawURLEncoding.EncodeToString(sum[:])
}

// browser is a person's browser: it keeps cookies and follows redirects on
// the server, stopping at one that leaves it (the client's redirect URI).
type browser struct {
	t    *testing.T
	e    *env
	http *http.Client
}

func (e *env) browser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	base, _ := url.Parse(e.URL)
	return &browser{t: t, e: e, http: &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if req.URL.Host != base.Host {
			return http.ErrUseLastResponse
		}
		return nil
	}}}
}

// page is a fetched page: its status, final URL, body and redirect target.
type page struct {
	Status   int
	URL      *url.URL
	Body     string
	Location string
}

func (b *browser) do(req *http.Request) *page {
	b.t.Helper()
	resp, err := b.http.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return &page{Status: resp.StatusCode, URL: resp.Request.URL, Body: string(raw), Location: resp.Header.Get("Location")}
}

func (b *browser) get(path string) *page {
	b.t.Helper()
	if strings.HasPrefix(path, "/") {
		path = b.e.URL + path
	}
	req, _ := http.NewRequest(http.MethodGet, path, nil)
	return b.do(req)
}

func (b *browser) post(path string, form url.Values) *page {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, b.e.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

var (
	formRE   = regexp.MustCompile(`(?s)<form[^>]*action="([^"]*)"[^>]*>(.*?)</form>`)
	hiddenRE = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)
)

// submit fills in the page's first form whose action is action (its
// hidden fields, then fields) and posts it.
func (b *browser) submit(p *page, action string, fields url.Values) *page {
	b.t.Helper()
	for _, m := range formRE.FindAllStringSubmatch(p.Body, -1) {
		if html.UnescapeString(m[1]) != action {
			continue
		}
		form := url.Values{}
		for _, h := range hiddenRE.FindAllStringSubmatch(m[2], -1) {
			form.Set(html.UnescapeString(h[1]), html.UnescapeString(h[2]))
		}
		for k, v := range fields {
			form[k] = v
		}
		return b.post(action, form)
	}
	b.t.Fatalf("no form posting to %s on %s:\n%s", action, p.URL, p.Body)
	return nil
}

// authorizeURL is an authorization request for a client.
func authorizeURL(clientID, redirect, device, challenge string, extra url.Values) string {
	q := url.Values{
		"client_id": {clientID}, "redirect_uri": {redirect}, "response_type": {"code"}, "response_mode": {"query"},
		"scope": {"urn:matrix:client:api:* urn:matrix:client:device:" + device}, "state": {"st4te"},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"},
	}
	for k, v := range extra {
		q[k] = v
	}
	return "/oauth2/authorize?" + q.Encode()
}

// signIn signs the browser in on a sign-in page it was sent to.
func (b *browser) signIn(p *page, user, password string) *page {
	b.t.Helper()
	if p.URL.Path != "/account/login" {
		b.t.Fatalf("expected the sign-in page, got %d %s", p.Status, p.URL)
	}
	return b.submit(p, "/account/login", url.Values{"username": {user}, "password": {password}})
}

// approve allows the client on a consent page and returns the callback's
// query parameters.
func (b *browser) approve(p *page) url.Values {
	b.t.Helper()
	if !strings.Contains(p.Body, "wants to access your account") {
		b.t.Fatalf("expected the consent page, got %d %s:\n%s", p.Status, p.URL, p.Body)
	}
	res := b.submit(p, "/oauth2/authorize", url.Values{"action": {"allow"}})
	return callback(b.t, res)
}

// callback reads the parameters of a redirect to the client.
func callback(t *testing.T, p *page) url.Values {
	t.Helper()
	if p.Status != http.StatusSeeOther || !strings.HasPrefix(p.Location, webRedirect) {
		t.Fatalf("expected a redirect to the client, got %d %q:\n%s", p.Status, p.Location, p.Body)
	}
	u, err := url.Parse(p.Location)
	if err != nil {
		t.Fatal(err)
	}
	if u.Fragment != "" {
		v, _ := url.ParseQuery(u.Fragment)
		return v
	}
	return u.Query()
}

// signedInCode runs the authorization code flow to a code for an existing
// user: the browser signs in when asked.
func (e *env) signedInCode(t *testing.T, b *browser, clientID, device, challenge string) string {
	t.Helper()
	p := b.get(authorizeURL(clientID, webRedirect, device, challenge, nil))
	if p.URL.Path == "/account/login" {
		p = b.signIn(p, "alice", testserver.DefaultPassword)
	}
	cb := b.approve(p)
	if cb.Get("state") != "st4te" || cb.Get("code") == "" {
		t.Fatalf("callback %v", cb)
	}
	return cb.Get("code")
}

// exchange swaps a code for tokens.
func (e *env) exchange(t *testing.T, clientID, code, verifier string) (int, map[string]any) {
	t.Helper()
	return e.postForm(t, "/oauth2/token", url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {webRedirect}, "client_id": {clientID}, "code_verifier": {verifier}})
}

func expectOAuthError(t *testing.T, what string, status int, body map[string]any, wantStatus int, wantErr string) {
	t.Helper()
	if status != wantStatus || body["error"] != wantErr {
		t.Errorf("%s: got %d %v, want %d %s", what, status, body, wantStatus, wantErr)
	}
}

// withInvites makes registration need an invite code.
func withInvites(c *config.Config) { c.Registration.Mode = config.RegistrationToken }

// newInvite makes a single-use invite code.
func (e *env) newInvite(t *testing.T) string {
	t.Helper()
	code, err := accounts.NewInviteCode()
	if err != nil {
		t.Fatal(err)
	}
	one := 1
	if _, err := e.Accounts().CreateRegistrationToken(context.Background(), accounts.NewRegistrationToken{Token: code, UsesAllowed: &one}); err != nil {
		t.Fatal(err)
	}
	return code
}
