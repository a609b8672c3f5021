package accounts

import (
	"context"
	"errors"
	"fmt"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/storage"
)

// Caller is the user and device an access token stands for.
type Caller struct {
	UserID   id.UserID
	DeviceID id.DeviceID
	IsAdmin  bool
	// Locked callers only get this far on the routes that allow it
	// (logout); Suspended ones may read but not write (moderation.go).
	Locked    bool
	Suspended bool
	// OAuth is true when the device signed in through the OAuth 2.0 API,
	// whose sessions confirm sensitive actions with the m.oauth stage.
	OAuth bool

	tokenHash []byte
}

// Token-auth errors, with the spec's codes.
var (
	errMissingToken = mautrix.MMissingToken.WithMessage("Missing access token")
	errUnknownToken = mautrix.MUnknownToken.WithMessage("Unrecognised access token")
	// An expired token from a client that can refresh is a soft logout: the
	// client refreshes (or logs in again) without losing its device or keys.
	errExpiredToken = mautrix.MUnknownToken.WithMessage("Access token has expired").WithExtraField("soft_logout", true)
)

// deviceSeenInterval bounds how often a device's last-seen time is written.
const deviceSeenInterval = time.Minute

// AuthenticateToken resolves an access token to its caller. A locked
// account's token is answered M_USER_LOCKED.
func (s *Service) AuthenticateToken(ctx context.Context, token, ip, userAgent string) (*Caller, error) {
	return s.authenticate(ctx, token, ip, userAgent, false)
}

// AuthenticateTokenAllowLocked is AuthenticateToken for the only requests
// a locked account may still make: logging out (spec: "Account locking").
func (s *Service) AuthenticateTokenAllowLocked(ctx context.Context, token, ip, userAgent string) (*Caller, error) {
	return s.authenticate(ctx, token, ip, userAgent, true)
}

func (s *Service) authenticate(ctx context.Context, token, ip, userAgent string, allowLocked bool) (*Caller, error) {
	if token == "" {
		return nil, errMissingToken
	}
	hash := hashToken(token)
	owner, err := s.db.LookupAccessToken(ctx, hash)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, errUnknownToken
	}
	if err != nil {
		return nil, err
	}
	if owner.Deactivated {
		return nil, errUnknownToken
	}
	now := s.Now()
	if owner.ExpiresTS > 0 && owner.ExpiresTS <= now.UnixMilli() {
		return nil, errExpiredToken
	}
	if owner.Locked && !allowLocked {
		return nil, ErrLocked
	}
	if owner.FirstUse {
		if err := s.db.MarkAccessTokenUsed(ctx, hash, owner.RefreshHash); err != nil {
			return nil, err
		}
	}
	s.touchDevice(ctx, owner.UserID, owner.DeviceID, now, ip, userAgent)
	return &Caller{UserID: owner.UserID, DeviceID: owner.DeviceID, IsAdmin: owner.IsAdmin,
		Locked: owner.Locked, Suspended: owner.Suspended, OAuth: owner.OAuth, tokenHash: hash}, nil
}

// touchDevice records last-seen information at most once a minute per
// device, so ordinary requests do not each cost a database write.
func (s *Service) touchDevice(ctx context.Context, userID id.UserID, deviceID id.DeviceID, now time.Time, ip, userAgent string) {
	key := id.DeviceID(string(userID) + "|" + string(deviceID))
	s.seenMu.Lock()
	last, ok := s.seen[key]
	if ok && now.Sub(last) < deviceSeenInterval {
		s.seenMu.Unlock()
		return
	}
	s.seen[key] = now
	if len(s.seen) > 100000 {
		s.seen = map[id.DeviceID]time.Time{}
	}
	s.seenMu.Unlock()
	if err := s.db.TouchDevice(ctx, userID, deviceID, now.UnixMilli(), ip, userAgent); err != nil {
		s.log.Warn("could not record device last seen", "user", userID, "error", err)
	}
}

// LoginResult is a new session's credentials.
type LoginResult struct {
	UserID       id.UserID   `json:"user_id"`
	AccessToken  string      `json:"access_token,omitempty"`
	DeviceID     id.DeviceID `json:"device_id,omitempty"`
	RefreshToken string      `json:"refresh_token,omitempty"`
	ExpiresInMS  int64       `json:"expires_in_ms,omitempty"`
}

