package edus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/httpapi"
	"github.com/palpo-im/palpo-desktop/server/storage"
)

// TypeDirectToDevice is the EDU of send-to-device messages.
const TypeDirectToDevice = "m.direct_to_device"

const (
	// maxInboundToDevice bounds the device messages one EDU may store,
	// counting every device a "*" reaches (the local sendToDevice limit).
	maxInboundToDevice = 10000
	// maxMessageIDBytes bounds a message_id: the spec allows 32
	// codepoints; this leaves room for any UTF-8 and rejects junk.
	maxMessageIDBytes = 128
	// toDeviceDedupeRetention is how long a message_id is remembered. A
	// sender resends an unanswered transaction within hours (its backoff
	// caps at an hour), even after a restart; a week is generous.
	toDeviceDedupeRetention = 7 * 24 * time.Hour
)

// directToDevice is the content of m.direct_to_device.
type directToDevice struct {
	Sender    id.UserID                                     `json:"sender"`
	Type      string                                        `json:"type"`
	MessageID string                                        `json:"message_id"`
	Messages  map[id.UserID]map[id.DeviceID]json.RawMessage `json:"messages"`
}

// applyDirectToDevice applies m.direct_to_device: messages from a user of
// the origin server to local users' devices ("*": all of a user's
// devices), stored and delivered in /sync like local to-device messages.
// Recipients of other servers are ignored. A message_id already received
// from the origin delivers nothing again (a resent transaction).
func (a *Applier) applyDirectToDevice(ctx context.Context, origin string, raw json.RawMessage) error {
	var c directToDevice
	if err := json.Unmarshal(raw, &c); err != nil {
		return fmt.Errorf("m.direct_to_device from %s: %w", origin, err)
	}
	// A server speaks only for its own users: anything else would let it
	// forge key shares or verification messages from anyone.
	if c.Sender.Homeserver() != origin {
		return fmt.Errorf("m.direct_to_device from %s with sender %q: %w", origin, c.Sender, ErrNotAllowed)
	}
	if c.Type == "" || c.MessageID == "" || len(c.MessageID) > maxMessageIDBytes {
		return fmt.Errorf("m.direct_to_device from %s: missing type or bad message_id", origin)
	}
	var msgs []storage.ToDeviceMessage
	var errs []error
	for _, user := range slices.Sorted(maps.Keys(c.Messages)) {
		if user.Homeserver() != a.serverName {
			errs = append(errs, fmt.Errorf("m.direct_to_device from %s for %s: not a user of this server: %w", origin, user, ErrNotAllowed))
			continue
		}
		devices := c.Messages[user]
		if all, ok := devices["*"]; ok {
			if !httpapi.IsJSONObject(all) {
				errs = append(errs, fmt.Errorf("m.direct_to_device from %s for %s: content is not an object", origin, user))
				continue
			}
			known, err := a.db.ListDevices(ctx, user)
			if err != nil {
				return err
			}
			for _, d := range known {
				msgs = append(msgs, storage.ToDeviceMessage{UserID: user, DeviceID: d.DeviceID, Content: all})
			}
		} else {
			for _, d := range slices.Sorted(maps.Keys(devices)) {
				if !httpapi.IsJSONObject(devices[d]) {
					errs = append(errs, fmt.Errorf("m.direct_to_device from %s for %s %s: content is not an object", origin, user, d))
					continue
				}
				msgs = append(msgs, storage.ToDeviceMessage{UserID: user, DeviceID: d, Content: devices[d]})
			}
		}
		if len(msgs) > maxInboundToDevice {
			return fmt.Errorf("m.direct_to_device from %s: more than %d device messages", origin, maxInboundToDevice)
		}
	}
	if len(msgs) == 0 {
		return errors.Join(errs...)
	}
	now := a.Now()
	recipients, dup, err := a.db.ReceiveRemoteToDevice(ctx, &storage.RemoteToDevice{
		Origin: origin, MessageID: c.MessageID, Sender: c.Sender, Type: c.Type,
		Now: now.UnixMilli(), PruneBefore: now.Add(-toDeviceDedupeRetention).UnixMilli(),
		Messages: msgs,
	})
	if err != nil {
		return err
	}
	if dup {
		a.log.Debug("federation: to-device message received before", "origin", origin, "message_id", c.MessageID)
		return errors.Join(errs...)
	}
	a.wake.Wake(recipients...)
	return errors.Join(errs...)
}
