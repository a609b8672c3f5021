package rooms

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/storage"
)

// Group commit. A request builds and authorises its events under its
// room's lock, on top of the room's latest event even when that is still
// queued, queues them and releases the lock; one committer goroutine then
// stores everything queued in one transaction, with one fsync, and wakes
// each request once the commit that holds its events is done. Concurrent
// senders, in one room or many, share a commit instead of each waiting for
// its own; durability is unchanged (an answered event is committed with
// synchronous=FULL).

// maxGroupEvents bounds the events of one commit, so a long batch (a room
// created with many initial events) never holds the writer for long.
const maxGroupEvents = 64

// errEarlierBatchFailed answers a request whose events were built on
// events that then failed to be stored.
var errEarlierBatchFailed = errors.New("an earlier event of the room could not be stored")

// pendingBatch is events of one room queued for the committer, stored all
// or none.
type pendingBatch struct {
	room   id.RoomID
	events []*storage.NewEvent
	built  []*Event
	// after is the room's batch queued before this one, which this one's
	// events build on, while it was not committed.
	after *pendingBatch
	// finalState, when set, is the state after finalStateOf, the batch's
	// last state event, to cache once its group is known.
	finalState   *stateSnapshot
	finalStateOf *storage.NewEvent

	err  error
	done chan struct{}
}

// Preparer works out, before events are stored, what belongs in the same
// transaction (the push service's notifications: it sets PushActions and
// PushSent on the stored events). evs and stored are parallel. state is
// the room's state after the events when the builder knows it (nil:
// read the current state), so that evaluating them costs no database
// reads; preparers must not change it.
type Preparer func(ctx context.Context, evs []*Event, stored []*storage.NewEvent, state StateMap)

// OnPrepare registers a preparer. Register before the server serves.
func (s *Service) OnPrepare(p Preparer) { s.prepare = append(s.prepare, p) }

// committer stores queued batches, as many as are waiting at once.
type committer struct {
	s       *Service
	mu      sync.Mutex
	queue   []*pendingBatch
	wake    chan struct{}
	stop    chan struct{}
	stopped chan struct{}
	// commits counts transactions, for tests and benchmarks.
	commits atomic.Int64
	// testHook, when set, runs before each group is stored and can fail
	// batches of it (tests of failures).
	testHook func(group []*pendingBatch) map[*pendingBatch]error
	// testCommitted, when set, runs after a group's commit, before its
	// requests learn of it.
	testCommitted func(group []*pendingBatch)
	// idleWork is writer work that can wait for a pause (WhenIdle), and
	// sinceIdle the events stored since it last ran.
	idleWork  []func(context.Context)
	sinceIdle int
	// idleEvery is idleWorkEvery (tests lower it).
	idleEvery int
}

const (
	// idleAfter is how long the committer must have nothing to store
	// before it runs the idle work.
	idleAfter = 250 * time.Millisecond
	// idleWorkEvery is how many events may be stored without a pause
	// before the idle work runs anyway, so it never falls far behind.
	idleWorkEvery = 2000
)

// WhenIdle registers writer work that is better done for many events at
// once than in each event's transaction (the search index): the committer
// runs it once it has had nothing to store for idleAfter after storing
// events, or after idleWorkEvery events without such a pause. Register
// before the server serves.
func (s *Service) WhenIdle(work func(context.Context)) {
	c := s.committer
	c.mu.Lock()
	defer c.mu.Unlock()
	c.idleWork = append(c.idleWork, work)
}

// hasIdleWork tells whether any idle work is registered.
func (c *committer) hasIdleWork() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.idleWork) > 0
}

// runIdleWork runs the idle work now.
func (c *committer) runIdleWork() {
	c.sinceIdle = 0
	c.mu.Lock()
	work := c.idleWork
	c.mu.Unlock()
	for _, w := range work {
		w(context.Background())
	}
}

func newCommitter(s *Service) *committer {
	c := &committer{s: s, wake: make(chan struct{}, 1), stop: make(chan struct{}), stopped: make(chan struct{}), idleEvery: idleWorkEvery}
	go c.run()
	return c
}

