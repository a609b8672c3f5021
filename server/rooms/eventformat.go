package rooms

import (
	"context"
	"encoding/json/v2"
	"fmt"

	"maunium.net/go/mautrix/crypto/canonicaljson"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"
)

// Room versions 1 and 2 use the original event format (rooms/v1.md, "Event
// format"): the sending server picks the event ID ($opaque:server) and puts
// it in the event, and prev_events and auth_events are [event_id, hashes]
// pairs. Later versions name an event by its reference hash and list plain
// IDs. Inside Palpo every event is a *pdu.PDU with plain ID lists and its ID
// in InternalMeta; the original format exists only on the wire and in the
// database, converted here.

// originalFormat tells whether a room version uses the original event format.
func originalFormat(v id.RoomVersion) bool {
	return v.EventIDFormat() == id.EventIDFormatCustom
}

// seal hashes and signs a built event and gives it its ID, returning the
// event's JSON as stored and sent over federation.
func (s *Service) seal(ctx context.Context, r *room, ev *pdu.PDU) (id.EventID, []byte, error) {
	if !originalFormat(r.Version) {
		// Sign fills in the content hash first.
		if err := ev.Sign(r.Version, s.serverName, s.key.ID, s.key.Priv); err != nil {
			return "", nil, fmt.Errorf("sign event: %w", err)
		}
		evID, err := ev.GetEventID(r.Version)
		if err != nil {
			return "", nil, fmt.Errorf("event ID: %w", err)
		}
		raw, err := canonicaljson.Marshal(ev)
		if err != nil {
			return "", nil, fmt.Errorf("encode event: %w", err)
		}
		return evID, raw, nil
	}
	evID := id.EventID("$" + randomString(18) + ":" + s.serverName)
	old, err := s.toOriginalFormat(ctx, ev, evID)
	if err != nil {
		return "", nil, err
	}
	if err := old.Sign(r.Version, s.serverName, s.key.ID, s.key.Priv); err != nil {
		return "", nil, fmt.Errorf("sign event: %w", err)
	}
	// The hashes and signature cover the original format; the internal
	// copy carries them so that both stay one event.
	ev.Hashes, ev.Signatures = old.Hashes, old.Signatures
	raw, err := canonicaljson.Marshal(old)
	if err != nil {
		return "", nil, fmt.Errorf("encode event: %w", err)
	}
	return evID, raw, nil
}

// toOriginalFormat converts an event to the original format, looking up the
// hashes of the events it references.
func (s *Service) toOriginalFormat(ctx context.Context, ev *pdu.PDU, evID id.EventID) (*pdu.RoomV1PDU, error) {
	refs, err := s.events(ctx, append(append([]id.EventID{}, ev.PrevEvents...), ev.AuthEvents...), true)
	if err != nil {
		return nil, err
	}
	toRefs := func(ids []id.EventID) ([]pdu.V1EventReference, error) {
		out := make([]pdu.V1EventReference, len(ids))
		for i, refID := range ids {
			ref, ok := refs[refID]
			if !ok || ref.PDU.Hashes == nil {
				return nil, fmt.Errorf("event %s references %s, whose hashes are unknown", evID, refID)
			}
			out[i] = pdu.V1EventReference{ID: refID, Hashes: *ref.PDU.Hashes}
		}
		return out, nil
	}
	old := &pdu.RoomV1PDU{
		Content:        ev.Content,
		Depth:          ev.Depth,
		EventID:        evID,
		OriginServerTS: ev.OriginServerTS,
		Redacts:        ev.Redacts,
		RoomID:         ev.RoomID,
		Sender:         ev.Sender,
		StateKey:       ev.StateKey,
		Type:           ev.Type,
		Unknown:        ev.Unknown,
	}
	if old.PrevEvents, err = toRefs(ev.PrevEvents); err != nil {
		return nil, err
	}
	if old.AuthEvents, err = toRefs(ev.AuthEvents); err != nil {
		return nil, err
	}
	return old, nil
}

// parsePDU reads a stored event of a room of the given version.
func parsePDU(version id.RoomVersion, raw []byte) (*pdu.PDU, error) {
	if !originalFormat(version) {
		var p pdu.PDU
		if err := json.Unmarshal(raw, &p); err != nil {
			return nil, err
		}
		return &p, nil
	}
	var old pdu.RoomV1PDU
	if err := json.Unmarshal(raw, &old); err != nil {
		return nil, err
	}
	ids := func(refs []pdu.V1EventReference) []id.EventID {
		out := make([]id.EventID, len(refs))
		for i, ref := range refs {
			out[i] = ref.ID
		}
		return out
	}
	p := &pdu.PDU{
		AuthEvents:           ids(old.AuthEvents),
		Content:              old.Content,
		Depth:                old.Depth,
		Hashes:               old.Hashes,
		OriginServerTS:       old.OriginServerTS,
		PrevEvents:           ids(old.PrevEvents),
		Redacts:              old.Redacts,
		RoomID:               old.RoomID,
		Sender:               old.Sender,
		Signatures:           old.Signatures,
		StateKey:             old.StateKey,
		Sticky:               old.Sticky,
		Type:                 old.Type,
		Unsigned:             old.Unsigned,
		Unknown:              old.Unknown,
		DeprecatedPrevState:  old.DeprecatedPrevState,
		DeprecatedOrigin:     old.DeprecatedOrigin,
		DeprecatedMembership: old.DeprecatedMembership,
	}
	p.InternalMeta.EventID = old.EventID
	return p, nil
}
