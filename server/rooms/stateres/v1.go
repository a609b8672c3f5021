package stateres

import (
	"cmp"
	"crypto/sha1"
	"fmt"
	"maps"
	"slices"

	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"
)

// This file is the original state resolution algorithm, used by room version
// 1 only (rooms/v1.md, "State resolution"). Where the spec's text leaves room,
// it follows Synapse: a key missing from some state sets is not a conflict,
// the keys of one pass are resolved independently of each other against the
// state the previous pass left, and when no conflicted event of an ordinary
// key passes the auth rules, the one with the lowest depth is kept.

// separateV1 splits the state sets: a key is conflicted when the state sets
// that have it hold different events for it ("A conflict occurs between
// states where those states have different event_ids for the same
// (event_type, state_key)"). The conflicted events of a key are returned in
// no particular order, without duplicates.
func separateV1(states []StateMap) (StateMap, map[pdu.StateKey][]id.EventID, error) {
	unconflicted := make(StateMap, len(states[0]))
	conflicted := make(map[pdu.StateKey][]id.EventID)
	for _, s := range states {
		for k, v := range s {
			if v == "" {
				return nil, nil, fmt.Errorf("%w: empty event ID for (%s, %q)", ErrInvalidState, k.Type, k.StateKey)
			}
			if evs, ok := conflicted[k]; ok {
				if !slices.Contains(evs, v) {
					conflicted[k] = append(evs, v)
				}
				continue
			}
			prev, ok := unconflicted[k]
			switch {
			case !ok:
				unconflicted[k] = v
			case prev != v:
				conflicted[k] = []id.EventID{prev, v}
				delete(unconflicted, k)
			}
		}
	}
	return unconflicted, conflicted, nil
}

// resolveV1 resolves the conflicted keys on top of the unconflicted state:
// first the power levels, then the join rules, then the memberships, each
// pass seeing what the earlier ones resolved, and finally every other key.
func (r *resolver) resolveV1(unconflicted StateMap, conflicted map[pdu.StateKey][]id.EventID) (StateMap, error) {
	c := &conflicts{ids: make(eventSet), keys: make(map[id.EventID]pdu.StateKey)}
	for k, evs := range conflicted {
		for _, evID := range evs {
			c.ids[evID] = struct{}{}
			c.keys[evID] = k
		}
	}
	ids := sortedIDs(c.ids)
	if err := r.load(ids); err != nil {
		return nil, fmt.Errorf("load conflicted events: %w", err)
	}
	if err := r.checkConflicted(ids, c); err != nil {
		return nil, err
	}
	if err := r.checkRoom(c.ids); err != nil {
		return nil, err
	}

	keys := slices.SortedFunc(maps.Keys(conflicted), func(a, b pdu.StateKey) int {
		return cmp.Or(cmp.Compare(a.Type, b.Type), cmp.Compare(a.StateKey, b.StateKey))
	})
	resolved := maps.Clone(unconflicted)
	done := make(map[pdu.StateKey]bool, len(keys))
	pass := func(match func(pdu.StateKey) bool, pick func(StateMap, pdu.StateKey, []*pdu.PDU) (id.EventID, error)) error {
		// Keys of one pass are checked against the same state, so the
		// order they are visited in does not matter.
		base := maps.Clone(resolved)
		for _, k := range keys {
			if done[k] || !match(k) {
				continue
			}
			winner, err := pick(base, k, r.v1Ordered(conflicted[k]))
			if err != nil {
				return err
			}
			resolved[k] = winner
			done[k] = true
		}
		return nil
	}
	for _, match := range []func(pdu.StateKey) bool{
		func(k pdu.StateKey) bool { return k.Type == typePowerLevels && k.StateKey == "" },
		func(k pdu.StateKey) bool { return k.Type == typeJoinRules },
		func(k pdu.StateKey) bool { return k.Type == typeMember },
	} {
		if err := pass(match, r.v1ResolveAuthKey); err != nil {
			return nil, err
		}
	}
	if err := pass(func(pdu.StateKey) bool { return true }, r.v1ResolveOtherKey); err != nil {
		return nil, err
	}
	return resolved, nil
}

// v1Ordered sorts events by descending depth, then ascending sha1(event_id):
// the order in which the spec picks an ordinary event, and the reverse of
// the order in which it applies the events of an auth key.
func (r *resolver) v1Ordered(ids []id.EventID) []*pdu.PDU {
	evs := make([]*pdu.PDU, len(ids))
	sums := make(map[id.EventID][sha1.Size]byte, len(ids))
	for i, evID := range ids {
		evs[i] = r.events[evID]
		sums[evID] = sha1.Sum([]byte(evID))
	}
	slices.SortFunc(evs, func(a, b *pdu.PDU) int {
		if c := cmp.Compare(b.Depth, a.Depth); c != 0 {
			return c
		}
		sa, sb := sums[a.InternalMeta.EventID], sums[b.InternalMeta.EventID]
		return slices.Compare(sa[:], sb[:])
	})
	return evs
}

// v1ResolveAuthKey resolves the conflicted events of a key that affects the
// auth rules: in ascending depth and descending sha1(event_id), the first
// event is taken and each next one replaces it while the auth rules allow it
// in the state so far; the first one they reject ends the pass.
func (r *resolver) v1ResolveAuthKey(state StateMap, k pdu.StateKey, ordered []*pdu.PDU) (id.EventID, error) {
	st := &overlay{base: state, changes: make(StateMap, 1)}
	winner := ordered[len(ordered)-1].InternalMeta.EventID
	for i := len(ordered) - 2; i >= 0; i-- {
		st.set(k, winner)
		evt := ordered[i]
		ok, err := r.v1Allowed(evt, st)
		if err != nil {
			return "", err
		}
		if !ok {
			break
		}
		winner = evt.InternalMeta.EventID
	}
	return winner, nil
}

// v1ResolveOtherKey picks, of the conflicted events of any other key, the one
// with the highest depth and lowest sha1(event_id) that the auth rules allow
// in the resolved state, or the one with the lowest depth if none is.
func (r *resolver) v1ResolveOtherKey(state StateMap, _ pdu.StateKey, ordered []*pdu.PDU) (id.EventID, error) {
	st := &overlay{base: state}
	for _, evt := range ordered {
		ok, err := r.v1Allowed(evt, st)
		if err != nil {
			return "", err
		}
		if ok {
			return evt.InternalMeta.EventID, nil
		}
	}
	return ordered[len(ordered)-1].InternalMeta.EventID, nil
}

// v1Allowed checks an event against the auth rules with its auth events
// taken from the given state only.
func (r *resolver) v1Allowed(evt *pdu.PDU, state *overlay) (bool, error) {
	selection := evt.AuthEventSelection(r.version)
	authEvents := make([]*pdu.PDU, 0, len(selection))
	for _, key := range selection {
		if evID, ok := state.get(key); ok {
			ae, err := r.event(evID)
			if err != nil {
				return false, fmt.Errorf("auth events for %s: %w", evt.InternalMeta.EventID, err)
			}
			authEvents = append(authEvents, ae)
		}
	}
	ok, err := r.allowed(evt, authEvents)
	if err != nil {
		return false, fmt.Errorf("authorise %s: %w", evt.InternalMeta.EventID, err)
	}
	return ok, nil
}
