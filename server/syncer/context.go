package syncer

import (
	"context"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/rooms"
)

// ContextRequest is a GET /rooms/{roomId}/context/{eventId}.
type ContextRequest struct {
	User    id.UserID
	Device  id.DeviceID
	RoomID  id.RoomID
	EventID id.EventID
	// Limit is the number of events before and after together; negative
	// means the default.
	Limit  int
	Filter *mautrix.FilterPart

	// ignored is the user's ignore list (ignore.go), read by Context.
	ignored map[id.UserID]bool
}

// ContextResponse is the answer to /context.
type ContextResponse struct {
	Start        string         `json:"start"`
	End          string         `json:"end"`
	EventsBefore []*event.Event `json:"events_before"`
	Event        *event.Event   `json:"event"`
	EventsAfter  []*event.Event `json:"events_after"`
	State        []*event.Event `json:"state"`
}

// defaultContextLimit is the spec's default for /context's limit.
const defaultContextLimit = 10

// contextScanBatches bounds how many batches one side of a context reads
// looking for events the user may see and the filter lets through; the
// tokens then point where the scan stopped, so /messages carries on from
// there.
const contextScanBatches = 10

// errContextNotFound is the one answer for an event that does not exist,
// is in another room, or is hidden from the user: telling them apart would
// leak its existence.
var errContextNotFound = mautrix.MNotFound.WithMessage("Event not found")

// Context returns the events around one event and the state at the last
// of them. The limit is split as Synapse does: half (rounded down) before,
// the rest after. The filter applies to the events around and to the
// state, not to the event itself. Tokens follow /messages's convention:
// start pages backwards from just before the oldest event scanned, end
// forwards from just after the newest.
func (s *Service) Context(ctx context.Context, req *ContextRequest) (*ContextResponse, error) {
	if _, err := s.rooms.RoomVersion(ctx, req.RoomID); err != nil {
		return nil, err
	}
	if err := s.CheckCanRead(ctx, req.User, req.RoomID); err != nil {
		return nil, err
	}
	found, err := s.rooms.Events(ctx, []id.EventID{req.EventID})
	if err != nil {
		return nil, err
	}
	ev, ok := found[req.EventID]
	if !ok || ev.RoomID != req.RoomID || ev.Rejected {
		return nil, errContextNotFound
	}
	if ok, err := s.rooms.CanSee(ctx, req.User, ev); err != nil {
		return nil, err
	} else if !ok {
		return nil, errContextNotFound
	}
	// An ignored user's message is hidden like one the user may not see
	// (Synapse refuses it too).
	if req.ignored, err = s.IgnoredUsers(ctx, req.User); err != nil {
		return nil, err
	}
	if HiddenByIgnore(req.ignored, ev) {
		return nil, errContextNotFound
	}
	cur, err := s.db.MaxStreamPos(ctx)
	if err != nil {
		return nil, err
	}
	limit := req.Limit
	if limit < 0 {
		limit = defaultContextLimit
	}
	limit = min(limit, maxMessagesLimit)
	nBefore := limit / 2
	nAfter := limit - nBefore

	before, start, err := s.contextScan(ctx, req, 0, ev.StreamPos-1, nBefore, true)
	if err != nil {
		return nil, err
	}
	after, end, err := s.contextScan(ctx, req, ev.StreamPos, cur, nAfter, false)
	if err != nil {
		return nil, err
	}

	sreq := &Request{User: req.User, Device: req.Device}
	resp := &ContextResponse{
		Start:        Token{Events: start}.String(),
		End:          Token{Events: end}.String(),
		EventsBefore: make([]*event.Event, 0, len(before)),
		EventsAfter:  make([]*event.Event, 0, len(after)),
		State:        []*event.Event{},
	}
	if resp.Event, err = s.clientEvent(ctx, sreq, ev); err != nil {
		return nil, err
	}
	for _, e := range before {
		ce, err := s.clientEvent(ctx, sreq, e)
		if err != nil {
			return nil, err
		}
		resp.EventsBefore = append(resp.EventsBefore, ce)
	}
	for _, e := range after {
		ce, err := s.clientEvent(ctx, sreq, e)
		if err != nil {
			return nil, err
		}
		resp.EventsAfter = append(resp.EventsAfter, ce)
	}
	// One aggregation query for the event and everything around it.
	all := make([]*rooms.Event, 0, len(before)+1+len(after))
	allCE := make([]*event.Event, 0, cap(all))
	all = append(append(append(all, ev), before...), after...)
	allCE = append(append(append(allCE, resp.Event), resp.EventsBefore...), resp.EventsAfter...)
	if err := s.rooms.BundleAggregations(ctx, req.User, all, allCE); err != nil {
		return nil, err
	}

	// The state at the last event returned (the spec's wording; Synapse
	// does the same).
	last := ev
	if len(after) > 0 {
		last = after[len(after)-1]
	}
	state, err := s.rooms.StateAfter(ctx, last)
	if err != nil {
		return nil, err
	}
	if req.Filter != nil && req.Filter.LazyLoadMembers {
		senders := make([]*rooms.Event, 0, len(before)+1+len(after))
		senders = append(append(append(senders, before...), ev), after...)
		state = lazyMembers(state, senders, req.User)
	}
	if req.Filter != nil && !allowsRoom(req.Filter.Rooms, req.Filter.NotRooms, req.RoomID) {
		state = nil
	}
	stateEvs, err := s.rooms.StateEvents(ctx, state, nil)
	if err != nil {
		return nil, err
	}
	for _, e := range stateEvs {
		ce, err := s.rooms.ClientEvent(ctx, e)
		if err != nil {
			return nil, err
		}
		if allows(req.Filter, ce) {
			resp.State = append(resp.State, ce)
		}
	}
	sortState(resp.State)
	return resp, nil
}

