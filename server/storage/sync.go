package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"

	"maunium.net/go/mautrix/id"
)

// RoomEvents returns up to limit events of a room with stream positions in
// (from, to], oldest first, and whether the range holds more. With
// backwards the newest of them are returned, otherwise the oldest.
// Rejected events are never returned.
func (db *DB) RoomEvents(ctx context.Context, roomID id.RoomID, from, to int64, limit int, backwards bool) ([]*Event, bool, error) {
	order := "ASC"
	if backwards {
		order = "DESC"
	}
	rows, err := db.reader.QueryContext(ctx, `SELECT `+eventColumns+` FROM events
WHERE room_id = $1 AND stream_pos > $2 AND stream_pos <= $3 AND rejected = 0
ORDER BY stream_pos `+order+` LIMIT $4`, roomID, from, to, limit+1)
	if err != nil {
		return nil, false, fmt.Errorf("room events: %w", err)
	}
	defer rows.Close()
	var out []*Event
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return nil, false, fmt.Errorf("room events: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, false, err
	}
	more := len(out) > limit
	if more {
		out = out[:limit]
	}
	if backwards {
		slices.Reverse(out)
	}
	return out, more, nil
}

// MembershipEvent is a user's membership of a room as of some position.
type MembershipEvent struct {
	RoomID     id.RoomID
	EventID    id.EventID
	Membership string
	StreamPos  int64
	// RoomLastPos is the stream position of the room's latest event
	// (rooms.last_pos, read with the membership; math.MaxInt64 when none
	// was recorded there): a sync skips a room with no event in its range
	// without reading its timeline.
	RoomLastPos int64
}

// MembershipsAt returns, for every room the user ever had a membership
// in, the latest membership event at or before stream position pos.
func (db *DB) MembershipsAt(ctx context.Context, userID id.UserID, pos int64) ([]MembershipEvent, error) {
	// SQLite returns the row holding MAX() for the bare columns of an
	// aggregate query; PostgreSQL will need DISTINCT ON here.
	rows, err := db.reader.QueryContext(ctx, `SELECT m.room_id, m.event_id, m.membership, m.pos, COALESCE(NULLIF(r.last_pos, 0), 9223372036854775807) FROM (
	SELECT room_id, event_id, COALESCE(membership, '') AS membership, MAX(stream_pos) AS pos FROM events
	WHERE type = 'm.room.member' AND state_key = $1 AND stream_pos <= $2 AND rejected = 0
	GROUP BY room_id) m
LEFT JOIN rooms r ON r.room_id = m.room_id`, userID, pos)
	if err != nil {
		return nil, fmt.Errorf("memberships of %s: %w", userID, err)
	}
	defer rows.Close()
	var out []MembershipEvent
	for rows.Next() {
		var m MembershipEvent
		if err := rows.Scan(&m.RoomID, &m.EventID, &m.Membership, &m.StreamPos, &m.RoomLastPos); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// JoinedWithin tells whether the user joined the room within the stream
// range (from, to] without being joined at its start: the room is new to
// a client that synced at from.
func (db *DB) JoinedWithin(ctx context.Context, roomID id.RoomID, userID id.UserID, from, to int64) (bool, error) {
	var joined bool
	err := db.reader.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM events
	WHERE room_id = $1 AND type = 'm.room.member' AND state_key = $2 AND membership = 'join'
	AND stream_pos > $3 AND stream_pos <= $4 AND rejected = 0)
AND COALESCE((SELECT membership FROM events WHERE room_id = $1 AND type = 'm.room.member' AND state_key = $2
	AND stream_pos <= $3 AND rejected = 0 ORDER BY stream_pos DESC LIMIT 1), '') <> 'join'`, roomID, userID, from, to).Scan(&joined)
	if err != nil {
		return false, fmt.Errorf("join of %s in %s: %w", userID, roomID, err)
	}
	return joined, nil
}

// LastEventAt returns the newest event of a room at or before stream
// position pos, or ErrNotFound.
func (db *DB) LastEventAt(ctx context.Context, roomID id.RoomID, pos int64) (*Event, error) {
	e, err := scanEvent(db.reader.QueryRowContext(ctx, `SELECT `+eventColumns+` FROM events
WHERE room_id = $1 AND stream_pos <= $2 AND rejected = 0 ORDER BY stream_pos DESC LIMIT 1`, roomID, pos))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("last event: %w", err)
	}
	return e, nil
}

// TxnIDOf returns the transaction ID a device sent an event with, for
// unsigned.transaction_id in that device's sync.
func (db *DB) TxnIDOf(ctx context.Context, userID id.UserID, deviceID id.DeviceID, eventID id.EventID) (string, error) {
	var txn string
	err := db.reader.QueryRowContext(ctx, `SELECT txn_id FROM events WHERE event_id = $3 AND sender = $1 AND txn_device = $2 AND txn_id IS NOT NULL`, userID, deviceID, eventID).Scan(&txn)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return txn, err
}
