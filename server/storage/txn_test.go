package storage

import (
	"context"
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
