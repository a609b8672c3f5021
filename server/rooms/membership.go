package rooms

import (
	"context"
	jsonv1 "encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

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
	// Via are servers to join through when this server is not in the room
	// (the client's server_name or via, and the alias's servers).
	Via []string
	// Extra is further content the client sent with a join or knock (the
	// spec lets clients put their own keys in member events); the keys the
	// server sets itself are dropped from it.
	Extra map[string]jsonv1.RawMessage
}

// serverMemberKeys are the member content keys never taken from a client's
// extra content: the membership itself, the reason (a field of its own),
// the restricted-join authoriser, and third_party_signed, a join parameter
// rather than content. A displayname or avatar_url the client sends is a
// per-room profile and kept, as Synapse does; the global profile fills in
// what it leaves out.
var serverMemberKeys = []string{"membership", "reason", "join_authorised_via_users_server", "third_party_signed"}

// ChangeMembership sends the m.room.member event for a join, invite,
// leave, kick, ban, unban or knock, after the checks that give a clearer
// answer than the auth rules' generic refusal.
func (s *Service) ChangeMembership(ctx context.Context, c MembershipChange) (id.EventID, error) {
	if (c.Membership == event.MembershipJoin || c.Membership == event.MembershipLeave || c.Membership == event.MembershipKnock) && c.Sender == c.Target && s.Remote != nil {
		// A room this server is not in is joined, or an invite to it
		// rejected, through another server.
		if remote, err := s.joinsRemotely(ctx, c.RoomID); err != nil {
			return "", err
		} else if remote && c.Membership == event.MembershipJoin {
			via := c.Via
			if r, err := s.room(ctx, c.RoomID); err == nil {
				via = append(via, s.inviterServers(ctx, r, c.Target)...)
			}
			return s.JoinRemote(ctx, c.Target, c.RoomID, s.viaServers(c.RoomID, via), c.Extra)
		} else if remote && c.Membership == event.MembershipKnock {
			extra := maps.Clone(c.Extra)
			if c.Reason != "" {
				if extra == nil {
					extra = map[string]jsonv1.RawMessage{}
				}
				extra["reason"], _ = jsonv1.Marshal(c.Reason)
			}
			return s.knockRemote(ctx, c.Target, c.RoomID, s.viaServers(c.RoomID, c.Via), extra)
		} else if remote {
			if r, err := s.room(ctx, c.RoomID); err == nil {
				if cur, _, err := s.db.Membership(ctx, c.RoomID, c.Target); err == nil && (cur == string(event.MembershipInvite) || cur == string(event.MembershipKnock)) {
					return s.leaveRemote(ctx, r, c.Target, s.inviterServers(ctx, r, c.Target), c.Reason)
				}
			}
		}
	}
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
	if err := s.checkMembershipChange(ctx, c.Sender, c.Target, c.RoomID, c.Membership); err != nil {
		return "", err
	}
	content := map[string]any{}
	for k, v := range c.Extra {
		content[k] = v
	}
	for _, k := range serverMemberKeys {
		delete(content, k)
	}
	for _, k := range []string{"displayname", "avatar_url"} {
		if raw, ok := c.Extra[k]; ok {
			var v string
			if jsonv1.Unmarshal(raw, &v) != nil {
				return "", mautrix.MBadJSON.WithMessage(k + " must be a string")
			}
			if err := checkText(k, v); err != nil {
				return "", err
			}
			content[k] = v
		}
	}
	content["membership"] = c.Membership
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
	if c.Membership == event.MembershipJoin && current == string(event.MembershipJoin) {
		// Joining a room one is in changes nothing unless the content does
		// (a new custom key, say): Synapse answers with the current event
		// rather than repeat it.
		if same, curID, err := s.sameMemberContent(ctx, c.RoomID, c.Target, p.Content); err != nil {
			return "", err
		} else if same {
			return curID, nil
		}
	}
	if c.Membership == event.MembershipInvite && c.Target.Homeserver() != s.serverName && s.Remote != nil {
		// The invitee's server signs the invite first.
		return s.inviteRemote(ctx, r, p)
	}
	evs, err := s.sendEvents(ctx, r, []*proto{p}, false)
	if err != nil {
		return "", err
	}
	return evs[0].ID, nil
}

// sameMemberContent tells whether a user's current member event already
// has the given content, leaving out join_authorised_via_users_server (a
// rejoin does not name an authoriser again), and returns its ID.
func (s *Service) sameMemberContent(ctx context.Context, roomID id.RoomID, user id.UserID, content []byte) (bool, id.EventID, error) {
	cur, err := s.CurrentStateEvent(ctx, roomID, event.StateMember.Type, string(user))
	if err != nil || cur == nil {
		return false, "", err
	}
	var old, next map[string]jsonv1.RawMessage
	if jsonUnmarshal(cur.PDU.Content, &old) != nil || jsonUnmarshal(content, &next) != nil {
		return false, "", nil
	}
	delete(old, "join_authorised_via_users_server")
	delete(next, "join_authorised_via_users_server")
	a, err1 := jsonv1.Marshal(old)
	b, err2 := jsonv1.Marshal(next)
	return err1 == nil && err2 == nil && sameJSON(a, b), cur.ID, nil
}

