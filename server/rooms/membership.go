package rooms

import (
	"context"
	"errors"
	"fmt"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/storage"
)

// MembershipChange is a request to change someone's membership of a room.
type MembershipChange struct {
	Sender     id.UserID
	Target     id.UserID
	RoomID     id.RoomID
	Membership event.Membership
	Reason     string
	IsDirect   bool
}

// ChangeMembership sends the m.room.member event for a join, invite,
// leave, kick, ban, unban or knock, after the checks that give a clearer
// answer than the auth rules' generic refusal.
func (s *Service) ChangeMembership(ctx context.Context, c MembershipChange) (id.EventID, error) {
	r, err := s.room(ctx, c.RoomID)
	if err != nil {
		return "", err
	}
	current, _, err := s.db.Membership(ctx, c.RoomID, c.Target)
	if err != nil {
		return "", err
	}
	self := c.Sender == c.Target
	switch {
	case c.Membership == event.MembershipInvite && current == string(event.MembershipJoin):
		return "", mautrix.MForbidden.WithMessage(fmt.Sprintf("%s is already in the room", c.Target))
	case c.Membership == event.MembershipInvite && current == string(event.MembershipBan):
		return "", mautrix.MForbidden.WithMessage(fmt.Sprintf("%s is banned from the room", c.Target))
	case c.Membership == event.MembershipLeave && !self && current != string(event.MembershipJoin) && current != string(event.MembershipInvite) && current != string(event.MembershipKnock) && current != string(event.MembershipBan):
		return "", mautrix.MForbidden.WithMessage(fmt.Sprintf("%s is not in the room", c.Target))
	case c.Membership == event.MembershipLeave && self && current == "":
		return "", mautrix.MForbidden.WithMessage("You are not in this room")
	case c.Membership == event.MembershipJoin && current == string(event.MembershipBan):
		return "", mautrix.MForbidden.WithMessage("You are banned from this room")
	}
	content := map[string]any{"membership": c.Membership}
	if c.Reason != "" {
		content["reason"] = c.Reason
	}
	if c.IsDirect && c.Membership == event.MembershipInvite {
		content["is_direct"] = true
	}
	if c.Membership == event.MembershipJoin || c.Membership == event.MembershipInvite || c.Membership == event.MembershipKnock {
		s.addProfile(ctx, content, c.Target)
	}
	if c.Membership == event.MembershipJoin && current != string(event.MembershipJoin) && current != string(event.MembershipInvite) {
		if via, err := s.restrictedJoinVia(ctx, r, c.Target); err != nil {
			return "", err
		} else if via != "" {
			content["join_authorised_via_users_server"] = via
		}
	}
	key := string(c.Target)
	p, err := newProto(c.Sender, event.StateMember.Type, &key, content)
	if err != nil {
		return "", err
	}
	evs, err := s.sendEvents(ctx, r, []*proto{p}, false)
	if err != nil {
		return "", err
	}
	return evs[0].ID, nil
}

// restrictedJoinVia picks, for a restricted room the user may join through
// membership of an allowed room, a local member who can invite, to name in
// join_authorised_via_users_server (the auth rules require it). It returns
// "" when the room is not restricted or no allowed room applies; the auth
// rules then decide.
func (s *Service) restrictedJoinVia(ctx context.Context, r *room, user id.UserID) (id.UserID, error) {
	if !r.Version.RestrictedJoins() {
		return "", nil
	}
	jr, err := s.CurrentStateEvent(ctx, r.ID, event.StateJoinRules.Type, "")
	if err != nil || jr == nil {
		return "", err
	}
	var content event.JoinRulesEventContent
	if err := jsonUnmarshal(jr.PDU.Content, &content); err != nil {
		return "", nil
	}
	if content.JoinRule != event.JoinRuleRestricted && content.JoinRule != event.JoinRuleKnockRestricted {
		return "", nil
	}
	allowed := false
	for _, a := range content.Allow {
		if a.Type != event.JoinRuleAllowRoomMembership {
			continue
		}
		m, _, err := s.db.Membership(ctx, a.RoomID, user)
		if err != nil {
			return "", err
		}
		if m == string(event.MembershipJoin) {
			allowed = true
			break
		}
	}
	if !allowed {
		return "", mautrix.MForbidden.WithMessage("You need to be invited, or to be in one of the rooms this room allows")
	}
	state, err := s.CurrentState(ctx, r.ID)
	if err != nil {
		return "", err
	}
	pl, err := s.powerLevels(ctx, r, state)
	if err != nil {
		return "", err
	}
	members, err := s.db.Members(ctx, r.ID, string(event.MembershipJoin))
	if err != nil {
		return "", err
	}
	for _, m := range members {
		if m.Homeserver() == s.serverName && pl.GetUserLevel(m) >= pl.Invite() {
			return m, nil
		}
	}
	return "", mautrix.MForbidden.WithMessage("No member of this server can authorise your join")
}

