package storage

import (
	"context"
	"database/sql"
	"fmt"
)

// The full-text index follows the events (migration 0026_deferred_search):
// events are indexed after they are stored, many per transaction.

// searchIndexChunk is the most events one indexing transaction considers,
// so that catching up on a long backlog never holds the writer for long.
const searchIndexChunk = 1000

// IndexPendingSearch adds the events stored since the index last caught up
// to it, in transactions of up to searchIndexChunk events, and reports how
// many events it considered. Concurrent calls are safe: each transaction
// reads the position it starts from.
func (db *DB) IndexPendingSearch(ctx context.Context) (int, error) {
	// Mostly there is nothing to do: find that out without the writer.
	var caughtUp bool
	if err := db.reader.QueryRowContext(ctx, `SELECT (SELECT stream_pos FROM search_indexed WHERE id = 1) >= COALESCE((SELECT MAX(stream_pos) FROM events), 0)`).Scan(&caughtUp); err != nil {
		return 0, fmt.Errorf("index events for search: %w", err)
	}
	if caughtUp {
		return 0, nil
	}
	total := 0
	for {
		n, err := db.indexSearchChunk(ctx)
		total += n
		if err != nil || n < searchIndexChunk {
			return total, err
		}
	}
}

func (db *DB) indexSearchChunk(ctx context.Context) (int, error) {
	var n int
	// Indexing changes nothing a token lookup reads, moves no stream and
	// touches no keys, so nothing cached is invalidated: it runs when the
	// server goes quiet, and the next message's sync still finds the
	// positions in memory.
	err := db.commitTx(ctx, func(tx *sql.Tx) error {
		var from int64
		if err := tx.QueryRowContext(ctx, `SELECT stream_pos FROM search_indexed WHERE id = 1`).Scan(&from); err != nil {
			return err
		}
		var to sql.NullInt64
		if err := tx.QueryRowContext(ctx, `SELECT MAX(stream_pos), COUNT(*) FROM (SELECT stream_pos FROM events WHERE stream_pos > $1 ORDER BY stream_pos LIMIT $2)`,
			from, searchIndexChunk).Scan(&to, &n); err != nil {
			return err
		}
		if !to.Valid {
			return nil // caught up
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO event_search (rowid, value)
SELECT stream_pos, value FROM event_search_text WHERE stream_pos > $1 AND stream_pos <= $2 AND value IS NOT NULL AND value != ''`, from, to.Int64); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE search_indexed SET stream_pos = $1 WHERE id = 1`, to.Int64)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("index events for search: %w", err)
	}
	return n, nil
}
