package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"maunium.net/go/mautrix/id"
)

// Device is one logged-in client of a user.
type Device struct {
	UserID            id.UserID
	DeviceID          id.DeviceID
	DisplayName       string
	CreatedTS         int64
	LastSeenTS        int64
	LastSeenIP        string
	LastSeenUserAgent string
}

const deviceColumns = `user_id, device_id, COALESCE(display_name, ''), created_ts,
COALESCE(last_seen_ts, 0), COALESCE(last_seen_ip, ''), COALESCE(last_seen_user_agent, '')`

func scanDevice(s scanner) (*Device, error) {
	var d Device
	err := s.Scan(&d.UserID, &d.DeviceID, &d.DisplayName, &d.CreatedTS, &d.LastSeenTS, &d.LastSeenIP, &d.LastSeenUserAgent)
	return &d, err
}

// ListDevices returns a user's devices ordered by device ID.
func (db *DB) ListDevices(ctx context.Context, userID id.UserID) ([]Device, error) {
	rows, err := db.reader.QueryContext(ctx, `SELECT `+deviceColumns+` FROM devices WHERE user_id = $1 ORDER BY device_id`, userID)
	if err != nil {
		return nil, fmt.Errorf("list devices %s: %w", userID, err)
	}
	defer rows.Close()
	var out []Device
	for rows.Next() {
		d, err := scanDevice(rows)
		if err != nil {
			return nil, fmt.Errorf("list devices %s: %w", userID, err)
		}
		out = append(out, *d)
	}
	return out, rows.Err()
}

// GetDevice returns one device, or ErrNotFound.
func (db *DB) GetDevice(ctx context.Context, userID id.UserID, deviceID id.DeviceID) (*Device, error) {
	d, err := scanDevice(db.reader.QueryRowContext(ctx, `SELECT `+deviceColumns+` FROM devices WHERE user_id = $1 AND device_id = $2`, userID, deviceID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get device %s %s: %w", userID, deviceID, err)
	}
	return d, nil
}

// SetDeviceDisplayName renames a device; ErrNotFound if it does not exist.
func (db *DB) SetDeviceDisplayName(ctx context.Context, userID id.UserID, deviceID id.DeviceID, name string) error {
	return updateOne(ctx, db.writes(), "rename device", `UPDATE devices SET display_name = NULLIF($3, '') WHERE user_id = $1 AND device_id = $2`, userID, deviceID, name)
}

// DeleteDevices removes devices, and with them (by cascade) their access
// and refresh tokens. Unknown device IDs are ignored, as the spec asks for
// delete_devices.
func (db *DB) DeleteDevices(ctx context.Context, userID id.UserID, deviceIDs []id.DeviceID) error {
	return db.WriteTx(ctx, func(tx *sql.Tx) error {
		for _, d := range deviceIDs {
			if _, err := tx.ExecContext(ctx, `DELETE FROM devices WHERE user_id = $1 AND device_id = $2`, userID, d); err != nil {
				return fmt.Errorf("delete device %s %s: %w", userID, d, err)
			}
		}
		return nil
	})
}

// DeleteOtherDevices removes every device of a user except keep (which may
// be empty to remove all).
func (db *DB) DeleteOtherDevices(ctx context.Context, userID id.UserID, keep id.DeviceID) error {
	if _, err := db.exec(ctx, `DELETE FROM devices WHERE user_id = $1 AND device_id <> $2`, userID, keep); err != nil {
		return fmt.Errorf("delete devices of %s: %w", userID, err)
	}
	return nil
}

// DeviceSeenFrom tells whether any of a user's devices was last seen from
// the address ip.
func (db *DB) DeviceSeenFrom(ctx context.Context, userID id.UserID, ip string) (bool, error) {
	var one int
	err := db.reader.QueryRowContext(ctx, `SELECT 1 FROM devices WHERE user_id = $1 AND last_seen_ip = $2 LIMIT 1`, userID, ip).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("devices of %s seen from an address: %w", userID, err)
	}
	return true, nil
}

// TouchDevice records when and from where a device was last seen.
func (db *DB) TouchDevice(ctx context.Context, userID id.UserID, deviceID id.DeviceID, ts int64, ip, userAgent string) error {
	_, err := db.writer.ExecContext(ctx, `UPDATE devices SET last_seen_ts = $3, last_seen_ip = $4, last_seen_user_agent = $5
WHERE user_id = $1 AND device_id = $2`, userID, deviceID, ts, ip, userAgent)
	if err != nil {
		return fmt.Errorf("touch device: %w", err)
	}
	return nil
}
