package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// OwnSigningKey is a signing key this server has used.
type OwnSigningKey struct {
	KeyID     string
	PublicKey string
	// ExpiredTS is when the key stopped being used (ms); 0 for the key in use.
	ExpiredTS int64
}

// RemoteServerKey is another server's public key as cached.
type RemoteServerKey struct {
	ServerName string
	KeyID      string
	PublicKey  string
	// ValidUntilTS is the last moment (ms) the key may sign anything: the
	// response's valid_until_ts for a verify key, expired_ts for an old one.
	ValidUntilTS int64
	// Old is true for a key from old_verify_keys.
	Old       bool
	FetchedTS int64
}

const (
	selectOwnKeys   = `SELECT key_id, public_key, COALESCE(expired_ts, 0) FROM federation_own_keys ORDER BY first_used_ts`
	selectOwnKey    = `SELECT COALESCE(expired_ts, 0) FROM federation_own_keys WHERE key_id = $1`
	expireOwnKeys   = `UPDATE federation_own_keys SET expired_ts = $1 WHERE expired_ts IS NULL AND key_id <> $2`
	insertOwnKey    = `INSERT INTO federation_own_keys (key_id, public_key, first_used_ts) VALUES ($1, $2, $3)`
	reviveOwnKey    = `UPDATE federation_own_keys SET expired_ts = NULL WHERE key_id = $1`
	selectServerKey = `SELECT public_key, valid_until_ts, expired_ts IS NOT NULL, fetched_ts FROM federation_server_keys WHERE server_name = $1 AND key_id = $2`
	upsertServerKey = `INSERT INTO federation_server_keys (server_name, key_id, public_key, valid_until_ts, expired_ts, fetched_ts) VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (server_name, key_id) DO UPDATE SET public_key = excluded.public_key,
	valid_until_ts = CASE WHEN excluded.expired_ts IS NULL AND federation_server_keys.expired_ts IS NULL
		AND federation_server_keys.valid_until_ts > excluded.valid_until_ts
		THEN federation_server_keys.valid_until_ts ELSE excluded.valid_until_ts END,
	expired_ts = excluded.expired_ts, fetched_ts = excluded.fetched_ts`
	selectKeyResponse = `SELECT response, valid_until_ts, fetched_ts FROM federation_key_responses WHERE server_name = $1`
	upsertKeyResponse = `INSERT INTO federation_key_responses (server_name, response, valid_until_ts, fetched_ts) VALUES ($1, $2, $3, $4)
ON CONFLICT (server_name) DO UPDATE SET
	response = CASE WHEN excluded.valid_until_ts >= federation_key_responses.valid_until_ts
		THEN excluded.response ELSE federation_key_responses.response END,
	valid_until_ts = CASE WHEN excluded.valid_until_ts >= federation_key_responses.valid_until_ts
		THEN excluded.valid_until_ts ELSE federation_key_responses.valid_until_ts END,
	fetched_ts = excluded.fetched_ts`
	deleteKeyFailure = `DELETE FROM federation_key_failures WHERE server_name = $1`
	selectKeyFailure = `SELECT failures, last_failure_ts FROM federation_key_failures WHERE server_name = $1`
	upsertKeyFailure = `INSERT INTO federation_key_failures (server_name, failures, last_failure_ts) VALUES ($1, 1, $2)
ON CONFLICT (server_name) DO UPDATE SET failures = federation_key_failures.failures + 1, last_failure_ts = excluded.last_failure_ts`
)

// RecordOwnSigningKey notes that keyID is the key in use from now (ms):
// any other key still marked in use expires now, so a rotated key file
// leaves its predecessor in old_verify_keys.
func (db *DB) RecordOwnSigningKey(ctx context.Context, keyID, publicKey string, now int64) error {
	err := db.WriteTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, expireOwnKeys, now, keyID); err != nil {
			return err
		}
		var expired int64
		err := tx.QueryRowContext(ctx, selectOwnKey, keyID).Scan(&expired)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			_, err = tx.ExecContext(ctx, insertOwnKey, keyID, publicKey, now)
			return err
		case err != nil:
			return err
		case expired != 0:
			// An older key file was put back: it is the key in use again.
			_, err = tx.ExecContext(ctx, reviveOwnKey, keyID)
			return err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record own signing key %s: %w", keyID, err)
	}
	return nil
}

