package storage

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

	"maunium.net/go/mautrix/id"
)

// relationsMigration is the version of the migration that adds the
// relations index (looked up by name, so renumbering does not break this).
func relationsMigration(t *testing.T) int {
	for _, m := range migrations {
		if m.name == "relations" {
			return m.version
		}
	}
	t.Fatal("no relations migration")
	return 0
}

// TestRelationsMigrationBackfills upgrades a database holding events from
// before the relations index and checks the migration indexed exactly the
// well-formed relations within one room, and built the threads table.
func TestRelationsMigrationBackfills(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	old, err := open(ctx, path, 1, relationsMigration(t)-1)
	if err != nil {
		t.Fatal(err)
	}
	for _, room := range []string{"!a:x", "!b:x"} {
		if _, err := old.writer.ExecContext(ctx, `INSERT INTO rooms (room_id, room_version, creator, created_ts) VALUES ($1, '12', '@u:x', 0)`, room); err != nil {
			t.Fatal(err)
		}
	}
	events := []struct {
		id, room, content  string
		redacted, rejected bool
	}{
		{id: "$root", room: "!a:x", content: `{"body":"root"}`},
		{id: "$other", room: "!b:x", content: `{"body":"elsewhere"}`},
		{id: "$react", room: "!a:x", content: `{"m.relates_to":{"rel_type":"m.annotation","event_id":"$root","key":"👍"}}`},
		{id: "$thread1", room: "!a:x", content: `{"m.relates_to":{"rel_type":"m.thread","event_id":"$root"}}`},
		{id: "$thread2", room: "!a:x", content: `{"m.relates_to":{"rel_type":"m.thread","event_id":"$root"}}`},
		{id: "$unknownparent", room: "!a:x", content: `{"m.relates_to":{"rel_type":"m.reference","event_id":"$notyet"}}`},
		{id: "$nokey", room: "!a:x", content: `{"m.relates_to":{"rel_type":"m.annotation","event_id":"$root","key":5}}`},
		// Not relations, or not to be indexed:
		{id: "$reply", room: "!a:x", content: `{"m.relates_to":{"m.in_reply_to":{"event_id":"$root"}}}`},
		{id: "$badtype", room: "!a:x", content: `{"m.relates_to":{"rel_type":7,"event_id":"$root"}}`},
		{id: "$emptytype", room: "!a:x", content: `{"m.relates_to":{"rel_type":"","event_id":"$root"}}`},
		{id: "$badid", room: "!a:x", content: `{"m.relates_to":{"rel_type":"m.reference","event_id":"root"}}`},
		{id: "$notobject", room: "!a:x", content: `{"m.relates_to":"$root"}`},
		{id: "$crossroom", room: "!b:x", content: `{"m.relates_to":{"rel_type":"m.reference","event_id":"$root"}}`},
		{id: "$redacted", room: "!a:x", content: `{"m.relates_to":{"rel_type":"m.reference","event_id":"$root"}}`, redacted: true},
		{id: "$rejected", room: "!a:x", content: `{"m.relates_to":{"rel_type":"m.reference","event_id":"$root"}}`, rejected: true},
	}
	for i, e := range events {
		var redactedBy any
		if e.redacted {
			redactedBy = "$redaction"
		}
		pdu := `{"type":"m.room.message","room_id":"` + e.room + `","content":` + e.content + `}`
		if _, err := old.writer.ExecContext(ctx, `INSERT INTO events (event_id, room_id, type, sender, depth, origin_server_ts, pdu, rejected, redacted_by)
VALUES ($1, $2, 'm.room.message', '@u:x', $3, $4, $5, $6, $7)`, e.id, e.room, i+1, 1000+i, pdu, e.rejected, redactedBy); err != nil {
			t.Fatalf("insert %s: %v", e.id, err)
		}
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := Open(ctx, path, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rels, err := db.Relations(ctx, RelationQuery{RoomID: "!a:x", Parent: "$root", MaxDepth: 1, UpTo: 1 << 62, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var got []id.EventID
	for _, r := range rels {
		got = append(got, r.EventID)
	}
	if want := []id.EventID{"$react", "$thread1", "$thread2", "$nokey"}; !slices.Equal(got, want) {
		t.Fatalf("backfilled relations of $root: %v, want %v", got, want)
	}
	if dup, err := db.HasAnnotation(ctx, "$root", "@u:x", "m.room.message", "👍"); err != nil || !dup {
		t.Fatalf("backfilled annotation key not found: %v %v", dup, err)
	}
	if target, err := db.IsRelationTarget(ctx, "$notyet"); err != nil || !target {
		t.Fatalf("relation to a parent not stored yet: %v %v", target, err)
	}
	threads, err := db.Threads(ctx, "!a:x", "", 1<<62, 10)
	if err != nil || len(threads) != 1 || threads[0].RootID != "$root" {
		t.Fatalf("threads: %+v %v", threads, err)
	}
	var latest int64
	if err := db.reader.QueryRowContext(ctx, `SELECT stream_pos FROM events WHERE event_id = '$thread2'`).Scan(&latest); err != nil || threads[0].LatestPos != latest {
		t.Fatalf("thread latest position %d, want %d (%v)", threads[0].LatestPos, latest, err)
	}
}

// TestRedactionUnindexesRelation checks that redacting a thread reply
// removes its relation and moves the thread back to its previous reply,
// and that redacting the last reply removes the thread.
func TestRedactionUnindexesRelation(t *testing.T) {
	db, _ := openTemp(t)
	ctx := context.Background()
	room := id.RoomID("!r:x")
	persist := func(evID id.EventID, evType string, rel *NewRelation, redacts id.EventID, newRoom bool) int64 {
		t.Helper()
		ne := &NewEvent{Event: Event{EventID: evID, RoomID: room, Type: evType, Sender: "@u:x", PDU: []byte(`{}`)}, Relation: rel, Redacts: redacts}
		if newRoom {
			ne.NewRoom = &Room{RoomID: room, RoomVersion: "12", Creator: "@u:x"}
		}
		pos, err := db.PersistEvents(ctx, []*NewEvent{ne}, 0)
		if err != nil {
			t.Fatalf("persist %s: %v", evID, err)
		}
		return pos[0]
	}
	persist("$root", "m.room.message", nil, "", true)
	thread := &NewRelation{RelatesTo: "$root", RelType: RelThread}
	p1 := persist("$t1", "m.room.message", thread, "", false)
	persist("$t2", "m.room.message", thread, "", false)
	latest := func() []Thread {
		t.Helper()
		th, err := db.Threads(ctx, room, "", 1<<62, 10)
		if err != nil {
			t.Fatal(err)
		}
		return th
	}
	persist("$red2", "m.room.redaction", nil, "$t2", false)
	if th := latest(); len(th) != 1 || th[0].LatestPos != p1 {
		t.Fatalf("after redacting the latest reply: %+v, want latest %d", th, p1)
	}
	if isRel, err := db.IsRelation(ctx, "$t2"); err != nil || isRel {
		t.Fatalf("redacted reply still indexed: %v %v", isRel, err)
	}
	persist("$red1", "m.room.redaction", nil, "$t1", false)
	if th := latest(); len(th) != 0 {
		t.Fatalf("thread without replies still listed: %+v", th)
	}
}
