package rooms

import (
	"context"
	jsonv1 "encoding/json"
	"fmt"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// Checks on client input that the auth rules would otherwise refuse with a
// bare 403, or not at all: Synapse answers these with 400 or 404, which
// tell the client what to fix.

// checkCreateRequest validates the parts of a createRoom request that name
// users: v12 additional_creators must be user IDs, and local invitees must
// exist (Synapse answers 404 for an unknown local invitee; it does so after
// making the room, here nothing is made).
func (s *Service) checkCreateRequest(ctx context.Context, req *CreateRoomRequest, version id.RoomVersion) error {
	if raw, ok := req.CreationContent["additional_creators"]; ok && version.PrivilegedRoomCreators() {
		if _, err := parseAdditionalCreators(raw); err != nil {
			return err
		}
	}
	// One query for every local invitee, not one each.
	var local []id.UserID
	for _, u := range req.Invite {
		if u.Homeserver() == s.serverName {
			local = append(local, u)
		}
	}
	if len(local) == 0 {
		return nil
	}
	exists, err := s.db.ExistingUsers(ctx, local)
	if err != nil {
		return err
	}
	for _, u := range local {
		if !exists[u] {
			return errNoSuchUser(u)
		}
	}
	return nil
}

// parseAdditionalCreators reads creation_content.additional_creators: a
// list of strings (M_BAD_JSON otherwise), each a valid user ID
// (M_INVALID_PARAM otherwise).
func parseAdditionalCreators(raw jsonv1.RawMessage) ([]id.UserID, error) {
	var items []jsonv1.RawMessage
	if err := jsonv1.Unmarshal(raw, &items); err != nil || items == nil {
		return nil, mautrix.MBadJSON.WithMessage("creation_content.additional_creators must be a list of user IDs")
	}
	out := make([]id.UserID, 0, len(items))
	for _, item := range items {
		var u id.UserID
		if err := jsonv1.Unmarshal(item, &u); err != nil {
			return nil, mautrix.MBadJSON.WithMessage("creation_content.additional_creators must be a list of strings")
		}
		if _, _, err := u.ParseAndValidateRelaxed(); err != nil {
			return nil, mautrix.MInvalidParam.WithMessage(fmt.Sprintf("Invalid user ID %q in creation_content.additional_creators", u))
		}
		out = append(out, u)
	}
	return out, nil
}

// checkLocalUserExists refuses a local user ID no account has, with
// M_NOT_FOUND as Synapse does for invites; remote users are not checked.
func (s *Service) checkLocalUserExists(ctx context.Context, u id.UserID) error {
	if u.Homeserver() != s.serverName {
		return nil
	}
	ok, err := s.db.UserExists(ctx, u)
	if err != nil {
		return err
	}
	if !ok {
		return errNoSuchUser(u)
	}
	return nil
}

func errNoSuchUser(u id.UserID) error {
	return mautrix.MNotFound.WithMessage(fmt.Sprintf("User %s does not exist", u))
}

// checkPowerLevelsCreators refuses, in rooms whose creators have infinite
// power (v12), power levels that list a creator in users: the auth rules
// reject them, and Synapse answers 400 rather than 403.
func (s *Service) checkPowerLevelsCreators(ctx context.Context, r *room, content []byte) error {
	if !r.Version.PrivilegedRoomCreators() {
		return nil
	}
	var pl struct {
		Users map[id.UserID]jsonv1.RawMessage `json:"users"`
	}
	if jsonUnmarshal(content, &pl) != nil || len(pl.Users) == 0 {
		return nil // the auth rules judge malformed content
	}
	create, err := s.CurrentStateEvent(ctx, r.ID, event.StateCreate.Type, "")
	if err != nil || create == nil {
		return err
	}
	var c struct {
		AdditionalCreators []id.UserID `json:"additional_creators"`
	}
	_ = jsonUnmarshal(create.PDU.Content, &c)
	for _, u := range append([]id.UserID{create.PDU.Sender}, c.AdditionalCreators...) {
		if _, ok := pl.Users[u]; ok {
			return mautrix.MBadJSON.WithMessage(fmt.Sprintf("%s is a creator of this room and has unlimited power: leave them out of users", u))
		}
	}
	return nil
}

// topicContent is the m.room.topic content for a plain-text topic: the
// topic and, since spec v1.15, the same text as an m.topic block, as
// Synapse writes it for createRoom's topic.
func topicContent(topic string) map[string]any {
	return map[string]any{
		"topic":   topic,
		"m.topic": map[string]any{"m.text": []map[string]string{{"mimetype": "text/plain", "body": topic}}},
	}
}
