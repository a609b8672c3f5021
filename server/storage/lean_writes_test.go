package storage

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"maunium.net/go/mautrix/id"
)

// TestLeanEventWritesMigration: a database written before the migration
// keeps its transaction IDs (a retry still finds its event, the sending
// device's sync still sees its transaction ID, another device's does not),
// its forward extremities and its notifications.
func TestLeanEventWritesMigration(t *testing.T) {
	ctx := context.Background()
	db, path := openBefore(t, "lean_event_writes")
	oldSchemaEvent(t, db, 1, "m.room.create", `{}`)
	ev2 := oldSchemaEvent(t, db, 2, "m.room.message", `{"body":"hi"}`)
	execSQL(t, db,
		`INSERT INTO event_txns (user_id, device_id, room_id, endpoint, txn_id, event_id, created_ts) VALUES ('@alice:x', 'PHONE', '!room:x', 'send/m.room.message', 'txn1', '$ev2', 5)`,
		`INSERT INTO forward_extremities (room_id, event_id) VALUES ('!room:x', '$ev2')`,
		`INSERT INTO push_actions (user_id, room_id, stream_pos, event_id, thread_id, notify, highlight, actions, ts) VALUES ('@bob:x', '!room:x', 2, '$ev2', '', 1, 0, '["notify"]', 7)`,
	)
	db = reopen(t, db, path)

	if got, err := db.TxnEvent(ctx, "@alice:x", "PHONE", "!room:x", "send/m.room.message", "txn1"); err != nil || got != ev2 {
		t.Fatalf("retry after the migration found %q, %v; want %s", got, err, ev2)
	}
	if got, err := db.TxnIDOf(ctx, "@alice:x", "PHONE", ev2); err != nil || got != "txn1" {
		t.Fatalf("sending device's transaction ID %q, %v; want txn1", got, err)
	}
	if got, err := db.TxnIDOf(ctx, "@alice:x", "LAPTOP", ev2); err != nil || got != "" {
		t.Fatalf("another device sees transaction ID %q, %v; want none", got, err)
	}
	if ext, err := db.ForwardExtremities(ctx, "!room:x"); err != nil || len(ext) != 1 || ext[0] != ev2 {
		t.Fatalf("forward extremities %v, %v; want [%s]", ext, err, ev2)
	}
	notes, _, err := db.Notifications(ctx, "@bob:x", 0, 10, false)
	if err != nil || len(notes) != 1 || notes[0].EventID != ev2 || !notes[0].Notify {
		t.Fatalf("notifications %+v, %v; want bob's one for %s", notes, err, ev2)
	}

	// New events record their transaction on their own row.
	n := 10
	evID := searchTestEvent(t, db, &n, "m.room.message", nil, `{"body":"again"}`)
	if _, err := db.writer.ExecContext(ctx, `UPDATE events SET txn_device = 'PHONE', txn_id = 'txn2' WHERE event_id = $1`, evID); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.TxnIDOf(ctx, "@alice:x", "PHONE", evID); got != "txn2" {
		t.Fatalf("transaction ID %q, want txn2", got)
	}
}

// TestPersistOneBatchFailure: a lone batch that fails (here, an event ID
// already stored) is reported in its Err and leaves nothing behind, as a
// batch among several does.
func TestPersistOneBatchFailure(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	n := 0
	first := searchTestEvent(t, db, &n, "m.room.create", new(string), `{}`)
	fresh := &NewEvent{Event: Event{EventID: "$fresh", RoomID: "!room:x", Type: "m.room.message", Sender: "@alice:x", Depth: 5, PDU: []byte(`{}`)}}
	dup := &NewEvent{Event: Event{EventID: first, RoomID: "!room:x", Type: "m.room.message", Sender: "@alice:x", Depth: 6, PDU: []byte(`{}`)}}
	b := &EventBatch{Events: []*NewEvent{fresh, dup}}
	if err := db.PersistBatches(ctx, []*EventBatch{b}, 0); err != nil {
		t.Fatalf("PersistBatches returned %v; a batch's failure belongs in its Err", err)
	}
	if b.Err == nil || !strings.Contains(b.Err.Error(), string(first)) {
		t.Fatalf("batch error %v, want the duplicate event named", b.Err)
	}
	if _, err := db.GetEvent(ctx, "$fresh"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the failed batch's first event was stored (%v)", err)
	}
}

