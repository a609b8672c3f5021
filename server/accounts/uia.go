package accounts

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"sync"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/storage"
)

// Authentication stage types.
const (
	StageDummy             = "m.login.dummy"
	StagePassword          = "m.login.password"
	StageRegistrationToken = "m.login.registration_token"
	// StageOAuth is approval in the account pages, for sessions signed in
	// through the OAuth 2.0 API (spec: "OAuth authentication").
	StageOAuth = "m.oauth"
)

// uiaSessionTTL bounds how long a user-interactive authentication may take.
const uiaSessionTTL = 30 * time.Minute

// UIAFlow is one sequence of stages that completes an authentication.
type UIAFlow struct {
	Stages []string `json:"stages"`
}

// UIARequired is the 401 answer that tells a client which stages to
// complete (and, after a failed stage, why it failed).
type UIARequired struct {
	Flows     []UIAFlow      `json:"flows"`
	Params    map[string]any `json:"params"`
	Session   string         `json:"session"`
	Completed []string       `json:"completed,omitempty"`
	ErrCode   string         `json:"errcode,omitempty"`
	Err       string         `json:"error,omitempty"`
}

func (u *UIARequired) Error() string {
	if u.ErrCode != "" {
		return "user-interactive auth: " + u.ErrCode + ": " + u.Err
	}
	return "user-interactive auth required"
}

// Status is 401, as the spec requires for every UIA answer.
func (u *UIARequired) Status() int { return http.StatusUnauthorized }

// Body is the JSON response.
func (u *UIARequired) Body() any { return u }

// UIASession is an authentication in progress (or done).
type UIASession struct {
	ID        string
	operation string
	userID    id.UserID
	completed []string
	created   time.Time
	// RegistrationToken is the token the m.login.registration_token stage
	// accepted, to be spent when the registration completes.
	RegistrationToken string
}

type uiaStore struct {
	mu       sync.Mutex
	sessions map[string]*UIASession
	// pending counts registration tokens held by sessions that passed the
	// token stage but have not registered yet, so one use is not promised
	// to two people.
	pending map[string]int
	// oauthApproved holds, per user, until when an m.oauth approval given
	// in the account pages may be used (oauth.go).
	oauthApproved map[id.UserID]time.Time
}

func newUIAStore() *uiaStore {
	return &uiaStore{sessions: map[string]*UIASession{}, pending: map[string]int{}, oauthApproved: map[id.UserID]time.Time{}}
}

func (st *uiaStore) sweepLocked(now time.Time) {
	for k, sess := range st.sessions {
		if now.Sub(sess.created) > uiaSessionTTL {
			st.dropLocked(k)
		}
	}
}

func (st *uiaStore) dropLocked(key string) {
	sess, ok := st.sessions[key]
	if !ok {
		return
	}
	if sess.RegistrationToken != "" {
		st.pending[sess.RegistrationToken]--
		if st.pending[sess.RegistrationToken] <= 0 {
			delete(st.pending, sess.RegistrationToken)
		}
	}
	delete(st.sessions, key)
}

// UIARequest describes one request that needs user-interactive auth.
type UIARequest struct {
	// Auth is the request body's "auth" object, or nil.
	Auth json.RawMessage
	// Flows the client may complete.
	Flows [][]string
	// Operation binds a session to one kind of request, such as
	// "register" or "delete_devices": a session started for one cannot
	// authorise another.
	Operation string
	// UserID is who must prove themselves with m.login.password; empty for
	// registration.
	UserID id.UserID
	// IP is the client's address, for rate-limiting password guesses.
	IP string
	// OAuthURL, when set, is where the person approves the operation in
	// the account pages: the m.oauth stage's params (oauth.go).
	OAuthURL string
}

type authDict struct {
	Type       string `json:"type"`
	Session    string `json:"session"`
	Password   string `json:"password"`
	Token      string `json:"token"`
	User       string `json:"user"`
	Identifier *struct {
		Type string `json:"type"`
		User string `json:"user"`
	} `json:"identifier"`
}

// CheckUIA runs user-interactive auth for req. It returns the session
// once a flow is complete; otherwise a *UIARequired (401) or another Matrix
// error. Call Done with the session once the operation succeeded.
func (s *Service) CheckUIA(ctx context.Context, req UIARequest) (*UIASession, error) {
	now := s.Now()
	var auth authDict
	if len(req.Auth) > 0 && string(req.Auth) != "null" {
		if err := json.Unmarshal(req.Auth, &auth); err != nil {
			return nil, mautrix.MBadJSON.WithMessage("auth must be an object")
		}
	}
	st := s.uia
	st.mu.Lock()
	st.sweepLocked(now)
	var sess *UIASession
	if auth.Session != "" {
		sess = st.sessions[auth.Session]
		if sess != nil && sess.userID != req.UserID {
			st.mu.Unlock()
			return nil, errNotYourself
		}
		if sess == nil || sess.operation != req.Operation {
			st.mu.Unlock()
			return nil, mautrix.MUnknown.WithStatus(http.StatusBadRequest).WithMessage("Unknown or expired authentication session; start again")
		}
	} else {
		sess = &UIASession{ID: newSessionID(), operation: req.Operation, userID: req.UserID, created: now}
		st.sessions[sess.ID] = sess
	}
	st.mu.Unlock()

	// m.oauth is completed by an auth dict with only the session, once the
	// person approved in the browser.
	if auth.Type == "" && auth.Session != "" && req.OAuthURL != "" && flowsAllow(req.Flows, StageOAuth) && s.takeOAuthApproval(req.UserID, now) {
		st.mu.Lock()
		if !slices.Contains(sess.completed, StageOAuth) {
			sess.completed = append(sess.completed, StageOAuth)
		}
		st.mu.Unlock()
	}
	var stageErr *mautrix.RespError
	if auth.Type != "" {
		if !flowsAllow(req.Flows, auth.Type) {
			return nil, s.uiaAnswer(req, sess, &mautrix.RespError{ErrCode: "M_UNRECOGNIZED", Err: "Authentication stage " + auth.Type + " is not offered here"})
		}
		err := s.runStage(ctx, req, sess, &auth)
		var re mautrix.RespError
		switch {
		case err == nil:
			st.mu.Lock()
			if !slices.Contains(sess.completed, auth.Type) {
				sess.completed = append(sess.completed, auth.Type)
			}
			st.mu.Unlock()
		case errors.As(err, &re) && re.ErrCode == mautrix.MLimitExceeded.ErrCode, errors.Is(err, errNotYourself):
			return nil, err
		case errors.As(err, &re):
			stageErr = &re
		default:
			return nil, err
		}
	}
	st.mu.Lock()
	done := flowComplete(req.Flows, sess.completed)
	st.mu.Unlock()
	if done && stageErr == nil {
		return sess, nil
	}
	return nil, s.uiaAnswer(req, sess, stageErr)
}

