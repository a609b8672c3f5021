package storage

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
)

// Positions are the newest positions of the streams a sync token names
// (typing is kept in memory, not here).
type Positions struct {
	Events, AccountData, Receipts, ToDevice, DeviceLists, Presence int64
}

// selectPositions reads every stream's position in one statement: one
// read of the database, so the positions are of the same moment, for the
// cost of one (every /sync and every woken long-poll asks).
const selectPositions = `SELECT
 (SELECT COALESCE(MAX(stream_pos), 0) FROM events),
 (SELECT COALESCE(MAX(stream_id), 0) FROM account_data),
 (SELECT COALESCE(MAX(stream_id), 0) FROM receipts),
 (SELECT pos FROM to_device_stream WHERE id = 1),
 (SELECT COALESCE(MAX(stream_id), 0) FROM device_list_changes),
 (SELECT COALESCE(MAX(stream_id), 0) FROM presence)`

// StreamPositions returns the newest position of every stream. They are
// read from the database only after a write that may have moved one: a
// woken long-poll, whose news is a message just stored, finds them in
// memory (the commit that stored it moved the events position there).
func (db *DB) StreamPositions(ctx context.Context) (Positions, error) {
	if p, ok := db.positions.get(); ok {
		return p, nil
	}
	gen := db.positions.generation()
	var p Positions
	if err := db.reader.QueryRowContext(ctx, selectPositions).Scan(&p.Events, &p.AccountData, &p.Receipts, &p.ToDevice, &p.DeviceLists, &p.Presence); err != nil {
		return p, fmt.Errorf("stream positions: %w", err)
	}
	db.positions.put(p, gen)
	return p, nil
}

// positionsCache keeps the stream positions between writes. Its rule: a
// write that may move a stream, or change what keyCountsCache keeps, moves
// the generation once it has committed (WriteTx, exec and writeTx do);
// event persistence instead moves the events position itself. Positions
// read while a write was committing carry the generation they started in,
// which that write then moves past, so they are never served.
type positionsCache struct {
	gen   atomic.Uint64
	mu    sync.Mutex
	valid bool
	at    uint64
	p     Positions
	// members bounds the stream positions of membership events: none
	// stored is above it. Reading the positions sets it to the events
	// position; each commit of events raises it past its membership events.
	// A sync whose range starts at or above it skips the membership reads.
	members int64
}

func (c *positionsCache) generation() uint64 { return c.gen.Load() }

func (c *positionsCache) get() (Positions, bool) {
	g := c.gen.Load()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.p, c.valid && c.at == g
}

func (c *positionsCache) put(p Positions, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen.Load() != gen {
		return // a write committed meanwhile
	}
	c.valid, c.at, c.p, c.members = true, gen, p, p.Events
}

// invalidate is called after every write but event persistence.
func (c *positionsCache) invalidate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen.Add(1)
	c.valid = false
}

// eventsStored records a committed write of events, begun at generation
// gen, whose highest stream position is last and whose highest membership
// event's is lastMember (0: none). The cached positions stay valid only
// when they were valid when the write began and no other write has moved
// the generation since.
func (c *positionsCache) eventsStored(gen uint64, last, lastMember int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.valid || c.at != gen || c.gen.Load() != gen {
		c.gen.Add(1)
		c.valid = false
		return
	}
	c.p.Events = max(c.p.Events, last)
	c.members = max(c.members, lastMember)
	c.at = c.gen.Add(1)
}

// membershipAfter tells whether a membership event may have been stored
// with a stream position above pos; false only when certainly none was.
func (c *positionsCache) membershipAfter(pos int64) bool {
	g := c.gen.Load()
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.valid || c.at != g || c.members > pos
}