// powerLevels returns the room's power levels from a state map, with the
// v12 creators given their infinite power.
func (s *Service) powerLevels(ctx context.Context, r *room, state StateMap) (*event.PowerLevelsEventContent, error) {
	evs, err := s.stateEvents(ctx, state,
		pdu.StateKey{Type: event.StatePowerLevels.Type},
		pdu.StateKey{Type: event.StateCreate.Type})
	if err != nil {
		return nil, err
	}
	pl := &event.PowerLevelsEventContent{}
	if ev, ok := evs[pdu.StateKey{Type: event.StatePowerLevels.Type}]; ok {
		if err := jsonUnmarshal(ev.PDU.Content, pl); err != nil {
			return nil, fmt.Errorf("parse power levels: %w", err)
		}
	} else if create, ok := evs[pdu.StateKey{Type: event.StateCreate.Type}]; ok {
		// Without a power levels event the creator has 100 (auth rules).
		pl.Users = map[id.UserID]int{create.PDU.Sender: 100}
	}
	if create, ok := evs[pdu.StateKey{Type: event.StateCreate.Type}]; ok && r.Version.PrivilegedRoomCreators() {
		var c event.CreateEventContent
		_ = jsonUnmarshal(create.PDU.Content, &c)
		pl.CreateEvent = &event.Event{Sender: create.PDU.Sender, Content: event.Content{Parsed: &c}}
	}
	return pl, nil
}

// Forget hides a room the user has left from their room lists.
func (s *Service) Forget(ctx context.Context, user id.UserID, roomID id.RoomID) error {
	if _, err := s.room(ctx, roomID); err != nil {
		return err
	}
	m, _, err := s.db.Membership(ctx, roomID, user)
	if err != nil {
		return err
	}
	if m == string(event.MembershipJoin) || m == string(event.MembershipInvite) || m == string(event.MembershipKnock) {
		return mautrix.MUnknown.WithStatus(400).WithMessage("Leave the room before forgetting it")
	}
	if m == "" {
		return errNotInRoom
	}
	return s.db.ForgetRoom(ctx, user, roomID)
}

// ResolveAlias maps a local alias to its room.
func (s *Service) ResolveAlias(ctx context.Context, alias id.RoomAlias) (id.RoomID, error) {
	a, err := s.db.GetAlias(ctx, alias)
	if errors.Is(err, storage.ErrNotFound) {
		return "", mautrix.MNotFound.WithMessage("Room alias not found")
	}
	if err != nil {
		return "", err
	}
	return a.RoomID, nil
}

// JoinedRooms lists the rooms a user is joined to.
func (s *Service) JoinedRooms(ctx context.Context, user id.UserID) ([]id.RoomID, error) {
	return s.db.RoomsWithMembership(ctx, user, string(event.MembershipJoin))
}

// LeaveAllRooms makes a user leave (or decline) every room: account
// deactivation does this.
func (s *Service) LeaveAllRooms(ctx context.Context, user id.UserID) error {
	rooms, err := s.db.RoomsWithMembership(ctx, user, string(event.MembershipJoin), string(event.MembershipInvite), string(event.MembershipKnock))
	if err != nil {
		return err
	}
	for _, roomID := range rooms {
		if _, err := s.ChangeMembership(ctx, MembershipChange{Sender: user, Target: user, RoomID: roomID, Membership: event.MembershipLeave}); err != nil {
			return fmt.Errorf("leave %s: %w", roomID, err)
		}
	}
	return nil
}

// ProfileChanged re-sends a user's join events with their new display name
// and avatar in every room they are in, as the spec asks of a profile change.
func (s *Service) ProfileChanged(ctx context.Context, user id.UserID) error {
	rooms, err := s.JoinedRooms(ctx, user)
	if err != nil {
		return err
	}
	for _, roomID := range rooms {
		cur, err := s.CurrentStateEvent(ctx, roomID, event.StateMember.Type, string(user))
		if err != nil {
			return err
		}
		content := map[string]any{}
		if cur != nil {
			_ = jsonUnmarshal(cur.PDU.Content, &content)
		}
		delete(content, "displayname")
		delete(content, "avatar_url")
		content["membership"] = event.MembershipJoin
		s.addProfile(ctx, content, user)
		key := string(user)
		p, err := newProto(user, event.StateMember.Type, &key, content)
		if err != nil {
			return err
		}
		r, err := s.room(ctx, roomID)
		if err != nil {
			return err
		}
		if _, err := s.sendEvents(ctx, r, []*proto{p}, false); err != nil {
			// One room refusing (say, power levels forbid member changes)
			// must not stop the others.
			s.log.Warn("could not update profile in room", "room", roomID, "user", user, "error", err)
		}
	}
	return nil
}

// MembershipOf returns a user's current membership of a room ("" if none).
func (s *Service) MembershipOf(ctx context.Context, roomID id.RoomID, user id.UserID) (event.Membership, error) {
	if _, err := s.room(ctx, roomID); err != nil {
		return "", err
	}
	m, _, err := s.db.Membership(ctx, roomID, user)
	return event.Membership(m), err
}
