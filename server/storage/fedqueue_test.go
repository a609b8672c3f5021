package storage

import (
	"context"
	"path/filepath"
	"testing"
)

// A database upgraded to the federation queue starts queueing after its
// newest event: what was sent before federation existed is owed to no one.
func TestFederationQueueStartsAtUpgrade(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	old, err := open(ctx, path, 1, 17)
	if err != nil {
		t.Fatal(err)
	}
	// Rows as the schema of migration 17 holds them (today's Go writes
	// columns later migrations add).
	for _, q := range []string{
		`INSERT INTO rooms (room_id, room_version, creator, created_ts) VALUES ('!r:ours.test', '12', '@a:ours.test', 1)`,
		`INSERT INTO events (event_id, room_id, type, state_key, sender, depth, origin_server_ts, pdu) VALUES ('$create', '!r:ours.test', 'm.room.create', '', '@a:ours.test', 1, 1, '{}')`,
		`INSERT INTO events (event_id, room_id, type, sender, depth, origin_server_ts, pdu) VALUES ('$m', '!r:ours.test', 'm.room.message', '@a:ours.test', 2, 2, '{}')`,
	} {
		if _, err := old.writer.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	var pos [2]int64
	if err := old.writer.QueryRowContext(ctx, `SELECT MIN(stream_pos), MAX(stream_pos) FROM events`).Scan(&pos[0], &pos[1]); err != nil {
		t.Fatal(err)
	}
	old.Close()

	db, err := Open(ctx, path, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	through, err := db.FederationQueuedThrough(ctx)
	if err != nil || through != pos[1] {
		t.Fatalf("queued through %d (%v), want %d", through, err, pos[1])
	}
	evs, scanned, err := db.OwnEventsAfter(ctx, 0, "ours.test", 10)
	if err != nil || len(evs) != 2 || scanned != pos[1] {
		t.Fatalf("own events: %d through %d (%v)", len(evs), scanned, err)
	}
	// The server name is matched whole: "@a:ours.test" is not of "s.test".
	if evs, _, _ := db.OwnEventsAfter(ctx, 0, "s.test", 10); len(evs) != 0 {
		t.Errorf("events of ours.test taken for s.test's: %d", len(evs))
	}
}
