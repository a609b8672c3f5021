package storage

import (
	"context"
	"fmt"

	"maunium.net/go/mautrix/id"
)

// CurrentMember is one m.room.member entry of a room's current state.
type CurrentMember struct {
	UserID     id.UserID
	Membership string
	EventID    id.EventID
}

// CurrentMembers lists the member events of a room's current state, ordered
// by user ID; with membership set, only those with that membership. It
// reads only member rows, so a large room's other state is not loaded.
func (db *DB) CurrentMembers(ctx context.Context, roomID id.RoomID, membership string) ([]CurrentMember, error) {
	rows, err := db.reader.QueryContext(ctx, `SELECT state_key, COALESCE(membership, ''), event_id FROM current_state
WHERE room_id = $1 AND type = 'm.room.member' AND ($2 = '' OR membership = $2) ORDER BY state_key`, roomID, membership)
	if err != nil {
		return nil, fmt.Errorf("member events of %s: %w", roomID, err)
	}
	defer rows.Close()
	var out []CurrentMember
	for rows.Next() {
		var m CurrentMember
		if err := rows.Scan(&m.UserID, &m.Membership, &m.EventID); err != nil {
			return nil, fmt.Errorf("member events of %s: %w", roomID, err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}
