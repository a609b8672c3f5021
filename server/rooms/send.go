package rooms

import (
	"bytes"
	"context"
	jsonv1 "encoding/json"
	"errors"
	"strings"
	"unicode"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// Send sends a message event. A transaction ID the device already used on
// the same path returns the event sent then, so a client's retry never
// sends twice (queueEvents checks, under the room's lock).
func (s *Service) Send(ctx context.Context, sender id.UserID, device id.DeviceID, roomID id.RoomID, evType string, content []byte, txnID string) (id.EventID, error) {
	endpoint := "send/" + evType
	r, err := s.room(ctx, roomID)
	if err != nil {
		return "", err
	}
	if evType == event.EventRedaction.Type {
		// Redactions have their own endpoint, which checks the target.
		return "", mautrix.MForbidden.WithMessage("Use the /redact endpoint to redact events")
	}
	p := &proto{Sender: sender, Type: evType, Content: content, TxnDevice: device, TxnEndpoint: endpoint, TxnID: txnID, CheckRelation: true}
	evs, err := s.sendEvents(ctx, r, []*proto{p}, false)
	if err != nil {
		return "", err
	}
	return evs[0].ID, nil
}

// SetState sends a state event. Sending content identical to the current
// state's returns the existing event, as Synapse does, so clients that
// re-send state do not spam the room.
func (s *Service) SetState(ctx context.Context, sender id.UserID, roomID id.RoomID, evType, stateKey string, content []byte) (id.EventID, error) {
	r, err := s.room(ctx, roomID)
	if err != nil {
		return "", err
	}
	if evType == event.StateCreate.Type {
		// 400 rather than the auth rules' 403, as Synapse answers: no
		// sender may ever send this, whatever their power.
		return "", mautrix.MInvalidParam.WithMessage("The create event cannot be replaced")
	}
	if evType == event.StateCanonicalAlias.Type && stateKey == "" {
		if err := s.checkCanonicalAlias(ctx, roomID, content); err != nil {
			return "", err
		}
	}
	if err := s.checkStateContent(evType, stateKey, content); err != nil {
		return "", err
	}
	if evType == event.StatePowerLevels.Type && stateKey == "" {
		if err := s.checkPowerLevelsCreators(ctx, r, content); err != nil {
			return "", err
		}
	}
	if evType == event.StateMember.Type {
		var c struct {
			Membership event.Membership `json:"membership"`
		}
		_ = jsonUnmarshal(content, &c) // malformed content is refused by the auth rules
		if err := s.checkMembershipChange(ctx, sender, id.UserID(stateKey), roomID, c.Membership); err != nil {
			return "", err
		}
		if stateKey == string(sender) {
			if content, err = s.selfJoinContent(ctx, r, sender, content); err != nil {
				return "", err
			}
		}
	}
	if cur, err := s.CurrentStateEvent(ctx, roomID, evType, stateKey); err != nil {
		return "", err
	} else if cur != nil && cur.PDU.Sender == sender && sameJSON(cur.PDU.Content, content) {
		return cur.ID, nil
	}
	p := &proto{Sender: sender, Type: evType, StateKey: &stateKey, Content: content, CheckRelation: true}
	evs, err := s.sendEvents(ctx, r, []*proto{p}, false)
	if err != nil {
		return "", err
	}
	return evs[0].ID, nil
}

// oneLineFields are the state fields that hold one line of text every
// client shows: a room's name and a member's display name.
var oneLineFields = map[string]string{event.StateRoomName.Type: "name", event.StateMember.Type: "displayname"}

// checkOneLine refuses control characters (NUL, newlines, escapes...) in
// the oneLineFields of state a local user sends; a field of the wrong type
// is left to the clients, as before.
func checkOneLine(evType string, content []byte) error {
	field, ok := oneLineFields[evType]
	if !ok {
		return nil
	}
	var fields map[string]jsonv1.RawMessage
	var text string
	if jsonUnmarshal(content, &fields) != nil || jsonUnmarshal(fields[field], &text) != nil {
		return nil
	}
	return checkText(evType+" "+field, text)
}

func checkText(what, text string) error {
	if strings.ContainsFunc(text, unicode.IsControl) {
		return mautrix.MInvalidParam.WithMessage(what + " must not contain control characters")
	}
	return nil
}

func sameJSON(a, b []byte) bool {
	ca, err1 := canonical(a)
	cb, err2 := canonical(b)
	return err1 == nil && err2 == nil && bytes.Equal(ca, cb)
}

// Redact sends a redaction of target. The auth rules let anyone with the
// redact power level redact; senders may redact their own events.
func (s *Service) Redact(ctx context.Context, sender id.UserID, device id.DeviceID, roomID id.RoomID, target id.EventID, reason, txnID string) (id.EventID, error) {
	endpoint := "redact/" + string(target)
	if evID, err := s.storedTxn(ctx, txnKey{sender, device, roomID, endpoint, txnID}); err != nil || evID != "" {
		return evID, err
	}
	r, err := s.room(ctx, roomID)
	if err != nil {
		return "", err
	}
	content := map[string]any{}
	if reason != "" {
		content["reason"] = reason
	}
	if r.Version.RedactsInContent() {
		content["redacts"] = target
	}
	p, err := newProto(sender, event.EventRedaction.Type, nil, content)
	if err != nil {
		return "", err
	}
	p.Redacts, p.TxnDevice, p.TxnEndpoint, p.TxnID = target, device, endpoint, txnID
	// The redaction itself is authorised by the auth rules (redact level);
	// whether it applies to the target (same sender or enough power) is
	// decided here, before it is sent.
	tgt, err := s.event(ctx, target)
	if err != nil && !errors.Is(err, errEventNotFound) {
		return "", err
	}
	if tgt != nil && tgt.RoomID != roomID {
		tgt = nil
	}
	if tgt == nil {
		return "", mautrix.MNotFound.WithMessage("Event not found")
	}
	if tgt.PDU.Sender != sender {
		state, err := s.CurrentState(ctx, roomID)
		if err != nil {
			return "", err
		}
		pl, err := s.powerLevels(ctx, r, state)
		if err != nil {
			return "", err
		}
		if pl.GetUserLevel(sender) < pl.Redact() {
			return "", mautrix.MForbidden.WithMessage("You may not redact other people's events")
		}
	}
	evs, err := s.sendEvents(ctx, r, []*proto{p}, false)
	if err != nil {
		return "", err
	}
	return evs[0].ID, nil
}
