package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"maunium.net/go/mautrix/id"
)

const (
	selectServerNoticeRoom = `SELECT room_id FROM server_notice_rooms WHERE user_id = $1`
	upsertServerNoticeRoom = `INSERT INTO server_notice_rooms (user_id, room_id) VALUES ($1, $2)
ON CONFLICT (user_id) DO UPDATE SET room_id = excluded.room_id`
)

// ServerNoticeRoom returns a user's current server notices room, or
// ErrNotFound if none was made yet.
func (db *DB) ServerNoticeRoom(ctx context.Context, userID id.UserID) (id.RoomID, error) {
	var roomID id.RoomID
	err := db.reader.QueryRowContext(ctx, selectServerNoticeRoom, userID).Scan(&roomID)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("server notice room of %s: %w", userID, err)
	}
	return roomID, nil
}

// SetServerNoticeRoom records a user's new server notices room.
func (db *DB) SetServerNoticeRoom(ctx context.Context, userID id.UserID, roomID id.RoomID) error {
	if _, err := db.exec(ctx, upsertServerNoticeRoom, userID, roomID); err != nil {
		return fmt.Errorf("set server notice room of %s: %w", userID, err)
	}
	return nil
}
