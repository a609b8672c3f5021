package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"

	"maunium.net/go/mautrix/id"
)

// This file holds device lists over federation (migration
// 0020_federated_device_lists): the m.device_list_update sequence of each
// local user, and the cache of remote users' devices.

// DeviceAnnouncement is one m.device_list_update to send: a device of a
// local user that is new, changed or (Deleted) gone, at StreamID in the
// user's sequence, after PrevID (0 for the first).
type DeviceAnnouncement struct {
	DeviceID id.DeviceID
	StreamID int64
	PrevID   int64
	Deleted  bool
}

// AnnounceDevices compares a local user's current devices (device ID to a
// digest of what an update would carry) with the ones last announced, and
// returns one announcement per difference, each with the next stream ID of
// the user's sequence; the comparison and the allocation are one
// transaction, so concurrent calls never announce a change twice. The
// EDUs that edus makes of the announcements are queued in the same
// transaction, so a crash cannot record an announcement that is never
// sent (other servers would see only a gap at the next change).
func (db *DB) AnnounceDevices(ctx context.Context, userID id.UserID, current map[id.DeviceID]string,
	edus func([]DeviceAnnouncement) ([]QueuedEDU, error)) ([]DeviceAnnouncement, error) {
	var out []DeviceAnnouncement
	err := db.WriteTx(ctx, func(tx *sql.Tx) error {
		out = out[:0]
		rows, err := tx.QueryContext(ctx, `SELECT device_id, digest FROM device_list_announced WHERE user_id = $1`, userID)
		if err != nil {
			return fmt.Errorf("announced devices of %s: %w", userID, err)
		}
		announced := map[id.DeviceID]string{}
		for rows.Next() {
			var d id.DeviceID
			var digest string
			if err := rows.Scan(&d, &digest); err != nil {
				rows.Close()
				return err
			}
			announced[d] = digest
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		var stream int64
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE((SELECT stream_id FROM device_list_outbound WHERE user_id = $1), 0)`, userID).Scan(&stream); err != nil {
			return fmt.Errorf("device list stream of %s: %w", userID, err)
		}
		var devices []id.DeviceID
		for d := range current {
			devices = append(devices, d)
		}
		for d := range announced {
			if _, ok := current[d]; !ok {
				devices = append(devices, d)
			}
		}
		slices.Sort(devices)
		for _, d := range devices {
			digest, present := current[d]
			if old, was := announced[d]; was == present && old == digest {
				continue
			}
			out = append(out, DeviceAnnouncement{DeviceID: d, StreamID: stream + 1, PrevID: stream, Deleted: !present})
			stream++
			if present {
				_, err = tx.ExecContext(ctx, `INSERT INTO device_list_announced (user_id, device_id, digest) VALUES ($1, $2, $3)
ON CONFLICT (user_id, device_id) DO UPDATE SET digest = excluded.digest`, userID, d, digest)
			} else {
				_, err = tx.ExecContext(ctx, `DELETE FROM device_list_announced WHERE user_id = $1 AND device_id = $2`, userID, d)
			}
			if err != nil {
				return fmt.Errorf("record announced device of %s: %w", userID, err)
			}
		}
		if len(out) == 0 {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO device_list_outbound (user_id, stream_id) VALUES ($1, $2)
ON CONFLICT (user_id) DO UPDATE SET stream_id = excluded.stream_id`, userID, stream); err != nil {
			return fmt.Errorf("device list stream of %s: %w", userID, err)
		}
		queued, err := edus(out)
		if err != nil {
			return err
		}
		return queueFedEDUsTx(ctx, tx, queued)
	})
	return out, err
}

// OutboundDeviceListStream is the stream ID of the latest
// m.device_list_update sent for a local user (0 before the first).
func (db *DB) OutboundDeviceListStream(ctx context.Context, userID id.UserID) (int64, error) {
	var stream int64
	if err := db.reader.QueryRowContext(ctx, `SELECT COALESCE((SELECT stream_id FROM device_list_outbound WHERE user_id = $1), 0)`, userID).Scan(&stream); err != nil {
		return 0, fmt.Errorf("device list stream of %s: %w", userID, err)
	}
	return stream, nil
}

// RemoteDevice is a cached device of a remote user.
type RemoteDevice = DeviceKeysRow

