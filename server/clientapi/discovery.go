package clientapi

import (
	"html/template"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/httpapi"
	"github.com/palpo-im/palpo-desktop/server/oauth"
)

// SupportedVersions are the spec versions advertised at /versions. Clients
// refuse servers that lack the versions they need (Element wants v1.1 or
// later); the endpoints behind them are listed, honestly counted, in
// docs/spec-coverage.md. v1.15 and later make clients expect
// /_matrix/client/v1/auth_metadata (OAuth 2.0), so oauthVersions are added
// only while the OAuth server runs ([oauth] enabled).
var SupportedVersions = []string{
	"r0.0.1", "r0.1.0", "r0.2.0", "r0.3.0", "r0.4.0", "r0.5.0", "r0.6.0", "r0.6.1",
	"v1.1", "v1.2", "v1.3", "v1.4", "v1.5", "v1.6", "v1.7", "v1.8", "v1.9", "v1.10", "v1.11", "v1.12",
}

// oauthVersions are advertised with the OAuth 2.0 API on. v1.13 and v1.14
// are left out: nobody has checked Palpo against their changes, and
// clients compare with "at least", so v1.15 alone is what they look for.
var oauthVersions = []string{"v1.15"}

// unstableFeatures are the MSCs advertised at /versions: those whose
// service this server runs (org.matrix.simplified_msc3575 is sliding sync,
// which is how Element X decides it can use this server).
func (a *API) unstableFeatures() map[string]bool {
	f := map[string]bool{}
	if a.deps.SlidingSync != nil {
		f["org.matrix.simplified_msc3575"] = true
	}
	return f
}

func (a *API) registerDiscovery(rt *httpapi.Router) {
	rt.Handle(http.MethodGet, "/_matrix/client/versions", a.versions)
	rt.Handle(http.MethodGet, "/.well-known/matrix/client", a.wellKnown)
	rt.Handle(http.MethodGet, "/{$}", a.rootPage)
	rt.Handle(http.MethodGet, "/invite/{code}", a.invitePage)
}

type versionsResponse struct {
	Versions         []string        `json:"versions"`
	UnstableFeatures map[string]bool `json:"unstable_features"`
}

func (a *API) versions(w http.ResponseWriter, r *http.Request) error {
	versions := SupportedVersions
	if a.deps.ApprovalURL != nil { // the OAuth server runs
		versions = append(slices.Clone(versions), oauthVersions...)
	}
	return httpapi.WriteJSON(w, http.StatusOK, versionsResponse{
		Versions:         versions,
		UnstableFeatures: a.unstableFeatures(),
	})
}

type wellKnownResponse struct {
	Homeserver struct {
		BaseURL string `json:"base_url"`
	} `json:"m.homeserver"`
}

// wellKnown answers client discovery: public_baseurl when it is set (the
// domain's web server passes this path here, so a user ID alone finds the
// server); without it, the address the client came by, as on the root
// page (a phone on the home network must not be told localhost).
func (a *API) wellKnown(w http.ResponseWriter, r *http.Request) error {
	var resp wellKnownResponse
	resp.Homeserver.BaseURL = a.deps.BaseURL()
	if a.deps.PublicBaseURL == "" && !fromThisComputer(r) {
		resp.Homeserver.BaseURL = a.requestBaseURL(r)
	}
	return httpapi.WriteJSON(w, http.StatusOK, resp)
}

