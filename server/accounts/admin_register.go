package accounts

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"net/http"
	"strings"
	"sync"
	"time"

	"maunium.net/go/mautrix"
)

// Shared-secret registration, compatible with Synapse's
// /_synapse/admin/v1/register and its register_new_matrix_user script:
// whoever knows registration.shared_secret can create accounts, admins
// included, without an access token. Each request needs a fresh nonce, so a
// captured request cannot be replayed.

// nonceTTL is how long a nonce stays usable, as in Synapse.
const nonceTTL = 60 * time.Second

// maxNonces bounds the nonces held at once: anyone may ask for one, and
// memory must not grow with how often they do.
const maxNonces = 10000

// SharedSecretRegistration holds the outstanding nonces. The admin API owns
// one for the life of the server; nonces do not survive a restart.
type SharedSecretRegistration struct {
	s      *Service
	mu     sync.Mutex
	nonces map[string]time.Time
}

// NewSharedSecretRegistration starts an empty nonce store.
func (s *Service) NewSharedSecretRegistration() *SharedSecretRegistration {
	return &SharedSecretRegistration{s: s, nonces: map[string]time.Time{}}
}

// ErrSharedSecretDisabled is Synapse's answer when no secret is configured.
var ErrSharedSecretDisabled = mautrix.MUnknown.WithStatus(http.StatusBadRequest).WithMessage("Shared secret registration is not enabled")

func (r *SharedSecretRegistration) enabled() bool { return r.s.cfg.SharedSecret != "" }

func (r *SharedSecretRegistration) sweepLocked(now time.Time) {
	for k, t := range r.nonces {
		if now.Sub(t) > nonceTTL {
			delete(r.nonces, k)
		}
	}
}

// Nonce issues a single-use nonce valid for a minute.
func (r *SharedSecretRegistration) Nonce() (string, error) {
	if !r.enabled() {
		return "", ErrSharedSecretDisabled
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	nonce := hex.EncodeToString(b)
	now := r.s.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sweepLocked(now)
	if len(r.nonces) >= maxNonces {
		return "", limitExceeded(nonceTTL)
	}
	r.nonces[nonce] = now
	return nonce, nil
}

// SharedSecretRequest is a registration request and where it came from.
type SharedSecretRequest struct {
	Nonce       string
	Username    string
	Password    string
	DisplayName string
	UserType    string
	Admin       bool
	// MAC is the hex HMAC-SHA1, keyed with the shared secret, of nonce,
	// username, password, "admin" or "notadmin" and (when set) the user
	// type, separated by NUL bytes.
	MAC string
	// InhibitLogin creates the account without a device or access token.
	InhibitLogin bool
	// RefreshToken asks for a refresh token with the access token.
	RefreshToken bool

	IP, UserAgent string
}

// SharedSecretMAC computes the MAC a request must carry.
func SharedSecretMAC(secret, nonce, username, password string, admin bool, userType string) string {
	m := hmac.New(sha1.New, []byte(secret))
	m.Write([]byte(nonce))
	m.Write([]byte{0})
	m.Write([]byte(username))
	m.Write([]byte{0})
	m.Write([]byte(password))
	m.Write([]byte{0})
	if admin {
		m.Write([]byte("admin"))
	} else {
		m.Write([]byte("notadmin"))
	}
	if userType != "" {
		m.Write([]byte{0})
		m.Write([]byte(userType))
	}
	return hex.EncodeToString(m.Sum(nil))
}

// Register checks the nonce and MAC and creates the account (logged in
// unless InhibitLogin). The nonce is spent even when the request fails.
// Wrong MACs count against the address's registration rate limit, so the
// secret cannot be guessed quickly.
func (r *SharedSecretRegistration) Register(ctx context.Context, req SharedSecretRequest) (*LoginResult, error) {
	if !r.enabled() {
		return nil, ErrSharedSecretDisabled
	}
	now := r.s.Now()
	r.mu.Lock()
	r.sweepLocked(now)
	_, ok := r.nonces[req.Nonce]
	delete(r.nonces, req.Nonce)
	r.mu.Unlock()
	if !ok {
		return nil, mautrix.MUnknown.WithStatus(http.StatusBadRequest).WithMessage("unrecognised nonce")
	}
	// An empty name would make CreateAccount pick one; this API names
	// the account it creates.
	if req.Username == "" || len(req.Username) > 512 || strings.ContainsRune(req.Username, 0) {
		return nil, mautrix.MInvalidUsername.WithMessage("Invalid username")
	}
	if len(req.Password) > 512 || strings.ContainsRune(req.Password, 0) {
		return nil, mautrix.MInvalidParam.WithMessage("Invalid password")
	}
	if !userTypes[req.UserType] {
		return nil, mautrix.MInvalidParam.WithMessage("Invalid user type")
	}
	limiter := r.s.limiters.registerAddr
	if ok, wait := limiter.check(req.IP, now); !ok {
		return nil, limitExceeded(wait)
	}
	want := SharedSecretMAC(r.s.cfg.SharedSecret, req.Nonce, req.Username, req.Password, req.Admin, req.UserType)
	if !hmac.Equal([]byte(want), []byte(req.MAC)) {
		limiter.take(req.IP, now)
		return nil, mautrix.MForbidden.WithMessage("HMAC incorrect")
	}
	a := NewAccount{
		Localpart: lower(req.Username), Password: req.Password, Admin: req.Admin, ByAdmin: true,
		DisplayName: req.DisplayName,
	}
	if !req.InhibitLogin {
		a.Login = &SessionParams{WantsRefresh: req.RefreshToken, IP: req.IP, UserAgent: req.UserAgent}
	}
	res, err := r.s.CreateAccount(ctx, a)
	if err != nil {
		return nil, err
	}
	if req.UserType != "" {
		if err := r.s.db.SetUserType(ctx, res.UserID, req.UserType); err != nil {
			return nil, err
		}
	}
	return res, nil
}
