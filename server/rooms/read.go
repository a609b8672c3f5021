package rooms

import (
	"context"
	"errors"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"
)

// canSee decides whether a user may see an event: the room's history
// visibility and the user's membership at that point of the room.
func (s *Service) canSee(ctx context.Context, user id.UserID, ev *Event) (bool, error) {
	state, err := s.StateBefore(ctx, ev)
	if err != nil {
		return false, err
	}
	keys := []pdu.StateKey{
		{Type: event.StateHistoryVisibility.Type},
		{Type: event.StateMember.Type, StateKey: string(user)},
	}
	evs, err := s.stateEvents(ctx, state, keys...)
	if err != nil {
		return false, err
	}
	visibility := event.HistoryVisibilityShared
	if hv, ok := evs[keys[0]]; ok {
		visibility = historyVisibility(hv)
	}
	membership := event.MembershipLeave
	if m, ok := evs[keys[1]]; ok {
		membership = m.Membership()
	}
	// For the user's own membership event, the better of the membership
	// before and after it counts (as Synapse does): you see your own join,
	// and your own leave or kick, which is how a client learns it left.
	if ev.PDU.Type == event.StateMember.Type && ev.StateKey() == string(user) {
		if after := ev.Membership(); membershipRank(after) < membershipRank(membership) {
			membership = after
		}
		if membership == event.MembershipInvite || membership == event.MembershipKnock {
			// Rejecting an invite or retracting a knock: the user sees it.
			return true, nil
		}
	}
	ok, err := s.allowedBy(ctx, user, ev.RoomID, visibility, membership)
	if ok || err != nil {
		return ok, err
	}
	// A history visibility change is visible when the setting before or
	// after it allows (the spec): a reader of a world-readable room sees
	// the change that opened it, and the one that closed it again.
	if ev.PDU.Type == event.StateHistoryVisibility.Type && ev.StateKey() == "" {
		return s.allowedBy(ctx, user, ev.RoomID, historyVisibility(ev), membership)
	}
	return false, nil
}

// allowedBy is the spec's algorithm ("History visibility" in the
// client-server API) for an event sent under visibility, to a user whose
// membership then was membership.
func (s *Service) allowedBy(ctx context.Context, user id.UserID, roomID id.RoomID, visibility event.HistoryVisibility, membership event.Membership) (bool, error) {
	switch {
	case visibility == event.HistoryVisibilityWorldReadable:
		return true, nil
	case membership == event.MembershipJoin:
		return true, nil
	case visibility == event.HistoryVisibilityShared:
		current, _, err := s.db.Membership(ctx, roomID, user)
		if err != nil {
			return false, err
		}
		return current == string(event.MembershipJoin), nil
	case visibility == event.HistoryVisibilityInvited:
		return membership == event.MembershipInvite, nil
	}
	return false, nil
}

// historyVisibility reads an m.room.history_visibility event's setting; a
// value this server does not know counts as shared (the spec's default).
func historyVisibility(ev *Event) event.HistoryVisibility {
	var c event.HistoryVisibilityEventContent
	if jsonUnmarshal(ev.PDU.Content, &c) != nil {
		return event.HistoryVisibilityShared
	}
	switch c.HistoryVisibility {
	case event.HistoryVisibilityWorldReadable, event.HistoryVisibilityJoined, event.HistoryVisibilityInvited:
		return c.HistoryVisibility
	}
	return event.HistoryVisibilityShared
}

// membershipRank orders memberships from most to least privileged, for
// history visibility.
func membershipRank(m event.Membership) int {
	switch m {
	case event.MembershipJoin:
		return 0
	case event.MembershipInvite:
		return 1
	case event.MembershipKnock:
		return 2
	case event.MembershipLeave:
		return 3
	}
	return 4
}

// errNoSuchEvent is the one answer for an event that does not exist and an
// event the user may not see: telling them apart would leak its existence.
var errNoSuchEvent = mautrix.MNotFound.WithMessage("Event not found")

// GetEvent returns an event of a room if the user may see it, as the
// user's device receives it (ClientEventFor).
func (s *Service) GetEvent(ctx context.Context, user id.UserID, device id.DeviceID, roomID id.RoomID, evID id.EventID) (*event.Event, error) {
	if _, err := s.room(ctx, roomID); err != nil {
		return nil, err
	}
	ev, err := s.event(ctx, evID)
	if errors.Is(err, errEventNotFound) {
		return nil, errNoSuchEvent
	}
	if err != nil {
		return nil, err
	}
	if ev.RoomID != roomID || ev.Rejected {
		return nil, errNoSuchEvent
	}
	ok, err := s.canSee(ctx, user, ev)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errNoSuchEvent
	}
	ce, err := s.ClientEventFor(ctx, user, device, ev)
	if err != nil {
		return nil, err
	}
	return ce, s.BundleAggregations(ctx, user, []*Event{ev}, []*event.Event{ce})
}

