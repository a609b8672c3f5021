package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"maunium.net/go/mautrix/id"
)

// NewSession is a login: a device (created, or taken over when it exists)
// and the tokens that act for it. Hashes are SHA-256 of the tokens.
type NewSession struct {
	UserID      id.UserID
	DeviceID    id.DeviceID
	DisplayName string // for a new device; an existing device keeps its name
	AccessHash  []byte
	RefreshHash []byte // nil without a refresh token
	ExpiresTS   int64  // access token expiry, 0 for never
	NowTS       int64
	IP          string
	UserAgent   string
	// OAuth, when not nil, records the device as signed in through the
	// OAuth 2.0 API (oauth.go).
	OAuth *OAuthSession
}

// createSession inserts the device if new and replaces its tokens: the spec
// says logging in again with an existing device ID invalidates the access
// tokens that device had.
func createSession(ctx context.Context, tx *sql.Tx, s *NewSession) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO devices (user_id, device_id, display_name, created_ts, last_seen_ts, last_seen_ip, last_seen_user_agent)
VALUES ($1, $2, NULLIF($3, ''), $4, $4, NULLIF($5, ''), NULLIF($6, ''))
ON CONFLICT (user_id, device_id) DO UPDATE SET last_seen_ts = excluded.last_seen_ts,
	last_seen_ip = excluded.last_seen_ip, last_seen_user_agent = excluded.last_seen_user_agent`,
		s.UserID, s.DeviceID, s.DisplayName, s.NowTS, s.IP, s.UserAgent)
	if err != nil {
		return fmt.Errorf("create device %s: %w", s.DeviceID, err)
	}
	for _, q := range []string{
		`DELETE FROM access_tokens WHERE user_id = $1 AND device_id = $2`,
		`DELETE FROM refresh_tokens WHERE user_id = $1 AND device_id = $2`,
		deleteOAuthSession,
	} {
		if _, err := tx.ExecContext(ctx, q, s.UserID, s.DeviceID); err != nil {
			return fmt.Errorf("replace tokens of %s: %w", s.DeviceID, err)
		}
	}
	if s.OAuth != nil {
		if _, err := tx.ExecContext(ctx, insertOAuthSession, s.UserID, s.DeviceID, s.OAuth.ClientID, s.OAuth.Scope, s.OAuth.GrantHash, s.NowTS); err != nil {
			return fmt.Errorf("record oauth session of %s: %w", s.DeviceID, err)
		}
	}
	return insertTokens(ctx, tx, s.UserID, s.DeviceID, s.AccessHash, s.RefreshHash, s.ExpiresTS, s.NowTS)
}

func insertTokens(ctx context.Context, tx *sql.Tx, userID id.UserID, deviceID id.DeviceID, accessHash, refreshHash []byte, expiresTS, nowTS int64) error {
	var expires any
	if expiresTS > 0 {
		expires = expiresTS
	}
	if refreshHash != nil {
		if _, err := tx.ExecContext(ctx, `INSERT INTO refresh_tokens (token_hash, user_id, device_id, created_ts) VALUES ($1, $2, $3, $4)`,
			refreshHash, userID, deviceID, nowTS); err != nil {
			return fmt.Errorf("insert refresh token: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO access_tokens (token_hash, user_id, device_id, created_ts, expires_ts, refresh_hash) VALUES ($1, $2, $3, $4, $5, $6)`,
		accessHash, userID, deviceID, nowTS, expires, refreshHash); err != nil {
		return fmt.Errorf("insert access token: %w", err)
	}
	return nil
}

// CreateSession records a login (see NewSession) in one transaction. The
// user must exist and be active.
func (db *DB) CreateSession(ctx context.Context, s *NewSession) error {
	return db.WriteTx(ctx, func(tx *sql.Tx) error {
		var deactivated bool
		err := tx.QueryRowContext(ctx, `SELECT deactivated FROM users WHERE user_id = $1`, s.UserID).Scan(&deactivated)
		if errors.Is(err, sql.ErrNoRows) || deactivated {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("create session: %w", err)
		}
		return createSession(ctx, tx, s)
	})
}

// TokenOwner is what an access token stands for.
type TokenOwner struct {
	UserID      id.UserID
	DeviceID    id.DeviceID
	IsAdmin     bool
	Deactivated bool
	Locked      bool
	Suspended   bool
	ExpiresTS   int64 // 0: never
	// FirstUse is true the first time a refreshed access token is used; the
	// refresh token it replaced is dropped then.
	FirstUse    bool
	RefreshHash []byte
	// OAuth is true for a device signed in through the OAuth 2.0 API.
	OAuth bool
}

// LookupAccessToken finds the owner of an access token hash, or ErrNotFound.
func (db *DB) LookupAccessToken(ctx context.Context, hash []byte) (*TokenOwner, error) {
	if o, ok := db.tokens.get(hash); ok {
		return o, nil
	}
	gen := db.tokens.generation()
	var o TokenOwner
	var expires sql.NullInt64
	var used bool
	err := db.reader.QueryRowContext(ctx, `SELECT t.user_id, t.device_id, u.is_admin, u.deactivated, u.locked, u.suspended, t.expires_ts, t.used, t.refresh_hash,
	EXISTS (SELECT 1 FROM oauth_sessions o WHERE o.user_id = t.user_id AND o.device_id = t.device_id)
FROM access_tokens t JOIN users u ON u.user_id = t.user_id WHERE t.token_hash = $1`, hash).
		Scan(&o.UserID, &o.DeviceID, &o.IsAdmin, &o.Deactivated, &o.Locked, &o.Suspended, &expires, &used, &o.RefreshHash, &o.OAuth)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("look up access token: %w", err)
	}
	o.ExpiresTS = expires.Int64
	o.FirstUse = !used && o.RefreshHash != nil
	db.tokens.put(hash, &o, gen)
	return &o, nil
}

