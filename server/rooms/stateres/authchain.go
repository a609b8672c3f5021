package stateres

import (
	"fmt"
	"maps"
	"slices"

	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"
)

// load makes sure the given events are in the cache, asking the Loader once
// for all that are missing.
func (r *resolver) load(ids []id.EventID) error {
	var missing []id.EventID
	for _, evID := range ids {
		if _, ok := r.events[evID]; !ok {
			missing = append(missing, evID)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	got, err := r.fetch(missing)
	if err != nil {
		return err
	}
	maps.Copy(r.events, got)
	return nil
}

// fetch asks the Loader for events (duplicates are harmless) and checks that
// all of them came back, without caching them.
func (r *resolver) fetch(ids []id.EventID) (map[id.EventID]*pdu.PDU, error) {
	if err := r.ctx.Err(); err != nil {
		return nil, err
	}
	got, err := r.loader.Events(r.ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("load %d events: %w", len(ids), err)
	}
	for _, evID := range ids {
		evt := got[evID]
		if evt == nil {
			return nil, fmt.Errorf("%w: %s", ErrMissingEvent, evID)
		}
		if evt.InternalMeta.EventID != evID {
			return nil, fmt.Errorf("%w: the Loader returned event %q for ID %s (InternalMeta.EventID must be set)", ErrInvalidState, evt.InternalMeta.EventID, evID)
		}
	}
	return got, nil
}

// event returns one event, loading it if needed.
func (r *resolver) event(evID id.EventID) (*pdu.PDU, error) {
	if evt, ok := r.events[evID]; ok {
		return evt, nil
	}
	if err := r.load([]id.EventID{evID}); err != nil {
		return nil, err
	}
	return r.events[evID], nil
}

// authChain returns the union of the auth chains ("Auth chain": every event
// reachable through auth_events) of the given events, which must be loaded,
// or be in startEvents if that is not nil.
//
// When prune is not nil, events it accepts are left out together with
// whatever is reachable only through them; callers use it where such events
// are known not to matter. With an AuthChainer the pruning is skipped, so the
// result may be a superset of the pruned chain.
func (r *resolver) authChain(start []id.EventID, startEvents map[id.EventID]*pdu.PDU, prune func(id.EventID) bool) (eventSet, error) {
	if len(start) == 0 {
		return eventSet{}, nil
	}
	if r.chainer != nil {
		chain, err := r.chainer.AuthChain(r.ctx, start)
		if err != nil {
			return nil, fmt.Errorf("auth chain of %d events: %w", len(start), err)
		}
		if chain == nil {
			chain = eventSet{}
		}
		return chain, nil
	}
	chain := make(eventSet)
	var frontier []id.EventID
	visit := func(parents []id.EventID, events map[id.EventID]*pdu.PDU) {
		for _, evID := range parents {
			for _, authID := range events[evID].AuthEvents {
				if _, ok := chain[authID]; ok {
					continue
				}
				if prune != nil && prune(authID) {
					continue
				}
				chain[authID] = struct{}{}
				frontier = append(frontier, authID)
			}
		}
	}
	if startEvents == nil {
		startEvents = r.events
	}
	visit(start, startEvents)
	// Walk breadth first so that each layer is one Loader call.
	for len(frontier) > 0 {
		layer := frontier
		frontier = nil
		if err := r.load(layer); err != nil {
			return nil, fmt.Errorf("walk auth chain: %w", err)
		}
		visit(layer, r.events)
	}
	return chain, nil
}

// fullConflictedSet computes the spec's "Full conflicted set": the conflicted
// state set, the auth difference and, for v2.1, the conflicted state subgraph.
// On return every event of the set, and every event of the auth chains of the
// conflicted events, is loaded.
func (r *resolver) fullConflictedSet(states []StateMap, unconflicted StateMap, c *conflicts) (eventSet, error) {
	// "Auth difference": with C_i the full auth chain of state set S_i, it is
	// ∪C_i − ∩C_i. Every unconflicted event is in every S_i, so with U the
	// auth chain of the unconflicted events and A_i the auth chain of S_i's
	// conflicted events, C_i = U ∪ A_i and
	//
	//	∪C_i − ∩C_i = (∪A_i − ∩A_i) − U.
	//
	// The A_i are small (they hang off the few conflicted events); only U
	// depends on the size of the room, and it is only needed when
	// ∪A_i − ∩A_i is not empty, and then only to remove events from it.
	inChains := make(map[id.EventID]int) // event → number of A_i holding it
	for i := range states {
		chain, err := r.authChain(c.perState[i], nil, nil)
		if err != nil {
			return nil, err
		}
		for evID := range chain {
			inChains[evID]++
		}
	}
	if r.chainer != nil {
		// The walk above loaded these; an AuthChainer only returned IDs.
		if err := r.load(sortedIDs(inChains)); err != nil {
			return nil, fmt.Errorf("load auth chains of conflicted events: %w", err)
		}
	}
	n := len(states)
	diff := make(eventSet)
	for evID, count := range inChains {
		if count < n {
			diff[evID] = struct{}{}
		}
	}
	if len(diff) > 0 {
		ids := make([]id.EventID, 0, len(unconflicted))
		for _, evID := range unconflicted {
			ids = append(ids, evID)
		}
		// The unconflicted events are only needed for their auth_events
		// here, so they are read once and not cached: in a large room they
		// are nearly all the events resolution touches.
		var startEvents map[id.EventID]*pdu.PDU
		if r.chainer == nil {
			var err error
			if startEvents, err = r.fetch(ids); err != nil {
				return nil, fmt.Errorf("load unconflicted state: %w", err)
			}
		}
		// An event in every A_i is in ∩C_i, and so is its whole auth chain:
		// nothing below it can be in the difference, so the walk stops there.
		inAll := func(evID id.EventID) bool { return inChains[evID] == n }
		u, err := r.authChain(ids, startEvents, inAll)
		if err != nil {
			return nil, err
		}
		for evID := range diff {
			if _, ok := u[evID]; ok {
				delete(diff, evID)
			}
		}
	}

	full := make(eventSet, len(c.ids)+len(diff))
	for evID := range c.ids {
		full[evID] = struct{}{}
	}
	for evID := range diff {
		full[evID] = struct{}{}
	}
	if r.v21 {
		for evID := range r.conflictedSubgraph(c.ids, inChains) {
			full[evID] = struct{}{}
		}
	}
	return full, nil
}

// conflictedSubgraph computes v2.1's "Conflicted state subgraph": every event on
// an auth_events path between two events of the conflicted state set, the
// endpoints included. An event is on such a path exactly when it is reachable
// from a conflicted event (it is conflicted or in the auth chain of one, i.e.
// in backward) and a conflicted event is reachable from it.
func (r *resolver) conflictedSubgraph(conflicted eventSet, backward map[id.EventID]int) eventSet {
	reaches := make(map[id.EventID]bool, len(backward)+len(conflicted))
	var reachesConflicted func(evID id.EventID) bool
	reachesConflicted = func(evID id.EventID) bool {
		if v, ok := reaches[evID]; ok {
			return v
		}
		reaches[evID] = false // also guards against (invalid) auth cycles
		v := false
		if _, ok := conflicted[evID]; ok {
			v = true
		}
		if evt, ok := r.events[evID]; ok {
			for _, authID := range evt.AuthEvents {
				_, inBackward := backward[authID]
				_, isConflicted := conflicted[authID]
				if (inBackward || isConflicted) && reachesConflicted(authID) {
					v = true
				}
			}
		}
		reaches[evID] = v
		return v
	}
	sub := make(eventSet)
	for evID := range conflicted {
		sub[evID] = struct{}{}
	}
	for evID := range backward {
		if reachesConflicted(evID) {
			sub[evID] = struct{}{}
		}
	}
	return sub
}

// sortedIDs returns the keys of a set in a fixed order, so that anything
// driven by them (load batches, error messages) does not depend on Go's map
// order.
func sortedIDs[V any](m map[id.EventID]V) []id.EventID {
	out := make([]id.EventID, 0, len(m))
	for evID := range m {
		out = append(out, evID)
	}
	slices.Sort(out)
	return out
}