// ReadView is how much of a room a user may read now.
type ReadView struct {
	// Membership is the user's current membership ("" if they never had
	// one).
	Membership event.Membership
	// Left is the user's leave (or kick or ban) when it bounds what they
	// may read: the room as it was then. Nil when they read the room as it
	// is now: they are joined, or its history is world-readable (a room
	// preview, which needs no membership at all).
	Left *Event
}

// Peeking tells whether the user reads the room without being in it, only
// because its history is world-readable.
func (v *ReadView) Peeking() bool {
	return v.Left == nil && v.Membership != event.MembershipJoin
}

// ReadView decides what of a room a user may read: joined users and anyone
// when the room is world-readable read it as it is now; users who left or
// were banned read it as it was when they left; others are refused.
func (s *Service) ReadView(ctx context.Context, user id.UserID, roomID id.RoomID) (*ReadView, error) {
	if _, err := s.room(ctx, roomID); err != nil {
		return nil, err
	}
	m, memberEvID, err := s.db.Membership(ctx, roomID, user)
	if err != nil {
		return nil, err
	}
	v := &ReadView{Membership: event.Membership(m)}
	if v.Membership == event.MembershipJoin {
		return v, nil
	}
	if readable, err := s.worldReadable(ctx, roomID); err != nil {
		return nil, err
	} else if readable {
		return v, nil
	}
	if v.Membership == event.MembershipLeave || v.Membership == event.MembershipBan {
		if v.Left, err = s.event(ctx, memberEvID); err != nil {
			return nil, err
		}
		return v, nil
	}
	return nil, errNotInRoom
}

// GetEventByID is GetEvent for a client that names only the event (the
// deprecated GET /events/{eventId}).
func (s *Service) GetEventByID(ctx context.Context, user id.UserID, device id.DeviceID, evID id.EventID) (*event.Event, error) {
	ev, err := s.event(ctx, evID)
	if errors.Is(err, errEventNotFound) {
		return nil, errNoSuchEvent
	}
	if err != nil {
		return nil, err
	}
	return s.GetEvent(ctx, user, device, ev.RoomID, evID)
}

// visibleState returns the state a user may read (see ReadView); for a
// user who left, the state just before they left: what they last saw.
func (s *Service) visibleState(ctx context.Context, user id.UserID, roomID id.RoomID) (StateMap, error) {
	v, err := s.ReadView(ctx, user, roomID)
	if err != nil {
		return nil, err
	}
	if v.Left != nil {
		return s.StateBefore(ctx, v.Left)
	}
	return s.CurrentState(ctx, roomID)
}

// GetState returns the room state a user may read, as client events.
func (s *Service) GetState(ctx context.Context, user id.UserID, roomID id.RoomID) ([]*event.Event, error) {
	state, err := s.visibleState(ctx, user, roomID)
	if err != nil {
		return nil, err
	}
	ids := make([]id.EventID, 0, len(state))
	for _, evID := range state {
		ids = append(ids, evID)
	}
	evs, err := s.Events(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make([]*event.Event, 0, len(evs))
	for _, evID := range ids {
		ev, ok := evs[evID]
		if !ok {
			continue
		}
		ce, err := s.ClientEvent(ctx, ev)
		if err != nil {
			return nil, err
		}
		out = append(out, ce)
	}
	return out, nil
}

// GetStateEvent returns one piece of state a user may read, or M_NOT_FOUND.
func (s *Service) GetStateEvent(ctx context.Context, user id.UserID, roomID id.RoomID, evType, stateKey string) (*event.Event, error) {
	state, err := s.visibleState(ctx, user, roomID)
	if err != nil {
		return nil, err
	}
	evID, ok := state[pdu.StateKey{Type: evType, StateKey: stateKey}]
	if !ok {
		return nil, mautrix.MNotFound.WithMessage("Event not found")
	}
	ev, err := s.event(ctx, evID)
	if err != nil {
		return nil, err
	}
	return s.ClientEvent(ctx, ev)
}
