package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"maunium.net/go/mautrix/id"
)

// SaveFilter stores a filter and returns its ID: the same filter JSON from
// the same user gets the same ID, so clients re-uploading their filter on
// every start do not grow the table.
func (db *DB) SaveFilter(ctx context.Context, userID id.UserID, filterJSON []byte) (int64, error) {
	var filterID int64
	err := db.WriteTx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `SELECT filter_id FROM filters WHERE user_id = $1 AND filter = $2`, userID, string(filterJSON)).Scan(&filterID)
		if err == nil {
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(filter_id), -1) + 1 FROM filters WHERE user_id = $1`, userID).Scan(&filterID); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO filters (user_id, filter_id, filter) VALUES ($1, $2, $3)`, userID, filterID, string(filterJSON))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("save filter: %w", err)
	}
	return filterID, nil
}

// GetFilter returns a user's stored filter JSON, or ErrNotFound.
func (db *DB) GetFilter(ctx context.Context, userID id.UserID, filterID int64) ([]byte, error) {
	var f string
	err := db.reader.QueryRowContext(ctx, `SELECT filter FROM filters WHERE user_id = $1 AND filter_id = $2`, userID, filterID).Scan(&f)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get filter: %w", err)
	}
	return []byte(f), nil
}
