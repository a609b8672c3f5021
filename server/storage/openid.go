package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"maunium.net/go/mautrix/id"
)

// OpenID tokens: hashed, with their expiry; expired ones are swept each
// time a new one is made, so the table stays as small as the last hour.

const (
	deleteExpiredOpenIDTokens = `DELETE FROM openid_tokens WHERE expires_ts <= $1`
	insertOpenIDToken         = `INSERT INTO openid_tokens (token_hash, user_id, expires_ts) VALUES ($1, $2, $3)`
	selectOpenIDToken         = `SELECT t.user_id FROM openid_tokens t JOIN users u ON u.user_id = t.user_id
WHERE t.token_hash = $1 AND t.expires_ts > $2 AND u.deactivated = 0`
)

// InsertOpenIDToken stores a new OpenID token and drops expired ones.
func (db *DB) InsertOpenIDToken(ctx context.Context, hash []byte, userID id.UserID, expiresTS, nowTS int64) error {
	return db.WriteTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, deleteExpiredOpenIDTokens, nowTS); err != nil {
			return fmt.Errorf("sweep openid tokens: %w", err)
		}
		if _, err := tx.ExecContext(ctx, insertOpenIDToken, hash, userID, expiresTS); err != nil {
			return fmt.Errorf("insert openid token: %w", err)
		}
		return nil
	})
}

// LookupOpenIDToken returns the user an unexpired OpenID token belongs to,
// or ErrNotFound (also for a deactivated user).
func (db *DB) LookupOpenIDToken(ctx context.Context, hash []byte, nowTS int64) (id.UserID, error) {
	var userID id.UserID
	err := db.reader.QueryRowContext(ctx, selectOpenIDToken, hash, nowTS).Scan(&userID)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("look up openid token: %w", err)
	}
	return userID, nil
}
