// Package fedtest holds helpers for tests of the federation packages.
package fedtest

import (
	"context"
	"encoding/json/v2"
	"testing"

	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/storage"
)

// StoreRemoteMember stores a membership event sent by a remote user on top
// of a room's current head, as federation ingestion will: the event
// becomes the room's forward extremity and its membership part of the
// current state, so local events after it build on it. The event is not
// signed (nothing here checks remote signatures). It returns the event ID.
func StoreRemoteMember(t testing.TB, db *storage.DB, roomID id.RoomID, user id.UserID, membership string) id.EventID {
	t.Helper()
	ctx := context.Background()
	room, err := db.GetRoom(ctx, roomID)
	if err != nil {
		t.Fatalf("room %s: %v", roomID, err)
	}
	prev, err := db.ForwardExtremities(ctx, roomID)
	if err != nil || len(prev) == 0 {
		t.Fatalf("extremities of %s: %v", roomID, err)
	}
	evs, err := db.GetEvents(ctx, prev)
	if err != nil {
		t.Fatal(err)
	}
	var depth, before int64
	for _, e := range evs {
		depth = max(depth, e.Depth+1)
		before = e.StateAfter
	}
	state, err := db.CurrentState(ctx, roomID)
	if err != nil {
		t.Fatal(err)
	}
	sk := string(user)
	p := &pdu.PDU{
		Type: "m.room.member", StateKey: &sk, Sender: user, RoomID: roomID,
		Content:    []byte(`{"membership":"` + membership + `"}`),
		PrevEvents: prev, Depth: depth, OriginServerTS: 1,
		AuthEvents: []id.EventID{},
	}
	for _, k := range p.AuthEventSelection(room.RoomVersion) {
		if evID, ok := state[k]; ok {
			p.AuthEvents = append(p.AuthEvents, evID)
		}
	}
	if err := p.FillContentHash(); err != nil {
		t.Fatal(err)
	}
	evID, err := p.GetEventID(room.RoomVersion)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	key := storage.StateKey{Type: "m.room.member", StateKey: sk}
	full := make(map[storage.StateKey]id.EventID, len(state)+1)
	for k, v := range state {
		full[k] = v
	}
	full[key] = evID
	ne := &storage.NewEvent{
		Event: storage.Event{
			EventID: evID, RoomID: roomID, Type: "m.room.member", StateKey: &sk, Sender: user,
			Depth: depth, OriginServerTS: 1, PDU: raw, StateBefore: before,
		},
		PrevEvents: prev, Membership: membership,
		StateDelta: map[storage.StateKey]id.EventID{key: evID}, FullState: full,
	}
	if err := db.PersistBatches(ctx, []*storage.EventBatch{{Events: []*storage.NewEvent{ne}}}, 1); err != nil {
		t.Fatalf("store %s's %s: %v", user, membership, err)
	}
	return evID
}
