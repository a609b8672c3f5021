package oauth

import (
	"context"
	"net/url"
	"strings"

	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/storage"
)

// AuthRequest is an authorization request's parameters (spec:
// "Authorisation request"), from the query string or, on the consent
// page's POST, from the form that carried them.
type AuthRequest struct {
	ClientID            string
	RedirectURI         string
	ResponseType        string
	ResponseMode        string
	Scope               string
	State               string
	CodeChallenge       string
	CodeChallengeMethod string
	Prompt              string
}

// authParams are the names of AuthRequest's fields, in order.
var authParams = []string{"client_id", "redirect_uri", "response_type", "response_mode", "scope", "state", "code_challenge", "code_challenge_method", "prompt"}

// AuthRequestFrom reads an authorization request from query or form values.
func AuthRequestFrom(v url.Values) AuthRequest {
	return AuthRequest{
		ClientID: v.Get("client_id"), RedirectURI: v.Get("redirect_uri"), ResponseType: v.Get("response_type"),
		ResponseMode: v.Get("response_mode"), Scope: v.Get("scope"), State: v.Get("state"),
		CodeChallenge: v.Get("code_challenge"), CodeChallengeMethod: v.Get("code_challenge_method"), Prompt: v.Get("prompt"),
	}
}

// Values are the request's parameters, to carry them through a page.
func (a AuthRequest) Values() url.Values {
	v := url.Values{}
	for i, val := range []string{a.ClientID, a.RedirectURI, a.ResponseType, a.ResponseMode, a.Scope, a.State, a.CodeChallenge, a.CodeChallengeMethod, a.Prompt} {
		if val != "" {
			v.Set(authParams[i], val)
		}
	}
	return v
}

// PageError is a failed authorization request that must not redirect: the
// client or its redirect URI is unknown, so the redirect could go to an
// attacker (RFC 6749 section 4.1.2.1). The page shows Message.
type PageError struct{ Message string }

func (e *PageError) Error() string { return "oauth authorization: " + e.Message }

// RedirectError is a failed authorization request answered by redirecting
// back to the client with error and state.
type RedirectError struct {
	URL string
	Err *Error
}

func (e *RedirectError) Error() string { return e.Err.Error() }

// Authorization is a checked authorization request, ready for consent.
type Authorization struct {
	Request AuthRequest
	Client  *Client
	Scope   *grantedScope
}

// DeviceID is the device the client asked for.
func (a *Authorization) DeviceID() id.DeviceID { return a.Scope.DeviceID }

// WantsSignUp tells whether the client asked for the sign-up page
// (prompt=create, spec: "User registration").
func (a *Authorization) WantsSignUp() bool { return hasPrompt(a.Request.Prompt, "create") }

func hasPrompt(prompt, v string) bool {
	for _, p := range strings.Fields(prompt) {
		if p == v {
			return true
		}
	}
	return false
}

// CheckAuthorization checks an authorization request. The client and the
// redirect URI come first: when either is wrong the answer is a *PageError
// (no redirect); every other fault is a *RedirectError.
func (s *Service) CheckAuthorization(ctx context.Context, req AuthRequest) (*Authorization, error) {
	c, err := s.Client(ctx, req.ClientID)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, &PageError{Message: "This sign-in link names an app that is not registered with this server. Go back to the app and try again."}
	}
	if req.RedirectURI == "" || !c.redirectMatches(req.RedirectURI) {
		return nil, &PageError{Message: "This sign-in link would send you back to an address the app did not register. Go back to the app and try again."}
	}
	a := &Authorization{Request: req, Client: c}
	fail := func(code, desc string) (*Authorization, error) {
		return nil, &RedirectError{URL: a.redirect(url.Values{"error": {code}, "error_description": {desc}}), Err: oauthError(code, desc)}
	}
	switch req.ResponseMode {
	case "", "query", "fragment":
	default:
		a.Request.ResponseMode = ""
		return fail(errInvalidRequest, "response_mode must be query or fragment")
	}
	if req.ResponseType != responseTypeCode {
		return fail(errUnsupportedResponseType, "response_type must be code")
	}
	if !c.allows(GrantAuthorizationCode) {
		return fail(errUnauthorizedClient, "The client did not register the authorization_code grant")
	}
	if req.CodeChallengeMethod != "S256" {
		return fail(errInvalidRequest, "PKCE is required, with code_challenge_method S256")
	}
	if !validChallenge(req.CodeChallenge) {
		return fail(errInvalidRequest, "code_challenge must be the base64url SHA-256 of the code verifier (43 characters)")
	}
	scope, serr := parseScope(req.Scope)
	if serr != nil {
		return fail(serr.Code, serr.Description)
	}
	a.Scope = scope
	if hasPrompt(req.Prompt, "none") {
		// Palpo always asks the person to approve a client.
		return fail(errConsentRequired, "This server asks the user to approve every sign-in")
	}
	return a, nil
}

// validChallenge accepts an S256 challenge: 32 bytes, base64url unpadded.
func validChallenge(c string) bool {
	if len(c) != 43 {
		return false
	}
	for _, ch := range []byte(c) {
		if !(ch >= 'A' && ch <= 'Z' || ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '_') {
			return false
		}
	}
	return true
}

// redirect is the redirect URI with params (and state) added, in the
// query or the fragment as the request asked (spec: "Callback").
func (a *Authorization) redirect(params url.Values) string {
	if a.Request.State != "" {
		params.Set("state", a.Request.State)
	}
	u, err := url.Parse(a.Request.RedirectURI)
	if err != nil {
		return a.Request.RedirectURI // checked against the registered ones already
	}
	if a.Request.ResponseMode == "fragment" {
		u.Fragment = ""
		return u.String() + "#" + params.Encode()
	}
	q := u.Query()
	for k, v := range params {
		q[k] = v
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// Deny is where the browser goes when the person refuses the client.
func (a *Authorization) Deny() string {
	return a.redirect(url.Values{"error": {errAccessDenied}, "error_description": {"The user refused to let the app sign in"}})
}

// Approve issues an authorization code for user and returns where the
// browser goes next: the client's redirect URI with the code.
func (s *Service) Approve(ctx context.Context, a *Authorization, userID id.UserID) (string, error) {
	code := newSecret()
	now := s.Now()
	err := s.db.InsertOAuthCode(ctx, &storage.OAuthCode{
		Hash: hashSecret(code), ClientID: a.Client.ClientID, UserID: userID, DeviceID: a.Scope.DeviceID,
		RedirectURI: a.Request.RedirectURI, Scope: a.Scope.Scope, CodeChallenge: a.Request.CodeChallenge,
		CreatedTS: now.UnixMilli(), ExpiresTS: now.Add(codeLifetime).UnixMilli(),
	})
	if err != nil {
		return "", err
	}
	s.log.Info("oauth sign-in approved", "user", userID, "client", a.Client.ClientID, "device", a.Scope.DeviceID)
	return a.redirect(url.Values{"code": {code}}), nil
}
