package oauth

import (
	"crypto/subtle"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/httpapi"
)

// Cookies of the pages. The session cookie signs a browser in; the CSRF
// cookie's value must come back in every form (double-submit), which a
// page on another site cannot read and so cannot forge.
const (
	sessionCookie = "palpo_session"
	csrfCookie    = "palpo_csrf"
)

func (h *Handlers) registerPages(rt *httpapi.Router) {
	rt.Handle(http.MethodGet, PathAuthorize, h.authorizePage)
	rt.Handle(http.MethodPost, PathAuthorize, h.authorizeDecide)
	rt.Handle(http.MethodGet, PathSignIn, h.signInPage)
	rt.Handle(http.MethodPost, PathSignIn, h.signIn)
	rt.Handle(http.MethodGet, PathSignUp, h.signUpPage)
	rt.Handle(http.MethodPost, PathSignUp, h.signUp)
	rt.Handle(http.MethodPost, PathSignOut, h.signOut)
	rt.Handle(http.MethodGet, PathAccount, h.accountPage)
	rt.Handle(http.MethodPost, PathEndSession, h.endSession)
	rt.Handle(http.MethodPost, PathApprove, h.approveAction)
	rt.Handle(http.MethodGet, PathLink, h.linkPage)
	rt.Handle(http.MethodPost, PathLink, h.linkEnter)
	rt.Handle(http.MethodPost, PathLinkDecide, h.linkDecide)
}

// hidden is one hidden form field.
type hidden struct{ Name, Value string }

// pageData is what every page template may use.
type pageData struct {
	Title, ServerName, Error, Notice, CSRF string
	User                                   id.UserID
	Action, Next                           string

	// Sign-in and sign-up.
	Username, InviteCode  string
	SignUpURL, SignInURL  string
	NeedsInvite, Closed   bool
	MinPassword           int
	SignOutURL, EndURL    string
	ClientName, ClientURI string
	TOSURI, PolicyURI     string
	DeviceID              id.DeviceID
	Hidden                []hidden
	UserCode              string
	Message               string
	LinkURL, LinkText     string
	Sessions              []Session
	Highlight             id.DeviceID
}

// render writes a page. Pages are never cached, never framed (a framed
// consent page could be clicked through by another site), and send no
// Referer (the authorization URL carries the state).
func (h *Handlers) render(w http.ResponseWriter, r *http.Request, status int, name string, d pageData) error {
	d.ServerName = h.serverName
	d.CSRF = h.csrfToken(w, r)
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	// The templates were parsed at start-up; an error now is the client
	// going away, with nobody left to answer.
	_ = pages[name].Execute(w, d)
	return nil
}

func (h *Handlers) secure(r *http.Request) bool { return secureCookies(h.publicBase, r) }

// secureCookies is whether cookies set in answer to r are Secure: when the
// pages' base URL is https (a TLS proxy in front, or TLS here).
func secureCookies(publicBase string, r *http.Request) bool {
	return strings.HasPrefix(baseURL(publicBase, r), "https://")
}

func (h *Handlers) setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: h.secure(r)})
}

// csrfToken is the browser's CSRF cookie value, set now if it has none.
func (h *Handlers) csrfToken(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(csrfCookie); err == nil && len(c.Value) == 43 {
		return c.Value
	}
	t := newSecret()
	h.setCookie(w, r, csrfCookie, t, 0)
	return t
}

// checkForm parses a page's form and checks its CSRF token.
func (h *Handlers) checkForm(r *http.Request) bool {
	if err := r.ParseForm(); err != nil {
		return false
	}
	c, err := r.Cookie(csrfCookie)
	sent := r.PostForm.Get("csrf")
	return err == nil && c.Value != "" && sent != "" && subtle.ConstantTimeCompare([]byte(c.Value), []byte(sent)) == 1
}

// expired answers a form without a valid CSRF token.
func (h *Handlers) expired(w http.ResponseWriter, r *http.Request) error {
	return h.render(w, r, http.StatusForbidden, "message", pageData{Title: "Please try again",
		Message: "This form has expired or did not come from this server's page. Go back, reload the page and try again."})
}

