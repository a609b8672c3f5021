package rooms

import (
	"context"
	jsonv1 "encoding/json"
	"maps"
	"reflect"
	"sort"

	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/rooms/authrules"
	"github.com/palpo-im/palpo-desktop/server/rooms/stateres"
	"github.com/palpo-im/palpo-desktop/server/storage"
)

// Backfill: a room joined from another server starts, here, at the join;
// what came before is fetched from a server in the room when /messages
// reaches the start (GET /backfill). The events are checked like any from
// another server, given the state at each (the state at the oldest asked of
// the server, /state_ids, and worked forward), and stored before the
// timeline's first stream position, so paging back finds them in order and
// /sync never takes them for new.

// Backfiller is the part of Remote that backfills; the federation
// service's remote implements it.
type Backfiller interface {
	Backfill(ctx context.Context, server string, roomID id.RoomID, from []id.EventID, limit int) ([]jsonv1.RawMessage, error)
}

// MayBackfill tells whether other servers may hold history of a room
// older than its oldest event here.
func (s *Service) MayBackfill(ctx context.Context, roomID id.RoomID) (bool, error) {
	_, missing, err := s.backfillFrom(ctx, roomID)
	return len(missing) > 0, err
}

// backfillFrom returns the room and the events backfill asks for: the
// unknown parents of its oldest event here.
func (s *Service) backfillFrom(ctx context.Context, roomID id.RoomID) (*room, []id.EventID, error) {
	if _, ok := s.Remote.(Backfiller); !ok || s.Remote == nil {
		return nil, nil, nil
	}
	r, err := s.room(ctx, roomID)
	if err != nil {
		return nil, nil, err
	}
	oldestID, err := s.db.OldestTimelineEvent(ctx, string(roomID))
	if err != nil || oldestID == "" {
		return nil, nil, err
	}
	first, err := s.event(ctx, id.EventID(oldestID))
	if err != nil {
		return nil, nil, err
	}
	missing, err := s.missingEvents(ctx, first.PDU.PrevEvents)
	return r, missing, err
}

// Backfill fetches up to limit events older than the room's oldest here,
// from a server in the room, and stores them. It returns how many it
// stored; 0 when there is nothing before (the room began here) or no
// server answers.
func (s *Service) Backfill(ctx context.Context, roomID id.RoomID, limit int) (int, error) {
	r, missing, err := s.backfillFrom(ctx, roomID)
	if err != nil || len(missing) == 0 {
		return 0, err // the room's history is all here
	}
	bf := s.Remote.(Backfiller)
	servers, err := s.ServersInRoom(ctx, roomID)
	if err != nil {
		return 0, err
	}
	limit = min(max(limit, 1), 100)
	for _, server := range servers {
		if server == s.serverName {
			continue
		}
		raws, err := bf.Backfill(ctx, server, roomID, missing, limit)
		if err != nil {
			s.log.Info("backfill failed", "room", roomID, "server", server, "error", err)
			continue
		}
		n, err := s.storeBackfill(ctx, r, server, raws)
		if err != nil {
			s.log.Info("backfilled events not stored", "room", roomID, "server", server, "error", err)
			continue
		}
		return n, nil
	}
	return 0, nil
}

