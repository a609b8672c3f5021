package syncer

import (
	"context"
	"slices"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/rooms"
	"github.com/palpo-im/palpo-desktop/server/storage"
)

// roomsSection fills rooms.join, rooms.invite, rooms.knock and rooms.leave.
func (s *Service) roomsSection(ctx context.Context, req *Request, since, cur Token, resp *mautrix.RespSync) error {
	memberships, err := s.rooms.MembershipsAt(ctx, req.User, cur.Events)
	if err != nil {
		return err
	}
	if req.ignored, err = s.IgnoredUsers(ctx, req.User); err != nil {
		return err
	}
	var rf *mautrix.RoomFilter
	if req.Filter != nil {
		rf = req.Filter.Room
	}
	initial := req.Since == nil
	for _, m := range memberships {
		if rf != nil && !allowsRoom(rf.Rooms, rf.NotRooms, m.RoomID) {
			continue
		}
		changed := m.StreamPos > since.Events // the membership changed in this range
		switch event.Membership(m.Membership) {
		case event.MembershipJoin:
			jr, err := s.joinedRoom(ctx, req, m, since, cur, initial || req.FullState || changed)
			if err != nil {
				return err
			}
			if jr != nil {
				if resp.Rooms.Join == nil {
					resp.Rooms.Join = map[id.RoomID]*mautrix.SyncJoinedRoom{}
				}
				resp.Rooms.Join[m.RoomID] = jr
			}
		case event.MembershipInvite, event.MembershipKnock:
			if !initial && !changed {
				continue
			}
			ev, err := s.rooms.Event(ctx, m.EventID)
			if err != nil {
				return err
			}
			if req.ignored[ev.PDU.Sender] {
				continue // the spec: never send invites from ignored users
			}
			stripped, err := s.rooms.StrippedState(ctx, ev)
			if err != nil {
				return err
			}
			if m.Membership == string(event.MembershipInvite) {
				if resp.Rooms.Invite == nil {
					resp.Rooms.Invite = map[id.RoomID]*mautrix.SyncInvitedRoom{}
				}
				resp.Rooms.Invite[m.RoomID] = &mautrix.SyncInvitedRoom{State: mautrix.SyncEventsList{Events: stripped}}
			} else {
				if resp.Rooms.Knock == nil {
					resp.Rooms.Knock = map[id.RoomID]*mautrix.SyncKnockedRoom{}
				}
				resp.Rooms.Knock[m.RoomID] = &mautrix.SyncKnockedRoom{State: mautrix.SyncEventsList{Events: stripped}}
			}
		case event.MembershipLeave, event.MembershipBan:
			includeLeave := rf != nil && rf.IncludeLeave
			if (initial || req.FullState) && !includeLeave {
				continue
			}
			if !initial && !req.FullState && !changed {
				continue
			}
			if forgotten, err := s.db.IsRoomForgotten(ctx, req.User, m.RoomID); err != nil {
				return err
			} else if forgotten {
				continue
			}
			lr, err := s.leftRoom(ctx, req, m, since)
			if err != nil {
				return err
			}
			if resp.Rooms.Leave == nil {
				resp.Rooms.Leave = map[id.RoomID]*mautrix.SyncLeftRoom{}
			}
			resp.Rooms.Leave[m.RoomID] = lr
		}
	}
	return nil
}

func timelineFilter(req *Request) *mautrix.FilterPart {
	if req.Filter == nil || req.Filter.Room == nil {
		return nil
	}
	return req.Filter.Room.Timeline
}

func stateFilter(req *Request) *mautrix.FilterPart {
	if req.Filter == nil || req.Filter.Room == nil {
		return nil
	}
	return req.Filter.Room.State
}

func timelineLimit(req *Request) int {
	if tf := timelineFilter(req); tf != nil && tf.Limit > 0 {
		return min(tf.Limit, maxTimelineLimit)
	}
	return defaultTimelineLimit
}

// timeline collects the events of a /sync room entry: up to the filter's
// limit of visible, filter-passing events in (from, to], newest last.
func (s *Service) timeline(ctx context.Context, req *Request, roomID id.RoomID, from, to int64, joinedAt int64) ([]*rooms.Event, bool, error) {
	return s.VisibleTimeline(ctx, TimelineQuery{
		User: req.User, Ignored: req.ignored, RoomID: roomID, From: from, To: to,
		Limit: timelineLimit(req), Filter: timelineFilter(req), JoinedAt: joinedAt,
	})
}

// TimelineQuery asks for the newest events of a room a user may see.
type TimelineQuery struct {
	User     id.UserID
	Ignored  map[id.UserID]bool // senders whose events are hidden (IgnoredUsers)
	RoomID   id.RoomID
	From, To int64 // the stream range (From, To]
	Limit    int
	Filter   *mautrix.FilterPart // nil: every event
	// JoinedAt is the stream position of the user's current join (0 if
	// not joined): later events are visible without a state lookup.
	JoinedAt int64
}