var rootTemplate = template.Must(template.New("root").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Palpo Matrix server</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 40em; margin: 3em auto; padding: 0 1em; line-height: 1.5; color: #1d2d35; }
code { background: #eef3f5; padding: .1em .3em; border-radius: 4px; }
h1 { color: #0d8a73; }
</style>
</head>
<body>
<h1>Palpo is running</h1>
<p>This is <strong>Palpo</strong>, a Matrix homeserver for <code>{{.ServerName}}</code>.
There is nothing to see here in a browser: chat with a Matrix client instead.</p>
<h2>Connect a client</h2>
<ol>
<li>Open <a href="https://element.io/download">Element</a>, FluffyChat, Nheko or another Matrix client.</li>
<li>Choose to sign in with another server (Element: "Edit" next to the homeserver).</li>
<li>Enter <code>{{.BaseURL}}</code> as the homeserver address.</li>
<li>Sign in with the account the owner of this server made for you.</li>
</ol>
<p>User IDs on this server look like <code>@name:{{.ServerName}}</code>.</p>
</body>
</html>
`))

func (a *API) rootPage(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	// The template is static and was parsed at start-up, so an error here
	// can only be the client going away; there is no response left to fix.
	// This computer is shown the configured address; another device the
	// address it came by.
	base := a.deps.BaseURL()
	if !fromThisComputer(r) {
		base = a.requestBaseURL(r)
	}
	_ = rootTemplate.Execute(w, struct{ ServerName, BaseURL string }{a.deps.ServerName, base})
	return nil
}

// requestBaseURL is the address a page should tell a device to use: the
// one it reached this server by (a phone that opened the LAN address must
// not be told localhost), or the configured base URL when that is what it
// used.
func (a *API) requestBaseURL(r *http.Request) string {
	base := strings.TrimSuffix(a.deps.BaseURL(), "/")
	if pub, err := url.Parse(base); err == nil && pub.Host == r.Host {
		return base
	}
	if r.TLS != nil {
		return "https://" + r.Host
	}
	return "http://" + r.Host
}

// fromThisComputer tells whether a request came by a loopback address.
func fromThisComputer(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.Host)
	if err != nil {
		host = r.Host
	}
	ip := net.ParseIP(host)
	return host == "localhost" || ip != nil && ip.IsLoopback()
}

var inviteTemplate = template.Must(template.New("invite").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Your invite to {{.ServerName}}</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 40em; margin: 2em auto; padding: 0 1em; line-height: 1.5; color: #1d2d35; }
code { background: #eef3f5; padding: .1em .3em; border-radius: 4px; }
.code { font: bold 1.8em ui-monospace, monospace; letter-spacing: .08em; background: #eef3f5; padding: .3em .6em; border-radius: 6px; display: inline-block; }
h1 { color: #0d8a73; }
</style>
</head>
<body>
<h1>You are invited to chat on {{.ServerName}}</h1>
<p>This invite code lets you create an account on this Matrix server:</p>
<p class="code">{{.Code}}</p>
<ol>
<li>Install <a href="https://element.io/download">Element</a> (or FluffyChat) on this device.</li>
<li>Choose <strong>Create account</strong>. Next to the server name press <strong>Edit</strong>
(FluffyChat asks for it first) and enter <code>{{.BaseURL}}</code></li>
<li>Pick a user name and a password. When asked for a registration token or invite code, enter <code>{{.Code}}</code></li>
</ol>
{{if .SignUpURL}}<p>Using Element X? Choose <strong>Create account</strong> and enter <code>{{.BaseURL}}</code>: this server's page
opens, where you enter the code. Or <a href="{{.SignUpURL}}">create your account here now</a> and then sign in.</p>
{{else}}<p>Element X cannot create accounts on this server: make yours in Element or FluffyChat first, then sign in with Element X
using the same address.</p>{{end}}
<p>Your user ID will look like <code>@name:{{.ServerName}}</code>.</p>
</body>
</html>
`))

// invitePage is what an invite link opens on the invitee's phone: the code
// and the steps, with the address the phone reached this page by (so it is
// one that works from there). The code is shown as given, not looked up:
// the page tells nothing the link did not already hold.
func (a *API) invitePage(w http.ResponseWriter, r *http.Request) error {
	code := r.PathValue("code")
	if code == "" || len(code) > accounts.MaxRegistrationTokenLength || strings.Trim(code, accounts.RegistrationTokenChars) != "" {
		return httpapi.ErrUnrecognized
	}
	base := a.requestBaseURL(r)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	signUp := ""
	if a.deps.ApprovalURL != nil { // the OAuth server runs
		// The OAuth sign-up page, with the code filled in; the browser
		// remembers the code for the sign-up page Element X opens later.
		signUp = oauth.PathSignUp + "?" + url.Values{"token": {code}}.Encode()
		oauth.RememberInvite(w, r, a.deps.PublicBaseURL, code)
	}
	w.WriteHeader(http.StatusOK)
	_ = inviteTemplate.Execute(w, struct{ ServerName, BaseURL, Code, SignUpURL string }{a.deps.ServerName, base, code, signUp})
	return nil
}
