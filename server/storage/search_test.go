package storage

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"maunium.net/go/mautrix/id"
)

// searchTestEvent persists one event of a test room (made on first use)
// with the given content, as the rooms service would, and returns its ID.
func searchTestEvent(t *testing.T, db *DB, n *int, evType string, stateKey *string, content string) id.EventID {
	t.Helper()
	*n++
	evID := id.EventID(fmt.Sprintf("$ev%d", *n))
	ne := &NewEvent{Event: Event{
		EventID: evID, RoomID: "!room:x", Type: evType, StateKey: stateKey, Sender: "@alice:x", Depth: int64(*n),
		OriginServerTS: int64(*n), PDU: []byte(`{"type":"` + evType + `","content":` + content + `}`),
	}}
	if *n == 1 {
		ne.NewRoom = &Room{RoomID: "!room:x", RoomVersion: "12", Creator: "@alice:x"}
	}
	if _, err := db.PersistEvents(context.Background(), []*NewEvent{ne}, 0); err != nil {
		t.Fatalf("persist %s %s: %v", evType, content, err)
	}
	return evID
}

// openBefore makes a database at the schema just before the named
// migration, for tests of what that migration does to older data.
func openBefore(t *testing.T, migration string) (*DB, string) {
	t.Helper()
	before := 0
	for _, m := range migrations {
		if m.name == migration {
			break
		}
		before = m.version
	}
	path := filepath.Join(t.TempDir(), "palpo.db")
	db, err := open(context.Background(), path, 1, before)
	if err != nil {
		t.Fatal(err)
	}
	return db, path
}

