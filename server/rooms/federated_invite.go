package rooms

import (
	"context"
	jsonv1 "encoding/json"
	"errors"
	"fmt"
	"slices"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto/canonicaljson"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/storage"
)

// Invites and leaves across servers. An invite of another server's user is
// signed by that server before it is stored (PUT /invite), so the invitee's
// server learns of it even though it is not in the room; an invite of ours
// to a room this server is not in is stored with the stripped state the
// inviting server sent, which is what the invitee sees until joining.
// Rejecting such an invite goes through a resident server (make_leave,
// send_leave), as a join does.

// Inviter is the part of Remote that sends invites and leaves; the
// federation service's remote implements it.
type Inviter interface {
	// Invite asks the invitee's server to sign an invite (PUT /invite v2).
	Invite(ctx context.Context, server string, roomID id.RoomID, eventID id.EventID, ev jsonv1.RawMessage, version id.RoomVersion, strippedState []jsonv1.RawMessage) (jsonv1.RawMessage, error)
	// MakeLeave asks a resident server for a leave event template.
	MakeLeave(ctx context.Context, server string, roomID id.RoomID, user id.UserID) (id.RoomVersion, jsonv1.RawMessage, error)
	// SendLeave hands a signed leave event to a resident server.
	SendLeave(ctx context.Context, server string, roomID id.RoomID, eventID id.EventID, ev jsonv1.RawMessage) error
}

// inviteRemote sends an invite of another server's user: built and
// authorised here, signed by the invitee's server, then stored as an event
// of ours (the federation queue sends it to the room's servers).
func (s *Service) inviteRemote(ctx context.Context, r *room, p *proto) (id.EventID, error) {
	inviter, ok := s.Remote.(Inviter)
	if !ok {
		return "", errNoRemote
	}
	target := id.UserID(*p.StateKey)
	server := target.Homeserver()
	unlock := s.locks.lock(r.ID)
	h, err := s.latestHead(ctx, r)
	if err != nil {
		unlock()
		return "", err
	}
	ev, err := s.build(ctx, r, h, p)
	unlock()
	if err != nil {
		return "", err
	}
	raw := ev.wire
	stripped, err := s.strippedStateRaw(ctx, h.state)
	if err != nil {
		return "", err
	}
	signed, err := inviter.Invite(ctx, server, r.ID, ev.ID, raw, r.Version, stripped)
	if err != nil {
		return "", err
	}
	got, stored, err := s.parseRemote(ctx, r, signed)
	if err != nil {
		return "", fmt.Errorf("the invite %s signed: %w", server, err)
	}
	if got.ID != ev.ID || got.PDU.Type != event.StateMember.Type || got.StateKey() != string(target) || got.Membership() != event.MembershipInvite {
		return "", fmt.Errorf("%s answered the invite with another event", server)
	}
	if err := got.PDU.VerifySignature(r.Version, server, s.remoteKey(ctx)); err != nil && !originalFormat(r.Version) {
		return "", fmt.Errorf("%s did not sign the invite: %w", server, err)
	}
	if err := s.receive(ctx, r, s.serverName, got, stored, false, false); err != nil {
		return "", err
	}
	return got.ID, nil
}

