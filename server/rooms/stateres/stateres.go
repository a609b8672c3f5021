// Package stateres implements Matrix state resolution: the original algorithm
// of room version 1 (v1.go), version 2 (room versions 2–11) and version 2.1
// (room version 12).
//
// The algorithm is the one in the spec's "State resolution" section of room
// version 2 (rooms/fragments/v2-state-res.md), with the two changes of room
// version 12 (rooms/v12.md, MSC4297): the first iterative auth checks start from
// an empty state map instead of the unconflicted state map, and the full
// conflicted set also holds the conflicted state subgraph.
//
// Events are mautrix's *pdu.PDU; the authorisation rules are mautrix's
// eventauth.Authorize, run against the auth events the algorithm picks.
// Section names quoted in comments ("Auth difference", "Iterative auth checks",
// …) are the headings of the spec text.
package stateres

import (
	"context"
	"errors"
	"fmt"
	"maps"

	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"
)

// StateMap maps (type, state_key) to the event ID holding it.
type StateMap map[pdu.StateKey]id.EventID

// Loader gives state resolution the events it needs. Events must have
// InternalMeta.EventID set, and InternalMeta.Rejected set for events that were
// rejected. Every requested event must be returned: state resolution needs
// complete auth chains, so a missing event is an error (ErrMissingEvent).
type Loader interface {
	Events(ctx context.Context, ids []id.EventID) (map[id.EventID]*pdu.PDU, error)
}

// AuthChainer is an optional faster auth-chain source: if the Loader also
// implements it, it is used instead of walking auth_events one layer at a time.
// AuthChain returns the union of the auth chains of the given events (the spec's
// "Auth chain": everything reachable through auth_events, not the events
// themselves unless one is in another's chain).
type AuthChainer interface {
	AuthChain(ctx context.Context, ids []id.EventID) (map[id.EventID]struct{}, error)
}

var errNoLoader = errors.New("stateres: the state sets conflict but no Loader was given")

var (
	// ErrUnsupportedRoomVersion is returned for unknown room versions and for
	// the empty one.
	ErrUnsupportedRoomVersion = errors.New("stateres: unsupported room version")
	// ErrMissingEvent is returned when the Loader cannot supply an event that
	// state resolution needs.
	ErrMissingEvent = errors.New("stateres: event not found")
	// ErrInvalidState is returned for input that cannot be a room state: an
	// empty event ID, an event stored under a key that is not its own
	// (type, state_key), a non-state event, or events from different rooms.
	ErrInvalidState = errors.New("stateres: invalid state")
)

// Resolve resolves the given state sets for a room of the given version.
//
// The result is a new map; the inputs are not modified. Resolve only loads
// what the algorithm needs: the conflicted events, their auth chains, the
// events the auth checks consult, and (to compute the auth difference) the
// auth chains of the unconflicted events, unless the auth chains of the
// conflicted events already show the difference is empty.
func Resolve(ctx context.Context, roomVersion id.RoomVersion, states []StateMap, loader Loader) (StateMap, error) {
	if !roomVersion.IsKnown() || roomVersion == id.RoomV0 {
		return nil, fmt.Errorf("%w %q", ErrUnsupportedRoomVersion, roomVersion)
	}
	var v1, v21 bool
	switch roomVersion.StateResVersion() {
	case id.StateResV1:
		v1 = true
	case id.StateResV2:
	case id.StateResV2_1:
		v21 = true
	default:
		return nil, fmt.Errorf("%w %q", ErrUnsupportedRoomVersion, roomVersion)
	}

	switch len(states) {
	case 0:
		return StateMap{}, nil
	case 1:
		// Every entry of a single state map is in every state map, so all of
		// it is unconflicted and the resolution is the map itself.
		if err := checkEventIDs(states[0]); err != nil {
			return nil, err
		}
		out := maps.Clone(states[0])
		if out == nil {
			out = StateMap{}
		}
		return out, nil
	}

	r := &resolver{
		ctx:     ctx,
		version: roomVersion,
		v21:     v21,
		loader:  loader,
		events:  make(map[id.EventID]*pdu.PDU),
	}
	r.chainer, _ = loader.(AuthChainer)
	if v1 {
		unconflicted, conflicted, err := separateV1(states)
		if err != nil || len(conflicted) == 0 {
			return unconflicted, err
		}
		if loader == nil {
			return nil, errNoLoader
		}
		return r.resolveV1(unconflicted, conflicted)
	}

	unconflicted, conflicted, err := separate(states)
	if err != nil {
		return nil, err
	}
	if len(conflicted.ids) == 0 {
		return unconflicted, nil
	}
	if loader == nil {
		return nil, errNoLoader
	}
	return r.resolve(states, unconflicted, conflicted)
}

