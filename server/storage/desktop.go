package storage

import (
	"context"
	"fmt"
)

// Figures for the desktop app's Status tab.

// CountRooms counts the rooms this server knows.
func (db *DB) CountRooms(ctx context.Context) (int, error) {
	var n int
	if err := db.reader.QueryRowContext(ctx, `SELECT COUNT(*) FROM rooms`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count rooms: %w", err)
	}
	return n, nil
}

// MediaBytes is the size of every stored media file (uploads and
// thumbnails, each distinct content once, as it is on disk).
func (db *DB) MediaBytes(ctx context.Context) (int64, error) {
	var n int64
	if err := db.reader.QueryRowContext(ctx, `SELECT COALESCE(SUM(size), 0) FROM media_content`).Scan(&n); err != nil {
		return 0, fmt.Errorf("sum media sizes: %w", err)
	}
	return n, nil
}
