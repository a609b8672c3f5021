package authrules

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"maunium.net/go/mautrix/federation/eventauth"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"
)

const roomID = id.RoomID("!room:home.example")

var (
	alice = id.UserID("@alice:home.example")
	bob   = id.UserID("@bob:home.example")
	zed   = id.UserID("@zed:home.example")
)

func state(evID id.EventID, sender id.UserID, typ, key string, content any) *pdu.PDU {
	raw, _ := json.Marshal(content)
	p := &pdu.PDU{RoomID: roomID, Sender: sender, Type: typ, StateKey: &key, Content: raw, AuthEvents: []id.EventID{}, PrevEvents: []id.EventID{}}
	p.InternalMeta.EventID = evID
	return p
}

// room is a small room of the given version: alice created it and has 100,
// bob is joined with 0, redactions need 50.
func room(version id.RoomVersion) (create *pdu.PDU, authFor func(sender id.UserID) []*pdu.PDU) {
	content := map[string]any{"room_version": version, "creator": alice}
	create = state("$create:home.example", alice, "m.room.create", "", content)
	pl := state("$pl:home.example", alice, "m.room.power_levels", "", map[string]any{"users": map[id.UserID]int{alice: 100}, "redact": 50})
	members := map[id.UserID]*pdu.PDU{
		alice: state("$alice:home.example", alice, "m.room.member", alice.String(), map[string]any{"membership": "join"}),
		bob:   state("$bob:home.example", bob, "m.room.member", bob.String(), map[string]any{"membership": "join"}),
	}
	return create, func(sender id.UserID) []*pdu.PDU {
		out := []*pdu.PDU{create, pl}
		if m := members[sender]; m != nil {
			out = append(out, m)
		}
		return out
	}
}

func noEvents([]id.EventID) ([]*pdu.PDU, error) { return nil, errors.New("no events here") }

func noKeys(string, id.KeyID, time.Time) (id.SigningKey, time.Time, error) {
	return "", time.Time{}, errors.New("no keys here")
}

// Rule 4 of room versions 1 to 5: a server may publish its own aliases,
// member or not; only under its own name.
func TestAliasesRule(t *testing.T) {
	for _, v := range []id.RoomVersion{id.RoomV1, id.RoomV2, id.RoomV3, id.RoomV5} {
		_, authFor := room(v)
		own := state("", zed, "m.room.aliases", "home.example", map[string]any{"aliases": []string{"#a:home.example"}})
		if err := Authorize(v, own, authFor(zed), noEvents, noKeys); err != nil {
			t.Errorf("v%s: a non-member's server publishing its aliases: %v", v, err)
		}
		other := state("", zed, "m.room.aliases", "other.example", map[string]any{"aliases": []string{}})
		if err := Authorize(v, other, authFor(zed), noEvents, noKeys); !errors.Is(err, ErrAliasesWrongServer) {
			t.Errorf("v%s: aliases under another server's name: %v", v, err)
		}
	}
	// From version 6 m.room.aliases is an ordinary state event.
	_, authFor := room(id.RoomV6)
	own := state("", zed, "m.room.aliases", "home.example", map[string]any{"aliases": []string{}})
	if err := Authorize(id.RoomV6, own, authFor(zed), noEvents, noKeys); !errors.Is(err, eventauth.ErrNotInRoom) {
		t.Errorf("v6: aliases by a non-member: %v", err)
	}
}

// Rule 11 of room versions 1 and 2: without the redact level, a server may
// redact only its own events. From version 3 the auth rules leave that to the
// server applying the redaction.
func TestRedactionRule(t *testing.T) {
	redaction := func(by id.UserID, target id.EventID) *pdu.PDU {
		p := &pdu.PDU{RoomID: roomID, Sender: by, Type: "m.room.redaction", Content: json.RawMessage(`{}`), Redacts: &target}
		p.InternalMeta.EventID = "$redaction:home.example"
		return p
	}
	for _, v := range []id.RoomVersion{id.RoomV1, id.RoomV2} {
		_, authFor := room(v)
		if err := Authorize(v, redaction(bob, "$msg:home.example"), authFor(bob), noEvents, noKeys); err != nil {
			t.Errorf("v%s: redacting an event of the same server: %v", v, err)
		}
		if err := Authorize(v, redaction(bob, "$msg:other.example"), authFor(bob), noEvents, noKeys); !errors.Is(err, ErrCannotRedactEventOf) {
			t.Errorf("v%s: redacting another server's event at level 0: %v", v, err)
		}
		if err := Authorize(v, redaction(alice, "$msg:other.example"), authFor(alice), noEvents, noKeys); err != nil {
			t.Errorf("v%s: redacting with the redact level: %v", v, err)
		}
	}
	_, authFor := room(id.RoomV3)
	if err := Authorize(id.RoomV3, redaction(bob, "$otherserversevent"), authFor(bob), noEvents, noKeys); err != nil {
		t.Errorf("v3: the auth rules do not consider the redact level: %v", err)
	}
}

// Rule 5.3.1 in versions 1 and 2, where eventauth cannot compute the create
// event's ID: the creator's first join, found through its own auth_events.
func TestCreatorFirstJoinOriginalFormat(t *testing.T) {
	for _, v := range []id.RoomVersion{id.RoomV1, id.RoomV2} {
		create, _ := room(v)
		getEvents := func(ids []id.EventID) ([]*pdu.PDU, error) {
			out := make([]*pdu.PDU, len(ids))
			for i, evID := range ids {
				if evID == create.InternalMeta.EventID {
					out[i] = create
				}
			}
			return out, nil
		}
		join := func(u id.UserID) *pdu.PDU {
			p := state("", u, "m.room.member", u.String(), map[string]any{"membership": "join"})
			p.PrevEvents = []id.EventID{create.InternalMeta.EventID}
			p.AuthEvents = []id.EventID{create.InternalMeta.EventID}
			return p
		}
		if err := Authorize(v, join(alice), nil, getEvents, noKeys); err != nil {
			t.Errorf("v%s: the creator's first join: %v", v, err)
		}
		if err := Authorize(v, join(bob), nil, getEvents, noKeys); err == nil {
			t.Errorf("v%s: someone else joining right after the create event was allowed", v)
		}
	}
}