// strippedStateRaw is the stripped state sent with an invite: the room's
// summary events, as stripped state events.
func (s *Service) strippedStateRaw(ctx context.Context, state StateMap) ([]jsonv1.RawMessage, error) {
	keys := make([]pdu.StateKey, 0, len(strippedStateTypes))
	for _, t := range strippedStateTypes {
		keys = append(keys, pdu.StateKey{Type: t})
	}
	evs, err := s.StateEvents(ctx, state, keys)
	if err != nil {
		return nil, err
	}
	out := make([]jsonv1.RawMessage, 0, len(evs))
	for _, e := range evs {
		b, err := jsonv1.Marshal(map[string]any{"type": e.PDU.Type, "state_key": e.StateKey(), "sender": e.PDU.Sender, "content": jsonv1.RawMessage(e.PDU.Content)})
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// ReceiveInvite takes an invite of one of our users from another server
// (PUT /invite): checked, signed by us, and stored so the invitee sees it;
// it returns the event with our signature.
func (s *Service) ReceiveInvite(ctx context.Context, origin string, roomID id.RoomID, evID id.EventID, raw jsonv1.RawMessage, version id.RoomVersion, strippedState []jsonv1.RawMessage) (jsonv1.RawMessage, error) {
	if version == "" {
		version = id.RoomV1
	}
	if !slices.Contains(SupportedRoomVersions, version) {
		return nil, ErrIncompatibleVersion{version}
	}
	r, err := s.room(ctx, roomID)
	if errors.Is(err, errRoomNotFound) {
		r, err = &room{ID: roomID, Version: version}, nil
	}
	if err != nil {
		return nil, err
	}
	ev, _, err := s.parseRemote(ctx, r, raw)
	if err != nil {
		return nil, mautrix.MBadJSON.WithMessage(err.Error())
	}
	p := ev.PDU
	target := id.UserID(ev.StateKey())
	switch {
	case ev.ID != evID:
		return nil, mautrix.MBadJSON.WithMessage(fmt.Sprintf("the event's ID is %s, not %s", ev.ID, evID))
	case p.Type != event.StateMember.Type || p.StateKey == nil || ev.Membership() != event.MembershipInvite:
		return nil, mautrix.MBadJSON.WithMessage("the event is not an invite")
	case p.Sender.Homeserver() != origin:
		return nil, mautrix.MForbidden.WithMessage("The inviter is not a user of the requesting server")
	case target.Homeserver() != s.serverName:
		return nil, mautrix.MForbidden.WithMessage("The invitee is not a user of this server")
	}
	if err := s.checkLocalUserExists(ctx, target); err != nil {
		return nil, err
	}
	signed, err := s.countersignAny(r, ev, raw)
	if err != nil {
		return nil, err
	}
	if local, err := s.hasLocalMembers(ctx, r.ID); err != nil {
		return nil, err
	} else if local {
		// We are in the room: the invite is an event of it like any other
		// (it comes in a transaction too; whichever is first stores it).
		if err := s.receive(ctx, r, origin, ev, signed, true, false); err != nil {
			return nil, err
		}
		return signed, nil
	}
	state, err := jsonv1.Marshal(strippedState)
	if err != nil {
		return nil, err
	}
	if err := s.storeOutOfRoom(ctx, r, ev, signed, state); err != nil {
		return nil, err
	}
	return signed, nil
}

// countersignAny adds our signature to another server's event in any room
// version, returning its new JSON.
func (s *Service) countersignAny(r *room, ev *Event, raw []byte) ([]byte, error) {
	if !originalFormat(r.Version) {
		return s.countersign(r, ev)
	}
	var old pdu.RoomV1PDU
	if err := jsonv1.Unmarshal(raw, &old); err != nil {
		return nil, err
	}
	if err := old.Sign(r.Version, s.serverName, s.key.ID, s.key.Priv); err != nil {
		return nil, fmt.Errorf("countersign: %w", err)
	}
	ev.PDU.Signatures = old.Signatures
	return canonicaljson.Marshal(&old)
}

// storeOutOfRoom stores a membership event of one of our users in a room
// this server is not in (an invite from another server, or the leave that
// rejects it): in the user's timeline, with no state but its own.
func (s *Service) storeOutOfRoom(ctx context.Context, r *room, ev *Event, raw, inviteState []byte) error {
	defer s.locks.lock(r.ID)()
	s.settle(r.ID)
	if have, err := s.db.GetEvents(ctx, []id.EventID{ev.ID}); err != nil {
		return err
	} else if _, ok := have[ev.ID]; ok {
		return nil
	}
	ne := s.remoteNewEvent(r, ev, raw)
	ne.InviteState = inviteState
	if _, err := s.db.GetRoom(ctx, r.ID); errors.Is(err, storage.ErrNotFound) {
		ne.NewRoom = &storage.Room{RoomID: r.ID, RoomVersion: r.Version, Creator: ev.PDU.Sender, CreatedTS: ev.PDU.OriginServerTS}
	} else if err != nil {
		return err
	} else if cur, err := s.CurrentStateEvent(ctx, r.ID, event.StateMember.Type, ev.StateKey()); err == nil && cur != nil {
		ne.StateBefore = cur.StateAfter
	}
	ne.StateDelta = StateMap{{Type: event.StateMember.Type, StateKey: ev.StateKey()}: ev.ID}
	ne.ResetExtremities = true
	s.cache.pin(ev)
	if err := s.commitRemote(r, []*storage.NewEvent{ne}, []*Event{ev}, true); err != nil {
		return err
	}
	s.cache.putRoom(r)
	return nil
}

// inviteStrippedState is the stripped state another server sent with an
// invite, as client events, or nil when the invite came with none.
func (s *Service) inviteStrippedState(ctx context.Context, ev *Event) ([]*event.Event, bool, error) {
	raw, ok, err := s.db.InviteRoomState(ctx, string(ev.ID))
	if err != nil || !ok {
		return nil, false, err
	}
	var items []jsonv1.RawMessage
	_ = jsonv1.Unmarshal(raw, &items)
	out := make([]*event.Event, 0, len(items)+1)
	for _, item := range items {
		var e event.Event
		if jsonv1.Unmarshal(item, &e) != nil || e.StateKey == nil {
			continue
		}
		_ = e.Content.ParseRaw(e.Type)
		out = append(out, &event.Event{Type: e.Type, StateKey: e.StateKey, Content: e.Content, Sender: e.Sender})
	}
	ce, err := s.ClientEvent(ctx, ev)
	if err != nil {
		return nil, false, err
	}
	out = append(out, &event.Event{Type: ce.Type, StateKey: ce.StateKey, Content: ce.Content, Sender: ce.Sender})
	return out, true, nil
}

// leaveRemote leaves (or rejects an invite to) a room this server is not
// in, through a resident server, and stores the leave here.
func (s *Service) leaveRemote(ctx context.Context, r *room, user id.UserID, servers []string, reason string) (id.EventID, error) {
	inviter, ok := s.Remote.(Inviter)
	if !ok {
		return "", errNoRemote
	}
	return s.throughServers(servers, "leave the room", func(server string) (id.EventID, error) {
		version, tmpl, err := inviter.MakeLeave(ctx, server, r.ID, user)
		if err != nil {
			return "", err
		}
		if version != "" && version != r.Version {
			return "", fmt.Errorf("%s says the room is of version %s", server, version)
		}
		extra := map[string]jsonv1.RawMessage{}
		if reason != "" {
			extra["reason"], _ = jsonv1.Marshal(reason)
		}
		evID, raw, err := s.fillTemplateAs(ctx, r, user, tmpl, extra, event.MembershipLeave)
		if err != nil {
			return "", err
		}
		if err := inviter.SendLeave(ctx, server, r.ID, evID, raw); err != nil {
			return "", err
		}
		ev, stored, err := s.parseRemote(ctx, r, raw)
		if err != nil {
			return "", err
		}
		return evID, s.storeOutOfRoom(ctx, r, ev, stored, nil)
	})
}

// inviterServers are the servers to leave an invite's room through: the
// inviter's, then the room ID's.
func (s *Service) inviterServers(ctx context.Context, r *room, user id.UserID) []string {
	var out []string
	if cur, err := s.CurrentStateEvent(ctx, r.ID, event.StateMember.Type, string(user)); err == nil && cur != nil {
		out = append(out, cur.PDU.Sender.Homeserver())
	}
	return s.viaServers(r.ID, out)
}

// Knocker is the part of Remote that knocks; the federation service's
// remote implements it.
type Knocker interface {
	MakeKnock(ctx context.Context, server string, roomID id.RoomID, user id.UserID, versions []id.RoomVersion) (id.RoomVersion, jsonv1.RawMessage, error)
	SendKnock(ctx context.Context, server string, roomID id.RoomID, eventID id.EventID, ev jsonv1.RawMessage) ([]jsonv1.RawMessage, error)
}

// knockRemote knocks on a room this server is not in, through the first of
// servers that answers, and stores the knock here with the stripped state
// the resident server returned.
func (s *Service) knockRemote(ctx context.Context, user id.UserID, roomID id.RoomID, servers []string, extra map[string]jsonv1.RawMessage) (id.EventID, error) {
	k, ok := s.Remote.(Knocker)
	if !ok {
		return "", errNoRemote
	}
	return s.throughServers(servers, "knock", func(server string) (id.EventID, error) {
		version, tmpl, err := k.MakeKnock(ctx, server, roomID, user, SupportedRoomVersions)
		if err != nil {
			return "", err
		}
		if !slices.Contains(SupportedRoomVersions, version) || !version.Knocks() {
			return "", mautrix.RespError{ErrCode: "M_INCOMPATIBLE_ROOM_VERSION", Err: "The room's version " + string(version) + " does not allow knocking here", StatusCode: 400}
		}
		r := &room{ID: roomID, Version: version}
		evID, raw, err := s.fillTemplateAs(ctx, r, user, tmpl, extra, event.MembershipKnock)
		if err != nil {
			return "", err
		}
		stripped, err := k.SendKnock(ctx, server, roomID, evID, raw)
		if err != nil {
			return "", err
		}
		ev, stored, err := s.parseRemote(ctx, r, raw)
		if err != nil {
			return "", err
		}
		if stripped == nil {
			stripped = []jsonv1.RawMessage{}
		}
		state, err := jsonv1.Marshal(stripped)
		if err != nil {
			return "", err
		}
		return evID, s.storeOutOfRoom(ctx, r, ev, stored, state)
	})
}
