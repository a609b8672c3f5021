package rooms

import (
	"context"
	"fmt"
	"maps"

	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"
)

// StateMap maps each piece of state (type, state key) to the event that
// holds it. Maps returned by the service are shared: never modify one.
type StateMap = map[pdu.StateKey]id.EventID

// stateOfGroup returns the full state of a state group, built from its
// deltas and cached; a group is read once and its chain at most
// storage.MaxChainLen deep.
func (s *Service) stateOfGroup(ctx context.Context, group int64) (*stateSnapshot, error) {
	if group == 0 {
		return &stateSnapshot{state: StateMap{}}, nil
	}
	if snap := s.cache.state(group); snap != nil {
		return snap, nil
	}
	// Walk back to a cached group or a full snapshot, then lay the deltas
	// over it oldest first.
	var deltas []map[pdu.StateKey]id.EventID
	var base *stateSnapshot
	g := group
	for g != 0 {
		if snap := s.cache.state(g); snap != nil {
			base = snap
			break
		}
		entries, prev, err := s.db.StateGroup(ctx, g)
		if err != nil {
			return nil, fmt.Errorf("load state group %d: %w", g, err)
		}
		deltas = append(deltas, entries)
		g = prev
	}
	// Without a cached base the walk ended on a full snapshot (chain length
	// 0), which counts as the first delta laid below.
	state := StateMap{}
	chainLen := -1
	if base != nil {
		state = maps.Clone(base.state)
		chainLen = base.chainLen
	}
	for i := len(deltas) - 1; i >= 0; i-- {
		for k, ev := range deltas[i] {
			if ev == "" {
				delete(state, k)
			} else {
				state[k] = ev
			}
		}
		chainLen++
	}
	snap := &stateSnapshot{state: state, chainLen: chainLen}
	s.cache.putState(group, snap)
	return snap, nil
}

// StateAfter returns the room state just after an event.
func (s *Service) StateAfter(ctx context.Context, ev *Event) (StateMap, error) {
	snap, err := s.stateOfGroup(ctx, ev.StateAfter)
	if err != nil {
		return nil, err
	}
	return snap.state, nil
}

// StateBefore returns the room state just before an event.
func (s *Service) StateBefore(ctx context.Context, ev *Event) (StateMap, error) {
	snap, err := s.stateOfGroup(ctx, ev.StateBefore)
	if err != nil {
		return nil, err
	}
	return snap.state, nil
}

// CurrentState returns a room's current state.
func (s *Service) CurrentState(ctx context.Context, roomID id.RoomID) (StateMap, error) {
	m, err := s.db.CurrentState(ctx, roomID)
	if err != nil {
		return nil, err
	}
	return StateMap(m), nil
}

// stateEvents loads the events of the given state keys from a state map.
func (s *Service) stateEvents(ctx context.Context, state StateMap, keys ...pdu.StateKey) (map[pdu.StateKey]*Event, error) {
	ids := make([]id.EventID, 0, len(keys))
	for _, k := range keys {
		if ev, ok := state[k]; ok {
			ids = append(ids, ev)
		}
	}
	evs, err := s.Events(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make(map[pdu.StateKey]*Event, len(keys))
	for _, k := range keys {
		if ev, ok := evs[state[k]]; ok {
			out[k] = ev
		}
	}
	return out, nil
}

// StateEvent returns an event a Preparer's state names. It may be queued
// but not yet committed (an event of the batch being prepared, or of one
// queued before it), which only a preparer, running under the room's lock
// while the batch is built, may see.
func (s *Service) StateEvent(ctx context.Context, evID id.EventID) (*Event, error) {
	evs, err := s.events(ctx, []id.EventID{evID}, true)
	if err != nil {
		return nil, err
	}
	return evs[evID], nil
}

// CurrentStateEvent returns one current state event of a room, or nil.
func (s *Service) CurrentStateEvent(ctx context.Context, roomID id.RoomID, evType, stateKey string) (*Event, error) {
	evID, err := s.db.CurrentStateEvent(ctx, roomID, evType, stateKey)
	if err != nil || evID == "" {
		return nil, err
	}
	return s.event(ctx, evID)
}