// user is the user the browser is signed in as, or "".
func (h *Handlers) user(r *http.Request) (id.UserID, error) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return "", nil
	}
	return h.svc.BrowserUser(r.Context(), c.Value)
}

// safeNext keeps a page's "next" to a path on this server, so the sign-in
// page cannot be used to send people elsewhere. Browsers drop tabs and
// newlines from URLs and read a backslash as a slash, so "/\t/evil" or
// "/\\evil" would leave the site: no control character, space or backslash
// passes.
func safeNext(next string) string {
	if len(next) > 8192 || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") {
		return ""
	}
	for _, c := range []byte(next) {
		if c <= ' ' || c == 0x7f || c == '\\' {
			return ""
		}
	}
	if u, err := url.Parse(next); err != nil || u.Scheme != "" || u.Host != "" {
		return ""
	}
	return next
}

func withNext(path, next string) string {
	if next == "" {
		return path
	}
	return path + "?" + url.Values{"next": {next}}.Encode()
}

func seeOther(w http.ResponseWriter, r *http.Request, to string) error {
	http.Redirect(w, r, to, http.StatusSeeOther)
	return nil
}

// authorizePage serves the authorization endpoint: an error page for an
// unknown client or redirect URI, a redirect with an error for other
// faults, the sign-in (or, for prompt=create, sign-up) page for a browser
// not signed in, and the consent page otherwise.
func (h *Handlers) authorizePage(w http.ResponseWriter, r *http.Request) error {
	a, err := h.svc.CheckAuthorization(r.Context(), AuthRequestFrom(r.URL.Query()))
	if err != nil {
		return h.authorizeFailed(w, r, err)
	}
	userID, err := h.user(r)
	if err != nil {
		return err
	}
	here := r.URL.RequestURI()
	if userID == "" {
		if a.WantsSignUp() {
			return seeOther(w, r, withNext(PathSignUp, here))
		}
		to := withNext(PathSignIn, here)
		if name := h.loginHint(r.URL.Query().Get("login_hint")); name != "" {
			to += "&" + url.Values{"username": {name}}.Encode()
		}
		return seeOther(w, r, to)
	}
	return h.consent(w, r, a, userID, here)
}

// loginHint is the user name a client's login_hint names (MSC4198's
// "mxid:@name:server", sent when the app already knows who signs in
// again), for the sign-in page to fill in; "" for anything else.
func (h *Handlers) loginHint(hint string) string {
	mxid, ok := strings.CutPrefix(hint, "mxid:")
	if !ok {
		return ""
	}
	localpart, server, err := id.UserID(mxid).Parse()
	if err != nil || server != h.serverName {
		return ""
	}
	return localpart
}

func (h *Handlers) authorizeFailed(w http.ResponseWriter, r *http.Request, err error) error {
	var pe *PageError
	var re *RedirectError
	switch {
	case errors.As(err, &pe):
		return h.render(w, r, http.StatusBadRequest, "message", pageData{Title: "This sign-in link does not work", Message: pe.Message})
	case errors.As(err, &re):
		return seeOther(w, r, re.URL)
	}
	return err
}

func (h *Handlers) consent(w http.ResponseWriter, r *http.Request, a *Authorization, userID id.UserID, here string) error {
	var fields []hidden
	values := a.Request.Values()
	for _, name := range authParams {
		if v := values.Get(name); v != "" {
			fields = append(fields, hidden{name, v})
		}
	}
	return h.render(w, r, http.StatusOK, "consent", pageData{
		Title: "Allow " + a.Client.Name() + "?", User: userID, Action: PathAuthorize, Next: here,
		ClientName: a.Client.Name(), ClientURI: a.Client.ClientURI, TOSURI: a.Client.TOSURI, PolicyURI: a.Client.PolicyURI,
		DeviceID: a.DeviceID(), Hidden: fields, SignOutURL: PathSignOut,
	})
}

