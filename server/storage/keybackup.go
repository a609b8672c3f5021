package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"maunium.net/go/mautrix/id"
)

// KeyBackupVersion is one of a user's key backups.
type KeyBackupVersion struct {
	Version   int64
	Algorithm string
	AuthData  json.RawMessage
	ETag      int64
	Count     int
}

// BackedUpSession is one backed-up Megolm session key.
type BackedUpSession struct {
	RoomID            id.RoomID
	SessionID         id.SessionID
	FirstMessageIndex int64
	ForwardedCount    int64
	IsVerified        bool
	SessionData       json.RawMessage // a JSON object, opaque to the server
}

// NotCurrentKeyBackupError refuses a write to a backup version that exists
// but is not the user's newest.
type NotCurrentKeyBackupError struct{ Current int64 }

func (e *NotCurrentKeyBackupError) Error() string {
	return fmt.Sprintf("not the current key backup version (%d)", e.Current)
}

const keyBackupVersionColumns = `version, algorithm, auth_data, etag,
(SELECT COUNT(*) FROM key_backup_sessions s WHERE s.user_id = v.user_id AND s.version = v.version)`

func scanKeyBackupVersion(s scanner) (*KeyBackupVersion, error) {
	var v KeyBackupVersion
	var authData string
	if err := s.Scan(&v.Version, &v.Algorithm, &authData, &v.ETag, &v.Count); err != nil {
		return nil, err
	}
	v.AuthData = json.RawMessage(authData)
	return &v, nil
}

// CreateKeyBackupVersion adds a backup version, numbered one past every
// version the user ever had (deleted ones included, so a number always
// names one backup), and returns its number.
func (db *DB) CreateKeyBackupVersion(ctx context.Context, userID id.UserID, algorithm string, authData json.RawMessage) (int64, error) {
	var version int64
	err := db.WriteTx(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) + 1 FROM key_backup_versions WHERE user_id = $1`, userID).Scan(&version); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO key_backup_versions (user_id, version, algorithm, auth_data) VALUES ($1, $2, $3, $4)`,
			userID, version, algorithm, string(authData))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("create key backup of %s: %w", userID, err)
	}
	return version, nil
}

// GetKeyBackupVersion returns a version that exists and is not deleted,
// or ErrNotFound.
func (db *DB) GetKeyBackupVersion(ctx context.Context, userID id.UserID, version int64) (*KeyBackupVersion, error) {
	v, err := scanKeyBackupVersion(db.reader.QueryRowContext(ctx, `SELECT `+keyBackupVersionColumns+` FROM key_backup_versions v
WHERE user_id = $1 AND version = $2 AND deleted = 0`, userID, version))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get key backup %d of %s: %w", version, userID, err)
	}
	return v, nil
}

