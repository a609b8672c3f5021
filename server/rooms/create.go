package rooms

import (
	"context"
	jsonv1 "encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/storage"
)

// Room creation presets.
const (
	PresetPrivateChat        = "private_chat"
	PresetTrustedPrivateChat = "trusted_private_chat"
	PresetPublicChat         = "public_chat"
)

// InitialStateEvent is one entry of createRoom's initial_state.
type InitialStateEvent struct {
	Type     string            `json:"type"`
	StateKey string            `json:"state_key"`
	Content  jsonv1.RawMessage `json:"content"`
}

// CreateRoomRequest is the body of POST /createRoom.
type CreateRoomRequest struct {
	Visibility                string                       `json:"visibility"`
	RoomAliasName             string                       `json:"room_alias_name"`
	Name                      *string                      `json:"name"`
	Topic                     *string                      `json:"topic"`
	Invite                    []id.UserID                  `json:"invite"`
	Invite3PID                []jsonv1.RawMessage          `json:"invite_3pid"`
	RoomVersion               id.RoomVersion               `json:"room_version"`
	CreationContent           map[string]jsonv1.RawMessage `json:"creation_content"`
	InitialState              []InitialStateEvent          `json:"initial_state"`
	Preset                    string                       `json:"preset"`
	IsDirect                  bool                         `json:"is_direct"`
	PowerLevelContentOverride map[string]jsonv1.RawMessage `json:"power_level_content_override"`
}

// maxCreateRoomList caps createRoom's invite and initial_state lists. A
// room is built in time linear in their length, but each entry is an event
// to sign and store: a thousand keeps one request under a second or so on a
// small machine, far above what clients send (Element sends a handful).
// Benchmarks raise it to measure the builder on longer lists.
var maxCreateRoomList = 1000

// errInvalidRoomState is the spec's answer when the requested initial state
// cannot be set (for example a power level override that locks the creator out).
var errInvalidRoomState = mautrix.RespError{ErrCode: "M_INVALID_ROOM_STATE", StatusCode: http.StatusBadRequest}

// ProfileSource gives the displayname and avatar for a member event; the
// accounts service is one.
type ProfileSource interface {
	MemberProfile(ctx context.Context, userID id.UserID) (displayName, avatarURL string)
}

// addProfile puts a local user's display name and avatar into member event
// content, as clients expect to find them there, unless the content has its
// own (a per-room profile).
func (s *Service) addProfile(ctx context.Context, content map[string]any, user id.UserID) {
	if s.Profiles == nil || user.Homeserver() != s.serverName {
		return
	}
	dn, av := s.Profiles.MemberProfile(ctx, user)
	if _, ok := content["displayname"]; !ok && dn != "" {
		content["displayname"] = dn
	}
	if _, ok := content["avatar_url"]; !ok && av != "" {
		content["avatar_url"] = av
	}
}

