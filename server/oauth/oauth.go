// Package oauth is Palpo's built-in OAuth 2.0 authorization server, the
// spec's "OAuth 2.0 API" (Matrix v1.15; MSC2964/2965/2966/2967): server
// metadata, dynamic client registration (RFC 7591), the authorization code
// grant with PKCE S256 (RFC 6749, RFC 7636), the refresh token grant, token
// revocation (RFC 7009), the device authorization grant (RFC 8628), and the
// web pages where a person signs in, signs up with an invite code and
// approves a client.
//
// An OAuth session is an ordinary Palpo device with ordinary access and
// refresh tokens (the accounts service makes them), so every client API
// endpoint accepts OAuth-issued tokens, and /logout, DELETE /devices and the
// admin tools end OAuth sessions as they end any other.
package oauth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"log/slog"
	"net/http"
	"time"

	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/storage"
)

// Lifetimes of the grants' secrets.
const (
	// codeLifetime is how long an authorization code may wait for its
	// exchange: RFC 6749 recommends at most ten minutes.
	codeLifetime = 10 * time.Minute
	// deviceCodeLifetime is how long a person has to approve a device.
	deviceCodeLifetime = 15 * time.Minute
	// devicePollInterval is the least time between two polls of the token
	// endpoint for a device grant (RFC 8628's default).
	devicePollInterval = 5 * time.Second
	// browserSessionLifetime is how long a browser stays signed in to the
	// account pages.
	browserSessionLifetime = 24 * time.Hour
)

// Service owns the OAuth rules; the handlers (handlers.go, pages.go) only
// parse requests and render answers.
type Service struct {
	db       *storage.DB
	accounts *accounts.Service
	log      *slog.Logger

	// Now is the clock; tests replace it to expire codes and grants.
	Now func() time.Time
}

// New builds the OAuth service on the accounts service, which owns users,
// devices, tokens, passwords and invite codes.
func New(db *storage.DB, acc *accounts.Service, log *slog.Logger) *Service {
	return &Service{db: db, accounts: acc, log: log, Now: time.Now}
}

// Error is an OAuth error answer (RFC 6749 section 5.2, RFC 7591 section
// 3.2.2): a JSON object with error and error_description, 400 unless said.
type Error struct {
	Code        string
	Description string
	StatusCode  int
}

func (e *Error) Error() string { return "oauth: " + e.Code + ": " + e.Description }

// Status is the HTTP status of the answer.
func (e *Error) Status() int {
	if e.StatusCode == 0 {
		return http.StatusBadRequest
	}
	return e.StatusCode
}

// Body is the JSON answer.
func (e *Error) Body() any {
	return map[string]string{"error": e.Code, "error_description": e.Description}
}

func oauthError(code, description string) *Error { return &Error{Code: code, Description: description} }

// OAuth error codes.
const (
	errInvalidRequest          = "invalid_request"
	errInvalidClient           = "invalid_client"
	errInvalidGrant            = "invalid_grant"
	errUnauthorizedClient      = "unauthorized_client"
	errUnsupportedGrantType    = "unsupported_grant_type"
	errInvalidScope            = "invalid_scope"
	errAccessDenied            = "access_denied"
	errUnsupportedResponseType = "unsupported_response_type"
	errInvalidRedirectURI      = "invalid_redirect_uri"
	errInvalidClientMetadata   = "invalid_client_metadata"
	errAuthorizationPending    = "authorization_pending"
	errSlowDown                = "slow_down"
	errExpiredToken            = "expired_token"
	errConsentRequired         = "consent_required"
)

// Grant and response types.
const (
	GrantAuthorizationCode = "authorization_code"
	GrantRefreshToken      = "refresh_token"
	GrantDeviceCode        = "urn:ietf:params:oauth:grant-type:device_code"
	responseTypeCode       = "code"
)

// newSecret returns 256 random bits, URL-safe base64: authorization codes,
// device codes and browser session cookies.
func newSecret() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// hashSecret is how secrets are stored: a copied database holds no code or
// cookie that works.
func hashSecret(s string) []byte {
	sum := sha256.Sum256([]byte(s))
	return sum[:]
}
