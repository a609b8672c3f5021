package storage

import (
	"context"
	"fmt"

	"maunium.net/go/mautrix/id"
)

// EventsNearTimestamp returns up to limit events of a room, rejected ones
// left out, ordered by (origin_server_ts, stream_pos): forwards those at or
// after ts, backwards those at or before it (nearest first). after, when
// set, continues a previous page past that (ts, stream_pos) key.
func (db *DB) EventsNearTimestamp(ctx context.Context, roomID id.RoomID, ts int64, backwards bool, after *[2]int64, limit int) ([]*Event, error) {
	cmp, order, key := ">=", "ASC", ">"
	if backwards {
		cmp, order, key = "<=", "DESC", "<"
	}
	query := `SELECT ` + eventColumns + ` FROM events WHERE room_id = $1 AND origin_server_ts ` + cmp + ` $2 AND rejected = 0`
	args := []any{roomID, ts}
	if after != nil {
		query += ` AND (origin_server_ts, stream_pos) ` + key + ` ($3, $4)`
		args = append(args, after[0], after[1])
	}
	args = append(args, limit)
	query += fmt.Sprintf(` ORDER BY origin_server_ts %s, stream_pos %s LIMIT $%d`, order, order, len(args))
	rows, err := db.reader.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("events near timestamp: %w", err)
	}
	defer rows.Close()
	var out []*Event
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return nil, fmt.Errorf("events near timestamp: %w", err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}
