package rooms

import (
	"context"
	"fmt"
	"testing"

	"maunium.net/go/mautrix/id"
)

// TestBatchSurvivesFullCache checks that a batch of events (a new room's
// creation events) is authorised even when the event cache fills and is
// cleared in the middle of it: the batch's unstored events must not be
// lost with it. (This failed one createRoom in roughly every 10,000 events
// before the batch pinned its events.)
func TestBatchSurvivesFullCache(t *testing.T) {
	s := newTestService(t)
	s.cache.maxEvents = 2 // cleared at every other event of a batch
	ctx := context.Background()
	alice := id.UserID("@alice:localhost")
	for i := range 5 {
		name := fmt.Sprintf("Room %d", i)
		roomID, err := s.CreateRoom(ctx, alice, &CreateRoomRequest{Preset: PresetPublicChat, Name: &name})
		if err != nil {
			t.Fatalf("create room %d with a tiny cache: %v", i, err)
		}
		if _, err := s.SendMessages(ctx, alice, roomID, "m.room.message", [][]byte{message(1), message(2), message(3)}); err != nil {
			t.Fatalf("send a batch with a tiny cache: %v", err)
		}
	}
	if n := len(s.cache.pinned); n != 0 {
		t.Fatalf("%d events still pinned after their batches", n)
	}
}

// TestEventCacheKeepsHotEvents checks the event cache's bound and that an
// event in use (an auth event every send reads) survives while many
// others pass through, instead of going with a wholesale clear.
func TestEventCacheKeepsHotEvents(t *testing.T) {
	c := newCache()
	c.maxEvents = 10
	hot := &Event{ID: "$hot"}
	c.putEvent(hot)
	for i := range 100 {
		c.putEvent(&Event{ID: id.EventID(fmt.Sprintf("$ev%d", i))})
		if c.event(hot.ID, false) != hot {
			t.Fatalf("the hot event was dropped after %d others", i+1)
		}
		if n := len(c.events) + len(c.old); n > c.maxEvents {
			t.Fatalf("%d events cached, bound %d", n, c.maxEvents)
		}
	}
	if c.event("$ev0", false) != nil {
		t.Fatal("an event not used since was still cached after 100 others")
	}
	if c.event("$ev99", false) == nil {
		t.Fatal("the newest event was not cached")
	}
	c.dropEvent("$ev99")
	if c.event("$ev99", false) != nil {
		t.Fatal("a dropped event was still cached")
	}
}