type eventSet = map[id.EventID]struct{}

// conflicts is the conflicted side of "Unconflicted state map and conflicted
// state set".
type conflicts struct {
	// ids is the conflicted state set.
	ids eventSet
	// perState holds, for each input state set, its events at conflicted keys.
	perState [][]id.EventID
	// keys maps each conflicted event to the key it was found under.
	keys map[id.EventID]pdu.StateKey
}

func checkEventIDs(state StateMap) error {
	for k, v := range state {
		if v == "" {
			return fmt.Errorf("%w: empty event ID for (%s, %q)", ErrInvalidState, k.Type, k.StateKey)
		}
	}
	return nil
}

// separate splits the state sets as "Unconflicted state map and conflicted
// state set" says: a key belongs to the unconflicted state map only if it is in
// every state set with the same event; otherwise every event found under it
// (a key missing from some state sets included) is conflicted.
func separate(states []StateMap) (StateMap, *conflicts, error) {
	c := &conflicts{
		ids:      make(eventSet),
		perState: make([][]id.EventID, len(states)),
		keys:     make(map[id.EventID]pdu.StateKey),
	}
	unconflicted := make(StateMap, len(states[0]))
	addConflicted := func(k pdu.StateKey) error {
		for i, s := range states {
			v, ok := s[k]
			if !ok {
				continue
			}
			if prev, seen := c.keys[v]; seen && prev != k {
				return fmt.Errorf("%w: event %s is under both (%s, %q) and (%s, %q)", ErrInvalidState, v, prev.Type, prev.StateKey, k.Type, k.StateKey)
			}
			c.keys[v] = k
			c.ids[v] = struct{}{}
			c.perState[i] = append(c.perState[i], v)
		}
		return nil
	}
	for k, v := range states[0] {
		if v == "" {
			return nil, nil, fmt.Errorf("%w: empty event ID for (%s, %q)", ErrInvalidState, k.Type, k.StateKey)
		}
		same := true
		for _, s := range states[1:] {
			if s[k] != v {
				same = false
				break
			}
		}
		if same {
			unconflicted[k] = v
		} else if err := addConflicted(k); err != nil {
			return nil, nil, err
		}
	}
	// Keys missing from the first state set are conflicted by definition.
	handled := make(map[pdu.StateKey]struct{})
	for _, s := range states[1:] {
		for k, v := range s {
			if v == "" {
				return nil, nil, fmt.Errorf("%w: empty event ID for (%s, %q)", ErrInvalidState, k.Type, k.StateKey)
			}
			if _, inFirst := states[0][k]; inFirst {
				continue
			}
			if _, done := handled[k]; done {
				continue
			}
			handled[k] = struct{}{}
			if err := addConflicted(k); err != nil {
				return nil, nil, err
			}
		}
	}
	return unconflicted, c, nil
}

// resolver holds one resolution's caches. It is not safe for concurrent use;
// Resolve makes a new one per call.
type resolver struct {
	ctx     context.Context
	version id.RoomVersion
	v21     bool
	loader  Loader
	chainer AuthChainer

	// events caches every event loaded so far. Together with the visited sets
	// of the walks it is the memoisation that keeps the auth chain work linear.
	events map[id.EventID]*pdu.PDU

	roomID id.RoomID
	// fetchErr records a Loader failure inside eventauth's getEvents callback,
	// which eventauth would otherwise turn into a plain auth failure.
	fetchErr error

	senderPower map[id.EventID]int
	createInfo  *createInfo
}