// authorizeDecide is the consent page's answer.
func (h *Handlers) authorizeDecide(w http.ResponseWriter, r *http.Request) error {
	if !h.checkForm(r) {
		return h.expired(w, r)
	}
	req := AuthRequestFrom(r.PostForm)
	a, err := h.svc.CheckAuthorization(r.Context(), req)
	if err != nil {
		return h.authorizeFailed(w, r, err)
	}
	userID, err := h.user(r)
	if err != nil {
		return err
	}
	if userID == "" {
		return seeOther(w, r, withNext(PathSignIn, PathAuthorize+"?"+req.Values().Encode()))
	}
	if r.PostForm.Get("action") != "allow" {
		return seeOther(w, r, a.Deny())
	}
	to, err := h.svc.Approve(r.Context(), a, userID)
	if err != nil {
		return err
	}
	return seeOther(w, r, to)
}

func (h *Handlers) signInData(next string) pageData {
	d := pageData{Title: "Sign in", Action: PathSignIn, Next: next}
	if h.svc.RegistrationOpen() {
		d.SignUpURL = withNext(PathSignUp, next)
	}
	return d
}

func (h *Handlers) signInPage(w http.ResponseWriter, r *http.Request) error {
	next := safeNext(r.URL.Query().Get("next"))
	if userID, err := h.user(r); err != nil {
		return err
	} else if userID != "" {
		if next == "" {
			next = PathAccount
		}
		return seeOther(w, r, next)
	}
	d := h.signInData(next)
	d.Username = r.URL.Query().Get("username")
	return h.render(w, r, http.StatusOK, "signin", d)
}

func (h *Handlers) signIn(w http.ResponseWriter, r *http.Request) error {
	if !h.checkForm(r) {
		return h.expired(w, r)
	}
	next := safeNext(r.PostForm.Get("next"))
	username := r.PostForm.Get("username")
	_, cookie, err := h.svc.SignIn(r.Context(), username, r.PostForm.Get("password"), httpapi.ClientIP(r))
	var fe *FormError
	if errors.As(err, &fe) {
		d := h.signInData(next)
		d.Error, d.Username = fe.Message, username
		return h.render(w, r, http.StatusBadRequest, "signin", d)
	}
	if err != nil {
		return err
	}
	return h.signedIn(w, r, cookie, next)
}

// signedIn sets the session cookie and goes on where the person was going.
func (h *Handlers) signedIn(w http.ResponseWriter, r *http.Request, cookie, next string) error {
	h.setCookie(w, r, sessionCookie, cookie, int(browserSessionLifetime.Seconds()))
	if next == "" {
		next = PathAccount
	}
	return seeOther(w, r, next)
}

func (h *Handlers) signUpData(next string) pageData {
	return pageData{Title: "Create your account", Action: PathSignUp, Next: next,
		SignInURL: withNext(PathSignIn, next), NeedsInvite: h.svc.NeedsInviteCode(), Closed: !h.svc.RegistrationOpen(),
		MinPassword: h.svc.accounts.MinPasswordLength()}
}

// signUpPage serves the sign-up form. ?token=CODE fills the invite code in,
// so an invite link can open this page ready to use.
//
// The code is also remembered in the browser (RememberInvite), so that the
// sign-up page an app opens later (Element X's "Create account") has it
// filled in too: a phone's in-app browser tab shares the browser's cookies.
func (h *Handlers) signUpPage(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	d := h.signUpData(safeNext(q.Get("next")))
	if code := q.Get("token"); code != "" {
		d.InviteCode = code
		RememberInvite(w, r, h.publicBase, code)
	} else if c, err := r.Cookie(InviteCookie); err == nil && plausibleInvite(c.Value) {
		d.InviteCode = c.Value
	}
	return h.render(w, r, http.StatusOK, "signup", d)
}

// InviteCookie remembers the invite code a browser was given, for a day.
const InviteCookie = "palpo_invite"

// RememberInvite keeps an invite code in the browser that opened an invite
// link, for the sign-up page to fill in. It is no secret from the person
// who was given it; it stays HttpOnly so no page script reads it.
// publicBase is public_baseurl ("" when not set): it is Secure by the
// same rule as the pages' own cookies.
func RememberInvite(w http.ResponseWriter, r *http.Request, publicBase, code string) {
	if !plausibleInvite(code) {
		return
	}
	http.SetCookie(w, &http.Cookie{Name: InviteCookie, Value: code, Path: "/", MaxAge: 24 * 60 * 60,
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: secureCookies(publicBase, r)})
}