// CreateRoom creates a room with creator as its first member, applying the
// request's events in the order the spec lays down, all in one transaction.
func (s *Service) CreateRoom(ctx context.Context, creator id.UserID, req *CreateRoomRequest) (id.RoomID, error) {
	version := req.RoomVersion
	if version == "" {
		version = s.DefaultNewRoomVersion()
	}
	if !IsSupportedVersion(version) {
		return "", mautrix.MUnsupportedRoomVersion.WithStatus(http.StatusBadRequest).WithMessage(fmt.Sprintf("Room version %q is not supported", version))
	}
	preset := req.Preset
	switch preset {
	case "":
		preset = PresetPrivateChat
		if req.Visibility == "public" {
			preset = PresetPublicChat
		}
	case PresetPrivateChat, PresetTrustedPrivateChat, PresetPublicChat:
	default:
		return "", mautrix.MInvalidParam.WithMessage("Unknown preset " + preset)
	}
	switch req.Visibility {
	case "", "private", "public":
	default:
		return "", mautrix.MInvalidParam.WithMessage(`visibility must be "public" or "private"`)
	}
	if len(req.Invite) > maxCreateRoomList {
		return "", mautrix.MInvalidParam.WithMessage(fmt.Sprintf("invite lists %d users; at most %d can be invited when a room is created, invite the rest afterwards", len(req.Invite), maxCreateRoomList))
	}
	if len(req.InitialState) > maxCreateRoomList {
		return "", mautrix.MInvalidParam.WithMessage(fmt.Sprintf("initial_state has %d events; at most %d can be set when a room is created, send the rest afterwards", len(req.InitialState), maxCreateRoomList))
	}
	for _, u := range req.Invite {
		if _, _, err := u.ParseAndValidateRelaxed(); err != nil {
			return "", mautrix.MInvalidParam.WithMessage(fmt.Sprintf("Invalid user ID %q in invite", u))
		}
	}
	if err := s.checkCreateRequest(ctx, req, version); err != nil {
		return "", err
	}
	if len(req.Invite3PID) > 0 {
		return "", mautrix.MUnknown.WithStatus(http.StatusBadRequest).WithMessage("Inviting by email or phone number is not supported by this server")
	}
	var alias id.RoomAlias
	if req.RoomAliasName != "" {
		if strings.ContainsAny(req.RoomAliasName, ":# \t\n") {
			return "", mautrix.MInvalidParam.WithMessage("room_alias_name must be the local part of an alias only")
		}
		alias = id.NewRoomAlias(req.RoomAliasName, s.serverName)
		if len(alias) > 255 {
			return "", mautrix.MInvalidParam.WithMessage("Alias is too long")
		}
		if _, err := s.db.GetAlias(ctx, alias); err == nil {
			return "", mautrix.MRoomInUse.WithMessage("Room alias already taken")
		} else if !errors.Is(err, storage.ErrNotFound) {
			return "", err
		}
	}

	r := &room{Version: version}
	if !version.RoomIDIsCreateEventID() {
		r.ID = id.RoomID("!" + randomString(18) + ":" + s.serverName)
	}
	protos, err := s.createRoomEvents(ctx, creator, req, preset, version, alias)
	if err != nil {
		return "", err
	}
	if _, err := s.sendEvents(ctx, r, protos, true); err != nil {
		var re mautrix.RespError
		if errors.As(err, &re) && re.ErrCode == mautrix.MForbidden.ErrCode {
			return "", errInvalidRoomState.WithMessage("The requested initial state is not allowed: " + re.Err)
		}
		return "", err
	}
	s.cache.putRoom(r)
	if alias != "" {
		if err := s.db.CreateAlias(ctx, storage.Alias{Alias: alias, RoomID: r.ID, Creator: creator}, s.Now().UnixMilli()); err != nil {
			if errors.Is(err, storage.ErrAliasExists) {
				return "", mautrix.MRoomInUse.WithMessage("Room alias already taken")
			}
			return "", err
		}
	}
	if req.Visibility == "public" {
		if err := s.db.SetRoomPublished(ctx, r.ID, true); err != nil {
			return "", err
		}
	}
	for _, u := range req.Invite {
		if u == creator || !s.invitesRemotely(u) {
			continue
		}
		if _, err := s.ChangeMembership(ctx, MembershipChange{Sender: creator, Target: u, RoomID: r.ID, Membership: event.MembershipInvite, IsDirect: req.IsDirect}); err != nil {
			// The room stands; the invite can be sent again.
			s.log.Warn("could not invite a user of another server to a new room", "room", r.ID, "user", u, "error", err)
		}
	}
	s.log.Info("room created", "room", r.ID, "user", creator, "version", version)
	return r.ID, nil
}

// invitesRemotely tells whether an invite of u goes through u's server.
func (s *Service) invitesRemotely(u id.UserID) bool {
	return u.Homeserver() != s.serverName && s.Remote != nil
}

