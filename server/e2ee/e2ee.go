// Package e2ee owns the rules for end-to-end encryption keys: device
// identity keys, one-time and fallback keys, cross-signing keys and the
// signatures users upload for them, and the device-list changes that tell
// other users to fetch keys again. The server stores and hands out public
// keys only; it checks every signature it is given, so a client that
// trusts a key it got from here trusts what the key's owner signed.
package e2ee

import (
	"context"
	"log/slog"
	"slices"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/storage"
)

// Waker wakes the long-polling syncs of users; the sync notifier is one.
type Waker interface {
	Wake(users ...id.UserID)
}

// Service is the e2ee keys service.
type Service struct {
	db         *storage.DB
	accounts   *accounts.Service
	notify     Waker
	log        *slog.Logger
	serverName string
	fed        Federation

	// Now is the clock; tests may replace it.
	Now func() time.Time
}

// New builds the service. accountsSvc runs the user-interactive auth that
// replacing cross-signing keys needs; notify wakes the syncs of users who
// must learn about a device-list change.
func New(db *storage.DB, accountsSvc *accounts.Service, notify Waker, log *slog.Logger) *Service {
	return &Service{
		db:         db,
		accounts:   accountsSvc,
		notify:     notify,
		log:        log,
		serverName: accountsSvc.ServerName(),
		Now:        time.Now,
	}
}

// isLocal tells whether a user ID belongs to this server.
func (s *Service) isLocal(userID id.UserID) bool {
	_, server, err := userID.Parse()
	return err == nil && server == s.serverName
}

// wakeAudience wakes everyone a change to user's device list concerns:
// the user's own devices and everyone who shares a room with them. The
// change is already stored, so a failure here only delays the news until
// each client's next sync; it is logged, not returned.
func (s *Service) wakeAudience(ctx context.Context, user id.UserID) {
	users, err := s.db.DeviceListAudience(ctx, user)
	if err != nil {
		s.log.Warn("device list change: list who to wake", "user", user, "error", err)
	}
	if !slices.Contains(users, user) {
		users = append(users, user)
	}
	s.notify.Wake(users...)
}

// DevicesRemoved is called by the accounts service after devices of user
// were deleted (logout, DELETE /devices, deactivation…). The keys went
// with the devices, and the database recorded the device-list change in
// the same transaction; what is left is to wake the syncs that care.
func (s *Service) DevicesRemoved(ctx context.Context, user id.UserID) {
	s.wakeAudience(ctx, user)
	s.deviceListChanged(ctx, user)
}