// OwnSigningKeys lists every key this server has used, oldest first.
func (db *DB) OwnSigningKeys(ctx context.Context) ([]OwnSigningKey, error) {
	rows, err := db.reader.QueryContext(ctx, selectOwnKeys)
	if err != nil {
		return nil, fmt.Errorf("own signing keys: %w", err)
	}
	defer rows.Close()
	var out []OwnSigningKey
	for rows.Next() {
		var k OwnSigningKey
		if err := rows.Scan(&k.KeyID, &k.PublicKey, &k.ExpiredTS); err != nil {
			return nil, fmt.Errorf("own signing keys: %w", err)
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// StoreServerKeys caches a server's verified key response (raw, as signed)
// and its keys in one transaction, and forgets its fetch failures. A
// response older than the one stored (an earlier valid_until_ts) does not
// replace it, but still counts as a fetch (fetched_ts).
func (db *DB) StoreServerKeys(ctx context.Context, serverName string, response []byte, validUntilTS int64, keys []RemoteServerKey, now int64) error {
	err := db.WriteTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, upsertKeyResponse, serverName, string(response), validUntilTS, now); err != nil {
			return err
		}
		for _, k := range keys {
			var expired any
			if k.Old {
				expired = k.ValidUntilTS
			}
			if _, err := tx.ExecContext(ctx, upsertServerKey, serverName, k.KeyID, k.PublicKey, k.ValidUntilTS, expired, now); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, deleteKeyFailure, serverName)
		return err
	})
	if err != nil {
		return fmt.Errorf("store keys of %s: %w", serverName, err)
	}
	return nil
}

// ServerKey returns a cached key of a server, or ErrNotFound.
func (db *DB) ServerKey(ctx context.Context, serverName, keyID string) (RemoteServerKey, error) {
	k := RemoteServerKey{ServerName: serverName, KeyID: keyID}
	err := db.reader.QueryRowContext(ctx, selectServerKey, serverName, keyID).Scan(&k.PublicKey, &k.ValidUntilTS, &k.Old, &k.FetchedTS)
	if errors.Is(err, sql.ErrNoRows) {
		return k, ErrNotFound
	}
	if err != nil {
		return k, fmt.Errorf("key %s of %s: %w", keyID, serverName, err)
	}
	return k, nil
}

// ServerKeyResponse returns the newest cached key response of a server (as
// the server signed it), or ErrNotFound.
func (db *DB) ServerKeyResponse(ctx context.Context, serverName string) (response []byte, validUntilTS, fetchedTS int64, err error) {
	var text string
	err = db.reader.QueryRowContext(ctx, selectKeyResponse, serverName).Scan(&text, &validUntilTS, &fetchedTS)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, 0, 0, ErrNotFound
	}
	if err != nil {
		return nil, 0, 0, fmt.Errorf("key response of %s: %w", serverName, err)
	}
	return []byte(text), validUntilTS, fetchedTS, nil
}

// KeyFetchFailures returns how many key fetches from a server failed in a
// row and when the last one did (0, 0 when the last one succeeded).
func (db *DB) KeyFetchFailures(ctx context.Context, serverName string) (failures int, lastTS int64, err error) {
	err = db.reader.QueryRowContext(ctx, selectKeyFailure, serverName).Scan(&failures, &lastTS)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("key fetch failures of %s: %w", serverName, err)
	}
	return failures, lastTS, nil
}

// RecordKeyFetchFailure counts one more failed key fetch from a server.
func (db *DB) RecordKeyFetchFailure(ctx context.Context, serverName string, now int64) error {
	if _, err := db.exec(ctx, upsertKeyFailure, serverName, now); err != nil {
		return fmt.Errorf("record key fetch failure of %s: %w", serverName, err)
	}
	return nil
}
