package rooms

import (
	"context"
	jsonv1 "encoding/json"
	"errors"
	"fmt"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/storage"
)

// Event is a stored room event: the PDU and where it sits.
type Event struct {
	PDU         *pdu.PDU
	ID          id.EventID
	RoomID      id.RoomID
	Version     id.RoomVersion
	StreamPos   int64
	StateBefore int64
	StateAfter  int64
	RedactedBy  id.EventID
	Rejected    bool
	// PushActions are the notifications the event made, stored with it.
	PushActions []storage.PushAction

	// wire is the event's JSON in its room version's format, from build
	// until it is persisted.
	wire []byte
}

// IsState tells whether the event is a state event.
func (e *Event) IsState() bool { return e.PDU.StateKey != nil }

// StateKey returns the state key ("" for message events).
func (e *Event) StateKey() string {
	if e.PDU.StateKey == nil {
		return ""
	}
	return *e.PDU.StateKey
}

// Membership is content.membership of a member event.
func (e *Event) Membership() event.Membership {
	var c struct {
		Membership event.Membership `json:"membership"`
	}
	_ = jsonv1.Unmarshal(e.PDU.Content, &c)
	return c.Membership
}

func (s *Service) fromStored(ctx context.Context, se *storage.Event) (*Event, error) {
	r, err := s.room(ctx, se.RoomID)
	if err != nil {
		return nil, err
	}
	p, err := parsePDU(r.Version, se.PDU)
	if err != nil {
		return nil, fmt.Errorf("parse stored event %s: %w", se.EventID, err)
	}
	p.InternalMeta.EventID = se.EventID
	p.InternalMeta.Rejected = se.Rejected
	return &Event{
		PDU: p, ID: se.EventID, RoomID: se.RoomID, Version: r.Version, StreamPos: se.StreamPos,
		StateBefore: se.StateBefore, StateAfter: se.StateAfter, RedactedBy: se.RedactedBy, Rejected: se.Rejected,
	}, nil
}

// Events loads events by ID (from memory when cached); missing IDs are
// absent from the result.
func (s *Service) Events(ctx context.Context, ids []id.EventID) (map[id.EventID]*Event, error) {
	return s.events(ctx, ids, false)
}

// events is Events; with pinned, events built but not yet committed are
// found too (for the auth rules of the events built on them).
func (s *Service) events(ctx context.Context, ids []id.EventID, pinned bool) (map[id.EventID]*Event, error) {
	out := make(map[id.EventID]*Event, len(ids))
	var missing []id.EventID
	for _, evID := range ids {
		if ev := s.cache.event(evID, pinned); ev != nil {
			out[evID] = ev
		} else {
			missing = append(missing, evID)
		}
	}
	if len(missing) == 0 {
		return out, nil
	}
	stored, err := s.db.GetEvents(ctx, missing)
	if err != nil {
		return nil, err
	}
	for evID, se := range stored {
		ev, err := s.fromStored(ctx, se)
		if err != nil {
			return nil, err
		}
		s.cache.putEvent(ev)
		out[evID] = ev
	}
	return out, nil
}

// errEventNotFound is M_NOT_FOUND for an event.
var errEventNotFound = errors.New("event not found")

// event loads one event.
func (s *Service) event(ctx context.Context, evID id.EventID) (*Event, error) {
	evs, err := s.Events(ctx, []id.EventID{evID})
	if err != nil {
		return nil, err
	}
	ev, ok := evs[evID]
	if !ok {
		return nil, errEventNotFound
	}
	return ev, nil
}

// pdus adapts Events to what mautrix's eventauth wants: the PDUs in the
// order asked, nil where unknown.
func (s *Service) pdus(ctx context.Context) func(ids []id.EventID) ([]*pdu.PDU, error) {
	return func(ids []id.EventID) ([]*pdu.PDU, error) {
		evs, err := s.events(ctx, ids, true)
		if err != nil {
			return nil, err
		}
		out := make([]*pdu.PDU, len(ids))
		for i, evID := range ids {
			if ev, ok := evs[evID]; ok {
				out[i] = ev.PDU
			}
		}
		return out, nil
	}
}

