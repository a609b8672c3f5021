package storage

import (
	"context"
	"fmt"

	"maunium.net/go/mautrix/id"
)

// The room list's columns of the rooms table (migration 0013): what a
// sliding sync sorts and filters a user's rooms by, kept up to date as
// events are persisted so a list of hundreds of rooms is one query.

// BumpEventTypes are the events that move a room up a client's room list:
// "proper" activity in MSC4186's words. State changes, reactions and edits
// do not.
var BumpEventTypes = map[string]bool{
	"m.room.create": true, "m.room.message": true, "m.room.encrypted": true, "m.sticker": true,
	"m.call.invite": true, "m.poll.start": true, "m.beacon_info": true,
}

// updateRoomList records a persisted (accepted) event in its room's row.
func updateRoomList(ctx context.Context, tx execer, ev *NewEvent, pos int64) error {
	q := `UPDATE rooms SET last_pos = $2 WHERE room_id = $1`
	if BumpEventTypes[ev.Type] {
		q = `UPDATE rooms SET last_pos = $2, bump_pos = $2 WHERE room_id = $1`
	}
	if _, err := tx.ExecContext(ctx, q, ev.RoomID, pos); err != nil {
		return fmt.Errorf("update room list position: %w", err)
	}
	if ev.Type == "m.room.create" && ev.StateKey != nil && *ev.StateKey == "" {
		if _, err := tx.ExecContext(ctx, `UPDATE rooms SET room_type = json_extract($2, '$.content.type') WHERE room_id = $1`,
			ev.RoomID, string(ev.PDU)); err != nil {
			return fmt.Errorf("record room type: %w", err)
		}
	}
	return nil
}

// RoomListEntry is one of a user's rooms as a room list sees it.
type RoomListEntry struct {
	RoomID    id.RoomID
	BumpPos   int64  // stream position of the latest bump event (0: none)
	LastPos   int64  // stream position of the latest event
	RoomType  string // the create event's content.type ("" for none)
	Encrypted bool   // the room has m.room.encryption state
	// The user's current membership: its event and that event's position.
	Membership  string
	MemberEvent id.EventID
	MemberPos   int64
}

// RoomListEntries returns every room the user has a current membership in
// (of any kind), in one query: what a room list sorts and filters by.
func (db *DB) RoomListEntries(ctx context.Context, userID id.UserID) ([]RoomListEntry, error) {
	rows, err := db.reader.QueryContext(ctx, `SELECT r.room_id, r.bump_pos, r.last_pos, COALESCE(r.room_type, ''),
	EXISTS (SELECT 1 FROM current_state c WHERE c.room_id = r.room_id AND c.type = 'm.room.encryption' AND c.state_key = ''),
	COALESCE(m.membership, ''), m.event_id, e.stream_pos
FROM current_state m JOIN rooms r ON r.room_id = m.room_id JOIN events e ON e.event_id = m.event_id
WHERE m.type = 'm.room.member' AND m.state_key = $1`, userID)
	if err != nil {
		return nil, fmt.Errorf("room list of %s: %w", userID, err)
	}
	defer rows.Close()
	var out []RoomListEntry
	for rows.Next() {
		var e RoomListEntry
		if err := rows.Scan(&e.RoomID, &e.BumpPos, &e.LastPos, &e.RoomType, &e.Encrypted, &e.Membership, &e.MemberEvent, &e.MemberPos); err != nil {
			return nil, fmt.Errorf("room list of %s: %w", userID, err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// RoomAccountDataOfType returns, per room, the user's room account data of
// one type (m.tag for the room list's tag filters).
func (db *DB) RoomAccountDataOfType(ctx context.Context, userID id.UserID, evType string) (map[id.RoomID][]byte, error) {
	rows, err := db.reader.QueryContext(ctx, `SELECT room_id, content FROM account_data WHERE user_id = $1 AND type = $2 AND room_id != ''`, userID, evType)
	if err != nil {
		return nil, fmt.Errorf("room account data %s: %w", evType, err)
	}
	defer rows.Close()
	out := map[id.RoomID][]byte{}
	for rows.Next() {
		var roomID id.RoomID
		var c string
		if err := rows.Scan(&roomID, &c); err != nil {
			return nil, fmt.Errorf("room account data %s: %w", evType, err)
		}
		out[roomID] = []byte(c)
	}
	return out, rows.Err()
}

// MemberCounts returns how many users are joined to and invited to a room.
func (db *DB) MemberCounts(ctx context.Context, roomID id.RoomID) (joined, invited int, err error) {
	err = db.reader.QueryRowContext(ctx, `SELECT COUNT(*) FILTER (WHERE membership = 'join'), COUNT(*) FILTER (WHERE membership = 'invite')
FROM current_state WHERE room_id = $1 AND type = 'm.room.member'`, roomID).Scan(&joined, &invited)
	if err != nil {
		return 0, 0, fmt.Errorf("member counts of %s: %w", roomID, err)
	}
	return joined, invited, nil
}

// EverJoined tells whether a user was ever joined to a room.
func (db *DB) EverJoined(ctx context.Context, userID id.UserID, roomID id.RoomID) (bool, error) {
	var n int
	err := db.reader.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM events
WHERE type = 'm.room.member' AND state_key = $1 AND room_id = $2 AND membership = 'join' AND rejected = 0)`, userID, roomID).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("joined before: %w", err)
	}
	return n == 1, nil
}