// reopen closes a database opened by openBefore and opens it again, which
// applies the migrations it lacked.
func reopen(t *testing.T, db *DB, path string) *DB {
	t.Helper()
	db.Close()
	db, err := Open(context.Background(), path, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// execSQL runs statements on the writer, for tests that lay out data as an
// older version wrote it.
func execSQL(t *testing.T, db *DB, statements ...string) {
	t.Helper()
	for _, q := range statements {
		if _, err := db.writer.ExecContext(context.Background(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// oldSchemaEvent inserts event n of room !room:x with plain SQL, for
// tests of a migration over a database written by an older version.
func oldSchemaEvent(t *testing.T, db *DB, n int, evType, content string) id.EventID {
	t.Helper()
	ctx := context.Background()
	if n == 1 {
		if _, err := db.writer.ExecContext(ctx, `INSERT INTO rooms (room_id, room_version, creator, created_ts) VALUES ('!room:x', '12', '@alice:x', 0)`); err != nil {
			t.Fatal(err)
		}
	}
	evID := id.EventID(fmt.Sprintf("$ev%d", n))
	var stateKey any
	if evType == "m.room.create" {
		stateKey = ""
	}
	if _, err := db.writer.ExecContext(ctx, `INSERT INTO events (event_id, room_id, type, state_key, sender, depth, origin_server_ts, pdu)
VALUES ($1, '!room:x', $2, $3, '@alice:x', $4, $4, $5)`, evID, evType, stateKey, n, `{"type":"`+evType+`","content":`+content+`}`); err != nil {
		t.Fatal(err)
	}
	return evID
}

func searchIDs(t *testing.T, db *DB, match string) []id.EventID {
	t.Helper()
	// As the search service does: what was stored since the index last
	// caught up is indexed first.
	if _, err := db.IndexPendingSearch(context.Background()); err != nil {
		t.Fatal(err)
	}
	hits, err := db.SearchEvents(context.Background(), &SearchQuery{
		Match: match, Rooms: []SearchRoom{{RoomID: "!room:x", MaxPos: 1 << 62}}, Limit: 100,
	})
	if err != nil {
		t.Fatalf("search %s: %v", match, err)
	}
	var out []id.EventID
	for _, h := range hits {
		out = append(out, h.EventID)
	}
	slices.Sort(out)
	return out
}

// TestSearchIndexTriggers checks what the index takes, that no content,
// however malformed, can make an event fail to persist, and that a
// redaction takes an event out of the index.
func TestSearchIndexTriggers(t *testing.T) {
	db, _ := openTemp(t)
	n := 0
	empty := ""
	searchTestEvent(t, db, &n, "m.room.create", &empty, `{}`)
	body := searchTestEvent(t, db, &n, "m.room.message", nil, `{"msgtype":"m.text","body":"Walrus sighting"}`)
	name := searchTestEvent(t, db, &n, "m.room.name", &empty, `{"name":"Walrus club"}`)
	topic := searchTestEvent(t, db, &n, "m.room.topic", &empty, `{"topic":"seals","m.topic":{"m.text":[{"mimetype":"text/html","body":"<b>htmlonly</b>"},{"body":"plainwalrus"}]}}`)
	other := searchTestEvent(t, db, &n, "m.custom", nil, `{"body":"walrus"}`)
	// Malformed content of every kind: stored, not indexed.
	for _, c := range []string{
		`{"body":5}`, `{"body":{"x":"walrus"}}`, `{"body":["walrus"]}`, `{}`, `{"body":null}`, `{"body":""}`,
	} {
		searchTestEvent(t, db, &n, "m.room.message", nil, c)
	}
	for _, c := range []string{
		`{"topic":7}`, `{"m.topic":"walrus"}`, `{"m.topic":{"m.text":"walrus"}}`, `{"m.topic":{"m.text":["walrus",1,null]}}`,
		`{"m.topic":{"m.text":[{"body":5},{"mimetype":"text/html","body":"walrus"}]}}`, `{"m.topic":{"m.text":{"a":"walrus"}}}`,
	} {
		searchTestEvent(t, db, &n, "m.room.topic", &empty, c)
	}
	searchTestEvent(t, db, &n, "m.room.name", &empty, `{"name":["walrus"]}`)

	if got, want := searchIDs(t, db, `"walrus"*`), []id.EventID{body, name}; !slices.Equal(got, want) {
		t.Fatalf("walrus matches %v, want %v (not %s, nor malformed content)", got, want, other)
	}
	if got := searchIDs(t, db, `"plainwalrus" AND "seals"`); !slices.Equal(got, []id.EventID{topic}) {
		t.Fatalf("topic and m.topic text/plain body not indexed together: %v", got)
	}
	if got := searchIDs(t, db, `"htmlonly"`); len(got) != 0 {
		t.Fatalf("m.topic text/html body indexed: %v", got)
	}

	// A redaction removes the event from the index.
	red := &NewEvent{Event: Event{EventID: "$red", RoomID: "!room:x", Type: "m.room.redaction", Sender: "@alice:x", Depth: 99, PDU: []byte(`{}`)}, Redacts: body}
	if _, err := db.PersistEvents(context.Background(), []*NewEvent{red}, 0); err != nil {
		t.Fatal(err)
	}
	if got := searchIDs(t, db, `"sighting"`); len(got) != 0 {
		t.Fatalf("redacted event still matches: %v", got)
	}
	// So does one redacted before the index caught up with it.
	late := searchTestEvent(t, db, &n, "m.room.message", nil, `{"msgtype":"m.text","body":"narwhal"}`)
	red2 := &NewEvent{Event: Event{EventID: "$red2", RoomID: "!room:x", Type: "m.room.redaction", Sender: "@alice:x", Depth: 100, PDU: []byte(`{}`)}, Redacts: late}
	if _, err := db.PersistEvents(context.Background(), []*NewEvent{red2}, 0); err != nil {
		t.Fatal(err)
	}
	if got := searchIDs(t, db, `"narwhal"`); len(got) != 0 {
		t.Fatalf("event redacted before indexing matches: %v", got)
	}

	// A query FTS5 refuses is ErrBadSearchQuery, not a database failure.
	_, err := db.SearchEvents(context.Background(), &SearchQuery{Match: `"unclosed`, Rooms: []SearchRoom{{RoomID: "!room:x", MaxPos: 1}}, Limit: 1})
	if !errors.Is(err, ErrBadSearchQuery) {
		t.Fatalf("bad query: %v", err)
	}
}

// TestSearchIndexBackfill checks that upgrading a database indexes the
// events it already holds.
func TestSearchIndexBackfill(t *testing.T) {
	db, path := openBefore(t, "search")
	// Rows as that schema held them (today's PersistEvents writes columns
	// later migrations added).
	oldSchemaEvent(t, db, 1, "m.room.create", `{}`)
	old := oldSchemaEvent(t, db, 2, "m.room.message", `{"body":"before the index existed"}`)
	db = reopen(t, db, path)
	if got := searchIDs(t, db, `"existed"`); !slices.Equal(got, []id.EventID{old}) {
		t.Fatalf("backfill: %v", got)
	}
}

// TestSearchIndexFollowsEvents: new events are not indexed in their own
// transaction; IndexPendingSearch indexes them, in chunks, and a restart
// resumes where it stopped.
func TestSearchIndexFollowsEvents(t *testing.T) {
	ctx := context.Background()
	db, path := openTemp(t)
	n := 0
	empty := ""
	searchTestEvent(t, db, &n, "m.room.create", &empty, `{}`)
	for i := range searchIndexChunk + 10 {
		searchTestEvent(t, db, &n, "m.room.message", nil, fmt.Sprintf(`{"msgtype":"m.text","body":"beluga number%d"}`, i))
	}
	hits, err := db.SearchEvents(ctx, &SearchQuery{Match: `"beluga"`, Rooms: []SearchRoom{{RoomID: "!room:x", MaxPos: 1 << 62}}, Limit: 5})
	if err != nil || len(hits) != 0 {
		t.Fatalf("indexed in the events' own transactions: %v, %v", hits, err)
	}
	got, err := db.IndexPendingSearch(ctx)
	if err != nil || got != searchIndexChunk+11 {
		t.Fatalf("indexed %d events, %v; want %d", got, err, searchIndexChunk+11)
	}
	if got := searchIDs(t, db, `"number1009"`); len(got) != 1 {
		t.Fatalf("last event of the second chunk: %v", got)
	}
	// Caught up: nothing more to do, before or after a restart.
	if got, err := db.IndexPendingSearch(ctx); err != nil || got != 0 {
		t.Fatalf("indexed %d more, %v", got, err)
	}
	more := searchTestEvent(t, db, &n, "m.room.message", nil, `{"msgtype":"m.text","body":"orca"}`)
	db = reopen(t, db, path)
	if got, err := db.IndexPendingSearch(ctx); err != nil || got != 1 {
		t.Fatalf("after a restart indexed %d, %v; want the 1 left", got, err)
	}
	if got := searchIDs(t, db, `"orca"`); !slices.Equal(got, []id.EventID{more}) {
		t.Fatalf("orca: %v", got)
	}
	if got := searchIDs(t, db, `"beluga"`); len(got) != 100 {
		t.Fatalf("beluga (limit 100): %d matches", len(got))
	}
}
