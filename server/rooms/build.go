package rooms

import (
	"bytes"
	"context"
	jsonv1 "encoding/json"
	"encoding/json/jsontext"
	"errors"
	"fmt"
	"maps"
	"math/bits"
	"slices"
	"strings"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/federation/eventauth"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/rooms/authrules"
	"github.com/palpo-im/palpo-desktop/server/storage"
)

// MaxPDUSize is the spec's limit on a PDU's canonical JSON, in bytes.
const MaxPDUSize = 65536

// maxPrevEvents bounds prev_events, as Synapse does: a room with many
// extremities (after federation splits) merges them over a few events.
const maxPrevEvents = 10

// proto is an event to build: what the sender asked for.
type proto struct {
	Sender   id.UserID
	Type     string
	StateKey *string
	Content  jsontext.Value
	Redacts  id.EventID
	// Transaction of a client send, recorded for idempotency.
	TxnDevice   id.DeviceID
	TxnEndpoint string
	TxnID       string
	// CheckRelation applies the rules on a client's m.relates_to
	// (relations.go) under the room's lock.
	CheckRelation bool
}

// newProto marshals content (a struct or map) into a proto.
func newProto(sender id.UserID, evType string, stateKey *string, content any) (*proto, error) {
	raw, err := jsonv1.Marshal(content)
	if err != nil {
		return nil, fmt.Errorf("marshal %s content: %w", evType, err)
	}
	return &proto{Sender: sender, Type: evType, StateKey: stateKey, Content: raw}, nil
}

// ErrBadContent is M_BAD_JSON for event content that is not canonical-JSON
// safe: not an object, floats, or integers beyond ±(2⁵³−1).
func checkContent(raw []byte) error {
	dec := jsonv1.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return mautrix.MNotJSON.WithMessage("Content is not valid JSON")
	}
	if dec.More() {
		return mautrix.MNotJSON.WithMessage("Content is not valid JSON")
	}
	if _, ok := v.(map[string]any); !ok {
		return mautrix.MBadJSON.WithMessage("Content must be a JSON object")
	}
	return checkValue(v)
}

const maxSafeInt = 1<<53 - 1

func checkValue(v any) error {
	switch x := v.(type) {
	case jsonv1.Number:
		s := string(x)
		if strings.ContainsAny(s, ".eE") {
			return mautrix.MBadJSON.WithMessage("Floats are not allowed in event content")
		}
		n, err := x.Int64()
		if err != nil || n > maxSafeInt || n < -maxSafeInt {
			return mautrix.MBadJSON.WithMessage("Integers in event content must be within ±(2^53-1)")
		}
	case map[string]any:
		for _, e := range x {
			if err := checkValue(e); err != nil {
				return err
			}
		}
	case []any:
		for _, e := range x {
			if err := checkValue(e); err != nil {
				return err
			}
		}
	}
	return nil
}

// roomHead is where the next event of a room attaches: the forward
// extremities, the depth to use and the state they leave the room in.
type roomHead struct {
	// resolved is set when state was just resolved from several forks and
	// is stored with the next event (stateGroup is then 0).
	resolved bool
	// creating is set for the first event of a new room: its create event,
	// which in v12 rooms names the room.
	creating   bool
	prevEvents []id.EventID
	depth      int64
	// The head's state group: stateGroup when stored, or the state after
	// stateOf, the room's latest event, queued but not yet committed.
	stateGroup int64
	stateOf    *storage.NewEvent
	state      StateMap
	chainLen   int
	// pending is the queued batch the head's latest event belongs to, until
	// it is committed: events built on this head fail if it does.
	pending *pendingBatch
	// chosen is set on a head a caller chose (sendEventsOn, which forks
	// the room): once committed it is not the room's head, which merges
	// the forks, so it is not kept (roomTails).
	chosen bool
}

func (s *Service) head(ctx context.Context, r *room) (*roomHead, error) {
	extremities, err := s.db.ForwardExtremities(ctx, r.ID)
	if err != nil {
		return nil, err
	}
	if len(extremities) == 0 {
		return nil, fmt.Errorf("room %s has no forward extremities", r.ID)
	}
	if len(extremities) > maxPrevEvents {
		// Merge the newest few; the next events pick up the rest.
		extremities = extremities[:maxPrevEvents]
	}
	evs, err := s.Events(ctx, extremities)
	if err != nil {
		return nil, err
	}
	h := &roomHead{prevEvents: slices.Clone(extremities)}
	for _, ev := range evs {
		h.depth = max(h.depth, ev.PDU.Depth+1)
		h.stateGroup = ev.StateAfter
	}
	if len(extremities) > 1 {
		// Only federation forks a room's DAG. The next event joins the
		// forks, on top of their resolved state.
		return s.mergedHead(ctx, r, h, evs)
	}
	snap, err := s.stateOfGroup(ctx, h.stateGroup)
	if err != nil {
		return nil, err
	}
	h.state, h.chainLen = snap.state, snap.chainLen
	return h, nil
}