func (r *resolver) resolve(states []StateMap, unconflicted StateMap, c *conflicts) (StateMap, error) {
	conflictedIDs := sortedIDs(c.ids)
	if err := r.load(conflictedIDs); err != nil {
		return nil, fmt.Errorf("load conflicted events: %w", err)
	}
	if err := r.checkConflicted(conflictedIDs, c); err != nil {
		return nil, err
	}

	full, err := r.fullConflictedSet(states, unconflicted, c)
	if err != nil {
		return nil, err
	}
	if err := r.checkRoom(full); err != nil {
		return nil, err
	}
	if err := r.ctx.Err(); err != nil {
		return nil, err
	}

	// Algorithm step 1: the power events of the full conflicted set, plus the
	// events of their auth chains that are also in the full conflicted set,
	// in reverse topological power ordering.
	powerSet := r.powerEventsAndAuth(full)
	powerOrder, err := r.reverseTopologicalPowerOrder(powerSet)
	if err != nil {
		return nil, err
	}

	// Step 2: iterative auth checks from the unconflicted state map (v2) or
	// from an empty state map (v2.1, room version 12: "now starts with an
	// empty state map instead of the unconflicted state map").
	partial := &overlay{changes: make(StateMap)}
	if !r.v21 {
		partial.base = unconflicted
	}
	if err := r.iterativeAuthChecks(partial, powerOrder); err != nil {
		return nil, err
	}

	// Step 3: the remaining events in mainline ordering based on the power
	// levels event of the partially resolved state.
	rest := make([]id.EventID, 0, len(full)-len(powerSet))
	for evID := range full {
		if _, ok := powerSet[evID]; !ok {
			rest = append(rest, evID)
		}
	}
	pl, _ := partial.get(pdu.StateKey{Type: typePowerLevels})
	restOrder, err := r.mainlineOrder(rest, pl)
	if err != nil {
		return nil, err
	}

	// Step 4: iterative auth checks on the partially resolved state.
	if err := r.iterativeAuthChecks(partial, restOrder); err != nil {
		return nil, err
	}

	// Step 5: the unconflicted state map wins over anything resolved above.
	result := maps.Clone(unconflicted)
	for k, v := range partial.changes {
		if _, ok := unconflicted[k]; !ok {
			result[k] = v
		}
	}
	return result, nil
}

// checkConflicted makes sure every conflicted event is a state event stored
// under its own (type, state_key): the algorithm applies events by their own
// key, so a mislabelled input would silently move state around.
func (r *resolver) checkConflicted(ids []id.EventID, c *conflicts) error {
	for _, evID := range ids {
		evt := r.events[evID]
		if evt.StateKey == nil {
			return fmt.Errorf("%w: %s is not a state event", ErrInvalidState, evID)
		}
		if k := c.keys[evID]; k.Type != evt.Type || k.StateKey != *evt.StateKey {
			return fmt.Errorf("%w: %s is a (%s, %q) event but is stored under (%s, %q)", ErrInvalidState, evID, evt.Type, *evt.StateKey, k.Type, k.StateKey)
		}
	}
	return nil
}

// checkRoom makes sure all events that take part come from one room, and
// remembers that room: room version 12 finds the create event through it.
func (r *resolver) checkRoom(full eventSet) error {
	for _, evID := range sortedIDs(full) {
		evt := r.events[evID]
		if evt.StateKey == nil {
			return fmt.Errorf("%w: auth event %s is not a state event", ErrInvalidState, evID)
		}
		roomID := evt.RoomID
		if evt.Type == typeCreate && r.version.RoomIDIsCreateEventID() {
			roomID = id.RoomID("!" + evID[1:])
		}
		if r.roomID == "" {
			r.roomID = roomID
		} else if roomID != r.roomID {
			return fmt.Errorf("%w: event %s is in room %s, not %s", ErrInvalidState, evID, roomID, r.roomID)
		}
	}
	return nil
}

// overlay is a state map being built on top of a read-only base, so v2 can
// start from a large unconflicted state map without copying it.
type overlay struct {
	base    StateMap
	changes StateMap
}

func (o *overlay) get(k pdu.StateKey) (id.EventID, bool) {
	if v, ok := o.changes[k]; ok {
		return v, true
	}
	v, ok := o.base[k]
	return v, ok
}

func (o *overlay) set(k pdu.StateKey, v id.EventID) {
	o.changes[k] = v
}
