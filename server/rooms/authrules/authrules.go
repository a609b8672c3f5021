// Package authrules applies the spec's authorisation rules to an event, for
// every room version Palpo supports. mautrix's eventauth does the work; this
// package adds what it leaves out for room versions 1 to 5 and keeps a bug of
// it from crashing the server. Both the event path (rooms) and state
// resolution (stateres) authorise through here, so the rules live in one place.
package authrules

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/federation/eventauth"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"
)

// Rejections of the rules eventauth does not know (room versions 1 to 5).
var (
	ErrAliasesNotState     = eventauth.AuthFailError{Index: "4.1", Message: "m.room.aliases event has no state_key"}
	ErrAliasesWrongServer  = eventauth.AuthFailError{Index: "4.2", Message: "m.room.aliases state_key must be the sender's server name"}
	ErrCannotRedactEventOf = eventauth.AuthFailError{Index: "11.3", Message: "sender may not redact events of other servers without the redact power level"}
)

// Authorize is eventauth.Authorize for all room versions.
//
// Room versions 1 and 2 use event IDs chosen by the sending server, which
// mautrix's *pdu.PDU cannot compute, while eventauth computes the create
// event's ID for every join (rule 5.3.1). Their rules are those of room
// version 3 plus rule 11 on redactions, so they are checked as version 3,
// with rule 5.3.1 and rule 11 applied here with the event IDs we know
// (InternalMeta.EventID). Room versions 1 to 5 also have rule 4 on
// m.room.aliases, which eventauth lacks.
//
// authEvents nil means "the event's own auth_events", as for eventauth.
func Authorize(version id.RoomVersion, evt *pdu.PDU, authEvents []*pdu.PDU, getEvents eventauth.GetEventsFunc, getKey pdu.GetKeyFunc) (err error) {
	checkAs := version
	original := version.IsKnown() && version.EventIDFormat() == id.EventIDFormatCustom
	if original {
		checkAs = id.RoomV3
		if evt.Type == event.StateMember.Type {
			ae, err := ownAuthEvents(evt, authEvents, getEvents)
			if err != nil {
				return err
			}
			if CreatorFirstJoin(evt, ae) {
				return nil
			}
		}
	}
	err = authorize(checkAs, evt, authEvents, getEvents, getKey)
	if version.IsKnown() && version.SpecialCasedAliasesAuth() && evt.Type == "m.room.aliases" && passedRuleThree(err) {
		// Rule 4 comes before the membership and power level rules: a
		// server may always publish its own aliases.
		if evt.StateKey == nil {
			return ErrAliasesNotState
		}
		if *evt.StateKey != evt.Sender.Homeserver() {
			return ErrAliasesWrongServer
		}
		return nil
	}
	if err == nil && original && evt.Type == event.EventRedaction.Type {
		ae, err := ownAuthEvents(evt, authEvents, getEvents)
		if err != nil {
			return err
		}
		return redactionRule(version, evt, ae)
	}
	return err
}

// authorize is eventauth.Authorize with a panic turned into a rejection.
//
// mautrix v0.32.0 dereferences a nil pointer (allowPowerChangeMap) for a power
// levels event that removes a users entry whose old level equals the
// sender's; the spec rejects that event ("For each entry being changed in, or
// removed from, the users property … if the current value is greater than or
// equal to the sender's current power level, reject"). Such an event can come
// from any room member allowed to send power levels, so it must not crash the
// server.
func authorize(version id.RoomVersion, evt *pdu.PDU, authEvents []*pdu.PDU, getEvents eventauth.GetEventsFunc, getKey pdu.GetKeyFunc) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("auth rules could not be applied to %s: %v", evt.InternalMeta.EventID, p)
		}
	}()
	return eventauth.Authorize(version, evt, authEvents, getEvents, getKey)
}

// passedRuleThree tells whether eventauth's verdict on an event other than
// create, member and third-party invite came from the rules after the
// m.room.aliases rule (membership, power level, state key), or allowed it.
func passedRuleThree(err error) bool {
	return err == nil || errors.Is(err, eventauth.ErrNotInRoom) ||
		errors.Is(err, eventauth.ErrInsufficientPowerLevel) || errors.Is(err, eventauth.ErrMismatchingPrivateStateKey)
}

