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
			full := initial || req.FullState || changed
			// No event of the room in the range: an incremental entry
			// would be empty (typing, receipts, account data and counts
			// add the room in their own sections). Reading its timeline
			// and state to find so cost two statements per room on every
			// sync, in a room list of dozens.
			if !full && m.RoomLastPos <= since.Events {
				continue
			}
			jr, err := s.joinedRoom(ctx, req, m, since, cur, full)
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
			full := initial || req.FullState
			switch {
			case full:
				if rf == nil || !rf.IncludeLeave {
					continue
				}
				// A forgotten room is gone from the user's room lists; but
				// an incremental sync over the leave still reports it, as
				// Synapse does: the leave happened in its range.
				if forgotten, err := s.db.IsRoomForgotten(ctx, req.User, m.RoomID); err != nil {
					return err
				} else if forgotten {
					continue
				}
			case !changed:
				continue
			default:
				// A room joined and left since the last sync is new to the
				// client: it gets the whole state.
				if full, err = s.db.JoinedWithin(ctx, m.RoomID, req.User, since.Events, m.StreamPos); err != nil {
					return err
				}
			}
			lr, err := s.leftRoom(ctx, req, m, since, full)
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
	tf := timelineFilter(req)
	switch {
	case tf == nil || tf.Limit == 0:
		return defaultTimelineLimit
	case tf.Limit == noTimelineEvents:
		return 0
	}
	return min(tf.Limit, maxTimelineLimit)
}

// timelineBatch is a room entry's timeline over the stream range
// (from, to] and the state a client needs before it, both as the filter
// lets through.
type timelineBatch struct {
	evs      []*rooms.Event // the timeline's events, oldest first
	timeline mautrix.SyncTimeline
	state    []*event.Event
	// atStart is the room's state at the timeline's start.
	atStart rooms.StateMap
}

// roomBatch builds a room entry's timeline over (from, to] and its state:
// with full, all of the state at the timeline's start; otherwise what
// changed between from and the timeline's start when the timeline does
// not hold every event of the range (the limit, the filter or history
// visibility left some out), so the client misses no state change.
// joinedAt is the user's join position (0 if not joined), for visibility.
func (s *Service) roomBatch(ctx context.Context, req *Request, roomID id.RoomID, from, to, joinedAt int64, full bool) (*timelineBatch, error) {
	evs, limited, gap, err := s.visibleTimeline(ctx, TimelineQuery{
		User: req.User, Ignored: req.ignored, RoomID: roomID, From: from, To: to,
		Limit: timelineLimit(req), Filter: timelineFilter(req), JoinedAt: joinedAt,
	})
	if err != nil {
		return nil, err
	}
	b := &timelineBatch{evs: evs}
	if len(evs) > 0 {
		if b.atStart, err = s.rooms.StateBefore(ctx, evs[0]); err != nil {
			return nil, err
		}
	} else if b.atStart, err = s.rooms.StateAtPosition(ctx, roomID, to); err != nil {
		return nil, err
	}
	var stateKeys rooms.StateMap
	switch {
	case full:
		stateKeys = b.atStart
	case gap:
		before, err := s.rooms.StateAtPosition(ctx, roomID, from)
		if err != nil {
			return nil, err
		}
		stateKeys = rooms.StateMap{}
		for k, v := range b.atStart {
			if before[k] != v {
				stateKeys[k] = v
			}
		}
	}
	sf := stateFilter(req)
	if sf != nil && sf.LazyLoadMembers {
		stateKeys = s.lazyState(req, roomID, stateKeys, b.atStart, evs, full)
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
			b.state = append(b.state, ce)
		}
		sortState(b.state)
	}
	for _, ev := range evs {
		ce, err := s.clientEvent(ctx, req, ev)
		if err != nil {
			return nil, err
		}
		b.timeline.Events = append(b.timeline.Events, ce)
	}
	b.timeline.Limited = limited
	if limited || full {
		// The spec bundles aggregations into limited timelines (and
		// Synapse into a newly joined room's): a client that sees the
		// whole range aggregates the children itself.
		if err := s.rooms.BundleAggregations(ctx, req.User, evs, b.timeline.Events); err != nil {
			return nil, err
		}
	}
	if len(evs) > 0 {
		b.timeline.PrevBatch = Token{Events: evs[0].StreamPos - 1}.String()
	}
	return b, nil
}

