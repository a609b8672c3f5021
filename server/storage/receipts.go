package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"maunium.net/go/mautrix/id"
)

// Receipt is one user's receipt of one type (m.read or m.read.private) in
// one room and thread: the event they have read up to.
type Receipt struct {
	StreamID int64
	RoomID   id.RoomID
	UserID   id.UserID
	Type     string
	ThreadID string // "" for an unthreaded receipt, "main", or a thread root's event ID
	EventID  id.EventID
	TS       int64 // milliseconds since the epoch
}

// PutReceipt stores a receipt under a new stream position and returns that
// position, or 0 when the user's receipt of that type and thread already
// points at an event at or after eventPos (the receipted event's stream
// position): receipts only move forward, so a client that sends receipts
// out of order cannot rewind what other members (and unread counts) see.
func (db *DB) PutReceipt(ctx context.Context, r Receipt, eventPos int64) (int64, error) {
	var pos int64
	// A receipt moves the receipts stream and its user's read position in
	// its room; it ends no session and changes no one else's counts.
	defer db.unread.drop(r.UserID, r.RoomID)
	defer db.streamsMoved()
	err := db.commitTx(ctx, func(tx *sql.Tx) error {
		var existing sql.NullInt64
		err := tx.QueryRowContext(ctx, `SELECT e.stream_pos FROM receipts r JOIN events e ON e.event_id = r.event_id
WHERE r.room_id = $1 AND r.user_id = $2 AND r.receipt_type = $3 AND r.thread_id = $4`,
			r.RoomID, r.UserID, r.Type, r.ThreadID).Scan(&existing)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if existing.Valid && existing.Int64 >= eventPos {
			return nil
		}
		// Delete and re-insert so the row takes a new, higher stream_id
		// (AUTOINCREMENT never reuses one).
		if _, err := tx.ExecContext(ctx, `DELETE FROM receipts WHERE room_id = $1 AND user_id = $2 AND receipt_type = $3 AND thread_id = $4`,
			r.RoomID, r.UserID, r.Type, r.ThreadID); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO receipts (room_id, user_id, receipt_type, thread_id, event_id, ts) VALUES ($1, $2, $3, $4, $5, $6)`,
			r.RoomID, r.UserID, r.Type, r.ThreadID, r.EventID, r.TS)
		if err != nil {
			return err
		}
		pos, err = res.LastInsertId()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store %s receipt of %s in %s: %w", r.Type, r.UserID, r.RoomID, err)
	}
	return pos, nil
}

// ReceiptsInRooms returns the receipts of the given rooms with stream
// positions in (from, to], oldest first. With from 0 that is every room's
// latest receipts, as an initial sync shows them.
func (db *DB) ReceiptsInRooms(ctx context.Context, roomIDs []id.RoomID, from, to int64) ([]Receipt, error) {
	var out []Receipt
	const batch = 500
	for start := 0; start < len(roomIDs); start += batch {
		chunk := roomIDs[start:min(start+batch, len(roomIDs))]
		args := []any{from, to}
		marks := make([]string, len(chunk))
		for i, roomID := range chunk {
			args = append(args, roomID)
			marks[i] = fmt.Sprintf("$%d", i+3)
		}
		rows, err := db.reader.QueryContext(ctx, `SELECT stream_id, room_id, user_id, receipt_type, thread_id, event_id, ts FROM receipts
WHERE stream_id > $1 AND stream_id <= $2 AND room_id IN (`+strings.Join(marks, ",")+`) ORDER BY stream_id`, args...)
		if err != nil {
			return nil, fmt.Errorf("receipts: %w", err)
		}
		for rows.Next() {
			var r Receipt
			if err := rows.Scan(&r.StreamID, &r.RoomID, &r.UserID, &r.Type, &r.ThreadID, &r.EventID, &r.TS); err != nil {
				rows.Close()
				return nil, fmt.Errorf("receipts: %w", err)
			}
			out = append(out, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("receipts: %w", err)
		}
	}
	return out, nil
}

// ReceiptPositions returns, per thread ID ("" for unthreaded receipts,
// "main" for the main timeline, else a thread root's event ID), the stream
// position of the newest event a user has marked read in a room with m.read
// or m.read.private (the spec counts whichever is further ahead). Receipts
// for events this server does not have are left out.
func (db *DB) ReceiptPositions(ctx context.Context, roomID id.RoomID, userID id.UserID) (map[string]int64, error) {
	rows, err := db.reader.QueryContext(ctx, `SELECT r.thread_id, MAX(e.stream_pos) FROM receipts r JOIN events e ON e.event_id = r.event_id
WHERE r.room_id = $1 AND r.user_id = $2 AND r.receipt_type IN ('m.read', 'm.read.private') GROUP BY r.thread_id`, roomID, userID)
	if err != nil {
		return nil, fmt.Errorf("receipt positions of %s in %s: %w", userID, roomID, err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var thread string
		var pos int64
		if err := rows.Scan(&thread, &pos); err != nil {
			return nil, fmt.Errorf("receipt positions of %s in %s: %w", userID, roomID, err)
		}
		out[thread] = pos
	}
	return out, rows.Err()
}

// LatestReceipt returns the stream position of the newest event a user has
// marked read in a room (0 when none): the furthest of their m.read and
// m.read.private receipts, unthreaded or for the main timeline. Counting
// "main" receipts room-wide is an approximation for room-level unread
// counts (clients with threads enabled, like Element, send their main
// timeline receipts with thread_id "main" rather than unthreaded); use
// ReceiptPositions for per-thread counts.
func (db *DB) LatestReceipt(ctx context.Context, roomID id.RoomID, userID id.UserID) (int64, error) {
	var pos sql.NullInt64
	err := db.reader.QueryRowContext(ctx, `SELECT MAX(e.stream_pos) FROM receipts r JOIN events e ON e.event_id = r.event_id
WHERE r.room_id = $1 AND r.user_id = $2 AND r.receipt_type IN ('m.read', 'm.read.private') AND r.thread_id IN ('', 'main')`,
		roomID, userID).Scan(&pos)
	if err != nil {
		return 0, fmt.Errorf("latest receipt of %s in %s: %w", userID, roomID, err)
	}
	return pos.Int64, nil
}