// TestWritesInvalidateTokenCache: the token cache is correct only if every
// write that could change a token lookup invalidates it, so no code here
// may write through db.writer directly, outside the few places that say
// why they need not (or run before anything is cached).
func TestWritesInvalidateTokenCache(t *testing.T) {
	// Every mention of db.writer counts (a method call, or the connection
	// handed to a helper such as updateOne), so a write cannot slip past by
	// passing the writer along.
	allowed := map[string]int{
		// Close (nil check, checkpoint, close), writeTx's begin, the three
		// methods of writes(), Ping, and the comment on writes().
		"storage.go": 9,
		// SchemaVersion and the version bump: migrations, run before the
		// server serves.
		"migrate.go": 2,
		"devices.go": 1, // TouchDevice: a last-seen time, read by no lookup
		// oauth.go's non-invalidating writes use writeTx, not db.writer.
	}
	writer := regexp.MustCompile(`db\.writer\b`)
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(writer.FindAllIndex(src, -1)); n > allowed[f] {
			t.Errorf("%s uses db.writer directly %d times (allowed %d): write through WriteTx, exec or writes() so the token cache is invalidated", f, n, allowed[f])
		}
	}
}

// TestTokenCacheFollowsWrites: a cached lookup is dropped by a write that
// changes its answer (here an account locked with a plain statement), and
// is not dropped by storing events.
func TestTokenCacheFollowsWrites(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	if err := db.CreateUser(ctx, &User{UserID: "@alice:x", CreatedTS: 1}); err != nil {
		t.Fatal(err)
	}
	hash := []byte("0123456789abcdef0123456789abcdef")
	if err := db.WriteTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO devices (user_id, device_id, created_ts) VALUES ('@alice:x', 'PHONE', 1)`); err != nil {
			return err
		}
		return insertTokens(ctx, tx, "@alice:x", "PHONE", hash, nil, 0, 1)
	}); err != nil {
		t.Fatal(err)
	}
	lookup := func() *TokenOwner {
		t.Helper()
		o, err := db.LookupAccessToken(ctx, hash)
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	if lookup().Locked {
		t.Fatal("new account locked")
	}
	gen := db.tokens.generation()
	n := 0
	searchTestEvent(t, db, &n, "m.room.create", new(string), `{}`)
	if db.tokens.generation() != gen {
		t.Fatal("storing an event invalidated the token cache")
	}
	if o, ok := db.tokens.get(hash); !ok || o.UserID != "@alice:x" {
		t.Fatalf("lookup not cached: %v %v", o, ok)
	}
	if err := db.SetUserLocked(ctx, "@alice:x", true); err != nil {
		t.Fatal(err)
	}
	if !lookup().Locked {
		t.Fatal("a lookup after locking the account still says unlocked")
	}
}

// TestAnnounceDevicesQueuesInItsTransaction: the EDUs made of device
// announcements are queued with them, and a failure to make them records
// nothing (the change is announced at the next try).
func TestAnnounceDevicesQueuesInItsTransaction(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	fail := errors.New("no destinations")
	_, err := db.AnnounceDevices(ctx, "@alice:x", map[id.DeviceID]string{"PHONE": "d1"}, func([]DeviceAnnouncement) ([]QueuedEDU, error) {
		return nil, fail
	})
	if !errors.Is(err, fail) {
		t.Fatalf("error %v, want the EDU builder's", err)
	}
	got, err := db.AnnounceDevices(ctx, "@alice:x", map[id.DeviceID]string{"PHONE": "d1"}, func(a []DeviceAnnouncement) ([]QueuedEDU, error) {
		return []QueuedEDU{{Destination: "other.test", Type: "m.device_list_update", Content: []byte(`{}`)}}, nil
	})
	if err != nil || len(got) != 1 || got[0].DeviceID != "PHONE" || got[0].StreamID != 1 {
		t.Fatalf("announcements %+v, %v: the failed attempt must have recorded nothing", got, err)
	}
	work, err := db.FederationDestinationsWithWork(ctx)
	if err != nil || len(work) != 1 || work[0] != "other.test" {
		t.Fatalf("destinations with work %v, %v; want the EDU queued", work, err)
	}
}