// recordLazy remembers the memberships a lazy-loading device was sent.
func (s *Service) recordLazy(req *Request, roomID id.RoomID, b *timelineBatch) {
	if sf := stateFilter(req); sf == nil || !sf.LazyLoadMembers {
		return
	}
	dev := lazyDevice{req.User, req.Device}
	s.lazy.record(dev, roomID, b.state)
	s.lazy.record(dev, roomID, b.timeline.Events)
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
// the room in (From, To], newest last; limited reports that the limit left
// out some such event (events the user may not see, or the filter drops,
// do not make a timeline limited).
func (s *Service) VisibleTimeline(ctx context.Context, q TimelineQuery) (evs []*rooms.Event, limited bool, err error) {
	evs, limited, _, err = s.visibleTimeline(ctx, q)
	return evs, limited, err
}

// A timeline scan reads at most timelineScanFactor times the limit, and
// at least timelineScanMin, events looking for those the user may see and
// the filter lets through; past that the timeline is reported limited.
const (
	timelineScanFactor = 20
	timelineScanMin    = 200
)

// visibleTimeline is VisibleTimeline that also reports a gap: the range
// holds events the timeline does not (for its limit, the filter or
// history visibility).
func (s *Service) visibleTimeline(ctx context.Context, q TimelineQuery) (evs []*rooms.Event, limited, gap bool, err error) {
	limit := q.Limit
	if limit <= 0 {
		return nil, q.To > q.From, q.To > q.From, nil
	}
	// Read batches newest first until the limit is filled and one more
	// event the client would have been sent shows the limit cut the range,
	// or the range ends. The first batch is just enough when nothing is
	// left out (the common case: a room list asking for one event per
	// room); later ones grow, so a filter that drops most events still
	// finds its few.
	budget := max(timelineScanFactor*limit, timelineScanMin)
	batchSize := limit + 1
	upper := q.To
	for budget > 0 {
		batch, more, err := s.rooms.Timeline(ctx, q.RoomID, q.From, upper, min(batchSize, budget), true)
		if err != nil {
			return nil, false, false, err
		}
		budget -= len(batch)
		batchSize = max(2*batchSize, 20)
		for i := len(batch) - 1; i >= 0; i-- {
			ev := batch[i]
			upper = ev.StreamPos - 1
			ok, err := s.wanted(ctx, q, ev)
			if err != nil {
				return nil, false, false, err
			}
			if !ok {
				gap = true
				continue
			}
			if len(evs) == limit {
				return reverse(evs), true, true, nil
			}
			evs = append(evs, ev)
		}
		if !more {
			return reverse(evs), false, gap, nil
		}
	}
	return reverse(evs), true, true, nil
}

// wanted tells whether a timeline event goes to the client: the user may
// see it, its sender is not ignored, and the filter lets it through.
func (s *Service) wanted(ctx context.Context, q TimelineQuery, ev *rooms.Event) (bool, error) {
	ok, err := s.visible(ctx, q.User, ev, q.JoinedAt)
	if err != nil || !ok || HiddenByIgnore(q.Ignored, ev) {
		return false, err
	}
	if q.Filter == nil {
		return true, nil
	}
	ce, err := s.rooms.ClientEvent(ctx, ev)
	if err != nil {
		return false, err
	}
	return allows(q.Filter, ce), nil
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
	b, err := s.roomBatch(ctx, req, m.RoomID, from, cur.Events, m.StreamPos, full)
	if err != nil {
		return nil, err
	}
	if !full && len(b.evs) == 0 && len(b.state) == 0 {
		return nil, nil
	}
	jr := &mautrix.SyncJoinedRoom{State: mautrix.SyncEventsList{Events: b.state}, Timeline: b.timeline}
	if jr.Timeline.PrevBatch == "" {
		jr.Timeline.PrevBatch = cur.String()
	}
	s.recordLazy(req, m.RoomID, b)
	sf := stateFilter(req)
	if full || (sf != nil && sf.LazyLoadMembers) || hasMemberChange(b.evs) {
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
	joined, err := s.rooms.JoinedUsers(ctx, roomID)
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

// leftRoom builds a rooms.leave entry: the room as the user saw it up to
// their leave, filtered like a joined room's. full gives the whole state
// at the timeline's start: for an initial or full-state sync, and for a
// room the user joined and left within the sync's range (the client
// never had it).
func (s *Service) leftRoom(ctx context.Context, req *Request, m membershipRow, since Token, full bool) (*mautrix.SyncLeftRoom, error) {
	from := since.Events
	if full {
		from = 0
	}
	b, err := s.roomBatch(ctx, req, m.RoomID, from, m.StreamPos, 0, full)
	if err != nil {
		return nil, err
	}
	s.recordLazy(req, m.RoomID, b)
	lr := &mautrix.SyncLeftRoom{State: mautrix.SyncEventsList{Events: b.state}, Timeline: b.timeline}
	if lr.Timeline.PrevBatch == "" {
		lr.Timeline.PrevBatch = Token{Events: m.StreamPos}.String()
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
