package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// MetaServerName is the server_meta key holding the server name the
// database was created for.
const MetaServerName = "server_name"

const (
	selectMeta = `SELECT value FROM server_meta WHERE key = $1`
	insertMeta = `INSERT INTO server_meta (key, value) VALUES ($1, $2)
	ON CONFLICT (key) DO UPDATE SET value = excluded.value`
)

// Meta returns a server_meta value and whether it exists.
func (db *DB) Meta(ctx context.Context, key string) (string, bool, error) {
	var v string
	err := db.reader.QueryRowContext(ctx, selectMeta, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("read server_meta %s: %w", key, err)
	}
	return v, true, nil
}

// SetMeta stores a server_meta value.
func (db *DB) SetMeta(ctx context.Context, key, value string) error {
	if _, err := db.exec(ctx, insertMeta, key, value); err != nil {
		return fmt.Errorf("write server_meta %s: %w", key, err)
	}
	return nil
}