// contextScan collects up to n events of the room in the stream range
// (lower, upper] that the user may see and the filter allows (see
// scanVisible).
func (s *Service) contextScan(ctx context.Context, req *ContextRequest, lower, upper int64, n int, backwards bool) ([]*rooms.Event, int64, error) {
	evs, boundary, _, err := s.scanVisible(ctx, scanQuery{User: req.User, RoomID: req.RoomID, Ignored: req.ignored, Filter: req.Filter}, lower, upper, n, backwards)
	return evs, boundary, err
}

// scanQuery names the room and reader of scanVisible.
type scanQuery struct {
	User    id.UserID
	RoomID  id.RoomID
	Ignored map[id.UserID]bool
	Filter  *mautrix.FilterPart // nil: every event
}

// scanVisible collects up to n events of the room in the stream range
// (lower, upper] that the user may see and the filter allows: with
// backwards the newest of them, newest first; otherwise the oldest, oldest
// first. It returns the position a /messages token should carry to go on
// past what was scanned: backwards, the position just before the oldest
// event looked at; forwards, the newest event looked at. done reports that
// the whole range was looked at (nothing past the boundary is left).
func (s *Service) scanVisible(ctx context.Context, q scanQuery, lower, upper int64, n int, backwards bool) (out []*rooms.Event, boundary int64, done bool, err error) {
	boundary = lower
	if backwards {
		boundary = upper
	}
	f := q.Filter
	if n == 0 || (f != nil && !allowsRoom(f.Rooms, f.NotRooms, q.RoomID)) {
		return nil, boundary, n != 0, nil
	}
	batchSize := max(n, 20)
	for range contextScanBatches {
		batch, more, err := s.rooms.Timeline(ctx, q.RoomID, lower, upper, batchSize, backwards)
		if err != nil {
			return nil, 0, false, err
		}
		if backwards {
			// Timeline returns oldest first; walk newest first.
			reverse(batch)
		}
		for i, ev := range batch {
			if backwards {
				upper = ev.StreamPos - 1
				boundary = upper
			} else {
				lower = ev.StreamPos
				boundary = lower
			}
			ok, err := s.rooms.CanSee(ctx, q.User, ev)
			if err != nil {
				return nil, 0, false, err
			}
			ok = ok && !HiddenByIgnore(q.Ignored, ev)
			if ok && f != nil {
				ce, err := s.rooms.ClientEvent(ctx, ev)
				if err != nil {
					return nil, 0, false, err
				}
				ok = allows(f, ce)
			}
			if ok {
				out = append(out, ev)
				if len(out) == n {
					return out, boundary, !more && i == len(batch)-1, nil
				}
			}
		}
		if !more {
			return out, boundary, true, nil
		}
	}
	return out, boundary, false, nil
}