// SessionParams are what a client may say about the device it logs in.
type SessionParams struct {
	DeviceID     id.DeviceID
	DisplayName  string
	WantsRefresh bool
	IP           string
	UserAgent    string
	// OAuth, for a sign-in through the OAuth 2.0 API, records its client
	// beside the device (oauth.go).
	OAuth *storage.OAuthSession
}

// newSession makes tokens for a login; the caller stores them.
func (s *Service) newSession(userID id.UserID, p SessionParams) (*storage.NewSession, *LoginResult) {
	deviceID := p.DeviceID
	if deviceID == "" {
		deviceID = newDeviceID()
	}
	now := s.Now()
	res := &LoginResult{UserID: userID, DeviceID: deviceID, AccessToken: newToken(accessTokenPrefix)}
	ns := &storage.NewSession{
		UserID: userID, DeviceID: deviceID, DisplayName: p.DisplayName,
		AccessHash: hashToken(res.AccessToken), NowTS: now.UnixMilli(), IP: p.IP, UserAgent: p.UserAgent,
		OAuth: p.OAuth,
	}
	if p.WantsRefresh {
		res.RefreshToken = newToken(refreshTokenPrefix)
		ns.RefreshHash = hashToken(res.RefreshToken)
		lifetime := time.Duration(s.auth.AccessTokenLifetimeSeconds) * time.Second
		res.ExpiresInMS = lifetime.Milliseconds()
		ns.ExpiresTS = now.Add(lifetime).UnixMilli()
	}
	return ns, res
}

// ErrInvalidLogin is the one answer for a wrong user name or password, so
// that logins do not reveal which accounts exist.
var ErrInvalidLogin = mautrix.MForbidden.WithMessage("Invalid username or password")

// LoginWithPassword checks a password login, rate-limited per address and,
// for failures, per account.
func (s *Service) LoginWithPassword(ctx context.Context, user, password string, p SessionParams) (*LoginResult, error) {
	if ok, wait := s.limiters.loginAddr.take(p.IP, s.Now()); !ok {
		return nil, limitExceeded(wait)
	}
	userID, err := s.ResolveUser(user)
	if err != nil {
		_, _ = VerifyPassword(dummyHash(), password)
		return nil, ErrInvalidLogin
	}
	if err := s.checkPasswordLimited(ctx, userID, password, p.IP); err != nil {
		return nil, err
	}
	return s.startSession(ctx, userID, p)
}

// checkPasswordLimited checks a user's password; after repeated failures the
// account is rate-limited (M_LIMIT_EXCEEDED) before the hash is even tried.
func (s *Service) checkPasswordLimited(ctx context.Context, userID id.UserID, password, ip string) error {
	now := s.Now()
	key, err := s.failureKey(ctx, userID, ip)
	if err != nil {
		return err
	}
	if ok, wait := s.limiters.loginAccount.check(key, now); !ok {
		return limitExceeded(wait)
	}
	u, err := s.db.GetUser(ctx, userID)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	hash := dummyHash()
	if u != nil && u.PasswordHash != "" {
		hash = u.PasswordHash
	}
	match, err := VerifyPassword(hash, password)
	if err != nil {
		return fmt.Errorf("verify password of %s: %w", userID, err)
	}
	if u == nil || u.PasswordHash == "" || !match {
		s.limiters.loginAccount.take(key, now)
		if u != nil && u.Deactivated {
			return MUserDeactivated.WithMessage("This account has been deactivated")
		}
		return ErrInvalidLogin
	}
	return nil
}

// failureKey is the key of the per-account failure limit for a password
// tried from ip. Strangers' guesses all count against the account's one
// budget, so that nobody can try many passwords; but an address one of the
// account's devices was last seen from has a budget of its own, so that
// strangers guessing cannot lock the owner out of signing in again where
// they already use the account (home, the same computer). Someone at that
// address guessing is still limited, by that budget.
func (s *Service) failureKey(ctx context.Context, userID id.UserID, ip string) (string, error) {
	if ip == "" {
		return string(userID), nil
	}
	known, err := s.db.DeviceSeenFrom(ctx, userID, ip)
	if err != nil || !known {
		return string(userID), err
	}
	return string(userID) + " from " + ip, nil
}

