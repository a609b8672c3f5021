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
		var c event.HistoryVisibilityEventContent
		if jsonUnmarshal(hv.PDU.Content, &c) == nil && c.HistoryVisibility != "" {
			visibility = c.HistoryVisibility
		}
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
	// The spec's algorithm ("History visibility" in the client-server API).
	switch {
	case visibility == event.HistoryVisibilityWorldReadable:
		return true, nil
	case membership == event.MembershipJoin:
		return true, nil
	case visibility == event.HistoryVisibilityShared:
		current, _, err := s.db.Membership(ctx, ev.RoomID, user)
		if err != nil {
			return false, err
		}
		return current == string(event.MembershipJoin), nil
	case visibility == event.HistoryVisibilityInvited:
		return membership == event.MembershipInvite, nil
	}
	return false, nil
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

// visibleState returns the state a user may read: the current state when
// joined (or when the room is world-readable), and for a user who left or
// was kicked or banned, the state when they left.
func (s *Service) visibleState(ctx context.Context, user id.UserID, roomID id.RoomID) (StateMap, error) {
	if _, err := s.room(ctx, roomID); err != nil {
		return nil, err
	}
	m, memberEv, err := s.db.Membership(ctx, roomID, user)
	if err != nil {
		return nil, err
	}
	if m == string(event.MembershipJoin) {
		return s.CurrentState(ctx, roomID)
	}
	state, err := s.CurrentState(ctx, roomID)
	if err != nil {
		return nil, err
	}
	hv, err := s.stateEvents(ctx, state, pdu.StateKey{Type: event.StateHistoryVisibility.Type})
	if err != nil {
		return nil, err
	}
	if ev, ok := hv[pdu.StateKey{Type: event.StateHistoryVisibility.Type}]; ok {
		var c event.HistoryVisibilityEventContent
		if jsonUnmarshal(ev.PDU.Content, &c) == nil && c.HistoryVisibility == event.HistoryVisibilityWorldReadable {
			return state, nil
		}
	}
	if m == string(event.MembershipLeave) || m == string(event.MembershipBan) {
		ev, err := s.event(ctx, memberEv)
		if err != nil {
			return nil, err
		}
		// The state as it was just before they left: what they last saw.
		return s.StateBefore(ctx, ev)
	}
	return nil, errNotInRoom
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
