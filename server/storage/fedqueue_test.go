package storage

import (
	"context"
	"path/filepath"
	"testing"

	"maunium.net/go/mautrix/id"
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
	sk := ""
	create := &NewEvent{
		Event: Event{EventID: "$create", RoomID: "!r:ours.test", Type: "m.room.create", StateKey: &sk,
			Sender: "@a:ours.test", PDU: []byte(`{}`)},
		NewRoom:   &Room{RoomID: "!r:ours.test", RoomVersion: "12", Creator: "@a:ours.test"},
		FullState: map[StateKey]id.EventID{{Type: "m.room.create"}: "$create"},
	}
	msg := &NewEvent{Event: Event{EventID: "$m", RoomID: "!r:ours.test", Type: "m.room.message", Sender: "@a:ours.test", PDU: []byte(`{}`)},
		StateBeforeOf: create}
	pos, err := old.PersistEvents(ctx, []*NewEvent{create, msg}, 1)
	if err != nil {
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
