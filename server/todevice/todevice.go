// Package todevice owns send-to-device messaging: the rules for PUT
// /sendToDevice (local recipients, "*" for every device, idempotent
// transaction IDs, limits) and waking the recipients' syncs. Delivery and
// acknowledgement happen in /sync (syncer/todevice.go).
package todevice

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/storage"
)

// MaxMessages bounds the messages one request may deliver, counting each
// device a "*" reaches. The body limit (1 MiB by default) already bounds
// the entries a client spells out, but "*" multiplies them by device
// counts; this keeps one request to one short write transaction. Clients
// send far fewer: matrix-rust-sdk splits key shares into requests of at
// most 250 messages, so 10,000 only stops abuse.
const MaxMessages = 10000

// txnRetention is how long a transaction ID is remembered. Clients retry
// a lost request within minutes; a day is generous and keeps the table
// small for devices that send thousands of key shares.
const txnRetention = 24 * time.Hour

// Waker wakes the long-polling syncs of users (the sync notifier).
type Waker interface {
	Wake(users ...id.UserID)
}

// Federation is told which servers had m.direct_to_device EDUs queued for
// them (the outbound federation sender).
type Federation interface {
	Queued(destinations ...string)
}

// Service is the to-device service.
type Service struct {
	db         *storage.DB
	serverName string
	waker      Waker
	log        *slog.Logger

	// Federation carries messages for users of other servers; nil (when
	// federation is off) drops them, like messages to an unknown user.
	Federation Federation

	// Now is the clock; tests may replace it.
	Now func() time.Time
}

// New builds the service.
func New(db *storage.DB, serverName string, waker Waker, log *slog.Logger) *Service {
	return &Service{db: db, serverName: serverName, waker: waker, log: log, Now: time.Now}
}

// Request is one PUT /sendToDevice.
type Request struct {
	Sender       id.UserID
	SenderDevice id.DeviceID
	Type         string
	TxnID        string
	// Messages maps recipient user to device ID (or "*") to content, a
	// JSON object.
	Messages map[id.UserID]map[id.DeviceID]json.RawMessage
}

// errTooMany is 413 M_TOO_LARGE: the request is too big to take in one
// piece, and the client can split it (M_INVALID_PARAM would say it is
// malformed, which it is not).
var errTooMany = mautrix.MTooLarge.WithMessage(fmt.Sprintf("Too many to-device messages in one request: at most %d (counting every device \"*\" reaches)", MaxMessages))

// Send stores the messages for every local recipient device and wakes the
// recipients. Unknown users and devices are skipped, as the spec asks. A
// retransmission (same sending device, event type and transaction ID)
// succeeds without delivering anything again.
func (s *Service) Send(ctx context.Context, req *Request) error {
	// Count what the client spelled out first ("*" as one), so a huge
	// request is refused before it costs a device look-up per user.
	entries := 0
	for _, devices := range req.Messages {
		entries += max(len(devices), 1)
	}
	if entries > MaxMessages {
		return errTooMany
	}
	var msgs []storage.ToDeviceMessage
	remote := map[string][]remoteEntry{}
	for _, userID := range slices.Sorted(maps.Keys(req.Messages)) {
		_, server, err := userID.ParseAndValidateRelaxed()
		if err != nil {
			return mautrix.MInvalidParam.WithMessage(fmt.Sprintf("Invalid user ID %q", userID))
		}
		devices := req.Messages[userID]
		if server != s.serverName {
			if s.Federation == nil {
				s.log.Debug("to-device message for a remote user dropped: federation is off", "user", userID, "type", req.Type)
				continue
			}
			// The user's server expands "*" to the devices it knows.
			remote[server] = appendRemote(remote[server], userID, devices)
			continue
		}
		if all, ok := devices["*"]; ok {
			// "*" reaches every device; an explicit entry for one of
			// them too would be a second message to it in one request,
			// which the spec rules out, so "*" wins.
			known, err := s.db.ListDevices(ctx, userID)
			if err != nil {
				return err
			}
			for _, d := range known {
				msgs = append(msgs, storage.ToDeviceMessage{UserID: userID, DeviceID: d.DeviceID, Content: all})
			}
		} else {
			for _, deviceID := range slices.Sorted(maps.Keys(devices)) {
				msgs = append(msgs, storage.ToDeviceMessage{UserID: userID, DeviceID: deviceID, Content: devices[deviceID]})
			}
		}
		if len(msgs) > MaxMessages {
			return errTooMany
		}
	}
	edus, err := remoteEDUs(req, remote)
	if err != nil {
		return err
	}
	now := s.Now()
	recipients, dup, err := s.db.SendToDevice(ctx, &storage.ToDeviceSend{
		Sender:       req.Sender,
		SenderDevice: req.SenderDevice,
		Type:         req.Type,
		TxnID:        req.TxnID,
		Now:          now.UnixMilli(),
		PruneBefore:  now.Add(-txnRetention).UnixMilli(),
		Messages:     msgs,
		Remote:       edus,
	})
	if err != nil {
		return err
	}
	if dup {
		s.log.Debug("to-device retransmission ignored", "user", req.Sender, "device", req.SenderDevice, "type", req.Type)
		return nil
	}
	s.waker.Wake(recipients...)
	if len(edus) > 0 {
		s.Federation.Queued(slices.Sorted(maps.Keys(remote))...)
	}
	return nil
}
