package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"maunium.net/go/mautrix/id"
)

// AccountData is one piece of a user's account data (RoomID "" for global).
type AccountData struct {
	StreamID int64
	RoomID   id.RoomID
	Type     string
	Content  []byte
}

// SetAccountData stores account data, giving it a new stream position.
func (db *DB) SetAccountData(ctx context.Context, userID id.UserID, roomID id.RoomID, evType string, content []byte) (int64, error) {
	var pos int64
	err := db.WriteTx(ctx, func(tx *sql.Tx) error {
		// Delete and re-insert so the row takes a new, higher stream_id.
		if _, err := tx.ExecContext(ctx, `DELETE FROM account_data WHERE user_id = $1 AND room_id = $2 AND type = $3`, userID, roomID, evType); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO account_data (user_id, room_id, type, content) VALUES ($1, $2, $3, $4)`, userID, roomID, evType, string(content))
		if err != nil {
			return err
		}
		pos, err = res.LastInsertId()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("set account data: %w", err)
	}
	return pos, nil
}

// GetAccountData returns one piece of account data, or ErrNotFound.
func (db *DB) GetAccountData(ctx context.Context, userID id.UserID, roomID id.RoomID, evType string) ([]byte, error) {
	var c string
	err := db.reader.QueryRowContext(ctx, `SELECT content FROM account_data WHERE user_id = $1 AND room_id = $2 AND type = $3`, userID, roomID, evType).Scan(&c)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get account data: %w", err)
	}
	return []byte(c), nil
}

// AccountDataSince returns a user's account data changed in (from, to].
func (db *DB) AccountDataSince(ctx context.Context, userID id.UserID, from, to int64) ([]AccountData, error) {
	rows, err := db.reader.QueryContext(ctx, `SELECT stream_id, room_id, type, content FROM account_data
WHERE user_id = $1 AND stream_id > $2 AND stream_id <= $3 ORDER BY stream_id`, userID, from, to)
	if err != nil {
		return nil, fmt.Errorf("account data: %w", err)
	}
	defer rows.Close()
	var out []AccountData
	for rows.Next() {
		var a AccountData
		var c string
		if err := rows.Scan(&a.StreamID, &a.RoomID, &a.Type, &c); err != nil {
			return nil, err
		}
		a.Content = []byte(c)
		out = append(out, a)
	}
	return out, rows.Err()
}