func (c *committer) enqueue(b *pendingBatch) {
	c.mu.Lock()
	c.queue = append(c.queue, b)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *committer) run() {
	defer close(c.stopped)
	idle := time.NewTimer(idleAfter)
	idle.Stop()
	for {
		select {
		case <-c.wake:
		case <-idle.C:
			c.runIdleWork()
			continue
		case <-c.stop:
			idle.Stop()
			// Whatever is still queued fails rather than waits forever.
			c.mu.Lock()
			left := c.queue
			c.queue = nil
			c.mu.Unlock()
			for _, b := range left {
				c.finish(b, errors.New("the server is shutting down"))
			}
			return
		}
		for {
			group := c.take()
			if len(group) == 0 {
				break
			}
			c.commit(group)
			for _, b := range group {
				c.sinceIdle += len(b.events)
			}
			// Checked after each commit, not once the queue is empty:
			// senders that keep it full would otherwise hold the work off.
			if c.sinceIdle >= c.idleEvery && c.hasIdleWork() {
				idle.Stop()
				c.runIdleWork()
			}
		}
		if c.sinceIdle > 0 && c.hasIdleWork() {
			idle.Reset(idleAfter)
		}
	}
}

// maxRoomGroupEvents bounds one room's events in a commit, so a room
// created with a thousand initial events (queued as many chunks at once)
// takes one chunk a commit and other rooms' sends, queued behind it, go in
// the same commits instead of waiting for all of it.
const maxRoomGroupEvents = persistChunk

// take removes the next group from the queue: the batches waiting, in
// order, up to maxGroupEvents events and maxRoomGroupEvents of one room
// (at least one batch). A room's batches keep their order: once one is
// left for a later group, so are the room's later ones.
func (c *committer) take() []*pendingBatch {
	c.mu.Lock()
	defer c.mu.Unlock()
	var group, rest []*pendingBatch
	events := 0
	perRoom := map[id.RoomID]int{}
	deferred := map[id.RoomID]bool{}
	for _, b := range c.queue {
		n := len(b.events)
		if len(group) > 0 && (deferred[b.room] || events+n > maxGroupEvents || perRoom[b.room]+n > maxRoomGroupEvents) {
			deferred[b.room] = true
			rest = append(rest, b)
			continue
		}
		group = append(group, b)
		events += n
		perRoom[b.room] += n
	}
	c.queue = rest
	return group
}

func (c *committer) commit(group []*pendingBatch) {
	var injected map[*pendingBatch]error
	c.mu.Lock()
	hook, committed := c.testHook, c.testCommitted
	c.mu.Unlock()
	if hook != nil {
		injected = hook(group)
	}
	batches := make([]*storage.EventBatch, len(group))
	inGroup := make(map[*pendingBatch]*storage.EventBatch, len(group))
	for i, b := range group {
		after := b.after
		fail := injected[b]
		batches[i] = &storage.EventBatch{Events: b.events, Skip: func() error {
			if fail != nil {
				return fail
			}
			// The batch built on was stored just before in this group, or
			// has finished in an earlier one.
			if prev, ok := inGroup[after]; ok && prev.Err != nil || !ok && after != nil && after.err != nil {
				return errEarlierBatchFailed
			}
			return nil
		}}
		inGroup[b] = batches[i]
	}
	// Storing goes on whatever becomes of the requests that queued it.
	err := c.s.db.PersistBatches(context.Background(), batches, c.s.Now().UnixMilli())
	c.commits.Add(1)
	if committed != nil {
		committed(group)
	}
	for i, b := range group {
		berr := err
		if berr == nil {
			berr = batches[i].Err
		}
		c.finish(b, berr)
	}
}

