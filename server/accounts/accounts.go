// Package accounts owns the rules for accounts: registration, passwords,
// logins and their tokens, devices, user-interactive authentication and the
// rate limits that slow down password guessing. Handlers call it; it calls
// storage.
package accounts

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/config"
	"github.com/palpo-im/palpo-desktop/server/storage"
)

// Matrix errors the accounts rules answer with that mautrix does not define.
var (
	MMissingParam               = mautrix.RespError{ErrCode: "M_MISSING_PARAM", StatusCode: http.StatusBadRequest}
	MWeakPassword               = mautrix.RespError{ErrCode: "M_WEAK_PASSWORD", StatusCode: http.StatusBadRequest}
	MGuestForbidden             = mautrix.RespError{ErrCode: "M_GUEST_ACCESS_FORBIDDEN", StatusCode: http.StatusForbidden}
	MUserDeactivated            = mautrix.RespError{ErrCode: "M_USER_DEACTIVATED", StatusCode: http.StatusForbidden}
	MThreepidDenied             = mautrix.RespError{ErrCode: "M_THREEPID_DENIED", StatusCode: http.StatusForbidden}
	MThreepidAuthFailed         = mautrix.RespError{ErrCode: "M_THREEPID_AUTH_FAILED", StatusCode: http.StatusForbidden}
	MThreepidNotFound           = mautrix.RespError{ErrCode: "M_THREEPID_NOT_FOUND", StatusCode: http.StatusBadRequest}
	MThreepidMediumNotSupported = mautrix.RespError{ErrCode: "M_THREEPID_MEDIUM_NOT_SUPPORTED", StatusCode: http.StatusBadRequest}
)

// RoomLeaver makes a deactivated user leave every room they are in. The
// rooms service implements it; until it is wired in, deactivation has no
// rooms to leave.
type RoomLeaver interface {
	LeaveAllRooms(ctx context.Context, userID id.UserID) error
}

// ProfilePropagator updates a user's membership events after a profile
// change. The rooms service implements it.
type ProfilePropagator interface {
	ProfileChanged(ctx context.Context, userID id.UserID) error
}

// Service is the accounts service.
type Service struct {
	db         *storage.DB
	serverName string
	cfg        config.Registration
	auth       config.Auth
	log        *slog.Logger
	reservedRE []*regexp.Regexp

	// Now is the clock; tests replace it to expire tokens.
	Now func() time.Time

	Rooms    RoomLeaver
	Profiles ProfilePropagator

	// DeviceEvents hears about removed devices (devices_observer.go).
	DeviceEvents DevicesObserver

	uia      *uiaStore
	limiters limiters

	// loginTokens limits POST /login/get_token per user (login_token.go).
	loginTokens *limiter

	seenMu sync.Mutex
	seen   map[id.DeviceID]time.Time // last TouchDevice per device

	// control is the hash of the local-control secret (control.go).
	control atomic.Pointer[[]byte]
}

// New builds the accounts service.
func New(db *storage.DB, cfg *config.Config, log *slog.Logger) *Service {
	s := &Service{
		db:         db,
		serverName: cfg.ServerName,
		cfg:        cfg.Registration,
		auth:       cfg.Auth,
		log:        log,
		Now:        time.Now,
		uia:        newUIAStore(),
		limiters:   newLimiters(cfg.RateLimits),
		seen:       map[id.DeviceID]time.Time{},
	}
	s.loginTokens = newLimiter(loginTokenRate)
	for _, p := range cfg.Registration.ReservedUsernames {
		s.reservedRE = append(s.reservedRE, regexp.MustCompile(p)) // validated by config
	}
	// The server notices user speaks for the server: nobody may register it.
	s.reservedRE = append(s.reservedRE, regexp.MustCompile("^"+regexp.QuoteMeta(cfg.ServerNotices.Localpart)+"$"))
	return s
}

// ServerName is the server's name.
func (s *Service) ServerName() string { return s.serverName }

// DB is the database the service works on.
func (s *Service) DB() *storage.DB { return s.db }

func (s *Service) nowMS() int64 { return s.Now().UnixMilli() }

// UserID makes a full user ID from a localpart on this server.
func (s *Service) UserID(localpart string) id.UserID {
	return id.NewUserID(localpart, s.serverName)
}

// ResolveUser accepts a localpart or a full user ID of this server and
// returns the full user ID. Identifiers are case-insensitive on login, as
// Synapse treats them: user IDs are lower case.
func (s *Service) ResolveUser(identifier string) (id.UserID, error) {
	if len(identifier) > 0 && identifier[0] == '@' {
		localpart, server, err := id.UserID(identifier).Parse()
		if err != nil || server != s.serverName {
			return "", fmt.Errorf("not a user of this server: %q", identifier)
		}
		return s.UserID(lower(localpart)), nil
	}
	return s.UserID(lower(identifier)), nil
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// GetUser returns a user or M_NOT_FOUND.
func (s *Service) GetUser(ctx context.Context, userID id.UserID) (*storage.User, error) {
	u, err := s.db.GetUser(ctx, userID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, mautrix.MNotFound.WithMessage("User not found")
	}
	return u, err
}