// storeBackfill checks and stores events a server backfilled.
func (s *Service) storeBackfill(ctx context.Context, r *room, server string, raws []jsonv1.RawMessage) (int, error) {
	var evs []*Event
	var stored [][]byte
	seen := map[id.EventID]bool{}
	for _, raw := range raws {
		ev, st, err := s.parseRemote(ctx, r, raw)
		if err != nil {
			s.log.Info("dropped a backfilled event", "room", r.ID, "server", server, "error", err)
			continue
		}
		if seen[ev.ID] {
			continue
		}
		seen[ev.ID] = true
		evs = append(evs, ev)
		stored = append(stored, st)
	}
	ids := make([]id.EventID, len(evs))
	for i, ev := range evs {
		ids[i] = ev.ID
	}
	have, err := s.db.GetEvents(ctx, ids)
	if err != nil {
		return 0, err
	}
	// Oldest first: each event's state is worked out from its parents'.
	order := make([]int, 0, len(evs))
	for i, ev := range evs {
		// An outlier (state learned at the join, or a gap's edge) takes
		// its place in the timeline now.
		if h, ok := have[ev.ID]; !ok || h.Outlier == storage.OutlierState {
			order = append(order, i)
		}
	}
	sort.SliceStable(order, func(a, b int) bool { return evs[order[a]].PDU.Depth < evs[order[b]].PDU.Depth })
	for _, i := range order {
		if err := s.fetchAuthEvents(ctx, r, server, evs[i].PDU, 0); err != nil {
			return 0, err
		}
	}
	after := map[id.EventID]StateMap{}
	befores := make([]StateMap, len(order))
	getKey := s.remoteKey(ctx)
	var keep []int
	for n, i := range order {
		ev := evs[i]
		var states []StateMap
		var gaps []id.EventID
		for _, prev := range ev.PDU.PrevEvents {
			if st, ok := after[prev]; ok {
				states = append(states, st)
			} else {
				gaps = append(gaps, prev)
			}
		}
		if len(gaps) > 0 {
			// Parents from this batch's edge or already here: their state
			// from here if we have it, else from the server.
			known, err := s.Events(ctx, gaps)
			if err != nil {
				return 0, err
			}
			var ask []id.EventID
			for _, prev := range gaps {
				if k, ok := known[prev]; ok && (k.StateAfter != 0 || k.StateBefore != 0) {
					st, err := s.StateAfter(ctx, k)
					if err != nil {
						return 0, err
					}
					states = append(states, st)
				} else {
					ask = append(ask, prev)
				}
			}
			gapStates, err := s.gapStates(ctx, r, server, ask)
			if err != nil {
				return 0, err
			}
			for _, st := range gapStates {
				states = append(states, st)
			}
		}
		before, err := s.resolveStates(ctx, r, states)
		if err != nil {
			return 0, err
		}
		if err := authrules.Authorize(r.Version, ev.PDU, nil, s.pdus(ctx), getKey); err != nil {
			s.log.Info("rejected a backfilled event", "room", r.ID, "event", ev.ID, "reason", err)
			continue
		}
		if err := authrules.Authorize(r.Version, ev.PDU, s.authEventsFrom(ctx, ev.PDU, r.Version, before), s.pdus(ctx), getKey); err != nil {
			s.log.Info("rejected a backfilled event", "room", r.ID, "event", ev.ID, "reason", err)
			continue
		}
		st := before
		if ev.IsState() {
			st = maps.Clone(before)
			st[pdu.StateKey{Type: ev.PDU.Type, StateKey: ev.StateKey()}] = ev.ID
		}
		after[ev.ID] = st
		befores[n] = before
		keep = append(keep, n)
	}
	if len(keep) == 0 {
		return 0, nil
	}
	// Stored newest first, each taking the stream position before all
	// others, so the oldest ends lowest. Events with the same state before
	// them share one snapshot.
	var stored2 []*storage.NewEvent
	var built []*Event
	byState := map[uintptr]*storage.NewEvent{}
	for k := len(keep) - 1; k >= 0; k-- {
		n := keep[k]
		i := order[n]
		ev := evs[i]
		ne := s.remoteNewEvent(r, ev, stored[i])
		ne.Backfilled = true
		before := befores[n]
		ptr := reflect.ValueOf(before).Pointer()
		if same, ok := byState[ptr]; ok {
			ne.SameStateBefore = same
		} else {
			ne.BeforeState = before
			byState[ptr] = ne
		}
		if ev.IsState() {
			ne.StateDelta = StateMap{{Type: ev.PDU.Type, StateKey: ev.StateKey()}: ev.ID}
		}
		stored2 = append(stored2, ne)
		built = append(built, ev)
	}
	defer s.locks.lock(r.ID)()
	s.settle(r.ID)
	for _, ev := range built {
		s.cache.pin(ev)
	}
	if err := s.commitRemote(r, stored2, built, false); err != nil {
		return 0, err
	}
	return len(built), nil
}

// resolveStates is the state where several states meet: one alone, or
// their resolution.
func (s *Service) resolveStates(ctx context.Context, r *room, states []StateMap) (StateMap, error) {
	switch len(states) {
	case 0:
		return StateMap{}, nil
	case 1:
		return states[0], nil
	}
	in := make([]stateres.StateMap, len(states))
	for i, st := range states {
		in[i] = stateres.StateMap(st)
	}
	res, err := stateres.Resolve(ctx, r.Version, in, pduLoader{s: s})
	if err != nil {
		return nil, err
	}
	return StateMap(res), nil
}