// VisibleTimeline collects up to q.Limit visible, filter-passing events of
// the room in (From, To], newest last; limited reports that some were left
// out.
func (s *Service) VisibleTimeline(ctx context.Context, q TimelineQuery) (evs []*rooms.Event, limited bool, err error) {
	limit := q.Limit
	if limit <= 0 {
		return nil, q.To > q.From, nil
	}
	upper := q.To
	// Fetch in batches, newest first, until the limit is filled with events
	// the user may see and the filter lets through.
	for range 20 {
		batch, more, err := s.rooms.Timeline(ctx, q.RoomID, q.From, upper, limit, true)
		if err != nil {
			return nil, false, err
		}
		for i := len(batch) - 1; i >= 0; i-- {
			ev := batch[i]
			upper = ev.StreamPos - 1
			if len(evs) == limit {
				return reverse(evs), true, nil
			}
			ok, err := s.visible(ctx, q.User, ev, q.JoinedAt)
			if err != nil {
				return nil, false, err
			}
			if !ok || HiddenByIgnore(q.Ignored, ev) {
				continue
			}
			if q.Filter != nil {
				ce, err := s.rooms.ClientEvent(ctx, ev)
				if err != nil {
					return nil, false, err
				}
				if !allows(q.Filter, ce) {
					continue
				}
			}
			evs = append(evs, ev)
		}
		if !more {
			return reverse(evs), false, nil
		}
		if len(evs) == limit {
			return reverse(evs), true, nil
		}
	}
	return reverse(evs), true, nil
}

func reverse(evs []*rooms.Event) []*rooms.Event {
	slices.Reverse(evs)
	return evs
}

// visible applies history visibility; events after the user's current join
// are visible without looking at the room's state.
func (s *Service) visible(ctx context.Context, user id.UserID, ev *rooms.Event, joinedAt int64) (bool, error) {
	if joinedAt > 0 && ev.StreamPos >= joinedAt {
		return true, nil
	}
	return s.rooms.CanSee(ctx, user, ev)
}

// joinedRoom builds one rooms.join entry; nil when an incremental sync has
// nothing for the room.
func (s *Service) joinedRoom(ctx context.Context, req *Request, m membershipRow, since, cur Token, full bool) (*mautrix.SyncJoinedRoom, error) {
	from := since.Events
	if full {
		from = 0
	}
	evs, limited, err := s.timeline(ctx, req, m.RoomID, from, cur.Events, m.StreamPos)
	if err != nil {
		return nil, err
	}
	jr := &mautrix.SyncJoinedRoom{}
	// State up to the start of the timeline.
	var stateAtStart rooms.StateMap
	if len(evs) > 0 {
		if stateAtStart, err = s.rooms.StateBefore(ctx, evs[0]); err != nil {
			return nil, err
		}
	} else if stateAtStart, err = s.rooms.StateAtPosition(ctx, m.RoomID, cur.Events); err != nil {
		return nil, err
	}
	var stateKeys rooms.StateMap
	switch {
	case full:
		stateKeys = stateAtStart
	case limited:
		// Only what changed between since and the start of the timeline.
		before, err := s.rooms.StateAtPosition(ctx, m.RoomID, since.Events)
		if err != nil {
			return nil, err
		}
		stateKeys = rooms.StateMap{}
		for k, v := range stateAtStart {
			if before[k] != v {
				stateKeys[k] = v
			}
		}
	}
	sf := stateFilter(req)
	lazy := sf != nil && sf.LazyLoadMembers
	if lazy {
		stateKeys = s.lazyState(req, m.RoomID, stateKeys, stateAtStart, evs, full)
	}
	if len(stateKeys) > 0 {
		stateEvs, err := s.rooms.StateEvents(ctx, stateKeys, nil)
		if err != nil {
			return nil, err
		}
		for _, ev := range stateEvs {
			ce, err := s.rooms.ClientEvent(ctx, ev)
			if err != nil {
				return nil, err
			}
			if sf != nil && !allows(sf, ce) {
				continue
			}
			jr.State.Events = append(jr.State.Events, ce)
		}
		sortState(jr.State.Events)
	}
	for _, ev := range evs {
		ce, err := s.clientEvent(ctx, req, ev)
		if err != nil {
			return nil, err
		}
		jr.Timeline.Events = append(jr.Timeline.Events, ce)
	}
	jr.Timeline.Limited = limited
	if limited || full {
		// The spec bundles aggregations into limited timelines (and
		// Synapse into a newly joined room's): a client that sees the
		// whole range aggregates the children itself.
		if err := s.rooms.BundleAggregations(ctx, req.User, evs, jr.Timeline.Events); err != nil {
			return nil, err
		}
	}
	if len(evs) > 0 {
		jr.Timeline.PrevBatch = Token{Events: evs[0].StreamPos - 1}.String()
	} else {
		jr.Timeline.PrevBatch = cur.String()
	}
	if !full && len(evs) == 0 && len(jr.State.Events) == 0 {
		return nil, nil
	}
	if lazy {
		dev := lazyDevice{req.User, req.Device}
		s.lazy.record(dev, m.RoomID, jr.State.Events)
		s.lazy.record(dev, m.RoomID, jr.Timeline.Events)
	}
	if full || lazy || hasMemberChange(evs) {
		if err := s.summary(ctx, m.RoomID, req.User, jr); err != nil {
			return nil, err
		}
	}
	return jr, nil
}