// finish records a batch's outcome, updates the caches, and wakes its
// request.
func (c *committer) finish(b *pendingBatch, err error) {
	s := c.s
	b.err = err
	if err == nil {
		for i, ev := range b.built {
			ne := b.events[i]
			ev.StreamPos = ne.StreamPos
			ev.StateBefore = ne.StateBefore
			ev.StateAfter = ne.StateAfter
			if ne.Redacts != "" {
				s.cache.dropEvent(ne.Redacts)
			}
		}
		if b.finalState != nil {
			// Only a batch's final state is cached; earlier groups are read
			// back from their deltas if anyone asks.
			s.cache.putState(b.finalStateOf.StateAfter, b.finalState)
		}
	} else {
		s.log.Warn("events not stored", "room", b.room, "error", err)
		for _, l := range s.discard {
			l(b.built)
		}
	}
	s.cache.unpin(b.built, err == nil)
	now := s.Now().UnixMilli()
	for _, ne := range b.events {
		if ne.TxnID != "" {
			// Known as recorded before it stops being pending, so a retry
			// finds it in one or the other.
			if err == nil {
				s.recentTxns.add(txnKeyOf(ne), now)
			}
			s.pendingTxns.remove(txnKeyOf(ne), b)
		}
	}
	s.dropTail(b)
	if err == nil {
		s.membersChanged(b)
		for _, l := range s.committed {
			l(b.built)
		}
	}
	close(b.done)
}

// close stops the committer, failing what is still queued.
func (c *committer) close() {
	close(c.stop)
	<-c.stopped
}

// Close stops the rooms service's committer. Sends after it fail.
func (s *Service) Close() { s.committer.close() }

// roomTails are the heads of rooms whose latest events are still queued:
// the next event of such a room builds on them rather than on what the
// database holds. When a tail's batch is committed, the tail stays as the
// room's committed head (pending nil), so the room's next message needs no
// read of its forward extremities (the first read after an idle moment is
// the slowest step before the commit); any other batch of the room (an
// event from another server, a join) and any failure drop it, and the head
// is read from the database again. At most maxCommittedHeads are kept.
type roomTails struct {
	mu    sync.Mutex
	heads map[id.RoomID]*roomHead
}

// setTail records the head after the events just queued; the caller holds
// the room's lock.
func (s *Service) setTail(roomID id.RoomID, h *roomHead) {
	s.tails.mu.Lock()
	defer s.tails.mu.Unlock()
	if s.tails.heads == nil {
		s.tails.heads = map[id.RoomID]*roomHead{}
	}
	s.tails.heads[roomID] = h
}

// maxCommittedHeads bounds the committed heads kept (each holds its
// room's state map, which the state cache may have let go).
const maxCommittedHeads = 256

// dropTail settles a room's tail once its batch b is finished.
func (s *Service) dropTail(b *pendingBatch) {
	s.tails.mu.Lock()
	defer s.tails.mu.Unlock()
	h := s.tails.heads[b.room]
	switch {
	case h == nil:
	case h.pending == b && b.err == nil && !h.chosen && (h.stateOf == nil || h.stateOf.StateAfter > 0):
		c := *h
		if c.stateOf != nil {
			c.stateGroup = c.stateOf.StateAfter
		}
		c.stateOf, c.pending = nil, nil
		s.tails.heads[b.room] = &c
		if len(s.tails.heads) > maxCommittedHeads {
			for roomID, other := range s.tails.heads {
				if other.pending == nil && roomID != b.room {
					delete(s.tails.heads, roomID)
					break
				}
			}
		}
	case h.pending == b || h.pending == nil:
		// b failed or forked the room, or b is not the tail's chain (or
		// its state group is unknown here): the database knows.
		delete(s.tails.heads, b.room)
	}
}

// latestHead is where the room's next event attaches: after its latest
// queued event, or what the database holds. The caller holds the room's
// lock.
func (s *Service) latestHead(ctx context.Context, r *room) (*roomHead, error) {
	s.tails.mu.Lock()
	h := s.tails.heads[r.ID]
	s.tails.mu.Unlock()
	if h != nil {
		// A copy: building changes the head it is given.
		c := *h
		return &c, nil
	}
	return s.head(ctx, r)
}

// txnKey is a client transaction: device, room and endpoint (send/<type>
// or redact/<event>) and transaction ID.
type txnKey struct {
	user     id.UserID
	device   id.DeviceID
	room     id.RoomID
	endpoint string
	txn      string
}

func txnKeyOf(ne *storage.NewEvent) txnKey {
	return txnKey{ne.TxnUserID, ne.TxnDeviceID, ne.RoomID, ne.TxnEndpoint, ne.TxnID}
}

