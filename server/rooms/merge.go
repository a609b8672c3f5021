package rooms

import (
	"context"
	"fmt"
	"slices"

	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/rooms/stateres"
)

// mergedHead resolves the state after each forward extremity into the state
// the next event sits on (state resolution v2, or v2.1 in v12 rooms).
func (s *Service) mergedHead(ctx context.Context, r *room, h *roomHead, extremities map[id.EventID]*Event) (*roomHead, error) {
	states := make([]stateres.StateMap, 0, len(extremities))
	for _, evID := range h.prevEvents {
		ev, ok := extremities[evID]
		if !ok {
			return nil, fmt.Errorf("forward extremity %s not found", evID)
		}
		st, err := s.StateAfter(ctx, ev)
		if err != nil {
			return nil, err
		}
		states = append(states, stateres.StateMap(st))
	}
	resolved, err := stateres.Resolve(ctx, r.Version, states, pduLoader{s: s})
	if err != nil {
		return nil, fmt.Errorf("resolve state of %s: %w", r.ID, err)
	}
	h.state = StateMap(resolved)
	h.stateGroup = 0
	h.chainLen = 0
	h.resolved = true
	return h, nil
}

// pduLoader lets state resolution read events through the service's cache,
// and extra, an event not stored yet whose state is being resolved (one
// from another server that forks the room).
type pduLoader struct {
	s     *Service
	extra *Event
}

func (l pduLoader) Events(ctx context.Context, ids []id.EventID) (map[id.EventID]*pdu.PDU, error) {
	evs, err := l.s.Events(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make(map[id.EventID]*pdu.PDU, len(evs)+1)
	if l.extra != nil && slices.Contains(ids, l.extra.ID) {
		out[l.extra.ID] = l.extra.PDU
	}
	for evID, ev := range evs {
		out[evID] = ev.PDU
	}
	return out, nil
}