// RemoteDeviceList is a remote user's whole device list as their server
// gave it (GET /user/devices): it replaces the cached one.
type RemoteDeviceList struct {
	UserID       id.UserID
	StreamID     int64
	Devices      []RemoteDevice
	CrossSigning []CrossSigningKey // master and self-signing, when they have them
}

// ReplaceRemoteDeviceList caches a remote user's device list (no longer
// stale), and records a device-list change for the local users sharing a
// room with them.
func (db *DB) ReplaceRemoteDeviceList(ctx context.Context, l *RemoteDeviceList, nowTS int64) error {
	return db.WriteTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO remote_device_lists (user_id, stream_id, stale) VALUES ($1, $2, 0)
ON CONFLICT (user_id) DO UPDATE SET stream_id = excluded.stream_id, stale = 0`, l.UserID, l.StreamID); err != nil {
			return fmt.Errorf("cache device list of %s: %w", l.UserID, err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM remote_device_keys WHERE user_id = $1`, l.UserID); err != nil {
			return fmt.Errorf("cache device list of %s: %w", l.UserID, err)
		}
		for _, d := range l.Devices {
			if err := putRemoteDevice(ctx, tx, d); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM cross_signing_keys WHERE user_id = $1 AND key_type IN ('master', 'self_signing')`, l.UserID); err != nil {
			return fmt.Errorf("cache cross-signing keys of %s: %w", l.UserID, err)
		}
		if err := putCrossSigningKeys(ctx, tx, l.CrossSigning, nowTS); err != nil {
			return err
		}
		return addDeviceListChange(ctx, tx, l.UserID, "")
	})
}

func putRemoteDevice(ctx context.Context, tx *sql.Tx, d RemoteDevice) error {
	if _, err := tx.ExecContext(ctx, `INSERT INTO remote_device_keys (user_id, device_id, display_name, key_json) VALUES ($1, $2, $3, $4)
ON CONFLICT (user_id, device_id) DO UPDATE SET display_name = excluded.display_name, key_json = excluded.key_json`,
		d.UserID, d.DeviceID, d.DisplayName, string(d.JSON)); err != nil {
		return fmt.Errorf("cache device %s of %s: %w", d.DeviceID, d.UserID, err)
	}
	return nil
}

func putCrossSigningKeys(ctx context.Context, tx *sql.Tx, keys []CrossSigningKey, nowTS int64) error {
	for _, k := range keys {
		if _, err := tx.ExecContext(ctx, `INSERT INTO cross_signing_keys (user_id, key_type, public_key, key_json, updated_ts)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (user_id, key_type) DO UPDATE SET public_key = excluded.public_key, key_json = excluded.key_json, updated_ts = excluded.updated_ts`,
			k.UserID, k.Type, k.PublicKey, string(k.JSON), nowTS); err != nil {
			return fmt.Errorf("store %s key of %s: %w", k.Type, k.UserID, err)
		}
	}
	return nil
}

// DeviceUpdateResult is what ApplyRemoteDeviceUpdate did.
type DeviceUpdateResult int

const (
	// DeviceUpdateApplied: the cache holds the update.
	DeviceUpdateApplied DeviceUpdateResult = iota
	// DeviceUpdateUntracked: the user's list is not cached; local users
	// were told it changed, and will fetch it.
	DeviceUpdateUntracked
	// DeviceUpdateDuplicate: an update the cache already had.
	DeviceUpdateDuplicate
	// DeviceUpdateGap: an update after one this server missed; the list
	// is now stale and must be fetched again.
	DeviceUpdateGap
)

// RemoteDeviceUpdate is one m.device_list_update received.
type RemoteDeviceUpdate struct {
	Device   RemoteDevice
	Deleted  bool
	StreamID int64
	PrevIDs  []int64
}

// ApplyRemoteDeviceUpdate applies an m.device_list_update to the cache,
// in one transaction: an update that follows the cached stream ID (every
// prev_id known) is applied, one that refers to an update never seen
// marks the list stale, and a repeated one is ignored. Every outcome but
// a duplicate records a device-list change for the local users sharing a
// room with the user.
func (db *DB) ApplyRemoteDeviceUpdate(ctx context.Context, u *RemoteDeviceUpdate) (DeviceUpdateResult, error) {
	var res DeviceUpdateResult
	user := u.Device.UserID
	err := db.WriteTx(ctx, func(tx *sql.Tx) error {
		var stream int64
		var stale bool
		err := tx.QueryRowContext(ctx, `SELECT stream_id, stale FROM remote_device_lists WHERE user_id = $1`, user).Scan(&stream, &stale)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			res = DeviceUpdateUntracked
			return addDeviceListChange(ctx, tx, user, "")
		case err != nil:
			return fmt.Errorf("cached device list of %s: %w", user, err)
		}
		if u.StreamID <= stream && !stale {
			res = DeviceUpdateDuplicate
			return nil
		}
		gap := stale
		for _, p := range u.PrevIDs {
			if p > stream {
				gap = true
			}
		}
		if gap {
			res = DeviceUpdateGap
			if _, err := tx.ExecContext(ctx, `UPDATE remote_device_lists SET stale = 1 WHERE user_id = $1`, user); err != nil {
				return fmt.Errorf("mark device list of %s stale: %w", user, err)
			}
			return addDeviceListChange(ctx, tx, user, "")
		}
		res = DeviceUpdateApplied
		if u.Deleted {
			_, err = tx.ExecContext(ctx, `DELETE FROM remote_device_keys WHERE user_id = $1 AND device_id = $2`, user, u.Device.DeviceID)
		} else {
			err = putRemoteDevice(ctx, tx, u.Device)
		}
		if err != nil {
			return fmt.Errorf("apply device update of %s: %w", user, err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE remote_device_lists SET stream_id = $2 WHERE user_id = $1`, user, u.StreamID); err != nil {
			return fmt.Errorf("apply device update of %s: %w", user, err)
		}
		return addDeviceListChange(ctx, tx, user, "")
	})
	return res, err
}

