package syncer

import (
	"cmp"
	"context"
	"slices"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/rooms"
)

// This file is the old event stream, GET /events: deprecated by /sync but
// still called by old clients, and, with room_id, the way a room preview
// follows a world-readable room the user is not in (spec: "Room
// Previews"). It is a view on the sync engine's streams: the same tokens,
// visibility rules and notifier.

// EventsRequest is a GET /events.
type EventsRequest struct {
	User   id.UserID
	Device id.DeviceID
	// From is where the stream resumes; nil means from now, so the call
	// waits for the next event.
	From    *Token
	Timeout time.Duration
	// RoomID, when set, limits the stream to one room, which the user may
	// be peeking into (see rooms.ReadView).
	RoomID id.RoomID
	// Limit bounds the events of one answer (0: eventsPageLimit, which
	// also caps it).
	Limit int
}

// EventsResponse is the answer to /events.
type EventsResponse struct {
	Start string         `json:"start"`
	End   string         `json:"end"`
	Chunk []*event.Event `json:"chunk"`
}

// eventsPageLimit bounds the room events of one /events answer; the end
// token resumes after the last one returned.
const eventsPageLimit = 100

// Events answers a GET /events: the room events after From that the user
// may see, with the typing, receipts, account data and presence changed
// since (see streamExtras), at once when there are some, otherwise after
// waiting up to the timeout for some.
func (s *Service) Events(ctx context.Context, req *EventsRequest) (*EventsResponse, error) {
	var l *Listener
	if req.RoomID != "" {
		// A peeker is in no room: the room itself wakes them.
		if _, err := s.rooms.ReadView(ctx, req.User, req.RoomID); err != nil {
			return nil, err
		}
		l = s.notifier.ListenRoom(req.RoomID)
	} else {
		l = s.notifier.Listen(req.User)
	}
	defer l.Close()
	ignored, err := s.IgnoredUsers(ctx, req.User)
	if err != nil {
		return nil, err
	}
	from := req.From
	deadline := time.Now().Add(req.Timeout)
	for {
		cur, err := s.Current(ctx)
		if err != nil {
			return nil, err
		}
		if from == nil {
			from = &cur
		} else if err := from.Exceeds(cur); err != nil {
			return nil, err
		}
		resp, partial, err := s.eventsPage(ctx, req, ignored, *from, cur)
		if err != nil {
			return nil, err
		}
		wait := time.Until(deadline)
		// A partial read answers even when empty: its end token moves the
		// client past the stretch of hidden events it scanned.
		if len(resp.Chunk) > 0 || partial || wait <= 0 {
			return resp, nil
		}
		woken, err := l.Wait(ctx, wait)
		if err != nil {
			return nil, err
		}
		if !woken {
			return resp, nil
		}
		l.Rearm()
	}
}

// eventsPage collects the visible events in (from, cur] of the request's
// rooms, oldest first, up to the limit, and the streamExtras; partial
// reports that it stopped short of cur (the end token says where).
func (s *Service) eventsPage(ctx context.Context, req *EventsRequest, ignored map[id.UserID]bool, from, cur Token) (_ *EventsResponse, partial bool, err error) {
	// Each room is read up to its upper bound: now for a room the user is
	// in (or peeks into), their membership change for a room they left,
	// were invited to or knocked on in the range (they see that event).
	type span struct {
		roomID id.RoomID
		upper  int64
	}
	var spans []span
	var current []id.RoomID // the rooms read up to now
	if req.RoomID != "" {
		spans = append(spans, span{req.RoomID, cur.Events})
		current = append(current, req.RoomID)
	} else {
		memberships, err := s.rooms.MembershipsAt(ctx, req.User, cur.Events)
		if err != nil {
			return nil, false, err
		}
		for _, m := range memberships {
			switch {
			case m.Membership == string(event.MembershipJoin):
				spans = append(spans, span{m.RoomID, cur.Events})
				current = append(current, m.RoomID)
			case m.StreamPos > from.Events:
				spans = append(spans, span{m.RoomID, m.StreamPos})
			}
		}
	}
	limit := eventsPageLimit
	if req.Limit > 0 {
		limit = min(req.Limit, eventsPageLimit)
	}
	// horizon is how far every room was read: events past it wait for the
	// next call, so no room's events are skipped.
	horizon := cur.Events
	var evs []*rooms.Event
	for _, sp := range spans {
		if sp.upper <= from.Events {
			continue
		}
		got, boundary, done, err := s.scanVisible(ctx, scanQuery{User: req.User, RoomID: sp.roomID, Ignored: ignored}, from.Events, sp.upper, limit, false)
		if err != nil {
			return nil, false, err
		}
		if !done {
			horizon = min(horizon, boundary)
		}
		evs = append(evs, got...)
	}
	slices.SortFunc(evs, func(a, b *rooms.Event) int { return cmp.Compare(a.StreamPos, b.StreamPos) })
	evs = slices.DeleteFunc(evs, func(ev *rooms.Event) bool { return ev.StreamPos > horizon })
	if len(evs) > limit {
		evs = evs[:limit]
		horizon = evs[len(evs)-1].StreamPos
	}
	end := cur
	end.Events = horizon
	resp := &EventsResponse{Start: from.String(), End: end.String(), Chunk: make([]*event.Event, 0, len(evs))}
	for _, ev := range evs {
		ce, err := s.ClientEvent(ctx, req.User, req.Device, ev)
		if err != nil {
			return nil, false, err
		}
		resp.Chunk = append(resp.Chunk, ce)
	}
	extras, err := s.streamExtras(ctx, req, current, from, cur)
	if err != nil {
		return nil, false, err
	}
	resp.Chunk = append(resp.Chunk, extras...)
	return resp, horizon < cur.Events, nil
}

// streamExtras returns what the stream carries besides room events, changed
// in (from, cur]: the rooms' typing and read receipts and, on the user's own
// stream (not one room's), their account data (room tags among it, with
// the room's ID) and the presence of the people they share a room with.
func (s *Service) streamExtras(ctx context.Context, req *EventsRequest, roomIDs []id.RoomID, from, cur Token) ([]*event.Event, error) {
	var out []*event.Event
	typing := s.TypingSince(roomIDs, from.Typing, false)
	receipts, err := s.ReceiptContents(ctx, req.User, roomIDs, from, cur, false)
	if err != nil {
		return nil, err
	}
	for _, roomID := range roomIDs {
		if users, ok := typing[roomID]; ok {
			out = append(out, typingEvent(roomID, users))
		}
		if content, ok := receipts[roomID]; ok {
			out = append(out, receiptEvent(roomID, content))
		}
	}
	if req.RoomID != "" {
		return out, nil
	}
	items, err := s.db.AccountDataSince(ctx, req.User, from.AccountData, cur.AccountData)
	if err != nil {
		return nil, err
	}
	for i := range items {
		if ev := accountDataEvent(&items[i]); ev != nil {
			ev.RoomID = items[i].RoomID
			out = append(out, ev)
		}
	}
	if from.Presence < cur.Presence {
		changes, err := s.db.PresenceChanges(ctx, req.User, from.Presence, cur.Presence)
		if err != nil {
			return nil, err
		}
		now := time.Now()
		for i := range changes {
			out = append(out, legacyPresenceEvent(&changes[i], now))
		}
	}
	return out, nil
}
