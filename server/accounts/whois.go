package accounts

import (
	"context"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/storage"
)

// Whois returns a local user's devices with where and when each was last
// seen, for a server admin or the user themself (spec: "Server
// Administration"). Palpo keeps one last-seen address per device, so each
// device has one session with at most one connection. An unknown user has
// no devices, as in Synapse.
func (s *Service) Whois(ctx context.Context, by *Caller, userID id.UserID) ([]storage.Device, error) {
	if userID != by.UserID && !by.IsAdmin {
		return nil, mautrix.MForbidden.WithMessage("You are not a server admin")
	}
	if _, server, err := userID.Parse(); err != nil || server != s.serverName {
		return nil, mautrix.MInvalidParam.WithMessage("Can only look up local users")
	}
	return s.db.ListDevices(ctx, userID)
}