// LatestKeyBackupVersion returns the user's newest version that is not
// deleted, or ErrNotFound.
func (db *DB) LatestKeyBackupVersion(ctx context.Context, userID id.UserID) (*KeyBackupVersion, error) {
	v, err := scanKeyBackupVersion(db.reader.QueryRowContext(ctx, `SELECT `+keyBackupVersionColumns+` FROM key_backup_versions v
WHERE user_id = $1 AND deleted = 0 ORDER BY version DESC LIMIT 1`, userID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("latest key backup of %s: %w", userID, err)
	}
	return v, nil
}

// UpdateKeyBackupAuthData replaces a version's auth_data if the version
// exists, is not deleted and has the given algorithm; ErrNotFound
// otherwise.
func (db *DB) UpdateKeyBackupAuthData(ctx context.Context, userID id.UserID, version int64, algorithm string, authData json.RawMessage) error {
	return updateOne(ctx, db.writes(), "update key backup", `UPDATE key_backup_versions SET auth_data = $4
WHERE user_id = $1 AND version = $2 AND algorithm = $3 AND deleted = 0`, userID, version, algorithm, string(authData))
}

// DeleteKeyBackupVersion marks a version deleted and deletes its keys. A
// version deleted before is deleted again without complaint; one that never
// existed is ErrNotFound.
func (db *DB) DeleteKeyBackupVersion(ctx context.Context, userID id.UserID, version int64) error {
	return db.WriteTx(ctx, func(tx *sql.Tx) error {
		if err := updateOne(ctx, tx, "delete key backup", `UPDATE key_backup_versions SET deleted = 1 WHERE user_id = $1 AND version = $2`, userID, version); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM key_backup_sessions WHERE user_id = $1 AND version = $2`, userID, version); err != nil {
			return fmt.Errorf("delete keys of key backup %d: %w", version, err)
		}
		return nil
	})
}

// keyBackupState reads a version's etag and key count inside tx.
func keyBackupState(ctx context.Context, tx *sql.Tx, userID id.UserID, version int64) (etag int64, count int, err error) {
	err = tx.QueryRowContext(ctx, `SELECT etag, (SELECT COUNT(*) FROM key_backup_sessions s WHERE s.user_id = v.user_id AND s.version = v.version)
FROM key_backup_versions v WHERE user_id = $1 AND version = $2`, userID, version).Scan(&etag, &count)
	return etag, count, err
}

// PutKeyBackupSessions stores sessions in one transaction. The version must
// be the user's current (newest, not deleted) one: otherwise the answer is
// ErrNotFound when it does not exist (or is deleted) and a
// *NotCurrentKeyBackupError when it is an older one. A session already
// stored is replaced only when replace(old, new) says so. The etag moves
// when anything changed. It returns the etag and key count after.
func (db *DB) PutKeyBackupSessions(ctx context.Context, userID id.UserID, version int64, sessions []BackedUpSession,
	replace func(old, new *BackedUpSession) bool) (etag int64, count int, err error) {
	err = db.WriteTx(ctx, func(tx *sql.Tx) error {
		var current sql.NullInt64
		if err := tx.QueryRowContext(ctx, `SELECT MAX(version) FROM key_backup_versions WHERE user_id = $1 AND deleted = 0`, userID).Scan(&current); err != nil {
			return err
		}
		if !current.Valid {
			return ErrNotFound
		}
		if current.Int64 != version {
			var exists bool
			if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM key_backup_versions WHERE user_id = $1 AND version = $2 AND deleted = 0)`,
				userID, version).Scan(&exists); err != nil {
				return err
			}
			if !exists {
				return ErrNotFound
			}
			return &NotCurrentKeyBackupError{Current: current.Int64}
		}
		get, err := tx.PrepareContext(ctx, `SELECT first_message_index, forwarded_count, is_verified, session_data FROM key_backup_sessions
WHERE user_id = $1 AND version = $2 AND room_id = $3 AND session_id = $4`)
		if err != nil {
			return err
		}
		defer get.Close()
		put, err := tx.PrepareContext(ctx, `INSERT INTO key_backup_sessions
(user_id, version, room_id, session_id, first_message_index, forwarded_count, is_verified, session_data)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (user_id, version, room_id, session_id) DO UPDATE SET first_message_index = excluded.first_message_index,
forwarded_count = excluded.forwarded_count, is_verified = excluded.is_verified, session_data = excluded.session_data`)
		if err != nil {
			return err
		}
		defer put.Close()
		changed := false
		for i := range sessions {
			s := &sessions[i]
			old := BackedUpSession{RoomID: s.RoomID, SessionID: s.SessionID}
			var data string
			err := get.QueryRowContext(ctx, userID, version, s.RoomID, s.SessionID).Scan(&old.FirstMessageIndex, &old.ForwardedCount, &old.IsVerified, &data)
			switch {
			case errors.Is(err, sql.ErrNoRows):
			case err != nil:
				return fmt.Errorf("read session %s: %w", s.SessionID, err)
			default:
				old.SessionData = json.RawMessage(data)
				if !replace(&old, s) {
					continue
				}
			}
			if _, err := put.ExecContext(ctx, userID, version, s.RoomID, s.SessionID, s.FirstMessageIndex, s.ForwardedCount, s.IsVerified, string(s.SessionData)); err != nil {
				return fmt.Errorf("store session %s: %w", s.SessionID, err)
			}
			changed = true
		}
		if changed {
			if _, err := tx.ExecContext(ctx, `UPDATE key_backup_versions SET etag = etag + 1 WHERE user_id = $1 AND version = $2`, userID, version); err != nil {
				return err
			}
		}
		etag, count, err = keyBackupState(ctx, tx, userID, version)
		return err
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		var notCurrent *NotCurrentKeyBackupError
		if !errors.As(err, &notCurrent) {
			err = fmt.Errorf("store keys in key backup %d of %s: %w", version, userID, err)
		}
	}
	return etag, count, err
}

