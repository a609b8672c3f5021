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
	stateGroup int64
	state      StateMap
	chainLen   int
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
// each on top of the previous. With creating set, the first proto is the
// create event of the new room r. Every event is authorised before any is
// stored, so a refused event stores none of the batch.
func (s *Service) sendEvents(ctx context.Context, r *room, protos []*proto, creating bool) ([]*Event, error) {
	var h *roomHead
	if creating {
		// A new room: nobody else knows its ID yet; sendEventsOn locks it
		// once the create event has named it.
		h = &roomHead{creating: true, depth: 1, state: StateMap{}, chainLen: -1}
	} else {
		defer s.locks.lock(r.ID)()
		var err error
		if h, err = s.head(ctx, r); err != nil {
			return nil, err
		}
	}
	return s.sendEventsOn(ctx, r, protos, h, creating)
}

// sendEventsOn is sendEvents on a given head; the caller holds the lock
// unless creating.
func (s *Service) sendEventsOn(ctx context.Context, r *room, protos []*proto, h *roomHead, creating bool) ([]*Event, error) {
	nowTS := s.Now().UnixMilli()
	built := make([]*Event, 0, len(protos))
	batch := make([]*storage.NewEvent, 0, len(protos))
	// Later events of a batch are authorised against earlier ones before
	// any is stored, so the cache pins them meanwhile (an ordinary entry
	// could be cleared under a full cache, losing the only copy); they are
	// released as their chunk is stored, or forgotten if the batch fails.
	stored := 0
	defer func() { s.cache.unpin(built[stored:], false) }()
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
			PrevEvents: ev.PDU.PrevEvents,
			Redacts:    p.Redacts,
			Relation:   relationOf(p.Content),
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
			h.state = bs.cur
		}
		ev.RoomID = r.ID
		s.cache.pin(ev)
		built = append(built, ev)
		batch = append(batch, ne)
		// The next event attaches to this one; its state group is only known
		// once stored, which storage.PersistEvents resolves (StateBefore -1).
		h.creating = false
		h.prevEvents = []id.EventID{ev.ID}
		h.depth = ev.PDU.Depth + 1
		h.stateGroup = -1
	}
	if creating {
		defer s.locks.lock(r.ID)()
	}
	var lastAfter int64
	for stored < len(batch) {
		end := min(stored+persistChunk, len(batch))
		chunk := batch[stored:end]
		if chunk[0].StateBefore < 0 {
			chunk[0].StateBefore = lastAfter
		}
		positions, err := s.db.PersistEvents(ctx, chunk, nowTS)
		if err != nil {
			return nil, err
		}
		for i, ev := range built[stored:end] {
			ne := chunk[i]
			ev.StreamPos = positions[i]
			ev.StateBefore = ne.StateBefore
			ev.StateAfter = ne.StateAfter
			if ne.Redacts != "" {
				s.cache.dropEvent(ne.Redacts)
			}
		}
		lastAfter = chunk[len(chunk)-1].StateAfter
		s.cache.unpin(built[stored:end], true)
		evs := built[stored:end]
		stored = end
		for _, l := range s.listen {
			l(evs)
		}
	}
	if last := bs.last; last != nil {
		// Only the batch's final state is cached; earlier groups are read
		// back from their deltas if anyone asks.
		s.cache.putState(last.StateAfter, &stateSnapshot{state: bs.cur, chainLen: chainLenOf(last)})
	}
	return built, nil
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
	// The base the deltas start from: a stored group, or a snapshot this
	// batch made (baseEvent), with its chain length; -1 means none yet.
	baseGroup int64
	baseEvent *storage.NewEvent
	baseChain int
	// The state set since the base, in order, and the events that set it.
	keys   []pdu.StateKey
	values []id.EventID
	events []*storage.NewEvent
	// last is the batch's latest state event.
	last *storage.NewEvent
}

func newBatchState(h *roomHead) *batchState {
	bs := &batchState{cur: maps.Clone(h.state), baseGroup: h.stateGroup, baseChain: h.chainLen}
	if bs.cur == nil {
		bs.cur = StateMap{}
	}
	if h.resolved {
		// The state before the first event is stored by that event
		// (storage's BeforeState), in a group not known here: start afresh.
		bs.baseChain = -1
	}
	return bs
}

// set records that ne sets key to evID, and fills in ne's state group.
func (bs *batchState) set(ne *storage.NewEvent, key pdu.StateKey, evID id.EventID) {
	bs.cur[key] = evID
	bs.last = ne
	k := len(bs.keys) + 1
	if bs.baseChain < 0 || bs.baseChain+bits.OnesCount(uint(k)) >= storage.MaxChainLen {
		ne.FullState = maps.Clone(bs.cur)
		bs.baseGroup, bs.baseEvent, bs.baseChain = 0, ne, 0
		bs.keys, bs.values, bs.events = bs.keys[:0], bs.values[:0], bs.events[:0]
		return
	}
	bs.keys = append(bs.keys, key)
	bs.values = append(bs.values, evID)
	bs.events = append(bs.events, ne)
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

// chainLenOf is the delta chain length of the state group a persisted
// event made: 0 for a full snapshot.
func chainLenOf(ne *storage.NewEvent) int {
	if ne.FullState != nil {
		return 0
	}
	return ne.ChainLen
}