func (s *Service) createRoomEvents(ctx context.Context, creator id.UserID, req *CreateRoomRequest, preset string, version id.RoomVersion, alias id.RoomAlias) ([]*proto, error) {
	empty := ""
	var protos []*proto
	add := func(evType string, stateKey *string, content any) error {
		p, err := newProto(creator, evType, stateKey, content)
		if err != nil {
			return err
		}
		protos = append(protos, p)
		return nil
	}

	// 1. m.room.create, with creation_content's extra keys.
	create := map[string]any{}
	for k, v := range req.CreationContent {
		create[k] = v
	}
	create["room_version"] = version
	if version.CreatorInContent() {
		create["creator"] = creator
	} else {
		delete(create, "creator")
	}
	if version.PrivilegedRoomCreators() && preset == PresetTrustedPrivateChat {
		// The spec asks trusted private chats to make invitees co-creators.
		var extra []id.UserID
		if raw, ok := req.CreationContent["additional_creators"]; ok {
			if err := jsonv1.Unmarshal(raw, &extra); err != nil {
				return nil, mautrix.MBadJSON.WithMessage("creation_content.additional_creators must be a list of user IDs")
			}
		}
		for _, u := range req.Invite {
			if u != creator && !contains(extra, u) {
				extra = append(extra, u)
			}
		}
		if len(extra) > 0 {
			create["additional_creators"] = extra
		}
	}
	if err := add(event.StateCreate.Type, &empty, create); err != nil {
		return nil, err
	}

	// 2. The creator joins.
	member := map[string]any{"membership": event.MembershipJoin}
	s.addProfile(ctx, member, creator)
	creatorKey := string(creator)
	if err := add(event.StateMember.Type, &creatorKey, member); err != nil {
		return nil, err
	}

	// 3. Power levels: Synapse's defaults, then the override.
	pl := defaultPowerLevels(creator, version, preset, req.Invite)
	for k, v := range req.PowerLevelContentOverride {
		pl[k] = v
	}
	if err := add(event.StatePowerLevels.Type, &empty, pl); err != nil {
		return nil, err
	}

	// 4. The canonical alias.
	if alias != "" {
		if err := add(event.StateCanonicalAlias.Type, &empty, map[string]any{"alias": alias}); err != nil {
			return nil, err
		}
	}

	// 5. The preset's events, unless initial_state sets them itself.
	overridden := map[string]bool{}
	for _, e := range req.InitialState {
		if e.StateKey == "" {
			overridden[e.Type] = true
		}
	}
	joinRule, guest := event.JoinRuleInvite, event.GuestAccessCanJoin
	if preset == PresetPublicChat {
		joinRule, guest = event.JoinRulePublic, event.GuestAccessForbidden
	}
	presetEvents := []struct {
		evType  string
		content any
	}{
		{event.StateJoinRules.Type, map[string]any{"join_rule": joinRule}},
		{event.StateHistoryVisibility.Type, map[string]any{"history_visibility": event.HistoryVisibilityShared}},
		{event.StateGuestAccess.Type, map[string]any{"guest_access": guest}},
	}
	for _, pe := range presetEvents {
		if overridden[pe.evType] {
			continue
		}
		if err := add(pe.evType, &empty, pe.content); err != nil {
			return nil, err
		}
	}

	// 6. initial_state, in order.
	for _, e := range req.InitialState {
		if e.Type == "" {
			return nil, mautrix.MBadJSON.WithMessage("initial_state entries need a type")
		}
		if e.Type == event.StateCreate.Type || e.Type == event.StateMember.Type || e.Type == event.StatePowerLevels.Type {
			// These would undo steps 1-3; Synapse refuses them too.
			return nil, mautrix.MInvalidParam.WithMessage(e.Type + " cannot be set through initial_state")
		}
		if len(e.Content) == 0 {
			return nil, mautrix.MBadJSON.WithMessage("initial_state entries need content")
		}
		key := e.StateKey
		if err := s.checkStateContent(e.Type, key, e.Content); err != nil {
			return nil, err
		}
		protos = append(protos, &proto{Sender: creator, Type: e.Type, StateKey: &key, Content: []byte(e.Content)})
	}

	// 7. Name and topic.
	if req.Name != nil {
		if err := checkText("name", *req.Name); err != nil {
			return nil, err
		}
		if err := add(event.StateRoomName.Type, &empty, map[string]any{"name": *req.Name}); err != nil {
			return nil, err
		}
	}
	if req.Topic != nil {
		if err := add(event.StateTopic.Type, &empty, topicContent(*req.Topic)); err != nil {
			return nil, err
		}
	}

	// 8. Invites. Another server's users are invited once the room
	// exists: their server signs the invite first (CreateRoom).
	for _, u := range req.Invite {
		if u == creator || s.invitesRemotely(u) {
			continue
		}
		content := map[string]any{"membership": event.MembershipInvite}
		if req.IsDirect {
			content["is_direct"] = true
		}
		s.addProfile(ctx, content, u)
		key := string(u)
		if err := add(event.StateMember.Type, &key, content); err != nil {
			return nil, err
		}
	}
	return protos, nil
}

// defaultPowerLevels are Synapse's defaults for a new room. From v12 the
// creators have infinite power and must not be listed in users, and the
// tombstone needs more than the creators' usual 100.
func defaultPowerLevels(creator id.UserID, version id.RoomVersion, preset string, invites []id.UserID) map[string]any {
	users := map[id.UserID]int{}
	tombstone := 100
	// Like Synapse: anyone in a private chat may invite; in a public room
	// moderators do.
	invite := 0
	if preset == PresetPublicChat {
		invite = 50
	}
	if version.PrivilegedRoomCreators() {
		tombstone = 150
	} else {
		users[creator] = 100
		if preset == PresetTrustedPrivateChat {
			for _, u := range invites {
				users[u] = 100
			}
		}
	}
	return map[string]any{
		"users":          users,
		"users_default":  0,
		"events_default": 0,
		"state_default":  50,
		"ban":            50,
		"kick":           50,
		"redact":         50,
		"invite":         invite,
		"events": map[string]int{
			event.StateRoomName.Type:          50,
			event.StatePowerLevels.Type:       100,
			event.StateHistoryVisibility.Type: 100,
			event.StateCanonicalAlias.Type:    50,
			event.StateRoomAvatar.Type:        50,
			event.StateTombstone.Type:         tombstone,
			event.StateServerACL.Type:         100,
			event.StateEncryption.Type:        100,
		},
		"notifications": map[string]int{"room": 50},
	}
}

func contains[T comparable](s []T, v T) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
