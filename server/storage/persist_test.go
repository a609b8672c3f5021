package storage

import "context"

// PersistEvents stores events of one room as one batch, for tests that
// write events without the rooms service; it returns the stream positions.
func (db *DB) PersistEvents(ctx context.Context, evs []*NewEvent, nowTS int64) ([]int64, error) {
	b := &EventBatch{Events: evs}
	if err := db.PersistBatches(ctx, []*EventBatch{b}, nowTS); err != nil {
		return nil, err
	}
	if b.Err != nil {
		return nil, b.Err
	}
	positions := make([]int64, len(evs))
	for i, ev := range evs {
		positions[i] = ev.StreamPos
	}
	return positions, nil
}