// build makes a signed PDU from p on top of head, authorises it against the
// state, and returns it with the new state (the same map for messages).
func (s *Service) build(ctx context.Context, r *room, h *roomHead, p *proto) (*Event, error) {
	if err := checkContent(p.Content); err != nil {
		return nil, err
	}
	content, err := canonical(p.Content)
	if err != nil {
		return nil, mautrix.MBadJSON.WithMessage("Content is not valid JSON")
	}
	ev := &pdu.PDU{
		Type:           p.Type,
		StateKey:       p.StateKey,
		Sender:         p.Sender,
		Content:        content,
		OriginServerTS: s.Now().UnixMilli(),
		PrevEvents:     h.prevEvents,
		Depth:          h.depth,
		AuthEvents:     []id.EventID{},
	}
	if ev.PrevEvents == nil {
		ev.PrevEvents = []id.EventID{}
	}
	isV12Create := h.creating && p.Type == event.StateCreate.Type && r.Version.RoomIDIsCreateEventID()
	if !isV12Create {
		ev.RoomID = r.ID
	}
	if p.Redacts != "" {
		// From v11 "redacts" lives in the content; older versions keep it
		// at the top level. Both are set where allowed, as Synapse does.
		if !r.Version.RedactsInContent() {
			ev.Redacts = &p.Redacts
		}
	}
	for _, k := range ev.AuthEventSelection(r.Version) {
		if evID, ok := h.state[k]; ok {
			ev.AuthEvents = append(ev.AuthEvents, evID)
		}
	}
	evID, raw, err := s.seal(ctx, r, ev)
	if err != nil {
		return nil, err
	}
	ev.InternalMeta.EventID = evID
	if isV12Create {
		r.ID = id.RoomID("!" + strings.TrimPrefix(string(evID), "$"))
	}
	if len(raw) > MaxPDUSize {
		return nil, mautrix.MTooLarge.WithMessage(fmt.Sprintf("Event is %d bytes; the limit is %d", len(raw), MaxPDUSize))
	}
	if err := s.authorize(ctx, r, ev); err != nil {
		return nil, authError(err)
	}
	return &Event{PDU: ev, ID: evID, RoomID: r.ID, Version: r.Version, StateBefore: h.stateGroup, wire: raw}, nil
}

// authorize checks an event against the auth rules of its room version.
func (s *Service) authorize(ctx context.Context, r *room, ev *pdu.PDU) error {
	return authrules.Authorize(r.Version, ev, nil, s.pdus(ctx), s.signingKey)
}

// signingKey gives the auth rules the public keys they check signatures
// with (restricted joins, third-party invites). Only this server's own key
// is known until federation fetches others'.
func (s *Service) signingKey(serverName string, keyID id.KeyID, _ time.Time) (id.SigningKey, time.Time, error) {
	if serverName == s.serverName && keyID == s.key.ID {
		return s.key.Pub, time.Now().Add(24 * time.Hour), nil
	}
	return "", time.Time{}, fmt.Errorf("no key %s for server %s", keyID, serverName)
}

// authError turns an auth-rule failure into M_FORBIDDEN with the rule's
// reason, which tells the client what it lacked.
func authError(err error) error {
	var afe eventauth.AuthFailError
	if errors.As(err, &afe) {
		return mautrix.MForbidden.WithMessage("Not allowed: " + afe.Error())
	}
	return mautrix.MForbidden.WithMessage("Not allowed: " + err.Error())
}

// persistChunk is how many events of a long batch are stored per
// transaction. A room created with thousands of initial events is built
// and authorised first, in memory, and then stored a chunk at a time, so
// the database's one writer is never held for long and other rooms' sends
// slip in between chunks.
const persistChunk = 32

// sendEvents builds, authorises and persists events of one room, in order,
// each on top of the previous, and returns once they are committed. With
// creating set, the first proto is the create event of the new room r.
// Every event is authorised before any is stored, so a refused event
// stores none of the batch.
func (s *Service) sendEvents(ctx context.Context, r *room, protos []*proto, creating bool) ([]*Event, error) {
	q, err := s.queueEvents(ctx, r, protos, nil, creating)
	if err != nil {
		return nil, err
	}
	return s.awaitEvents(q)
}