// CheckPassword verifies a user's password (for the admin tools).
func (s *Service) CheckPassword(ctx context.Context, userID id.UserID, password string) error {
	return s.checkPasswordLimited(ctx, userID, password, "")
}

// LoginWithToken exchanges a single-use login token for a session.
func (s *Service) LoginWithToken(ctx context.Context, token string, p SessionParams) (*LoginResult, error) {
	if ok, wait := s.limiters.loginAddr.take(p.IP, s.Now()); !ok {
		return nil, limitExceeded(wait)
	}
	userID, err := s.db.ConsumeLoginToken(ctx, hashToken(token), s.nowMS())
	if errors.Is(err, storage.ErrNotFound) {
		return nil, mautrix.MForbidden.WithMessage("Invalid or expired login token")
	}
	if err != nil {
		return nil, err
	}
	return s.startSession(ctx, userID, p)
}

func (s *Service) startSession(ctx context.Context, userID id.UserID, p SessionParams) (*LoginResult, error) {
	// A locked account keeps its sessions but gets no new one until it
	// is unlocked (spec: "Soft logout").
	if err := s.checkNotLocked(ctx, userID); err != nil {
		return nil, err
	}
	ns, res := s.newSession(userID, p)
	err := s.db.CreateSession(ctx, ns)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, MUserDeactivated.WithMessage("This account has been deactivated")
	}
	if err != nil {
		return nil, err
	}
	return res, nil
}

// CreateLoginToken mints a single-use login token for a user, valid for the
// configured lifetime: the desktop app shows it (as a QR code) to sign a
// phone in without typing a password.
func (s *Service) CreateLoginToken(ctx context.Context, userID id.UserID) (string, time.Duration, error) {
	ttl := time.Duration(s.auth.LoginTokenLifetimeSeconds) * time.Second
	token := newToken(loginTokenPrefix)
	if err := s.db.InsertLoginToken(ctx, hashToken(token), userID, s.Now().Add(ttl).UnixMilli()); err != nil {
		return "", 0, err
	}
	return token, ttl, nil
}

// Refresh exchanges a refresh token for new tokens.
func (s *Service) Refresh(ctx context.Context, refreshToken string) (*LoginResult, error) {
	if refreshToken == "" {
		return nil, MMissingParam.WithMessage("Missing refresh_token")
	}
	now := s.Now()
	lifetime := time.Duration(s.auth.AccessTokenLifetimeSeconds) * time.Second
	res := &LoginResult{AccessToken: newToken(accessTokenPrefix), RefreshToken: newToken(refreshTokenPrefix), ExpiresInMS: lifetime.Milliseconds()}
	userID, deviceID, err := s.db.RotateRefreshToken(ctx, hashToken(refreshToken), hashToken(res.AccessToken), hashToken(res.RefreshToken), now.Add(lifetime).UnixMilli(), now.UnixMilli())
	if errors.Is(err, storage.ErrNotFound) {
		return nil, mautrix.MUnknownToken.WithMessage("Unknown refresh token")
	}
	if err != nil {
		return nil, err
	}
	// Refused after the rotation, which is harmless: the old refresh token
	// stays valid until its successor is used, and that never happens.
	if err := s.checkNotLocked(ctx, userID); err != nil {
		return nil, err
	}
	res.UserID, res.DeviceID = userID, deviceID
	return res, nil
}

// Logout ends the caller's session and deletes its device.
func (s *Service) Logout(ctx context.Context, c *Caller) error {
	err := s.db.DeleteAccessToken(ctx, c.tokenHash)
	if errors.Is(err, storage.ErrNotFound) {
		return errUnknownToken
	}
	if err != nil {
		return err
	}
	s.devicesRemoved(ctx, c.UserID)
	return nil
}

// LogoutAll ends every session of the caller's user.
func (s *Service) LogoutAll(ctx context.Context, userID id.UserID) error {
	if err := s.db.DeleteOtherDevices(ctx, userID, ""); err != nil {
		return err
	}
	s.devicesRemoved(ctx, userID)
	return nil
}
