package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"maunium.net/go/mautrix/id"
)

// ToDeviceMessage is one message for one device, to be stored.
type ToDeviceMessage struct {
	UserID   id.UserID
	DeviceID id.DeviceID
	Content  json.RawMessage // a JSON object
}

// ToDeviceSend is one PUT /sendToDevice request, its "*" already expanded.
type ToDeviceSend struct {
	Sender       id.UserID
	SenderDevice id.DeviceID
	Type         string
	TxnID        string
	Now          int64 // milliseconds since the epoch
	// PruneBefore drops the sending device's transaction IDs older than
	// this, so the table does not grow forever; 0 keeps them all.
	PruneBefore int64
	Messages    []ToDeviceMessage
	// Remote are m.direct_to_device EDUs for users of other servers,
	// queued for federation in the same transaction as the transaction
	// ID, so a retried request queues nothing twice and a crash loses
	// neither half. Queued in order, after any queued before.
	Remote []QueuedEDU
}

// SendToDevice stores a request's messages in one transaction, each with
// its own stream position. Messages to devices that do not exist (any
// more) are skipped. It returns the users who got at least one message,
// and duplicate=true (storing nothing) when the sending device already
// used this transaction ID for this event type.
func (db *DB) SendToDevice(ctx context.Context, s *ToDeviceSend) (recipients []id.UserID, duplicate bool, err error) {
	err = db.WriteTx(ctx, func(tx *sql.Tx) error {
		recipients, duplicate = nil, false
		if s.PruneBefore > 0 {
			if _, err := tx.ExecContext(ctx, `DELETE FROM to_device_txns WHERE user_id = $1 AND device_id = $2 AND created_ts < $3`,
				s.Sender, s.SenderDevice, s.PruneBefore); err != nil {
				return err
			}
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO to_device_txns (user_id, device_id, event_type, txn_id, created_ts)
VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING`, s.Sender, s.SenderDevice, s.Type, s.TxnID, s.Now)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			duplicate = true
			return nil
		}
		if err := queueFedEDUsTx(ctx, tx, s.Remote); err != nil {
			return err
		}
		recipients, err = insertToDeviceTx(ctx, tx, s.Sender, s.Type, s.Messages)
		return err
	})
	if err != nil {
		return nil, false, fmt.Errorf("send to-device %s from %s: %w", s.Type, s.Sender, err)
	}
	return recipients, duplicate, nil
}

// insertToDeviceTx stores messages from sender, each with its own stream
// position, skipping devices that do not exist (any more), and returns the
// users who got at least one.
func insertToDeviceTx(ctx context.Context, tx *sql.Tx, sender id.UserID, evType string, msgs []ToDeviceMessage) ([]id.UserID, error) {
	if len(msgs) == 0 {
		return nil, nil
	}
	var pos int64
	if err := tx.QueryRowContext(ctx, selectToDeviceStream).Scan(&pos); err != nil {
		return nil, err
	}
	// Selecting from devices makes an unknown device insert nothing,
	// with no separate look-up per message.
	stmt, err := tx.PrepareContext(ctx, insertToDeviceMessage)
	if err != nil {
		return nil, err
	}
	defer stmt.Close()
	var recipients []id.UserID
	seen := map[id.UserID]bool{}
	for _, m := range msgs {
		res, err := stmt.ExecContext(ctx, pos+1, m.UserID, m.DeviceID, sender, evType, string(m.Content))
		if err != nil {
			return nil, fmt.Errorf("to %s %s: %w", m.UserID, m.DeviceID, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			continue
		}
		pos++
		if !seen[m.UserID] {
			seen[m.UserID] = true
			recipients = append(recipients, m.UserID)
		}
	}
	if _, err := tx.ExecContext(ctx, updateToDeviceStream, pos); err != nil {
		return nil, err
	}
	return recipients, nil
}

const (
	selectToDeviceStream  = `SELECT pos FROM to_device_stream WHERE id = 1`
	updateToDeviceStream  = `UPDATE to_device_stream SET pos = $1 WHERE id = 1`
	insertToDeviceMessage = `INSERT INTO to_device_messages (stream_id, user_id, device_id, sender, type, content)
SELECT $1, user_id, device_id, $4, $5, $6 FROM devices WHERE user_id = $2 AND device_id = $3`
	insertFedToDeviceReceived = `INSERT INTO federation_todevice_received (origin, message_id, received_ts) VALUES ($1, $2, $3)
ON CONFLICT (origin, message_id) DO NOTHING`
	pruneFedToDeviceReceived = `DELETE FROM federation_todevice_received WHERE received_ts < $1`
)

// RemoteToDevice is one m.direct_to_device EDU received from another
// server, its "*" already expanded to the local recipients' devices.
type RemoteToDevice struct {
	Origin    string
	MessageID string
	Sender    id.UserID
	Type      string
	Now       int64 // milliseconds since the epoch
	// PruneBefore forgets message IDs received before this; 0 keeps all.
	PruneBefore int64
	Messages    []ToDeviceMessage
}

// ReceiveRemoteToDevice stores the messages of an EDU from another server
// in one transaction with its (origin, message_id), and returns the users
// who got at least one. A message ID already received from that origin
// stores nothing and returns duplicate=true: the origin resent a
// transaction whose answer it lost.
func (db *DB) ReceiveRemoteToDevice(ctx context.Context, r *RemoteToDevice) (recipients []id.UserID, duplicate bool, err error) {
	err = db.WriteTx(ctx, func(tx *sql.Tx) error {
		recipients, duplicate = nil, false
		if r.PruneBefore > 0 {
			if _, err := tx.ExecContext(ctx, pruneFedToDeviceReceived, r.PruneBefore); err != nil {
				return err
			}
		}
		res, err := tx.ExecContext(ctx, insertFedToDeviceReceived, r.Origin, r.MessageID, r.Now)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			duplicate = true
			return nil
		}
		recipients, err = insertToDeviceTx(ctx, tx, r.Sender, r.Type, r.Messages)
		return err
	})
	if err != nil {
		return nil, false, fmt.Errorf("receive to-device %s from %s: %w", r.MessageID, r.Origin, err)
	}
	return recipients, duplicate, nil
}

// AckToDevice deletes a device's messages at or before position upTo: the
// device has synced with a token that far, so it has them. The check on a
// reader first keeps the common case (nothing to delete) off the single
// writer connection.
func (db *DB) AckToDevice(ctx context.Context, userID id.UserID, deviceID id.DeviceID, upTo int64) error {
	var pending bool
	if err := db.reader.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM to_device_messages
WHERE user_id = $1 AND device_id = $2 AND stream_id <= $3)`, userID, deviceID, upTo).Scan(&pending); err != nil {
		return fmt.Errorf("acknowledge to-device of %s %s: %w", userID, deviceID, err)
	}
	if !pending {
		return nil
	}
	if _, err := db.exec(ctx, `DELETE FROM to_device_messages WHERE user_id = $1 AND device_id = $2 AND stream_id <= $3`,
		userID, deviceID, upTo); err != nil {
		return fmt.Errorf("acknowledge to-device of %s %s: %w", userID, deviceID, err)
	}
	return nil
}

// ToDeviceEvent is a stored message as its device receives it.
type ToDeviceEvent struct {
	StreamID int64
	Sender   id.UserID
	Type     string
	Content  json.RawMessage
}

// ToDeviceEvents returns up to limit of a device's messages with positions
// in (from, to], oldest first, and whether more follow.
func (db *DB) ToDeviceEvents(ctx context.Context, userID id.UserID, deviceID id.DeviceID, from, to int64, limit int) ([]ToDeviceEvent, bool, error) {
	rows, err := db.reader.QueryContext(ctx, `SELECT stream_id, sender, type, content FROM to_device_messages
WHERE user_id = $1 AND device_id = $2 AND stream_id > $3 AND stream_id <= $4 ORDER BY stream_id LIMIT $5`,
		userID, deviceID, from, to, limit+1)
	if err != nil {
		return nil, false, fmt.Errorf("to-device of %s %s: %w", userID, deviceID, err)
	}
	defer rows.Close()
	var out []ToDeviceEvent
	for rows.Next() {
		var e ToDeviceEvent
		var content string
		if err := rows.Scan(&e.StreamID, &e.Sender, &e.Type, &content); err != nil {
			return nil, false, fmt.Errorf("to-device of %s %s: %w", userID, deviceID, err)
		}
		e.Content = json.RawMessage(content)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, false, err
	}
	more := len(out) > limit
	if more {
		out = out[:limit]
	}
	return out, more, nil
}

// CountToDevice counts a device's pending messages (for tests and the
// admin tools).
func (db *DB) CountToDevice(ctx context.Context, userID id.UserID, deviceID id.DeviceID) (int, error) {
	var n int
	if err := db.reader.QueryRowContext(ctx, `SELECT COUNT(*) FROM to_device_messages WHERE user_id = $1 AND device_id = $2`,
		userID, deviceID).Scan(&n); err != nil {
		return 0, fmt.Errorf("count to-device of %s %s: %w", userID, deviceID, err)
	}
	return n, nil
}