// sendEventsOn is sendEvents on a given head, not the room's latest; tests
// make forks with it, as federation will.
func (s *Service) sendEventsOn(ctx context.Context, r *room, protos []*proto, h *roomHead) ([]*Event, error) {
	q, err := s.queueEvents(ctx, r, protos, h, false)
	if err != nil {
		return nil, err
	}
	return s.awaitEvents(q)
}

// queued is events handed to the committer, in batches of one room.
type queued struct {
	built   []*Event
	batches []*pendingBatch
	// repeat is set for a retried transaction, answered with the first
	// request's event: it waits for that commit, but the listeners are the
	// first request's to tell.
	repeat bool
}

// queueEvents builds and authorises events under the room's lock, on top of
// the room's latest event even when that is not committed yet, and queues
// them for the committer. The lock is released before the commit, so the
// next sender in the room builds while this one's events are written, and
// concurrent senders share one commit (commit.go).
func (s *Service) queueEvents(ctx context.Context, r *room, protos []*proto, h *roomHead, creating bool) (*queued, error) {
	if h != nil {
		defer s.locks.lock(r.ID)()
		h.chosen = true
	} else if creating {
		// A new room: nobody else knows its ID yet; it is locked below, once
		// the create event has named it.
		h = &roomHead{creating: true, depth: 1, state: StateMap{}, chainLen: -1}
	} else {
		defer s.locks.lock(r.ID)()
		if dup, ok, err := s.repeatedTxn(ctx, r, protos); ok || err != nil {
			return dup, err
		}
		var err error
		if h, err = s.latestHead(ctx, r); err != nil {
			return nil, err
		}
	}
	nowTS := s.Now().UnixMilli()
	built := make([]*Event, 0, len(protos))
	stored := make([]*storage.NewEvent, 0, len(protos))
	// Later events of a batch are authorised against earlier ones before
	// any is stored, so the cache pins them until they are committed (an
	// ordinary entry could be cleared under a full cache, losing the only
	// copy); they are forgotten if the batch is refused.
	queuedOK := false
	defer func() {
		if !queuedOK {
			s.cache.unpin(built, false)
		}
	}()
	// The batch's state: one map it owns, changed in place, and state
	// groups laid out by batchState, so a long batch costs time and space
	// linear in its length (no copy of the whole state per event).
	bs := newBatchState(h)
	for i, p := range protos {
		if p.CheckRelation {
			if err := s.checkRelation(ctx, r, p); err != nil {
				return nil, err
			}
		}
		ev, err := s.build(ctx, r, h, p)
		if err != nil {
			return nil, err
		}
		ne := &storage.NewEvent{
			Event: storage.Event{
				EventID: ev.ID, RoomID: r.ID, Type: p.Type, StateKey: p.StateKey, Sender: p.Sender,
				Depth: ev.PDU.Depth, OriginServerTS: ev.PDU.OriginServerTS, StateBefore: h.stateGroup,
			},
			StateBeforeOf: h.stateOf,
			PrevEvents:    ev.PDU.PrevEvents,
			Redacts:       p.Redacts,
			Relation:      relationOf(p.Content),
		}
		if h.resolved {
			ne.BeforeState = h.state
			h.resolved = false
		}
		// The JSON build made, in the room version's format; the cached
		// event does not keep it.
		ne.PDU, ev.wire = ev.wire, nil
		if creating && i == 0 {
			ne.NewRoom = &storage.Room{RoomID: r.ID, RoomVersion: r.Version, Creator: p.Sender, CreatedTS: nowTS}
		}
		if p.TxnID != "" {
			ne.TxnUserID, ne.TxnDeviceID, ne.TxnEndpoint, ne.TxnID = p.Sender, p.TxnDevice, p.TxnEndpoint, p.TxnID
		}
		if p.StateKey != nil {
			if p.Type == event.StateMember.Type {
				ne.Membership = string(ev.Membership())
			}
			bs.set(ne, pdu.StateKey{Type: p.Type, StateKey: *p.StateKey}, ev.ID)
			h.state, h.chainLen = bs.cur, bs.chain
		}
		ev.RoomID = r.ID
		s.cache.pin(ev)
		built = append(built, ev)
		stored = append(stored, ne)
		// The next event attaches to this one; its state group is only known
		// once stored (storage resolves StateBeforeOf).
		h.creating = false
		h.prevEvents = []id.EventID{ev.ID}
		h.depth = ev.PDU.Depth + 1
		h.stateGroup, h.stateOf = 0, ne
	}
	if creating {
		defer s.locks.lock(r.ID)()
	}
	// What the events add to their transaction (push notifications) is
	// worked out now, outside the database's writer.
	for _, prepare := range s.prepare {
		prepare(ctx, built, stored, bs.cur)
	}
	q := &queued{built: built}
	for start := 0; start < len(stored); start += persistChunk {
		end := min(start+persistChunk, len(stored))
		b := &pendingBatch{room: r.ID, events: stored[start:end], built: built[start:end], after: h.pending, done: make(chan struct{})}
		if end == len(stored) && bs.last != nil {
			b.finalState = &stateSnapshot{state: bs.cur, chainLen: bs.chain}
			b.finalStateOf = bs.last
		}
		for i, ne := range b.events {
			if ne.TxnID != "" {
				s.pendingTxns.add(txnKeyOf(ne), b, b.built[i])
			}
		}
		q.batches = append(q.batches, b)
		h.pending = b
		s.committer.enqueue(b)
	}
	queuedOK = true
	s.setTail(r.ID, h)
	return q, nil
}

