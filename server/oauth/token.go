package oauth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/url"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/storage"
)

// TokenResponse is the token endpoint's answer (RFC 6749 section 5.1).
type TokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
	Scope        string `json:"scope"`
}

// Requester is who is asking the token endpoint, for the session's
// last-seen details.
type Requester struct {
	IP        string
	UserAgent string
}

// Token runs the token endpoint for one form-encoded request.
func (s *Service) Token(ctx context.Context, form url.Values, who Requester) (*TokenResponse, error) {
	grant := form.Get("grant_type")
	if grant == "" {
		return nil, oauthError(errInvalidRequest, "grant_type is required")
	}
	if grant != GrantAuthorizationCode && grant != GrantRefreshToken && grant != GrantDeviceCode {
		return nil, oauthError(errUnsupportedGrantType, "grant_type must be authorization_code, refresh_token or "+GrantDeviceCode)
	}
	c, err := s.Client(ctx, form.Get("client_id"))
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, oauthError(errInvalidClient, "Unknown client_id")
	}
	if !c.allows(grant) {
		return nil, oauthError(errUnauthorizedClient, "The client did not register the "+grant+" grant")
	}
	switch grant {
	case GrantAuthorizationCode:
		return s.exchangeCode(ctx, c, form, who)
	case GrantRefreshToken:
		return s.refresh(ctx, c, form)
	default:
		return s.pollDevice(ctx, c, form, who)
	}
}

var errBadCode = oauthError(errInvalidGrant, "The authorization code is invalid, expired or already used")

// exchangeCode is the authorization code grant's token request.
func (s *Service) exchangeCode(ctx context.Context, c *Client, form url.Values, who Requester) (*TokenResponse, error) {
	code, verifier, redirect := form.Get("code"), form.Get("code_verifier"), form.Get("redirect_uri")
	if code == "" || verifier == "" || redirect == "" {
		return nil, oauthError(errInvalidRequest, "code, code_verifier and redirect_uri are required")
	}
	now := s.Now()
	hash := hashSecret(code)
	g, err := s.db.ConsumeOAuthCode(ctx, hash, now.UnixMilli())
	if errors.Is(err, storage.ErrNotFound) {
		return nil, errBadCode
	}
	if err != nil {
		return nil, err
	}
	if g.Used {
		// A replayed code may be stolen: revoke what it gave (RFC 6749
		// section 4.1.2).
		if err := s.revokeGrant(ctx, hash); err != nil {
			return nil, err
		}
		s.log.Warn("oauth authorization code used twice; its session is revoked", "client", g.ClientID, "user", g.UserID)
		return nil, errBadCode
	}
	switch {
	case now.UnixMilli() >= g.ExpiresTS:
		return nil, errBadCode
	case g.ClientID != c.ClientID:
		return nil, oauthError(errInvalidGrant, "The authorization code was issued to another client")
	case g.RedirectURI != redirect:
		return nil, oauthError(errInvalidGrant, "redirect_uri differs from the authorization request's")
	case !verifierMatches(verifier, g.CodeChallenge):
		return nil, oauthError(errInvalidGrant, "code_verifier does not match the code_challenge")
	}
	return s.startSession(ctx, c, g.UserID, g.DeviceID, g.Scope, hash, who)
}

// verifierMatches checks a PKCE verifier (RFC 7636 section 4.1: 43 to 128
// unreserved characters) against its S256 challenge.
func verifierMatches(verifier, challenge string) bool {
	if len(verifier) < 43 || len(verifier) > 128 || !validDeviceID(verifier) {
		return false
	}
	sum := sha256.Sum256([]byte(verifier))
	want := base64.RawURLEncoding.EncodeToString(sum[:])
	return subtle.ConstantTimeCompare([]byte(want), []byte(challenge)) == 1
}

// revokeGrant ends the session a code or device code gave, if any.
func (s *Service) revokeGrant(ctx context.Context, grantHash []byte) error {
	userID, deviceID, err := s.db.OAuthSessionByGrant(ctx, grantHash)
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	return s.accounts.DeleteDevices(ctx, userID, []id.DeviceID{deviceID})
}

// startSession makes the device and its tokens.
func (s *Service) startSession(ctx context.Context, c *Client, userID id.UserID, deviceID id.DeviceID, scope string, grantHash []byte, who Requester) (*TokenResponse, error) {
	res, err := s.accounts.StartSession(ctx, userID, accounts.SessionParams{
		DeviceID: deviceID, DisplayName: truncate(c.Name(), 100), WantsRefresh: true, IP: who.IP, UserAgent: who.UserAgent,
		OAuth: &storage.OAuthSession{ClientID: c.ClientID, Scope: scope, GrantHash: grantHash},
	})
	var re mautrix.RespError
	if errors.As(err, &re) {
		// Locked or deactivated since the approval.
		return nil, oauthError(errInvalidGrant, re.Err)
	}
	if err != nil {
		return nil, err
	}
	s.log.Info("oauth session started", "user", userID, "device", deviceID, "client", c.ClientID)
	return tokenResponse(res, scope), nil
}

func tokenResponse(res *accounts.LoginResult, scope string) *TokenResponse {
	return &TokenResponse{AccessToken: res.AccessToken, TokenType: "Bearer", ExpiresIn: res.ExpiresInMS / 1000,
		RefreshToken: res.RefreshToken, Scope: scope}
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n])
}

var errBadRefresh = oauthError(errInvalidGrant, "The refresh token is invalid, revoked or was issued to another client")

// refresh is the refresh token grant: Palpo's own refresh rotation (the
// old token stays valid until the new pair is used, so a lost answer can
// be retried), for a session this client signed in.
func (s *Service) refresh(ctx context.Context, c *Client, form url.Values) (*TokenResponse, error) {
	token := form.Get("refresh_token")
	if token == "" {
		return nil, oauthError(errInvalidRequest, "refresh_token is required")
	}
	sess, err := s.accounts.OAuthSessionByRefreshToken(ctx, token)
	if errors.Is(err, storage.ErrNotFound) {
		// A token already replaced and retired was copied: whoever holds
		// the session now may not be its owner (spec: "Refresh token
		// grant"), so it ends.
		if _, err := s.accounts.RevokeReplayedRefreshToken(ctx, token); err != nil {
			return nil, err
		}
		return nil, errBadRefresh
	}
	if err != nil {
		return nil, err
	}
	if sess.ClientID != c.ClientID {
		return nil, errBadRefresh
	}
	// Remembered before the exchange: the token stays valid until its
	// successor is used (a client that lost the answer may retry), and
	// only after that is a use of it a replay.
	if err := s.accounts.RecordSpentRefreshToken(ctx, token, sess.UserID, sess.DeviceID); err != nil {
		return nil, err
	}
	res, err := s.accounts.Refresh(ctx, token)
	var re mautrix.RespError
	if errors.As(err, &re) {
		return nil, oauthError(errInvalidGrant, re.Err)
	}
	if err != nil {
		return nil, err
	}
	return tokenResponse(res, sess.Scope), nil
}

// Revoke is token revocation (RFC 7009): the session of an access or
// refresh token ends, device and all. An unknown token is no error, as
// the RFC asks; the client_id is not checked against the token, as the
// spec asks (leaked tokens can be revoked by anyone who finds them).
func (s *Service) Revoke(ctx context.Context, form url.Values) error {
	token := form.Get("token")
	if token == "" {
		return oauthError(errInvalidRequest, "token is required")
	}
	known, err := s.accounts.RevokeToken(ctx, token)
	if err != nil {
		return err
	}
	if known {
		s.log.Info("oauth token revoked")
	}
	return nil
}