// membershipRow is a user's membership of a room as of the sync's position.
type membershipRow = storage.MembershipEvent

// lazyMembers keeps from a state map every non-member entry, and member
// entries only for the timeline's senders and the user: what a client needs
// to render the timeline ("lazy-loading room members").
func lazyMembers(state rooms.StateMap, timeline []*rooms.Event, user id.UserID) rooms.StateMap {
	want := map[string]bool{string(user): true}
	for _, ev := range timeline {
		want[string(ev.PDU.Sender)] = true
	}
	out := make(rooms.StateMap, len(state))
	for k, v := range state {
		if k.Type != event.StateMember.Type || want[k.StateKey] {
			out[k] = v
		}
	}
	return out
}

func hasMemberChange(evs []*rooms.Event) bool {
	for _, ev := range evs {
		if ev.PDU.Type == event.StateMember.Type {
			return true
		}
	}
	return false
}

// summary fills the room summary: member counts and up to five heroes.
func (s *Service) summary(ctx context.Context, roomID id.RoomID, user id.UserID, jr *mautrix.SyncJoinedRoom) error {
	joined, err := s.db.Members(ctx, roomID, string(event.MembershipJoin))
	if err != nil {
		return err
	}
	invited, err := s.db.Members(ctx, roomID, string(event.MembershipInvite))
	if err != nil {
		return err
	}
	nj, ni := len(joined), len(invited)
	jr.Summary.JoinedMemberCount = &nj
	jr.Summary.InvitedMemberCount = &ni
	for _, u := range append(joined, invited...) {
		if u != user && len(jr.Summary.Heroes) < 5 {
			jr.Summary.Heroes = append(jr.Summary.Heroes, u)
		}
	}
	return nil
}

// leftRoom builds a rooms.leave entry: the timeline up to the leave.
func (s *Service) leftRoom(ctx context.Context, req *Request, m membershipRow, since Token) (*mautrix.SyncLeftRoom, error) {
	from := since.Events
	if req.Since == nil || req.FullState {
		from = 0
	}
	evs, limited, err := s.timeline(ctx, req, m.RoomID, from, m.StreamPos, 0)
	if err != nil {
		return nil, err
	}
	lr := &mautrix.SyncLeftRoom{}
	for _, ev := range evs {
		ce, err := s.clientEvent(ctx, req, ev)
		if err != nil {
			return nil, err
		}
		lr.Timeline.Events = append(lr.Timeline.Events, ce)
	}
	lr.Timeline.Limited = limited
	if limited {
		if err := s.rooms.BundleAggregations(ctx, req.User, evs, lr.Timeline.Events); err != nil {
			return nil, err
		}
	}
	if len(evs) > 0 {
		lr.Timeline.PrevBatch = Token{Events: evs[0].StreamPos - 1}.String()
		state, err := s.rooms.StateBefore(ctx, evs[0])
		if err != nil {
			return nil, err
		}
		if stateFilter(req) != nil && stateFilter(req).LazyLoadMembers {
			state = lazyMembers(state, evs, req.User)
		}
		if !(req.Since != nil && !limited && !req.FullState) {
			stateEvs, err := s.rooms.StateEvents(ctx, state, nil)
			if err != nil {
				return nil, err
			}
			for _, ev := range stateEvs {
				ce, err := s.rooms.ClientEvent(ctx, ev)
				if err != nil {
					return nil, err
				}
				lr.State.Events = append(lr.State.Events, ce)
			}
			sortState(lr.State.Events)
		}
	}
	return lr, nil
}

// clientEvent converts a timeline event for the syncing device.
func (s *Service) clientEvent(ctx context.Context, req *Request, ev *rooms.Event) (*event.Event, error) {
	return s.ClientEvent(ctx, req.User, req.Device, ev)
}

// ClientEvent converts a timeline event as the user's device receives it
// (rooms.ClientEventFor: unsigned membership and transaction ID).
func (s *Service) ClientEvent(ctx context.Context, user id.UserID, device id.DeviceID, ev *rooms.Event) (*event.Event, error) {
	return s.rooms.ClientEventFor(ctx, user, device, ev)
}

// sortState orders state events deterministically (type, then state key).
func sortState(evs []*event.Event) {
	slices.SortFunc(evs, func(a, b *event.Event) int {
		if a.Type.Type != b.Type.Type {
			if a.Type.Type < b.Type.Type {
				return -1
			}
			return 1
		}
		ak, bk := "", ""
		if a.StateKey != nil {
			ak = *a.StateKey
		}
		if b.StateKey != nil {
			bk = *b.StateKey
		}
		switch {
		case ak < bk:
			return -1
		case ak > bk:
			return 1
		}
		return 0
	})
}
