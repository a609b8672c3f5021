package rooms

import (
	"sync"

	"maunium.net/go/mautrix/id"
)

// cache keeps parsed events, state snapshots and room versions in memory.
// Events and state groups never change once written (redaction is tracked
// outside the PDU), so entries need no invalidation, only a size bound.
type cache struct {
	mu    sync.Mutex
	rooms map[id.RoomID]*room
	// events are the recently used events in two generations: new entries
	// and hits go into events; when it is full it becomes old, and the
	// previous old one is dropped. Hot events (auth events, the timelines
	// being read) survive every turn, and memory stays at most maxEvents.
	events, old map[id.EventID]*Event
	states      map[int64]*stateSnapshot
	// pinned are events built but not yet stored (a batch being sent):
	// the only copy there is, so never cleared with events.
	pinned map[id.EventID]*Event
	// Memory bounds: when the states map grows past its limit it is
	// cleared. Crude, but safe, and the hot entries (current states) come
	// back at once. State snapshots are bounded by their entries too: a big
	// room's snapshot holds one per member, and every join makes a new one.
	maxEvents, maxStates int
	maxStateEntries      int
	stateEntries         int
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
		pinned: map[id.EventID]*Event{},
		// Sized for a personal server: the hot events (auth events, recent
		// timelines of the rooms in use) fit. An event takes 1–2 KB in
		// memory, and the collector keeps what it cannot free around long-
		// lived entries, so the bound is the resident size: 10,000 events
		// made 52 MB after the load driver's workload, 2,000 made 40.
		maxEvents: 2000,
		// State snapshots are bounded by their entries: about 3 MB, which
		// holds the current and recent states of hundreds of small rooms
		// (an initial sync reads two per room) or 25 of a 1,000-member one.
		maxStates:       1024,
		maxStateEntries: 25000,
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

// event returns a cached event; with pinned, also one built but not yet
// committed. Only building (the auth rules) may see those: its stream
// position and state groups are set once its commit is done, so a reader
// that found the event in the database meanwhile must read it from there.
func (c *cache) event(evID id.EventID, pinned bool) *Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ev, ok := c.events[evID]; ok {
		return ev
	}
	if ev, ok := c.old[evID]; ok {
		c.add(ev) // still in use: keep it another turn
		return ev
	}
	if pinned {
		return c.pinned[evID]
	}
	return nil
}

// pin holds an event that is not stored yet, so that later events of its
// batch can be authorised against it whatever the cache clears meanwhile.
func (c *cache) pin(ev *Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pinned[ev.ID] = ev
}

// unpin releases pinned events: stored ones move to the ordinary cache,
// those of a failed batch are forgotten.
func (c *cache) unpin(evs []*Event, stored bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ev := range evs {
		delete(c.pinned, ev.ID)
		if stored {
			c.add(ev)
		}
	}
}

func (c *cache) putEvent(ev *Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.add(ev)
}

// add puts an event in the new generation, turning generations when it is
// full. The caller holds c.mu.
func (c *cache) add(ev *Event) {
	if len(c.events) >= c.maxEvents/2 {
		// A new map, not clear(): a cleared map keeps its memory.
		c.old, c.events = c.events, make(map[id.EventID]*Event, c.maxEvents/2)
	}
	c.events[ev.ID] = ev
	delete(c.old, ev.ID)
}

// dropEvent forgets an event whose mutable fields (its redaction) changed.
func (c *cache) dropEvent(evID id.EventID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.events, evID)
	delete(c.old, evID)
}

func (c *cache) state(group int64) *stateSnapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.states[group]
}

func (c *cache) putState(group int64, s *stateSnapshot) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.states) >= c.maxStates || c.stateEntries+len(s.state) > c.maxStateEntries {
		clear(c.states)
		c.stateEntries = 0
	}
	if _, ok := c.states[group]; !ok {
		c.stateEntries += len(s.state)
	}
	c.states[group] = s
}
