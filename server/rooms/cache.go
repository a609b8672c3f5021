package rooms

import (
	"sync"

	"maunium.net/go/mautrix/id"
)

// cache keeps parsed events, state snapshots and room versions in memory.
// Events and state groups never change once written (redaction is tracked
// outside the PDU), so entries need no invalidation, only a size bound.
type cache struct {
	mu     sync.Mutex
	rooms  map[id.RoomID]*room
	events map[id.EventID]*Event
	states map[int64]*stateSnapshot
	// Memory bounds: when a map grows past its limit it is cleared. Crude,
	// but safe, and the hot entries (auth events, current state) come back
	// at once.
	maxEvents, maxStates int
}

type stateSnapshot struct {
	state    StateMap
	chainLen int
}

func newCache() *cache {
	return &cache{
		rooms:  map[id.RoomID]*room{},
		events: map[id.EventID]*Event{},
		states: map[int64]*stateSnapshot{},
		// Sized for a personal server: the hot events (auth events, recent
		// timelines) fit, and memory stays a few tens of megabytes.
		maxEvents: 10000,
		maxStates: 64,
	}
}

func (c *cache) room(roomID id.RoomID) *room {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rooms[roomID]
}

func (c *cache) putRoom(r *room) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rooms[r.ID] = r
}

func (c *cache) event(evID id.EventID) *Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.events[evID]
}

func (c *cache) putEvent(ev *Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.events) >= c.maxEvents {
		clear(c.events)
	}
	c.events[ev.ID] = ev
}

// dropEvent forgets an event whose mutable fields (its redaction) changed.
func (c *cache) dropEvent(evID id.EventID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.events, evID)
}

func (c *cache) state(group int64) *stateSnapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.states[group]
}

func (c *cache) putState(group int64, s *stateSnapshot) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.states) >= c.maxStates {
		clear(c.states)
	}
	c.states[group] = s
}