// ownAuthEvents returns the auth events to apply: the given ones, or the
// event's own auth_events.
func ownAuthEvents(evt *pdu.PDU, authEvents []*pdu.PDU, getEvents eventauth.GetEventsFunc) ([]*pdu.PDU, error) {
	if authEvents != nil {
		return authEvents, nil
	}
	evs, err := getEvents(evt.AuthEvents)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", eventauth.ErrFailedToGetAuthEvents, err)
	}
	out := make([]*pdu.PDU, 0, len(evs))
	for i, ae := range evs {
		if ae == nil {
			return nil, fmt.Errorf("%w (%s)", eventauth.ErrMissingAuthEvent, evt.AuthEvents[i])
		}
		out = append(out, ae)
	}
	return out, nil
}

// CreatorFirstJoin is auth rule 5.3.1 for room versions 1 and 2 ("If the only
// previous event is an m.room.create and the state_key is the creator,
// allow"), with rule 3 (m.federate), the only earlier rule that can apply to
// such an event, in the form eventauth checks them for later versions.
func CreatorFirstJoin(evt *pdu.PDU, authEvents []*pdu.PDU) bool {
	if evt.Type != event.StateMember.Type || evt.StateKey == nil ||
		gjson.GetBytes(evt.Content, "membership").Str != string(event.MembershipJoin) {
		return false
	}
	createEvt := find(authEvents, event.StateCreate.Type, "")
	if createEvt == nil || len(evt.PrevEvents) != 1 || len(evt.AuthEvents) > 1 ||
		evt.PrevEvents[0] != createEvt.InternalMeta.EventID ||
		*evt.StateKey != gjson.GetBytes(createEvt.Content, "creator").Str {
		return false
	}
	federate := gjson.GetBytes(createEvt.Content, "m\\.federate")
	return federate.Type != gjson.False || createEvt.Sender.Homeserver() == evt.Sender.Homeserver()
}

// redactionRule is rule 11 of room versions 1 and 2: a redaction is allowed
// if its sender has the redact level, or if it comes from the server that
// sent the event it redacts (the domains of the two event IDs).
func redactionRule(version id.RoomVersion, evt *pdu.PDU, authEvents []*pdu.PDU) error {
	senderLevel, redactLevel := 0, 50
	if pl := find(authEvents, event.StatePowerLevels.Type, ""); pl != nil {
		if v, ok := ParseLevel(version, gjson.GetBytes(pl.Content, "users_default")); ok {
			senderLevel = v
		}
		if v, ok := ParseLevel(version, gjson.GetBytes(pl.Content, "users."+gjson.Escape(evt.Sender.String()))); ok {
			senderLevel = v
		}
		if v, ok := ParseLevel(version, gjson.GetBytes(pl.Content, "redact")); ok {
			redactLevel = v
		}
	} else if create := find(authEvents, event.StateCreate.Type, ""); create != nil &&
		gjson.GetBytes(create.Content, "creator").Str == evt.Sender.String() {
		// Without a power levels event the creator has level 100.
		senderLevel = 100
	}
	if senderLevel >= redactLevel {
		return nil
	}
	if evt.Redacts != nil && EventIDDomain(*evt.Redacts) != "" && EventIDDomain(*evt.Redacts) == EventIDDomain(evt.InternalMeta.EventID) {
		return nil
	}
	return ErrCannotRedactEventOf
}

// EventIDDomain is the server part of a room version 1 or 2 event ID
// ($opaque:server), "" for other IDs.
func EventIDDomain(evID id.EventID) string {
	_, domain, ok := strings.Cut(string(evID), ":")
	if !ok {
		return ""
	}
	return domain
}

func find(events []*pdu.PDU, evType, stateKey string) *pdu.PDU {
	for _, e := range events {
		if e != nil && e.Type == evType && e.StateKey != nil && *e.StateKey == stateKey {
			return e
		}
	}
	return nil
}

// ParseLevel reads a power level: from room version 10 an integer only,
// before it also a string holding one or a boolean, as those versions'
// servers accepted them. ok is false when the value is no level.
func ParseLevel(version id.RoomVersion, val gjson.Result) (int, bool) {
	if version.ValidatePowerLevelInts() {
		if val.Type != gjson.Number {
			return 0, false
		}
		return int(val.Int()), true
	}
	switch val.Type {
	case gjson.Number:
		return int(val.Int()), true
	case gjson.True:
		return 1, true
	case gjson.False:
		return 0, true
	case gjson.String:
		v, err := strconv.Atoi(strings.TrimSpace(val.Str))
		return v, err == nil
	}
	return 0, false
}
