package storage

import (
	"context"
	"fmt"
)

// Positions are the newest positions of the streams a sync token names
// (typing is kept in memory, not here).
type Positions struct {
	Events, AccountData, Receipts, ToDevice, DeviceLists, Presence int64
}

// selectPositions reads every stream's position in one statement: one
// read of the database, so the positions are of the same moment, for the
// cost of one (every /sync and every woken long-poll asks).
const selectPositions = `SELECT
 (SELECT COALESCE(MAX(stream_pos), 0) FROM events),
 (SELECT COALESCE(MAX(stream_id), 0) FROM account_data),
 (SELECT COALESCE(MAX(stream_id), 0) FROM receipts),
 (SELECT pos FROM to_device_stream WHERE id = 1),
 (SELECT COALESCE(MAX(stream_id), 0) FROM device_list_changes),
 (SELECT COALESCE(MAX(stream_id), 0) FROM presence)`

// StreamPositions reads the newest position of every stream.
func (db *DB) StreamPositions(ctx context.Context) (Positions, error) {
	var p Positions
	if err := db.reader.QueryRowContext(ctx, selectPositions).Scan(&p.Events, &p.AccountData, &p.Receipts, &p.ToDevice, &p.DeviceLists, &p.Presence); err != nil {
		return p, fmt.Errorf("stream positions: %w", err)
	}
	return p, nil
}
