package rooms

import (
	"context"
	jsonv1 "encoding/json"
	"slices"
	"sort"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"
)

// What other servers may read of a room: its events, state and history,
// for servers with a user in it, and nothing for servers its server ACL
// denies.

var errServerNotInRoom = mautrix.MForbidden.WithMessage("Your server is not in this room")

// checkServer refuses a server the room's ACL denies, or one with no user
// joined to the room.
func (s *Service) checkServer(ctx context.Context, roomID id.RoomID, server string) error {
	if err := s.CheckServerACL(ctx, roomID, server); err != nil {
		return err
	}
	servers, err := s.ServersInRoom(ctx, roomID)
	if err != nil {
		return err
	}
	if !slices.Contains(servers, server) {
		return errServerNotInRoom
	}
	return nil
}

// CheckServerACL refuses a server the room's ACL denies (for endpoints any
// server may call, such as make_join).
func (s *Service) CheckServerACL(ctx context.Context, roomID id.RoomID, server string) error {
	if _, err := s.room(ctx, roomID); err != nil {
		return err
	}
	if ok, err := s.ServerAllowed(ctx, roomID, server); err != nil {
		return err
	} else if !ok {
		return mautrix.MForbidden.WithMessage("Your server is denied by the room's server ACL")
	}
	return nil
}

// EventForServer returns an event as stored (federation format) for a
// server in its room (GET /event).
func (s *Service) EventForServer(ctx context.Context, server string, evID id.EventID) (jsonv1.RawMessage, error) {
	ev, err := s.event(ctx, evID)
	if err != nil {
		return nil, mautrix.MNotFound.WithMessage("Event not found")
	}
	if err := s.checkServer(ctx, ev.RoomID, server); err != nil {
		if errServerNotInRoom.Is(err) && s.worldReadableAt(ctx, ev) {
			err = nil
		}
		if err != nil {
			return nil, err
		}
	}
	raws, err := s.rawPDUs(ctx, []id.EventID{evID})
	if err != nil || len(raws) == 0 {
		return nil, mautrix.MNotFound.WithMessage("Event not found")
	}
	return raws[0], nil
}

// worldReadableAt tells whether anyone may read an event (history
// visibility world_readable at it).
func (s *Service) worldReadableAt(ctx context.Context, ev *Event) bool {
	st, err := s.StateBefore(ctx, ev)
	if err != nil {
		return false
	}
	hv, ok := st[pdu.StateKey{Type: event.StateHistoryVisibility.Type}]
	if !ok {
		return false
	}
	hev, err := s.event(ctx, hv)
	if err != nil {
		return false
	}
	return historyVisibility(hev) == event.HistoryVisibilityWorldReadable
}

// StateIDsForServer returns the state before an event and its auth chain
// (GET /state_ids); at an empty event ID, the room's current state.
func (s *Service) StateIDsForServer(ctx context.Context, server string, roomID id.RoomID, evID id.EventID) (state, authChain []id.EventID, err error) {
	if err := s.checkServer(ctx, roomID, server); err != nil {
		return nil, nil, err
	}
	var st StateMap
	if evID == "" {
		if st, err = s.CurrentState(ctx, roomID); err != nil {
			return nil, nil, err
		}
	} else {
		ev, err := s.event(ctx, evID)
		if err != nil || ev.RoomID != roomID {
			return nil, nil, mautrix.MNotFound.WithMessage("Event not found in this room")
		}
		if ev.StateBefore == 0 && ev.StateAfter == 0 {
			return nil, nil, mautrix.MNotFound.WithMessage("The state at this event is not known here")
		}
		if st, err = s.StateBefore(ctx, ev); err != nil {
			return nil, nil, err
		}
	}
	for _, sid := range st {
		state = append(state, sid)
	}
	sort.Slice(state, func(a, b int) bool { return state[a] < state[b] })
	authChain, err = s.AuthChain(ctx, state)
	return state, authChain, err
}

