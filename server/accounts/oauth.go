package accounts

import (
	"context"
	"errors"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/config"
	"github.com/palpo-im/palpo-desktop/server/storage"
)

// What the OAuth 2.0 authorization server (package oauth) needs from the
// accounts rules: its sign-in and sign-up pages check passwords, names and
// invite codes exactly as /login and /register do, and its sessions are
// ordinary devices with ordinary tokens.

// StartSession opens a session (a device with an access token and, when
// p asks, a refresh token) for a user who proved who they are elsewhere.
// A locked or deactivated account gets none.
func (s *Service) StartSession(ctx context.Context, userID id.UserID, p SessionParams) (*LoginResult, error) {
	return s.startSession(ctx, userID, p)
}

// CheckLogin checks a user name and password as a password login does,
// under the same rate limits, without starting a session: the sign-in page
// signs a browser in, not a device. A locked account is refused.
func (s *Service) CheckLogin(ctx context.Context, user, password, ip string) (id.UserID, error) {
	if ok, wait := s.limiters.loginAddr.take(ip, s.Now()); !ok {
		return "", limitExceeded(wait)
	}
	userID, err := s.ResolveUser(user)
	if err != nil {
		_, _ = VerifyPassword(dummyHash(), password)
		return "", ErrInvalidLogin
	}
	if err := s.checkPasswordLimited(ctx, userID, password, ip); err != nil {
		return "", err
	}
	if err := s.checkNotLocked(ctx, userID); err != nil {
		return "", err
	}
	return userID, nil
}

// RegistrationNeedsToken tells whether registering needs an invite code.
func (s *Service) RegistrationNeedsToken() bool { return s.cfg.Mode == config.RegistrationToken }

// ResolveRegistrationToken checks an invite code typed on the sign-up
// page (loosely, as the UIA stage accepts it) and returns the token's own
// text, which CreateAccount spends. Uses held by registrations in progress
// count, as for the UIA stage.
func (s *Service) ResolveRegistrationToken(ctx context.Context, token string) (string, error) {
	if token == "" {
		return "", MMissingParam.WithMessage("Missing invite code")
	}
	t, err := s.findRegistrationToken(ctx, token)
	if errors.Is(err, storage.ErrNotFound) {
		return "", mautrix.MForbidden.WithMessage("Invalid registration token")
	}
	if err != nil {
		return "", err
	}
	s.uia.mu.Lock()
	defer s.uia.mu.Unlock()
	if !tokenUsable(t, s.uia.pending[t.Token], s.nowMS()) {
		return "", mautrix.MForbidden.WithMessage("Invalid registration token")
	}
	return t.Token, nil
}

// RevokeToken ends the session an access or refresh token belongs to (its
// device and every token of it go), as OAuth token revocation asks. It
// reports whether the token was known.
func (s *Service) RevokeToken(ctx context.Context, token string) (bool, error) {
	userID, deviceID, err := s.db.TokenDevice(ctx, hashToken(token))
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, s.DeleteDevices(ctx, userID, []id.DeviceID{deviceID})
}

// OAuthSessionByRefreshToken finds the OAuth session a refresh token acts
// for; storage.ErrNotFound when the token is unknown or was not issued
// through OAuth.
func (s *Service) OAuthSessionByRefreshToken(ctx context.Context, refreshToken string) (*storage.OAuthSessionInfo, error) {
	return s.db.OAuthSessionByRefreshToken(ctx, hashToken(refreshToken))
}

// MinPasswordLength is the password policy's shortest password, for the
// sign-up page to say.
func (s *Service) MinPasswordLength() int { return s.cfg.MinPasswordLength }

// CheckClientRegistrationRate spends one OAuth client registration of an
// address: registering needs no account, so without a limit anyone could
// fill the database with clients. It has its own bucket at the
// register_per_address rate, so an app registering itself at the start of
// each sign-in (as the spec asks) does not use up the sign-up attempts.
func (s *Service) CheckClientRegistrationRate(ip string) error {
	if ok, wait := s.limiters.registerAddr.take("oauth_client|"+ip, s.Now()); !ok {
		return limitExceeded(wait)
	}
	return nil
}

// CheckDeviceAuthorizationRate spends one OAuth device authorization of
// an address: starting one needs no account and stores a grant, so it is
// limited like client registration, in a bucket of its own so a TV asking
// for a code does not use up the address's registrations.
func (s *Service) CheckDeviceAuthorizationRate(ip string) error {
	if ok, wait := s.limiters.registerAddr.take("oauth_device|"+ip, s.Now()); !ok {
		return limitExceeded(wait)
	}
	return nil
}

// RecordSpentRefreshToken remembers an OAuth session's refresh token as
// exchanged, so that a copy used after its successor can be recognised.
func (s *Service) RecordSpentRefreshToken(ctx context.Context, refreshToken string, userID id.UserID, deviceID id.DeviceID) error {
	return s.db.RecordSpentRefreshToken(ctx, hashToken(refreshToken), userID, deviceID, s.nowMS())
}

// RevokeReplayedRefreshToken ends the session whose already exchanged
// refresh token this is, and reports whether there was one.
func (s *Service) RevokeReplayedRefreshToken(ctx context.Context, refreshToken string) (bool, error) {
	userID, deviceID, err := s.db.SpentRefreshTokenDevice(ctx, hashToken(refreshToken))
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := s.DeleteDevices(ctx, userID, []id.DeviceID{deviceID}); err != nil {
		return false, err
	}
	s.log.Warn("a replaced refresh token was used again; its session is revoked", "user", userID, "device", deviceID)
	return true, nil
}

// oauthApprovalLifetime is how long an approval given in the account pages
// waits for the app to retry its request.
const oauthApprovalLifetime = 10 * time.Minute

// ApproveOAuthAction records that the person approved, in the account
// pages, the sensitive action their OAuth session asked for (resetting
// cross-signing): the app's next m.oauth retry within ten minutes passes.
func (s *Service) ApproveOAuthAction(userID id.UserID) {
	s.uia.mu.Lock()
	defer s.uia.mu.Unlock()
	s.uia.oauthApproved[userID] = s.Now().Add(oauthApprovalLifetime)
}

// takeOAuthApproval spends a user's approval, if one is still valid.
func (s *Service) takeOAuthApproval(userID id.UserID, now time.Time) bool {
	s.uia.mu.Lock()
	defer s.uia.mu.Unlock()
	until, ok := s.uia.oauthApproved[userID]
	delete(s.uia.oauthApproved, userID)
	return ok && now.Before(until)
}
