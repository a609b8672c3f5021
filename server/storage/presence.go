package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"maunium.net/go/mautrix/id"
)

// Presence is a user's presence row.
type Presence struct {
	UserID       id.UserID
	State        string
	StatusMsg    *string
	LastActiveTS int64
	LastSyncTS   int64
	StreamID     int64
}

const presenceColumns = `user_id, state, status_msg, last_active_ts, last_sync_ts, stream_id`

func scanPresence(s scanner) (*Presence, error) {
	var p Presence
	var msg sql.NullString
	if err := s.Scan(&p.UserID, &p.State, &msg, &p.LastActiveTS, &p.LastSyncTS, &p.StreamID); err != nil {
		return nil, err
	}
	if msg.Valid {
		p.StatusMsg = &msg.String
	}
	return &p, nil
}

// scanPresences reads presence rows and closes them.
func scanPresences(rows *sql.Rows) ([]Presence, error) {
	defer rows.Close()
	var out []Presence
	for rows.Next() {
		p, err := scanPresence(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *p)
	}
	return out, rows.Err()
}

// GetPresence returns a user's presence, or ErrNotFound.
func (db *DB) GetPresence(ctx context.Context, userID id.UserID) (*Presence, error) {
	p, err := scanPresence(db.reader.QueryRowContext(ctx, `SELECT `+presenceColumns+` FROM presence WHERE user_id = $1`, userID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get presence: %w", err)
	}
	return p, nil
}

// PutPresence writes a presence row. With bump it takes a new stream
// position (a change others must hear of); without, only timestamps move.
func (db *DB) PutPresence(ctx context.Context, p *Presence, bump bool) error {
	bump = bump || p.StreamID == 0
	commit := db.writeTx
	if !bump {
		// A sync refreshing its user's "last synced" time, once a minute:
		// no stream position, key or count that a cache keeps moves, so
		// the caches every sync reads stay (wrote would drop them all).
		commit = db.commitTx
	}
	return commit(ctx, func(tx *sql.Tx) error {
		var pos int64
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(stream_id), 0) FROM presence`).Scan(&pos); err != nil {
			return err
		}
		if bump {
			p.StreamID = pos + 1
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO presence (user_id, state, status_msg, last_active_ts, last_sync_ts, stream_id)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (user_id) DO UPDATE SET state = excluded.state, status_msg = excluded.status_msg,
	last_active_ts = excluded.last_active_ts, last_sync_ts = excluded.last_sync_ts, stream_id = excluded.stream_id`,
			p.UserID, p.State, p.StatusMsg, p.LastActiveTS, p.LastSyncTS, p.StreamID)
		if err != nil {
			return fmt.Errorf("put presence: %w", err)
		}
		return nil
	})
}

// sharedRoomUsers is the set of users who share a joined room with $1.
const sharedRoomUsers = `SELECT DISTINCT b.state_key FROM current_state a
JOIN current_state b ON b.room_id = a.room_id AND b.type = 'm.room.member' AND b.membership = 'join'
WHERE a.type = 'm.room.member' AND a.state_key = $1 AND a.membership = 'join'`

// PresenceChanges returns the presence of the user and of everyone sharing
// a room with them that changed in (from, to].
func (db *DB) PresenceChanges(ctx context.Context, userID id.UserID, from, to int64) ([]Presence, error) {
	rows, err := db.reader.QueryContext(ctx, `SELECT `+presenceColumns+` FROM presence
WHERE stream_id > $2 AND stream_id <= $3 AND (user_id = $1 OR user_id IN (`+sharedRoomUsers+`)) ORDER BY user_id`, userID, from, to)
	if err != nil {
		return nil, fmt.Errorf("presence changes: %w", err)
	}
	return scanPresences(rows)
}

// PresenceOf returns the presence of the given users who have one.
func (db *DB) PresenceOf(ctx context.Context, users []id.UserID) ([]Presence, error) {
	var out []Presence
	for _, part := range chunks(users, maxInList) {
		in, args := inList(part, 1)
		rows, err := db.reader.QueryContext(ctx, `SELECT `+presenceColumns+` FROM presence WHERE user_id IN (`+in+`) ORDER BY user_id`, args...)
		if err != nil {
			return nil, fmt.Errorf("presence of users: %w", err)
		}
		got, err := scanPresences(rows)
		if err != nil {
			return nil, fmt.Errorf("presence of users: %w", err)
		}
		out = append(out, got...)
	}
	return out, nil
}

// SharesRoom tells whether two users are both joined to some room.
func (db *DB) SharesRoom(ctx context.Context, a, b id.UserID) (bool, error) {
	var n int
	err := db.reader.QueryRowContext(ctx, `SELECT COUNT(*) FROM (`+sharedRoomUsers+`) WHERE state_key = $2`, a, b).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("shares room: %w", err)
	}
	return n > 0, nil
}

// UsersSharingRooms lists everyone sharing a joined room with the user.
func (db *DB) UsersSharingRooms(ctx context.Context, userID id.UserID) ([]id.UserID, error) {
	out, err := queryColumn[id.UserID](ctx, db.reader, sharedRoomUsers, userID)
	if err != nil {
		return nil, fmt.Errorf("users sharing rooms: %w", err)
	}
	return out, nil
}

// StalePresence lists users shown online or unavailable whose clients last
// synced before ts: they have gone away without saying so.
func (db *DB) StalePresence(ctx context.Context, ts int64) ([]Presence, error) {
	rows, err := db.reader.QueryContext(ctx, `SELECT `+presenceColumns+` FROM presence WHERE state <> 'offline' AND last_sync_ts < $1`, ts)
	if err != nil {
		return nil, fmt.Errorf("stale presence: %w", err)
	}
	return scanPresences(rows)
}