// SetRemoteCrossSigningKeys caches a remote user's master and/or
// self-signing keys (an m.signing_key_update) and records a device-list
// change for the local users sharing a room with them.
func (db *DB) SetRemoteCrossSigningKeys(ctx context.Context, user id.UserID, keys []CrossSigningKey, nowTS int64) error {
	return db.WriteTx(ctx, func(tx *sql.Tx) error {
		if err := putCrossSigningKeys(ctx, tx, keys, nowTS); err != nil {
			return err
		}
		return addDeviceListChange(ctx, tx, user, "")
	})
}

// CurrentRemoteDeviceLists returns which of the given remote users have a
// cached device list that is not stale.
func (db *DB) CurrentRemoteDeviceLists(ctx context.Context, users []id.UserID) (map[id.UserID]bool, error) {
	out := map[id.UserID]bool{}
	for _, part := range chunks(users, maxInList) {
		in, args := inList(part, 1)
		got, err := queryColumn[id.UserID](ctx, db.reader, `SELECT user_id FROM remote_device_lists WHERE stale = 0 AND user_id IN (`+in+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("cached device lists: %w", err)
		}
		for _, u := range got {
			out[u] = true
		}
	}
	return out, nil
}

// ForgetRemoteDeviceList drops a remote user's cached device list (no
// local user shares a room with them any more, so their server stopped
// sending updates); their cross-signing keys stay, for the signatures
// local users made of them.
func (db *DB) ForgetRemoteDeviceList(ctx context.Context, user id.UserID) error {
	if _, err := db.exec(ctx, `DELETE FROM remote_device_lists WHERE user_id = $1`, user); err != nil {
		return fmt.Errorf("forget device list of %s: %w", user, err)
	}
	return nil
}

// RemoteDeviceKeysOf returns the cached devices of the given remote users.
func (db *DB) RemoteDeviceKeysOf(ctx context.Context, users []id.UserID) ([]RemoteDevice, error) {
	return db.deviceKeyRows(ctx, users, "cached device keys", `SELECT user_id, device_id, display_name, key_json FROM remote_device_keys
WHERE user_id IN (%s) ORDER BY user_id, device_id`)
}

// AddDeviceListChanges records device-list changes (a device renamed).
func (db *DB) AddDeviceListChanges(ctx context.Context, changes []DeviceListChange) error {
	return db.WriteTx(ctx, func(tx *sql.Tx) error {
		for _, c := range changes {
			if err := addDeviceListChange(ctx, tx, c.UserID, c.OnlyFor); err != nil {
				return err
			}
		}
		return nil
	})
}
