package oauth

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/storage"
)

// The account pages' rules: a browser signs in (not a device: a browser
// session only lets its person approve clients and manage their account),
// signs up with the same rules, limits and invite codes as /register, and
// lists and ends the user's sessions.

// FormError is a problem a page shows beside its form, in words for people.
type FormError struct{ Message string }

func (e *FormError) Error() string { return e.Message }

// formError turns an accounts error into words for the page; other errors
// (the database failing) pass through.
func formError(err error) error {
	var re mautrix.RespError
	if !errors.As(err, &re) {
		return err
	}
	switch re.ErrCode {
	case mautrix.MLimitExceeded.ErrCode:
		wait := int64(1)
		if ms, ok := re.ExtraData["retry_after_ms"].(int64); ok {
			wait = max(1, (ms+999)/1000)
		}
		return &FormError{Message: fmt.Sprintf("Too many attempts. Try again in %d seconds.", wait)}
	case mautrix.MForbidden.ErrCode:
		if strings.Contains(re.Err, "registration token") {
			return &FormError{Message: "This invite code is not valid, has expired or has been used up. Ask for a new one."}
		}
		if re.Err == accounts.ErrInvalidLogin.Err {
			return &FormError{Message: "Wrong user name or password."}
		}
	case accounts.MUserLocked.ErrCode:
		return &FormError{Message: "This account is locked. Ask the owner of this server."}
	case accounts.MUserDeactivated.ErrCode:
		return &FormError{Message: "This account has been deactivated."}
	}
	return &FormError{Message: re.Err}
}

// SignIn checks a user name and password, as password login does (same
// rate limits), and returns a new browser session cookie value.
func (s *Service) SignIn(ctx context.Context, user, password, ip string) (id.UserID, string, error) {
	if user == "" || password == "" {
		return "", "", &FormError{Message: "Enter your user name and password."}
	}
	userID, err := s.accounts.CheckLogin(ctx, user, password, ip)
	if err != nil {
		return "", "", formError(err)
	}
	cookie, err := s.newBrowserSession(ctx, userID)
	return userID, cookie, err
}

// SignUp is what the sign-up form sends.
type SignUp struct {
	Username   string
	Password   string
	Confirm    string
	InviteCode string
	IP         string
}

// RegistrationOpen tells whether the sign-up page may create accounts,
// and NeedsInviteCode whether it asks for an invite code.
func (s *Service) RegistrationOpen() bool { return s.accounts.RegistrationEnabled() }

// NeedsInviteCode tells whether signing up needs an invite code.
func (s *Service) NeedsInviteCode() bool { return s.accounts.RegistrationNeedsToken() }

// SignUp creates an account as /register would (same registration mode,
// rate limit, user name rules, password policy and invite codes) and
// returns a browser session cookie value for it.
func (s *Service) SignUp(ctx context.Context, f SignUp) (id.UserID, string, error) {
	if !s.accounts.RegistrationEnabled() {
		return "", "", &FormError{Message: "This server does not let people create accounts. Ask its owner to make one for you."}
	}
	if err := s.accounts.CheckRegisterRate(f.IP); err != nil {
		return "", "", formError(err)
	}
	localpart := accounts.RequestedLocalpart(strings.TrimSpace(f.Username))
	if localpart == "" {
		return "", "", &FormError{Message: "Choose a user name."}
	}
	if err := s.accounts.CheckUsernameAvailable(ctx, localpart); err != nil {
		return "", "", formError(err)
	}
	if f.Password != f.Confirm {
		return "", "", &FormError{Message: "The two passwords differ."}
	}
	if err := s.accounts.CheckPasswordStrength(f.Password); err != nil {
		return "", "", formError(err)
	}
	acct := accounts.NewAccount{Localpart: localpart, Password: f.Password}
	if s.accounts.RegistrationNeedsToken() {
		if strings.TrimSpace(f.InviteCode) == "" {
			return "", "", &FormError{Message: "Enter the invite code you were given."}
		}
		token, err := s.accounts.ResolveRegistrationToken(ctx, strings.TrimSpace(f.InviteCode))
		if err != nil {
			return "", "", formError(err)
		}
		acct.RegistrationToken = token
	}
	res, err := s.accounts.CreateAccount(ctx, acct)
	if err != nil {
		return "", "", formError(err)
	}
	cookie, err := s.newBrowserSession(ctx, res.UserID)
	return res.UserID, cookie, err
}

func (s *Service) newBrowserSession(ctx context.Context, userID id.UserID) (string, error) {
	cookie := newSecret()
	now := s.Now()
	if err := s.db.InsertBrowserSession(ctx, hashSecret(cookie), userID, now.UnixMilli(), now.Add(browserSessionLifetime).UnixMilli()); err != nil {
		return "", err
	}
	return cookie, nil
}

// BrowserUser is the user a browser session cookie is signed in as, or ""
// (unknown, expired, or the account since deactivated).
func (s *Service) BrowserUser(ctx context.Context, cookie string) (id.UserID, error) {
	if cookie == "" {
		return "", nil
	}
	userID, err := s.db.BrowserSessionUser(ctx, hashSecret(cookie), s.Now().UnixMilli())
	if errors.Is(err, storage.ErrNotFound) {
		return "", nil
	}
	return userID, err
}

// SignOutBrowser ends a browser session.
func (s *Service) SignOutBrowser(ctx context.Context, cookie string) error {
	if cookie == "" {
		return nil
	}
	return s.db.DeleteBrowserSession(ctx, hashSecret(cookie))
}

// Session is one of a user's devices as the account page lists it.
type Session struct {
	DeviceID    id.DeviceID
	DisplayName string
	ClientName  string // for OAuth sessions
	LastSeen    time.Time
	LastSeenIP  string
}

// Sessions lists a user's devices, most recently seen first.
func (s *Service) Sessions(ctx context.Context, userID id.UserID) ([]Session, error) {
	devices, err := s.accounts.Devices(ctx, userID)
	if err != nil {
		return nil, err
	}
	clients, err := s.db.OAuthSessionClients(ctx, userID)
	if err != nil {
		return nil, err
	}
	names := map[string]string{}
	out := make([]Session, 0, len(devices))
	for _, d := range devices {
		sess := Session{DeviceID: d.DeviceID, DisplayName: d.DisplayName, LastSeenIP: d.LastSeenIP}
		if d.LastSeenTS > 0 {
			sess.LastSeen = time.UnixMilli(d.LastSeenTS)
		}
		if cid, ok := clients[d.DeviceID]; ok {
			name, seen := names[cid]
			if !seen {
				if c, err := s.Client(ctx, cid); err == nil && c != nil {
					name = c.Name()
				}
				names[cid] = name
			}
			sess.ClientName = name
		}
		out = append(out, sess)
	}
	slices.SortStableFunc(out, func(a, b Session) int { return b.LastSeen.Compare(a.LastSeen) })
	return out, nil
}

// EndSession signs one of the user's devices out; one already gone is
// no error (the page shows the list as it now is).
func (s *Service) EndSession(ctx context.Context, userID id.UserID, deviceID id.DeviceID) error {
	if err := s.accounts.DeleteDevices(ctx, userID, []id.DeviceID{deviceID}); err != nil {
		return err
	}
	s.log.Info("session ended from the account page", "user", userID, "device", deviceID)
	return nil
}
