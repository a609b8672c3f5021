package rooms

import (
	"context"
	jsonv1 "encoding/json"
	"fmt"
	"net/http"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"
)

// transferredState is the state an upgrade copies to the new room: the
// spec's recommended list. Membership is not copied (servers cannot
// impersonate other servers' users); power levels are handled apart.
var transferredState = []string{
	event.StateServerACL.Type,
	event.StateEncryption.Type,
	event.StateRoomName.Type,
	event.StateRoomAvatar.Type,
	event.StateTopic.Type,
	event.StateGuestAccess.Type,
	event.StateHistoryVisibility.Type,
	event.StateJoinRules.Type,
}

// Upgrade replaces a room with a new one of another version, following the
// spec's server behaviour: a new room whose create event names its
// predecessor, the transferable state copied, local aliases moved, pending
// invites re-sent, a tombstone in the old room, and the old room's power
// levels raised so nobody keeps talking there.
func (s *Service) Upgrade(ctx context.Context, user id.UserID, oldRoomID id.RoomID, newVersion id.RoomVersion, additionalCreators []id.UserID) (id.RoomID, error) {
	if !IsSupportedVersion(newVersion) {
		return "", mautrix.MUnsupportedRoomVersion.WithStatus(http.StatusBadRequest).WithMessage(fmt.Sprintf("Room version %q is not supported", newVersion))
	}
	old, err := s.room(ctx, oldRoomID)
	if err != nil {
		return "", err
	}
	if m, _, err := s.db.Membership(ctx, oldRoomID, user); err != nil {
		return "", err
	} else if m != string(event.MembershipJoin) {
		return "", errNotInRoom
	}
	state, err := s.CurrentState(ctx, oldRoomID)
	if err != nil {
		return "", err
	}
	pl, err := s.powerLevels(ctx, old, state)
	if err != nil {
		return "", err
	}
	tombstoneType := event.Type{Type: event.StateTombstone.Type, Class: event.StateEventType}
	if pl.GetUserLevel(user) < pl.GetEventLevel(tombstoneType) {
		return "", mautrix.MForbidden.WithMessage("You do not have permission to upgrade this room")
	}
	for _, u := range additionalCreators {
		if _, _, err := u.ParseAndValidateRelaxed(); err != nil {
			return "", mautrix.MInvalidParam.WithMessage(fmt.Sprintf("Invalid user ID %q in additional_creators", u))
		}
	}

	keys := []pdu.StateKey{{Type: event.StateCreate.Type}, {Type: event.StatePowerLevels.Type}, {Type: event.StateCanonicalAlias.Type}}
	for _, t := range transferredState {
		keys = append(keys, pdu.StateKey{Type: t})
	}
	evs, err := s.stateEvents(ctx, state, keys...)
	if err != nil {
		return "", err
	}
	extremities, err := s.db.ForwardExtremities(ctx, oldRoomID)
	if err != nil {
		return "", err
	}

	// 1-2. The new room's create event, naming its predecessor.
	empty := ""
	create := map[string]any{"room_version": newVersion}
	predecessor := map[string]any{"room_id": oldRoomID}
	if !newVersion.RoomIDIsCreateEventID() && len(extremities) > 0 {
		predecessor["event_id"] = extremities[0]
	}
	create["predecessor"] = predecessor
	if newVersion.CreatorInContent() {
		create["creator"] = user
	}
	if ev, ok := evs[pdu.StateKey{Type: event.StateCreate.Type}]; ok {
		var oc map[string]jsonv1.RawMessage
		if jsonUnmarshal(ev.PDU.Content, &oc) == nil {
			if t, ok := oc["type"]; ok {
				create["type"] = t
			}
		}
	}
	if newVersion.PrivilegedRoomCreators() && len(additionalCreators) > 0 {
		create["additional_creators"] = additionalCreators
	}
	var protos []*proto
	add := func(evType string, stateKey *string, content any) error {
		p, err := newProto(user, evType, stateKey, content)
		if err == nil {
			protos = append(protos, p)
		}
		return err
	}
	if err := add(event.StateCreate.Type, &empty, create); err != nil {
		return "", err
	}
	member := map[string]any{"membership": event.MembershipJoin}
	s.addProfile(ctx, member, user)
	userKey := string(user)
	if err := add(event.StateMember.Type, &userKey, member); err != nil {
		return "", err
	}

	// 3. Power levels, copied. Creators of a v12 room are not listed; in
	// older versions the upgrader gets enough power to set up the new room
	// and their own level is restored afterwards.
	var plContent map[string]any
	if ev, ok := evs[pdu.StateKey{Type: event.StatePowerLevels.Type}]; ok {
		_ = jsonUnmarshal(ev.PDU.Content, &plContent)
	}
	if plContent == nil {
		plContent = defaultPowerLevels(user, newVersion, PresetPrivateChat, nil)
	}
	users := map[string]any{}
	if u, ok := plContent["users"].(map[string]any); ok {
		users = u
	}
	var restore map[string]any
	if newVersion.PrivilegedRoomCreators() {
		delete(users, string(user))
		for _, c := range additionalCreators {
			delete(users, string(c))
		}
	} else {
		if lvl, _ := users[string(user)].(float64); lvl < 100 {
			restore = cloneMap(plContent)
			users[string(user)] = 100
		}
	}
	plContent["users"] = users
	if err := add(event.StatePowerLevels.Type, &empty, plContent); err != nil {
		return "", err
	}
	for _, t := range transferredState {
		if ev, ok := evs[pdu.StateKey{Type: t}]; ok {
			protos = append(protos, &proto{Sender: user, Type: t, StateKey: &empty, Content: ev.PDU.Content})
		}
	}
	// 4. Local aliases move with the canonical alias.
	if ev, ok := evs[pdu.StateKey{Type: event.StateCanonicalAlias.Type}]; ok {
		protos = append(protos, &proto{Sender: user, Type: event.StateCanonicalAlias.Type, StateKey: &empty, Content: ev.PDU.Content})
	}
	if restore != nil {
		if err := add(event.StatePowerLevels.Type, &empty, restore); err != nil {
			return "", err
		}
	}
	invited, err := s.db.Members(ctx, oldRoomID, string(event.MembershipInvite))
	if err != nil {
		return "", err
	}
	for _, u := range invited {
		key := string(u)
		content := map[string]any{"membership": event.MembershipInvite}
		s.addProfile(ctx, content, u)
		if err := add(event.StateMember.Type, &key, content); err != nil {
			return "", err
		}
	}

	nr := &room{Version: newVersion}
	if !newVersion.RoomIDIsCreateEventID() {
		nr.ID = id.RoomID("!" + randomString(18) + ":" + s.serverName)
	}
	if _, err := s.sendEvents(ctx, nr, protos, true); err != nil {
		return "", err
	}
	s.cache.putRoom(nr)
	if err := s.db.MoveAliases(ctx, oldRoomID, nr.ID); err != nil {
		return "", err
	}
	if err := s.movePublication(ctx, oldRoomID, nr.ID); err != nil {
		return "", err
	}

	// 5-6. Tombstone the old room, drop its canonical alias, and raise the
	// power needed to speak or invite there.
	oldProtos := []*proto{}
	addOld := func(evType string, content any) error {
		p, err := newProto(user, evType, &empty, content)
		if err == nil {
			oldProtos = append(oldProtos, p)
		}
		return err
	}
	if err := addOld(event.StateTombstone.Type, map[string]any{"body": "This room has been replaced", "replacement_room": nr.ID}); err != nil {
		return "", err
	}
	if _, ok := evs[pdu.StateKey{Type: event.StateCanonicalAlias.Type}]; ok {
		if err := addOld(event.StateCanonicalAlias.Type, map[string]any{}); err != nil {
			return "", err
		}
	}
	if ev, ok := evs[pdu.StateKey{Type: event.StatePowerLevels.Type}]; ok {
		var oldPL map[string]any
		if jsonUnmarshal(ev.PDU.Content, &oldPL) == nil {
			usersDefault, _ := oldPL["users_default"].(float64)
			restricted := max(50, int(usersDefault)+1)
			oldPL["events_default"] = restricted
			oldPL["invite"] = restricted
			if err := addOld(event.StatePowerLevels.Type, oldPL); err != nil {
				return "", err
			}
		}
	}
	// The tombstone must land; the later changes may exceed the upgrader's
	// power over the old room (they need power_levels rights) and are then
	// skipped, as Synapse does.
	if _, err := s.sendEvents(ctx, old, oldProtos[:1], false); err != nil {
		return "", err
	}
	for _, p := range oldProtos[1:] {
		if _, err := s.sendEvents(ctx, old, []*proto{p}, false); err != nil {
			s.log.Warn("could not restrict upgraded room", "room", oldRoomID, "type", p.Type, "error", err)
		}
	}
	s.log.Info("room upgraded", "room", oldRoomID, "replacement", nr.ID, "version", newVersion, "user", user)
	return nr.ID, nil
}

func cloneMap(m map[string]any) map[string]any {
	raw, _ := jsonv1.Marshal(m)
	var out map[string]any
	_ = jsonv1.Unmarshal(raw, &out)
	return out
}
