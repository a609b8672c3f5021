package storage

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"testing"

	"maunium.net/go/mautrix/id"
)

// TestTxnScopeMigration: transactions recorded before IDs were scoped to
// the request path keep answering retries of the same path after the
// upgrade, and only those.
func TestTxnScopeMigration(t *testing.T) {
	db, path := openBefore(t, "txn_scope")
	ctx := context.Background()
	msg := oldSchemaEvent(t, db, 1, "m.room.message", `{"body":"hi"}`)
	red := oldSchemaEvent(t, db, 2, "m.room.redaction", `{"redacts":"$ev1"}`)
	for txn, ev := range map[string]id.EventID{"t1": msg, "t2": red} {
		if _, err := db.writer.ExecContext(ctx, `INSERT INTO event_txns (user_id, device_id, txn_id, event_id, created_ts) VALUES ('@alice:x', 'DEV', $1, $2, 0)`, txn, ev); err != nil {
			t.Fatal(err)
		}
	}
	db = reopen(t, db, path)
	for _, c := range []struct {
		endpoint, txn string
		want          id.EventID
	}{
		{"send/m.room.message", "t1", msg},
		{"redact/$ev1", "t2", red},
		{"send/m.reaction", "t1", ""},
		{"send/m.room.message", "t2", ""},
	} {
		got, err := db.TxnEvent(ctx, "@alice:x", "DEV", "!room:x", c.endpoint, c.txn)
		if err != nil || got != c.want {
			t.Errorf("%s %s: %q, %v; want %q", c.endpoint, c.txn, got, err, c.want)
		}
	}
}

// TestPruneTxns: transactions before the cutoff are forgotten a bounded
// number of thousands at a time, until done; later ones stay and are
// listed.
func TestPruneTxns(t *testing.T) {
	db, _ := openTemp(t)
	ctx := context.Background()
	err := db.WriteTx(ctx, func(tx *sql.Tx) error {
		for i := range 2503 {
			ts := int64(100) // before the cutoff
			if i >= 2500 {
				ts = 300
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO event_txns (user_id, device_id, room_id, endpoint, txn_id, event_id, created_ts) VALUES ('@u:x', 'D', '!r:x', 'send/m.room.message', $1, $2, $3)`,
				fmt.Sprint("t", i), fmt.Sprint("$e", i), ts); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if done, err := db.PruneTxns(ctx, 200, 2); err != nil || done {
		t.Fatalf("two chunks of 2,500: done %v, %v; want more left", done, err)
	}
	if done, err := db.PruneTxns(ctx, 200, 2); err != nil || !done {
		t.Fatalf("the rest: done %v, %v", done, err)
	}
	var left []string
	if err := db.TxnsSince(ctx, 0, func(tx Txn) { left = append(left, tx.TxnID) }); err != nil {
		t.Fatal(err)
	}
	slices.Sort(left)
	if !slices.Equal(left, []string{"t2500", "t2501", "t2502"}) {
		t.Fatalf("left %v", left)
	}
	if ev, err := db.TxnEvent(ctx, "@u:x", "D", "!r:x", "send/m.room.message", "t2501"); err != nil || ev != "$e2501" {
		t.Fatalf("a later transaction: %q %v", ev, err)
	}
}