// StateForServer is StateIDsForServer with the events themselves
// (GET /state).
func (s *Service) StateForServer(ctx context.Context, server string, roomID id.RoomID, evID id.EventID) (state, authChain []jsonv1.RawMessage, err error) {
	ids, chain, err := s.StateIDsForServer(ctx, server, roomID, evID)
	if err != nil {
		return nil, nil, err
	}
	if state, err = s.rawPDUs(ctx, ids); err != nil {
		return nil, nil, err
	}
	authChain, err = s.rawPDUs(ctx, chain)
	return state, authChain, err
}

// EventAuthForServer returns an event's auth chain (GET /event_auth).
func (s *Service) EventAuthForServer(ctx context.Context, server string, roomID id.RoomID, evID id.EventID) ([]jsonv1.RawMessage, error) {
	if err := s.checkServer(ctx, roomID, server); err != nil {
		return nil, err
	}
	ev, err := s.event(ctx, evID)
	if err != nil || ev.RoomID != roomID {
		return nil, mautrix.MNotFound.WithMessage("Event not found in this room")
	}
	chain, err := s.AuthChain(ctx, []id.EventID{evID})
	if err != nil {
		return nil, err
	}
	return s.rawPDUs(ctx, chain)
}

// BackfillForServer walks back from the given events along prev_events,
// newest first by depth, up to limit events (GET /backfill). The events
// given are included, as the spec's examples show.
func (s *Service) BackfillForServer(ctx context.Context, server string, roomID id.RoomID, from []id.EventID, limit int) ([]jsonv1.RawMessage, error) {
	if err := s.checkServer(ctx, roomID, server); err != nil {
		return nil, err
	}
	limit = min(max(limit, 1), 100)
	ids, err := s.walkBack(ctx, roomID, from, nil, limit, 0, true)
	if err != nil {
		return nil, err
	}
	return s.rawPDUs(ctx, ids)
}

// MissingEventsForServer returns events before latest that are not before
// earliest, oldest first, up to limit (POST /get_missing_events).
func (s *Service) MissingEventsForServer(ctx context.Context, server string, roomID id.RoomID, earliest, latest []id.EventID, limit int, minDepth int64) ([]jsonv1.RawMessage, error) {
	if err := s.checkServer(ctx, roomID, server); err != nil {
		return nil, err
	}
	limit = min(max(limit, 1), 100)
	ids, err := s.walkBack(ctx, roomID, latest, earliest, limit, minDepth, false)
	if err != nil {
		return nil, err
	}
	slices.Reverse(ids)
	return s.rawPDUs(ctx, ids)
}

// walkBack walks prev_events from start, deepest first, skipping stop and
// what lies behind it, and returns up to limit event IDs of the room's DAG
// (rejected and soft-failed events are not followed).
func (s *Service) walkBack(ctx context.Context, roomID id.RoomID, start, stop []id.EventID, limit int, minDepth int64, includeStart bool) ([]id.EventID, error) {
	seen := map[id.EventID]bool{}
	for _, x := range stop {
		seen[x] = true
	}
	type cand struct {
		id    id.EventID
		depth int64
	}
	var queue []cand
	push := func(ids []id.EventID) error {
		evs, err := s.Events(ctx, ids)
		if err != nil {
			return err
		}
		for _, evID := range ids {
			ev, ok := evs[evID]
			if !ok || seen[evID] || ev.RoomID != roomID || ev.Rejected || ev.PDU.Depth < minDepth {
				continue
			}
			seen[evID] = true
			queue = append(queue, cand{evID, ev.PDU.Depth})
		}
		return nil
	}
	var out []id.EventID
	if includeStart {
		if err := push(start); err != nil {
			return nil, err
		}
	} else {
		evs, err := s.Events(ctx, start)
		if err != nil {
			return nil, err
		}
		for _, evID := range start {
			seen[evID] = true
			if ev, ok := evs[evID]; ok && ev.RoomID == roomID {
				if err := push(ev.PDU.PrevEvents); err != nil {
					return nil, err
				}
			}
		}
	}
	for len(queue) > 0 && len(out) < limit {
		sort.Slice(queue, func(a, b int) bool { return queue[a].depth > queue[b].depth })
		c := queue[0]
		queue = queue[1:]
		out = append(out, c.id)
		ev, err := s.event(ctx, c.id)
		if err != nil {
			continue
		}
		if err := push(ev.PDU.PrevEvents); err != nil {
			return nil, err
		}
	}
	return out, nil
}