// plausibleInvite accepts what a registration token may be: at most 64
// of the spec's unreserved URI characters.
func plausibleInvite(code string) bool {
	return code != "" && len(code) <= accounts.MaxRegistrationTokenLength && strings.Trim(code, accounts.RegistrationTokenChars) == ""
}

func (h *Handlers) signUp(w http.ResponseWriter, r *http.Request) error {
	if !h.checkForm(r) {
		return h.expired(w, r)
	}
	f := r.PostForm
	next := safeNext(f.Get("next"))
	_, cookie, err := h.svc.SignUp(r.Context(), SignUp{Username: f.Get("username"), Password: f.Get("password"),
		Confirm: f.Get("confirm"), InviteCode: f.Get("invite_code"), IP: httpapi.ClientIP(r)})
	var fe *FormError
	if errors.As(err, &fe) {
		d := h.signUpData(next)
		d.Error, d.Username, d.InviteCode = fe.Message, f.Get("username"), f.Get("invite_code")
		return h.render(w, r, http.StatusBadRequest, "signup", d)
	}
	if err != nil {
		return err
	}
	// The invite is spent.
	http.SetCookie(w, &http.Cookie{Name: InviteCookie, Path: "/", MaxAge: -1})
	return h.signedIn(w, r, cookie, next)
}

func (h *Handlers) signOut(w http.ResponseWriter, r *http.Request) error {
	if !h.checkForm(r) {
		return h.expired(w, r)
	}
	if c, err := r.Cookie(sessionCookie); err == nil {
		if err := h.svc.SignOutBrowser(r.Context(), c.Value); err != nil {
			return err
		}
	}
	h.setCookie(w, r, sessionCookie, "", -1)
	return seeOther(w, r, withNext(PathSignIn, safeNext(r.PostForm.Get("next"))))
}

// accountPage lists the user's sessions (the account management URL).
func (h *Handlers) accountPage(w http.ResponseWriter, r *http.Request) error {
	userID, err := h.user(r)
	if err != nil {
		return err
	}
	if userID == "" {
		return seeOther(w, r, withNext(PathSignIn, r.URL.RequestURI()))
	}
	if r.URL.Query().Get("action") == ActionCrossSigningReset {
		return h.render(w, r, http.StatusOK, "approve", pageData{Title: "Reset your encryption identity?", User: userID,
			Action: PathApprove, Hidden: []hidden{{"action", ActionCrossSigningReset}}})
	}
	sessions, err := h.svc.Sessions(r.Context(), userID)
	if err != nil {
		return err
	}
	d := pageData{Title: "Your account", User: userID, Sessions: sessions, EndURL: PathEndSession, SignOutURL: PathSignOut,
		Highlight: id.DeviceID(r.URL.Query().Get("device_id"))}
	if r.URL.Query().Get("ended") != "" {
		d.Notice = "The session was signed out."
	}
	return h.render(w, r, http.StatusOK, "account", d)
}

// formUser starts a form post of a signed-in page: it checks the form's
// CSRF token and finds the browser's user. done is true when the answer
// is already decided (err, or nil with a response written): an expired
// form, or nobody signed in (sent to sign in, then on to next).
func (h *Handlers) formUser(w http.ResponseWriter, r *http.Request, next string) (userID id.UserID, done bool, err error) {
	if !h.checkForm(r) {
		return "", true, h.expired(w, r)
	}
	userID, err = h.user(r)
	if err != nil {
		return "", true, err
	}
	if userID == "" {
		return "", true, seeOther(w, r, withNext(PathSignIn, next))
	}
	return userID, false, nil
}

func (h *Handlers) endSession(w http.ResponseWriter, r *http.Request) error {
	userID, done, err := h.formUser(w, r, PathAccount)
	if done {
		return err
	}
	if err := h.svc.EndSession(r.Context(), userID, id.DeviceID(r.PostForm.Get("device_id"))); err != nil {
		return err
	}
	return seeOther(w, r, PathAccount+"?ended=1")
}