// ClientEvent turns the event into the client-server format, redacted (with
// unsigned.redacted_because) if a redaction applies to it.
func (s *Service) ClientEvent(ctx context.Context, ev *Event) (*event.Event, error) {
	p := ev.PDU
	if ev.RedactedBy != "" {
		p = p.Clone().Redact(ev.Version)
	}
	// Built here rather than with pdu.ToClientEvent, which recomputes the
	// event ID (a hash of the whole event) that we already know.
	ce := &event.Event{
		StateKey:  p.StateKey,
		Sender:    p.Sender,
		Type:      event.Type{Type: p.Type, Class: event.MessageEventType},
		Timestamp: p.OriginServerTS,
		ID:        ev.ID,
		RoomID:    ev.RoomID,
	}
	if p.StateKey != nil {
		ce.Type.Class = event.StateEventType
	}
	if p.Redacts != nil {
		ce.Redacts = *p.Redacts
	}
	if err := jsonv1.Unmarshal(p.Content, &ce.Content); err != nil {
		return nil, fmt.Errorf("client event %s: content: %w", ev.ID, err)
	}
	if ev.RedactedBy != "" {
		red, err := s.event(ctx, ev.RedactedBy)
		if err != nil {
			return nil, fmt.Errorf("load redaction of %s: %w", ev.ID, err)
		}
		if ce.Unsigned.RedactedBecause, err = s.ClientEvent(ctx, red); err != nil {
			return nil, err
		}
	}
	return ce, nil
}

// ClientEventFor is ClientEvent as one user's device receives it: with
// unsigned.membership, the user's membership once the event applied (the
// spec's MSC4115 field), and unsigned.transaction_id when that device sent
// the event (so the client can match its local echo). An empty device
// leaves out the transaction ID.
func (s *Service) ClientEventFor(ctx context.Context, user id.UserID, device id.DeviceID, ev *Event) (*event.Event, error) {
	ce, err := s.ClientEvent(ctx, ev)
	if err != nil {
		return nil, err
	}
	if ce.Unsigned.Membership, err = s.membershipAfter(ctx, user, ev); err != nil {
		return nil, err
	}
	if ev.PDU.Sender == user && device != "" {
		txn, err := s.db.TxnIDOf(ctx, user, device, ev.ID)
		if err != nil {
			return nil, err
		}
		ce.Unsigned.TransactionID = txn
	}
	return ce, nil
}

// membershipAfter is a user's membership in the state just after an event,
// its own change included; leave when they had none.
func (s *Service) membershipAfter(ctx context.Context, user id.UserID, ev *Event) (event.Membership, error) {
	if ev.PDU.Type == event.StateMember.Type && ev.StateKey() == string(user) && !ev.Rejected {
		return ev.Membership(), nil
	}
	// Every event of a timeline asks. When its state is not cached, the
	// user's current membership answers for every event since it (the
	// common case: events after one's join) without rebuilding the state.
	if snap := s.cache.state(ev.StateAfter); snap == nil && ev.StreamPos > 0 {
		cur, curID, err := s.db.Membership(ctx, ev.RoomID, user)
		if err != nil {
			return "", err
		}
		if curID == "" {
			return event.MembershipLeave, nil // never a member
		}
		if me, err := s.event(ctx, curID); err == nil && me.StreamPos <= ev.StreamPos {
			return event.Membership(cur), nil
		}
	}
	state, err := s.StateAfter(ctx, ev)
	if err != nil {
		return "", err
	}
	evID, ok := state[pdu.StateKey{Type: event.StateMember.Type, StateKey: string(user)}]
	if !ok {
		return event.MembershipLeave, nil
	}
	m, err := s.event(ctx, evID)
	if err != nil {
		return "", err
	}
	return m.Membership(), nil
}
