package accounts

import (
	"context"

	"maunium.net/go/mautrix/id"
)

// DevicesObserver hears that devices of a user were removed (logout,
// DELETE /devices, a password change that signs the others out,
// deactivation). The e2ee service implements it: the devices' keys go with
// them in the same transaction, and it wakes the syncs of the users who
// track that user's device list.
type DevicesObserver interface {
	DevicesRemoved(ctx context.Context, userID id.UserID)
}

// devicesRemoved tells the observer, if any, after a deletion committed.
func (s *Service) devicesRemoved(ctx context.Context, userID id.UserID) {
	if s.DeviceEvents != nil {
		s.DeviceEvents.DevicesRemoved(ctx, userID)
	}
}

// DeviceRenameObserver is an optional part of a DevicesObserver: it hears
// that a device got a new display name, which other users see with its
// keys.
type DeviceRenameObserver interface {
	DeviceRenamed(ctx context.Context, userID id.UserID)
}

// deviceRenamed tells the observer, if it listens, after a rename.
func (s *Service) deviceRenamed(ctx context.Context, userID id.UserID) {
	if o, ok := s.DeviceEvents.(DeviceRenameObserver); ok {
		o.DeviceRenamed(ctx, userID)
	}
}
