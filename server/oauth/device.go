package oauth

import (
	"context"
	"crypto/rand"
	"errors"
	"math/big"
	"net/url"
	"strings"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/storage"
)

// The device authorization grant (RFC 8628): a device without a browser
// shows a short code, the person types it (or scans a link) on a phone or
// computer that is signed in, and approves.

// DeviceAuthorization is the device authorization endpoint's answer
// (RFC 8628 section 3.2), without the URIs, which depend on the request's
// address.
type DeviceAuthorization struct {
	DeviceCode string `json:"device_code"`
	UserCode   string `json:"user_code"`
	ExpiresIn  int64  `json:"expires_in"`
	Interval   int64  `json:"interval"`
}

// userCodeChars are the characters of a user code: those of invite codes,
// capital letters and digits without look-alikes, easy to type on a phone.
const userCodeChars = "34679ACDEFGHJKMNPQRTUVWXY"

// newUserCode returns a code such as "K7QM-3XPD": eight characters from
// 25, about 37 bits, enough for a code that lives fifteen minutes and only
// a signed-in person can use.
func newUserCode() string {
	var sb strings.Builder
	n := big.NewInt(int64(len(userCodeChars)))
	for i := range 8 {
		if i == 4 {
			sb.WriteByte('-')
		}
		k, err := rand.Int(rand.Reader, n)
		if err != nil {
			panic(err)
		}
		sb.WriteByte(userCodeChars[k.Int64()])
	}
	return sb.String()
}

// NormalizeUserCode turns what a person typed ("k7qm 3xpd") into a user
// code's own form, or "" when it cannot be one.
func NormalizeUserCode(s string) string {
	var raw strings.Builder
	for _, r := range strings.ToUpper(s) {
		switch {
		case r == ' ' || r == '-':
		case strings.ContainsRune(userCodeChars, r):
			raw.WriteRune(r)
		default:
			return ""
		}
	}
	if raw.Len() != 8 {
		return ""
	}
	return raw.String()[:4] + "-" + raw.String()[4:]
}

// AuthorizeDevice starts a device authorization grant.
func (s *Service) AuthorizeDevice(ctx context.Context, form url.Values) (*DeviceAuthorization, error) {
	c, err := s.Client(ctx, form.Get("client_id"))
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, oauthError(errInvalidClient, "Unknown client_id")
	}
	if !c.allows(GrantDeviceCode) {
		return nil, oauthError(errUnauthorizedClient, "The client did not register the "+GrantDeviceCode+" grant")
	}
	scope, serr := parseScope(form.Get("scope"))
	if serr != nil {
		return nil, serr
	}
	now := s.Now()
	deviceCode := newSecret()
	for range 5 {
		g := &storage.OAuthDeviceGrant{
			DeviceCodeHash: hashSecret(deviceCode), UserCode: newUserCode(), ClientID: c.ClientID,
			DeviceID: scope.DeviceID, Scope: scope.Scope, CreatedTS: now.UnixMilli(), ExpiresTS: now.Add(deviceCodeLifetime).UnixMilli(),
		}
		err = s.db.InsertOAuthDeviceGrant(ctx, g)
		if errors.Is(err, storage.ErrTokenExists) {
			continue // a user code in use: draw another
		}
		if err != nil {
			return nil, err
		}
		return &DeviceAuthorization{DeviceCode: deviceCode, UserCode: g.UserCode,
			ExpiresIn: int64(deviceCodeLifetime / time.Second), Interval: int64(devicePollInterval / time.Second)}, nil
	}
	return nil, errors.New("could not draw a free user code")
}

// DeviceGrant is a pending device grant as the approval page shows it.
type DeviceGrant struct {
	UserCode string
	Client   *Client
	DeviceID id.DeviceID
}

// ErrNoDeviceGrant means a user code names no grant waiting for approval.
var ErrNoDeviceGrant = errors.New("no such pending device code")

// PendingDeviceGrant finds the grant waiting for approval under a user
// code typed by a person.
func (s *Service) PendingDeviceGrant(ctx context.Context, typed string) (*DeviceGrant, error) {
	code := NormalizeUserCode(typed)
	if code == "" {
		return nil, ErrNoDeviceGrant
	}
	g, err := s.db.OAuthDeviceGrantByUserCode(ctx, code)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, ErrNoDeviceGrant
	}
	if err != nil {
		return nil, err
	}
	if g.State != storage.OAuthDevicePending || s.Now().UnixMilli() >= g.ExpiresTS {
		return nil, ErrNoDeviceGrant
	}
	c, err := s.Client(ctx, g.ClientID)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, ErrNoDeviceGrant
	}
	return &DeviceGrant{UserCode: g.UserCode, Client: c, DeviceID: g.DeviceID}, nil
}

// DecideDeviceGrant approves (for userID) or denies a pending grant.
func (s *Service) DecideDeviceGrant(ctx context.Context, userCode string, userID id.UserID, approve bool) error {
	err := s.db.DecideOAuthDeviceGrant(ctx, userCode, userID, approve, s.Now().UnixMilli())
	if errors.Is(err, storage.ErrNotFound) {
		return ErrNoDeviceGrant
	}
	if err == nil {
		s.log.Info("oauth device grant decided", "user", userID, "approved", approve)
	}
	return err
}

// pollDevice is the token request of the device grant (RFC 8628 section
// 3.4 and 3.5).
func (s *Service) pollDevice(ctx context.Context, c *Client, form url.Values, who Requester) (*TokenResponse, error) {
	deviceCode := form.Get("device_code")
	if deviceCode == "" {
		return nil, oauthError(errInvalidRequest, "device_code is required")
	}
	now := s.Now()
	hash := hashSecret(deviceCode)
	g, err := s.db.PollOAuthDeviceGrant(ctx, hash, now.UnixMilli())
	if errors.Is(err, storage.ErrNotFound) {
		return nil, oauthError(errInvalidGrant, "Unknown device_code")
	}
	if err != nil {
		return nil, err
	}
	if g.ClientID != c.ClientID {
		return nil, oauthError(errInvalidGrant, "The device code was issued to another client")
	}
	if g.State == storage.OAuthDeviceDone {
		return nil, oauthError(errInvalidGrant, "The device code was already used")
	}
	if now.UnixMilli() >= g.ExpiresTS {
		return nil, oauthError(errExpiredToken, "The device code expired; start again")
	}
	switch g.State {
	case storage.OAuthDeviceDenied:
		return nil, oauthError(errAccessDenied, "The user refused to let the device sign in")
	case storage.OAuthDevicePending:
		if g.LastPollTS > 0 && now.UnixMilli()-g.LastPollTS < devicePollInterval.Milliseconds() {
			return nil, oauthError(errSlowDown, "Poll at most every 5 seconds")
		}
		return nil, oauthError(errAuthorizationPending, "The user has not approved the device yet")
	}
	return s.startSession(ctx, c, g.UserID, g.DeviceID, g.Scope, hash, who)
}