// pendingTxns are the client transactions whose events are queued, so a
// retry that arrives before the commit answers with the same event instead
// of building a second one.
type pendingTxns struct {
	mu sync.Mutex
	m  map[txnKey]pendingTxn
}

type pendingTxn struct {
	batch *pendingBatch
	ev    *Event
}

func (p *pendingTxns) add(k txnKey, b *pendingBatch, ev *Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[txnKey]pendingTxn{}
	}
	p.m[k] = pendingTxn{b, ev}
}

func (p *pendingTxns) remove(k txnKey, b *pendingBatch) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if t, ok := p.m[k]; ok && t.batch == b {
		delete(p.m, k)
	}
}

func (p *pendingTxns) get(k txnKey) (pendingTxn, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t, ok := p.m[k]
	return t, ok
}

// repeatedTxn answers a single-event send whose transaction was already
// used on the same path: with the queued event (once it is committed), or
// the stored one. The caller holds the room's lock, so the check and the
// queueing of a new event cannot interleave with a retry's.
func (s *Service) repeatedTxn(ctx context.Context, r *room, protos []*proto) (*queued, bool, error) {
	if len(protos) != 1 || protos[0].TxnID == "" {
		return nil, false, nil
	}
	p := protos[0]
	k := txnKey{p.Sender, p.TxnDevice, r.ID, p.TxnEndpoint, p.TxnID}
	if t, ok := s.pendingTxns.get(k); ok {
		// Its batch is waited for, but its listeners are the first
		// request's to call.
		return &queued{built: []*Event{t.ev}, batches: []*pendingBatch{t.batch}, repeat: true}, true, nil
	}
	evID, err := s.storedTxn(ctx, k)
	if err != nil || evID == "" {
		return nil, false, err
	}
	ev, err := s.event(ctx, evID)
	if err != nil {
		return nil, false, err
	}
	return &queued{built: []*Event{ev}, repeat: true}, true, nil
}

// maxJoinedCached bounds the rooms whose joined members are kept.
const maxJoinedCached = 4096

// joinedCache keeps rooms' joined members, read once from the current
// state and forgotten when a member event of the room is committed: every
// message asks for them twice (whom to notify, whose syncs to wake). gen
// keeps a list read before a commit from being kept after it.
type joinedCache struct {
	mu    sync.Mutex
	rooms map[id.RoomID][]id.UserID
	gen   map[id.RoomID]uint64
}

// CachedJoinedUsers is JoinedUsers when it is known without a read.
func (s *Service) CachedJoinedUsers(roomID id.RoomID) ([]id.UserID, bool) {
	c := &s.joined
	c.mu.Lock()
	defer c.mu.Unlock()
	m, ok := c.rooms[roomID]
	return m, ok
}

// JoinedUsers lists the users joined to a room now. The list is shared:
// never change it (appending to it copies).
func (s *Service) JoinedUsers(ctx context.Context, roomID id.RoomID) ([]id.UserID, error) {
	c := &s.joined
	c.mu.Lock()
	if m, ok := c.rooms[roomID]; ok {
		c.mu.Unlock()
		return m, nil
	}
	gen := c.gen[roomID]
	c.mu.Unlock()
	m, err := s.db.Members(ctx, roomID, string(event.MembershipJoin))
	if err != nil {
		return nil, err
	}
	m = slices.Clip(m)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen[roomID] == gen {
		if c.rooms == nil || len(c.rooms) >= maxJoinedCached {
			c.rooms = map[id.RoomID][]id.UserID{}
		}
		c.rooms[roomID] = m
	}
	return m, nil
}

// membersChanged forgets a room's joined members after a commit that may
// have changed them.
func (s *Service) membersChanged(b *pendingBatch) {
	for _, ne := range b.events {
		if ne.Type == event.StateMember.Type || ne.BeforeState != nil || ne.CurrentState != nil {
			c := &s.joined
			c.mu.Lock()
			delete(c.rooms, b.room)
			if c.gen == nil {
				c.gen = map[id.RoomID]uint64{}
			}
			c.gen[b.room]++
			c.mu.Unlock()
			return
		}
	}
}
