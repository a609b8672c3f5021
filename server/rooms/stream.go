package rooms

import (
	"context"
	"errors"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/storage"
)

// This file is the rooms service's read side for /sync and pagination:
// events by stream position, state at a position, and visibility.

// Timeline returns up to limit events of a room in the stream range
// (from, to]: with backwards the newest of them, otherwise the oldest; in
// both cases oldest first, and whether the range holds more.
func (s *Service) Timeline(ctx context.Context, roomID id.RoomID, from, to int64, limit int, backwards bool) ([]*Event, bool, error) {
	stored, more, err := s.db.RoomEvents(ctx, roomID, from, to, limit, backwards)
	if err != nil {
		return nil, false, err
	}
	out := make([]*Event, 0, len(stored))
	for _, se := range stored {
		if ev := s.cache.event(se.EventID, false); ev != nil {
			out = append(out, ev)
			continue
		}
		ev, err := s.fromStored(ctx, se)
		if err != nil {
			return nil, false, err
		}
		s.cache.putEvent(ev)
		out = append(out, ev)
	}
	return out, more, nil
}

// StateAtPosition returns a room's state as of stream position pos: the
// state after the room's last event at or before it (empty before the room
// existed).
func (s *Service) StateAtPosition(ctx context.Context, roomID id.RoomID, pos int64) (StateMap, error) {
	se, err := s.db.LastEventAt(ctx, roomID, pos)
	if errors.Is(err, storage.ErrNotFound) {
		return StateMap{}, nil
	}
	if err != nil {
		return nil, err
	}
	snap, err := s.stateOfGroup(ctx, se.StateAfter)
	if err != nil {
		return nil, err
	}
	return snap.state, nil
}

// CanSee tells whether a user may see an event (history visibility).
func (s *Service) CanSee(ctx context.Context, user id.UserID, ev *Event) (bool, error) {
	return s.canSee(ctx, user, ev)
}

// MembershipsAt returns the user's latest membership of every room as of
// a stream position.
func (s *Service) MembershipsAt(ctx context.Context, user id.UserID, pos int64) ([]storage.MembershipEvent, error) {
	return s.db.MembershipsAt(ctx, user, pos)
}

// Event loads one event by ID.
func (s *Service) Event(ctx context.Context, evID id.EventID) (*Event, error) {
	return s.event(ctx, evID)
}

// StateEvents loads the events of a state map (all of it when keys is nil).
func (s *Service) StateEvents(ctx context.Context, state StateMap, keys []pdu.StateKey) ([]*Event, error) {
	ids := make([]id.EventID, 0, len(state))
	if keys == nil {
		for _, evID := range state {
			ids = append(ids, evID)
		}
	} else {
		for _, k := range keys {
			if evID, ok := state[k]; ok {
				ids = append(ids, evID)
			}
		}
	}
	evs, err := s.Events(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make([]*Event, 0, len(evs))
	for _, evID := range ids {
		if ev, ok := evs[evID]; ok {
			out = append(out, ev)
		}
	}
	return out, nil
}

// strippedStateTypes are the state events shown with an invite or knock,
// before the user is in the room (the spec's recommended list).
var strippedStateTypes = []string{
	event.StateCreate.Type, event.StateJoinRules.Type, event.StateRoomName.Type, event.StateRoomAvatar.Type,
	event.StateCanonicalAlias.Type, event.StateEncryption.Type, event.StateTopic.Type,
}

// StrippedState returns the stripped state for an invite or knock: the
// room's summary events at the time of the membership event, plus the
// membership event itself.
func (s *Service) StrippedState(ctx context.Context, ev *Event) ([]*event.Event, error) {
	if out, ok, err := s.inviteStrippedState(ctx, ev); err != nil || ok {
		// An invite from another server to a room this one is not in.
		return out, err
	}
	state, err := s.StateAfter(ctx, ev)
	if err != nil {
		return nil, err
	}
	keys := make([]pdu.StateKey, 0, len(strippedStateTypes)+1)
	for _, t := range strippedStateTypes {
		keys = append(keys, pdu.StateKey{Type: t})
	}
	keys = append(keys, pdu.StateKey{Type: event.StateMember.Type, StateKey: ev.StateKey()})
	evs, err := s.StateEvents(ctx, state, keys)
	if err != nil {
		return nil, err
	}
	out := make([]*event.Event, 0, len(evs))
	for _, e := range evs {
		ce, err := s.ClientEvent(ctx, e)
		if err != nil {
			return nil, err
		}
		// Stripped: only type, state_key, content and sender.
		out = append(out, &event.Event{Type: ce.Type, StateKey: ce.StateKey, Content: ce.Content, Sender: ce.Sender})
	}
	return out, nil
}
