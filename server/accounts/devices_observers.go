package accounts

import (
	"context"

	"maunium.net/go/mautrix/id"
)

// DevicesObservers tells each of several observers, in order, that devices
// were removed: the e2ee service (keys and device lists) and the push
// service (the removed devices' pushers) both need to hear it.
type DevicesObservers []DevicesObserver

// DevicesRemoved implements DevicesObserver.
func (o DevicesObservers) DevicesRemoved(ctx context.Context, userID id.UserID) {
	for _, obs := range o {
		obs.DevicesRemoved(ctx, userID)
	}
}

// DeviceRenamed tells each observer that listens for renames.
func (o DevicesObservers) DeviceRenamed(ctx context.Context, userID id.UserID) {
	for _, obs := range o {
		if r, ok := obs.(DeviceRenameObserver); ok {
			r.DeviceRenamed(ctx, userID)
		}
	}
}