// awaitEvents waits for queued events to be committed, then tells the
// listeners, chunk by chunk.
func (s *Service) awaitEvents(q *queued) ([]*Event, error) {
	for _, b := range q.batches {
		<-b.done
		if b.err != nil {
			return nil, b.err
		}
		if !q.repeat {
			for _, l := range s.listen {
				l(b.built)
			}
			for _, ev := range b.built {
				ev.PushActions = nil // told; the cached event need not keep them
			}
		}
	}
	return q.built, nil
}

// batchState lays out the state groups of a batch of events. The k-th
// state event since the base (k = 1, 2, ...) stores a delta on the group
// of state event k with its lowest set bit cleared (the base for powers of
// two), as in a Fenwick tree: a group is at most log2(k) deltas from the
// base, and the deltas of n events hold about n·log2(n)/2 entries in all.
// A full snapshot is stored only for a room's first state and when the
// base's chain is already long.
type batchState struct {
	// cur is the state after the latest event, owned by the batch.
	cur StateMap
	// owned tells whether cur is the batch's own copy yet: a batch of
	// messages only never copies the state.
	owned bool
	// The base the deltas start from: a stored group, or the event whose
	// state after it is (one of this batch's, or queued before it), with
	// its chain length; -1 means none yet.
	baseGroup int64
	baseEvent *storage.NewEvent
	baseChain int
	// chain is the chain length of the latest state group.
	chain int
	// The state set since the base, in order, and the events that set it.
	keys   []pdu.StateKey
	values []id.EventID
	events []*storage.NewEvent
	// last is the batch's latest state event.
	last *storage.NewEvent
}

func newBatchState(h *roomHead) *batchState {
	bs := &batchState{cur: h.state, baseGroup: h.stateGroup, baseEvent: h.stateOf, baseChain: h.chainLen, chain: h.chainLen}
	if h.resolved {
		// The state before the first event is stored by that event
		// (storage's BeforeState), in a group not known here: start afresh.
		bs.baseChain = -1
	}
	return bs
}

// set records that ne sets key to evID, and fills in ne's state group.
func (bs *batchState) set(ne *storage.NewEvent, key pdu.StateKey, evID id.EventID) {
	if !bs.owned {
		// The head's state is shared (cached, or another batch's): copy it
		// once, before the first change.
		bs.cur, bs.owned = maps.Clone(bs.cur), true
		if bs.cur == nil {
			bs.cur = StateMap{}
		}
	}
	bs.cur[key] = evID
	bs.last = ne
	k := len(bs.keys) + 1
	if bs.baseChain < 0 || bs.baseChain+bits.OnesCount(uint(k)) >= storage.MaxChainLen {
		ne.FullState = maps.Clone(bs.cur)
		bs.baseGroup, bs.baseEvent, bs.baseChain, bs.chain = 0, ne, 0, 0
		bs.keys, bs.values, bs.events = bs.keys[:0], bs.values[:0], bs.events[:0]
		return
	}
	bs.keys = append(bs.keys, key)
	bs.values = append(bs.values, evID)
	bs.events = append(bs.events, ne)
	bs.chain = bs.baseChain + bits.OnesCount(uint(k))
	parent := k & (k - 1)
	delta := make(StateMap, k-parent)
	for i := parent; i < k; i++ {
		delta[bs.keys[i]] = bs.values[i]
	}
	ne.StateDelta = delta
	switch {
	case parent > 0:
		ne.DeltaOnEvent = bs.events[parent-1]
	case bs.baseEvent != nil:
		ne.DeltaOnEvent = bs.baseEvent
	default:
		ne.DeltaOn = bs.baseGroup
	}
}