// MarkAccessTokenUsed records the first use of a refreshed access token and
// retires the refresh token that its own refresh token replaced.
func (db *DB) MarkAccessTokenUsed(ctx context.Context, hash []byte, refreshHash []byte) error {
	return db.WriteTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE access_tokens SET used = 1 WHERE token_hash = $1`, hash); err != nil {
			return fmt.Errorf("mark token used: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM refresh_tokens WHERE replaced_by = $1`, refreshHash); err != nil {
			return fmt.Errorf("retire old refresh token: %w", err)
		}
		return nil
	})
}

// DeleteAccessToken logs out one access token, deleting its device too (as
// /logout does: the device and every token for it go).
func (db *DB) DeleteAccessToken(ctx context.Context, hash []byte) error {
	return db.WriteTx(ctx, func(tx *sql.Tx) error {
		var userID id.UserID
		var deviceID id.DeviceID
		err := tx.QueryRowContext(ctx, `SELECT user_id, device_id FROM access_tokens WHERE token_hash = $1`, hash).Scan(&userID, &deviceID)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("logout: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM devices WHERE user_id = $1 AND device_id = $2`, userID, deviceID); err != nil {
			return fmt.Errorf("logout: %w", err)
		}
		return nil
	})
}

// RotateRefreshToken exchanges a refresh token for a new access and refresh
// token pair. The old refresh token stays valid until the new pair is used,
// so a client that lost the answer can retry; a reused old token yields a
// fresh pair and replaces the unused one. ErrNotFound for unknown tokens.
func (db *DB) RotateRefreshToken(ctx context.Context, oldHash, newAccessHash, newRefreshHash []byte, expiresTS, nowTS int64) (id.UserID, id.DeviceID, error) {
	var userID id.UserID
	var deviceID id.DeviceID
	err := db.WriteTx(ctx, func(tx *sql.Tx) error {
		var replacedBy []byte
		err := tx.QueryRowContext(ctx, `SELECT r.user_id, r.device_id, r.replaced_by FROM refresh_tokens r
JOIN users u ON u.user_id = r.user_id WHERE r.token_hash = $1 AND u.deactivated = 0`, oldHash).Scan(&userID, &deviceID, &replacedBy)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("refresh: %w", err)
		}
		if replacedBy != nil {
			// A retry: drop the successor (never used, or this token would be gone).
			if _, err := tx.ExecContext(ctx, `DELETE FROM refresh_tokens WHERE token_hash = $1`, replacedBy); err != nil {
				return fmt.Errorf("refresh: %w", err)
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM access_tokens WHERE refresh_hash = $1`, replacedBy); err != nil {
				return fmt.Errorf("refresh: %w", err)
			}
		}
		// The access token issued with the old refresh token ends now.
		if _, err := tx.ExecContext(ctx, `DELETE FROM access_tokens WHERE refresh_hash = $1`, oldHash); err != nil {
			return fmt.Errorf("refresh: %w", err)
		}
		// Using a refresh token retires the one it replaced, as using its
		// access token does (MarkAccessTokenUsed): otherwise a client that
		// refreshes twice without a request between would keep its first
		// refresh token valid for ever.
		if _, err := tx.ExecContext(ctx, `DELETE FROM refresh_tokens WHERE replaced_by = $1`, oldHash); err != nil {
			return fmt.Errorf("refresh: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE refresh_tokens SET replaced_by = $2 WHERE token_hash = $1`, oldHash, newRefreshHash); err != nil {
			return fmt.Errorf("refresh: %w", err)
		}
		return insertTokens(ctx, tx, userID, deviceID, newAccessHash, newRefreshHash, expiresTS, nowTS)
	})
	return userID, deviceID, err
}

// InsertLoginToken stores a single-use login token for a user.
func (db *DB) InsertLoginToken(ctx context.Context, hash []byte, userID id.UserID, expiresTS int64) error {
	if _, err := db.exec(ctx, `INSERT INTO login_tokens (token_hash, user_id, expires_ts) VALUES ($1, $2, $3)`, hash, userID, expiresTS); err != nil {
		return fmt.Errorf("insert login token: %w", err)
	}
	return nil
}

// ConsumeLoginToken deletes a login token and returns its user if it had not
// expired. Deleting first makes it single-use even under concurrent logins.
func (db *DB) ConsumeLoginToken(ctx context.Context, hash []byte, nowTS int64) (id.UserID, error) {
	var userID id.UserID
	var expires int64
	err := db.writes().QueryRowContext(ctx, `DELETE FROM login_tokens WHERE token_hash = $1 RETURNING user_id, expires_ts`, hash).Scan(&userID, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("consume login token: %w", err)
	}
	// Sweep other expired tokens while we are here.
	_, _ = db.exec(ctx, `DELETE FROM login_tokens WHERE expires_ts < $1`, nowTS)
	if expires < nowTS {
		return "", ErrNotFound
	}
	return userID, nil
}