// Done ends a session after its operation succeeded, so it cannot be
// replayed; a registration token it held is no longer pending.
func (s *Service) Done(sess *UIASession) {
	s.uia.mu.Lock()
	defer s.uia.mu.Unlock()
	s.uia.dropLocked(sess.ID)
}

func (s *Service) uiaAnswer(req UIARequest, sess *UIASession, stageErr *mautrix.RespError) *UIARequired {
	s.uia.mu.Lock()
	defer s.uia.mu.Unlock()
	ans := &UIARequired{Session: sess.ID, Params: map[string]any{}, Completed: slices.Clone(sess.completed)}
	for _, f := range req.Flows {
		ans.Flows = append(ans.Flows, UIAFlow{Stages: f})
	}
	if stageErr != nil {
		ans.ErrCode, ans.Err = stageErr.ErrCode, stageErr.Err
	}
	if req.OAuthURL != "" && flowsAllow(req.Flows, StageOAuth) {
		ans.Params[StageOAuth] = map[string]string{"url": req.OAuthURL}
	}
	return ans
}

// errNotYourself refuses, with 403 at once rather than as a failed stage
// to retry, an authentication as someone other than the account it is
// for: another user's identifier, or a session another user started (as
// Synapse does). No password is checked, so it guesses no one's password.
var errNotYourself = &uiaRefusal{mautrix.MForbidden.WithMessage("You can only authenticate as yourself")}

// uiaRefusal is a RespError that errors.Is tells apart from the other
// M_FORBIDDEN answers (a wrong password is a failed stage).
type uiaRefusal struct{ mautrix.RespError }

func (e *uiaRefusal) Unwrap() error { return e.RespError }

func (s *Service) runStage(ctx context.Context, req UIARequest, sess *UIASession, auth *authDict) error {
	switch auth.Type {
	case StageDummy:
		return nil
	case StagePassword:
		user := auth.User
		if auth.Identifier != nil {
			if auth.Identifier.Type != "m.id.user" {
				return mautrix.MUnknown.WithMessage("Only m.id.user identifiers are supported")
			}
			user = auth.Identifier.User
		}
		userID, err := s.ResolveUser(user)
		if err != nil || userID != req.UserID {
			return errNotYourself
		}
		return s.checkPasswordLimited(ctx, userID, auth.Password, req.IP)
	case StageRegistrationToken:
		return s.holdRegistrationToken(ctx, sess, auth.Token)
	}
	return mautrix.MUnrecognized.WithMessage("Unknown authentication stage")
}

// holdRegistrationToken accepts a registration token for a session if it is
// valid counting the uses other sessions already hold.
func (s *Service) holdRegistrationToken(ctx context.Context, sess *UIASession, token string) error {
	if token == "" {
		return MMissingParam.WithMessage("Missing token")
	}
	t, err := s.findRegistrationToken(ctx, token)
	if errors.Is(err, storage.ErrNotFound) {
		return mautrix.MForbidden.WithMessage("Invalid registration token")
	}
	if err != nil {
		return err
	}
	token = t.Token // an invite code typed loosely counts under its own text
	st := s.uia
	st.mu.Lock()
	defer st.mu.Unlock()
	if sess.RegistrationToken == token {
		return nil
	}
	if !tokenUsable(t, st.pending[token], s.nowMS()) {
		return mautrix.MForbidden.WithMessage("Invalid registration token")
	}
	if sess.RegistrationToken != "" {
		st.pending[sess.RegistrationToken]--
	}
	sess.RegistrationToken = token
	st.pending[token]++
	return nil
}

func tokenUsable(t *storage.RegistrationToken, pending int, nowMS int64) bool {
	if t.ExpiryTime != nil && *t.ExpiryTime <= nowMS {
		return false
	}
	return t.UsesAllowed == nil || t.Completed+pending < *t.UsesAllowed
}

// RegistrationTokenValid answers /register/m.login.registration_token/validity.
func (s *Service) RegistrationTokenValid(ctx context.Context, token string) (bool, error) {
	t, err := s.findRegistrationToken(ctx, token)
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	s.uia.mu.Lock()
	defer s.uia.mu.Unlock()
	return tokenUsable(t, s.uia.pending[t.Token], s.nowMS()), nil
}

func flowsAllow(flows [][]string, stage string) bool {
	for _, f := range flows {
		if slices.Contains(f, stage) {
			return true
		}
	}
	return false
}

func flowComplete(flows [][]string, completed []string) bool {
	for _, f := range flows {
		ok := true
		for _, stage := range f {
			if !slices.Contains(completed, stage) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

func newSessionID() string {
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}