// KeyBackupSessions returns the sessions of a version (not deleted): all
// of them, a room's (roomID set) or one (roomID and sessionID set).
// ErrNotFound means the version does not exist.
func (db *DB) KeyBackupSessions(ctx context.Context, userID id.UserID, version int64, roomID id.RoomID, sessionID id.SessionID) ([]BackedUpSession, error) {
	var out []BackedUpSession
	// One read transaction, so a version deleted meanwhile is not read as
	// an existing, empty one.
	tx, err := db.reader.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("read key backup: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	var exists bool
	if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM key_backup_versions WHERE user_id = $1 AND version = $2 AND deleted = 0)`,
		userID, version).Scan(&exists); err != nil {
		return nil, fmt.Errorf("read key backup %d of %s: %w", version, userID, err)
	}
	if !exists {
		return nil, ErrNotFound
	}
	rows, err := tx.QueryContext(ctx, `SELECT room_id, session_id, first_message_index, forwarded_count, is_verified, session_data
FROM key_backup_sessions WHERE user_id = $1 AND version = $2 AND ($3 = '' OR room_id = $3) AND ($4 = '' OR session_id = $4)
ORDER BY room_id, session_id`, userID, version, roomID, sessionID)
	if err != nil {
		return nil, fmt.Errorf("read key backup %d of %s: %w", version, userID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var s BackedUpSession
		var data string
		if err := rows.Scan(&s.RoomID, &s.SessionID, &s.FirstMessageIndex, &s.ForwardedCount, &s.IsVerified, &data); err != nil {
			return nil, fmt.Errorf("read key backup %d of %s: %w", version, userID, err)
		}
		s.SessionData = json.RawMessage(data)
		out = append(out, s)
	}
	return out, rows.Err()
}

// DeleteKeyBackupSessions deletes sessions of a version (not deleted): all
// of them, a room's or one, like KeyBackupSessions. The etag moves when a
// key was deleted. It returns the etag and key count after.
func (db *DB) DeleteKeyBackupSessions(ctx context.Context, userID id.UserID, version int64, roomID id.RoomID, sessionID id.SessionID) (etag int64, count int, err error) {
	err = db.WriteTx(ctx, func(tx *sql.Tx) error {
		var exists bool
		if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM key_backup_versions WHERE user_id = $1 AND version = $2 AND deleted = 0)`,
			userID, version).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			return ErrNotFound
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM key_backup_sessions
WHERE user_id = $1 AND version = $2 AND ($3 = '' OR room_id = $3) AND ($4 = '' OR session_id = $4)`, userID, version, roomID, sessionID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n > 0 {
			if _, err := tx.ExecContext(ctx, `UPDATE key_backup_versions SET etag = etag + 1 WHERE user_id = $1 AND version = $2`, userID, version); err != nil {
				return err
			}
		}
		etag, count, err = keyBackupState(ctx, tx, userID, version)
		return err
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		err = fmt.Errorf("delete keys from key backup %d of %s: %w", version, userID, err)
	}
	return etag, count, err
}