// selfJoinContent prepares the content of a join a user sends through the
// state endpoint as /join would: someone already joined names no
// authoriser (a join after a join is not a restricted join, and the key
// would make the auth rules demand that server's signature), and someone
// joining a restricted room through an allowed room gets one. Other
// content is returned as it is.
func (s *Service) selfJoinContent(ctx context.Context, r *room, user id.UserID, content []byte) ([]byte, error) {
	var c map[string]jsonv1.RawMessage
	if jsonUnmarshal(content, &c) != nil {
		return content, nil // checked and refused later
	}
	var m event.Membership
	if raw, ok := c["membership"]; !ok || jsonUnmarshal(raw, &m) != nil || m != event.MembershipJoin {
		return content, nil
	}
	current, _, err := s.db.Membership(ctx, r.ID, user)
	if err != nil {
		return nil, err
	}
	switch current {
	case string(event.MembershipJoin):
		if _, ok := c["join_authorised_via_users_server"]; !ok {
			return content, nil
		}
		delete(c, "join_authorised_via_users_server")
	case string(event.MembershipInvite):
		return content, nil
	default:
		via, err := s.restrictedJoinVia(ctx, r, user)
		if err != nil || via == "" {
			return content, err
		}
		raw, _ := jsonv1.Marshal(via)
		c["join_authorised_via_users_server"] = raw
	}
	return jsonv1.Marshal(c)
}

// checkMembershipChange holds the checks every membership change passes,
// whichever endpoint sent it (/invite, /leave, or a member state event):
// an invitee must have an account, and LeaveGuard may refuse a leave.
func (s *Service) checkMembershipChange(ctx context.Context, sender, target id.UserID, roomID id.RoomID, m event.Membership) error {
	switch {
	case m == event.MembershipInvite:
		return s.checkLocalUserExists(ctx, target)
	case m == event.MembershipLeave && sender == target && s.LeaveGuard != nil:
		return s.LeaveGuard(ctx, target, roomID)
	}
	return nil
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
	members, err := s.JoinedUsers(ctx, r.ID)
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

// joinsRemotely tells whether a join must go through another server: the
// room is unknown here, or no user of this server is in it any more (its
// DAG here may be long out of date).
func (s *Service) joinsRemotely(ctx context.Context, roomID id.RoomID) (bool, error) {
	if _, err := s.room(ctx, roomID); errors.Is(err, errRoomNotFound) {
		return true, nil
	} else if err != nil {
		return false, err
	}
	local, err := s.hasLocalMembers(ctx, roomID)
	return !local, err
}

// viaServers are the servers to join a room through: those given, then
// the room ID's own server (room versions before 12 name one).
func (s *Service) viaServers(roomID id.RoomID, via []string) []string {
	out := slices.Clone(via)
	if _, server, ok := strings.Cut(string(roomID), ":"); ok && !slices.Contains(out, server) {
		out = append(out, server)
	}
	return out
}

// ResolveAlias maps an alias to its room: a local one from the directory,
// another server's by asking it.
func (s *Service) ResolveAlias(ctx context.Context, alias id.RoomAlias) (id.RoomID, error) {
	roomID, _, err := s.ResolveAliasServers(ctx, alias)
	return roomID, err
}

// ResolveAliasServers is ResolveAlias with the servers in the room, to join
// it through (an alias of another server).
func (s *Service) ResolveAliasServers(ctx context.Context, alias id.RoomAlias) (id.RoomID, []string, error) {
	if _, server, ok := strings.Cut(string(alias), ":"); ok && server != s.serverName && s.Remote != nil {
		roomID, servers, err := s.Remote.QueryDirectory(ctx, server, alias)
		if err != nil {
			var re mautrix.RespError
			if errors.As(err, &re) {
				return "", nil, err
			}
			return "", nil, mautrix.MNotFound.WithMessage("Room alias not found: " + err.Error())
		}
		return roomID, append([]string{server}, servers...), nil
	}
	roomID, err := s.localAlias(ctx, alias)
	return roomID, nil, err
}

func (s *Service) localAlias(ctx context.Context, alias id.RoomAlias) (id.RoomID, error) {
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

// mutualRoomsPage is how many rooms one GET /mutual_rooms answer lists.
const mutualRoomsPage = 100

// MutualRooms is one page of the rooms user and other are both joined to,
// in room ID order after the room ID after ("" for the first page), with
// the total count and whether more follow.
func (s *Service) MutualRooms(ctx context.Context, user, other id.UserID, after id.RoomID) (page []id.RoomID, total int, more bool, err error) {
	if page, err = s.db.MutualRooms(ctx, user, other, after, mutualRoomsPage+1); err != nil {
		return nil, 0, false, err
	}
	if more = len(page) > mutualRoomsPage; more {
		page = page[:mutualRoomsPage]
	}
	if after == "" && !more {
		return page, len(page), false, nil // the whole list: no count needed
	}
	if total, err = s.db.CountMutualRooms(ctx, user, other); err != nil {
		return nil, 0, false, err
	}
	return page, total, more, nil
}