// linkPage is the device grant's verification URI: the code entry form,
// or with ?user_code= the approval page at once.
func (h *Handlers) linkPage(w http.ResponseWriter, r *http.Request) error {
	userID, err := h.user(r)
	if err != nil {
		return err
	}
	if userID == "" {
		return seeOther(w, r, withNext(PathSignIn, r.URL.RequestURI()))
	}
	code := r.URL.Query().Get("user_code")
	if code == "" {
		return h.render(w, r, http.StatusOK, "link", pageData{Title: "Sign in a device", Action: PathLink, User: userID})
	}
	return h.showDeviceGrant(w, r, userID, code)
}

func (h *Handlers) linkEnter(w http.ResponseWriter, r *http.Request) error {
	userID, done, err := h.formUser(w, r, PathLink)
	if done {
		return err
	}
	return h.showDeviceGrant(w, r, userID, r.PostForm.Get("user_code"))
}

func (h *Handlers) showDeviceGrant(w http.ResponseWriter, r *http.Request, userID id.UserID, code string) error {
	g, err := h.svc.PendingDeviceGrant(r.Context(), code)
	if errors.Is(err, ErrNoDeviceGrant) {
		return h.render(w, r, http.StatusBadRequest, "link", pageData{Title: "Sign in a device", Action: PathLink, User: userID,
			UserCode: code, Error: "That code is not valid or has expired. Check the code on your device, or start again there."})
	}
	if err != nil {
		return err
	}
	return h.render(w, r, http.StatusOK, "consent", pageData{
		Title: "Allow " + g.Client.Name() + "?", User: userID, Action: PathLinkDecide, Next: PathLink,
		ClientName: g.Client.Name(), ClientURI: g.Client.ClientURI, TOSURI: g.Client.TOSURI, PolicyURI: g.Client.PolicyURI,
		DeviceID: g.DeviceID, Hidden: []hidden{{"user_code", g.UserCode}}, SignOutURL: PathSignOut,
	})
}

func (h *Handlers) linkDecide(w http.ResponseWriter, r *http.Request) error {
	userID, done, err := h.formUser(w, r, PathLink)
	if done {
		return err
	}
	approve := r.PostForm.Get("action") == "allow"
	err = h.svc.DecideDeviceGrant(r.Context(), r.PostForm.Get("user_code"), userID, approve)
	if errors.Is(err, ErrNoDeviceGrant) {
		return h.render(w, r, http.StatusBadRequest, "link", pageData{Title: "Sign in a device", Action: PathLink, User: userID,
			Error: "That code is not valid or has expired. Start again on your device."})
	}
	if err != nil {
		return err
	}
	if approve {
		return h.render(w, r, http.StatusOK, "message", pageData{Title: "Device signed in",
			Message: "You can go back to your device: it is signing in now.", LinkURL: PathAccount, LinkText: "See your sessions"})
	}
	return h.render(w, r, http.StatusOK, "message", pageData{Title: "Sign-in refused",
		Message: "The device was not signed in.", LinkURL: PathAccount, LinkText: "See your sessions"})
}

// approveAction is the answer of an action's approval page: the app's
// retry of the request within ten minutes passes the m.oauth stage.
func (h *Handlers) approveAction(w http.ResponseWriter, r *http.Request) error {
	_ = r.ParseForm() // the action names where to come back after signing in
	userID, done, err := h.formUser(w, r, PathAccount+"?action="+url.QueryEscape(r.PostForm.Get("action")))
	if done {
		return err
	}
	if r.PostForm.Get("action") != ActionCrossSigningReset {
		return seeOther(w, r, PathAccount)
	}
	h.svc.accounts.ApproveOAuthAction(userID)
	h.svc.log.Info("cross-signing reset approved in the account pages", "user", userID)
	return h.render(w, r, http.StatusOK, "message", pageData{Title: "Reset allowed",
		Message: "Go back to your app and continue: it may reset your encryption identity in the next ten minutes."})
}
