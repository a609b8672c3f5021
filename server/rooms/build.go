package rooms

import (
	"bytes"
	"context"
	jsonv1 "encoding/json"
	"encoding/json/jsontext"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/federation/eventauth"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/rooms/authrules"
	"github.com/palpo-im/palpo-desktop/server/storage"
)

// MaxPDUSize is the spec's limit on a PDU's canonical JSON, in bytes.
const MaxPDUSize = 65536

// maxPrevEvents bounds prev_events, as Synapse does: a room with many
// extremities (after federation splits) merges them over a few events.
const maxPrevEvents = 10

// proto is an event to build: what the sender asked for.
type proto struct {
	Sender   id.UserID
	Type     string
	StateKey *string
	Content  jsontext.Value
	Redacts  id.EventID
	// Transaction of a client send, recorded for idempotency.
	TxnDevice id.DeviceID
	TxnID     string
	// CheckRelation applies the rules on a client's m.relates_to
	// (relations.go) under the room's lock.
	CheckRelation bool
}

// newProto marshals content (a struct or map) into a proto.
func newProto(sender id.UserID, evType string, stateKey *string, content any) (*proto, error) {
	raw, err := jsonv1.Marshal(content)
	if err != nil {
		return nil, fmt.Errorf("marshal %s content: %w", evType, err)
	}
	return &proto{Sender: sender, Type: evType, StateKey: stateKey, Content: raw}, nil
}

// ErrBadContent is M_BAD_JSON for event content that is not canonical-JSON
// safe: not an object, floats, or integers beyond ±(2⁵³−1).
func checkContent(raw []byte) error {
	dec := jsonv1.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return mautrix.MNotJSON.WithMessage("Content is not valid JSON")
	}
	if dec.More() {
		return mautrix.MNotJSON.WithMessage("Content is not valid JSON")
	}
	if _, ok := v.(map[string]any); !ok {
		return mautrix.MBadJSON.WithMessage("Content must be a JSON object")
	}
	return checkValue(v)
}

const maxSafeInt = 1<<53 - 1

func checkValue(v any) error {
	switch x := v.(type) {
	case jsonv1.Number:
		s := string(x)
		if strings.ContainsAny(s, ".eE") {
			return mautrix.MBadJSON.WithMessage("Floats are not allowed in event content")
		}
		n, err := x.Int64()
		if err != nil || n > maxSafeInt || n < -maxSafeInt {
			return mautrix.MBadJSON.WithMessage("Integers in event content must be within ±(2^53-1)")
		}
	case map[string]any:
		for _, e := range x {
			if err := checkValue(e); err != nil {
				return err
			}
		}
	case []any:
		for _, e := range x {
			if err := checkValue(e); err != nil {
				return err
			}
		}
	}
	return nil
}

// roomHead is where the next event of a room attaches: the forward
// extremities, the depth to use and the state they leave the room in.
type roomHead struct {
	// resolved is set when state was just resolved from several forks and
	// is stored with the next event (stateGroup is then 0).
	resolved bool
	// creating is set for the first event of a new room: its create event,
	// which in v12 rooms names the room.
	creating   bool
	prevEvents []id.EventID
	depth      int64
	stateGroup int64
	state      StateMap
	chainLen   int
}

func (s *Service) head(ctx context.Context, r *room) (*roomHead, error) {
	extremities, err := s.db.ForwardExtremities(ctx, r.ID)
	if err != nil {
		return nil, err
	}
	if len(extremities) == 0 {
		return nil, fmt.Errorf("room %s has no forward extremities", r.ID)
	}
	if len(extremities) > maxPrevEvents {
		// Merge the newest few; the next events pick up the rest.
		extremities = extremities[:maxPrevEvents]
	}
	evs, err := s.Events(ctx, extremities)
	if err != nil {
		return nil, err
	}
	h := &roomHead{prevEvents: slices.Clone(extremities)}
	for _, ev := range evs {
		h.depth = max(h.depth, ev.PDU.Depth+1)
		h.stateGroup = ev.StateAfter
	}
	if len(extremities) > 1 {
		// Only federation forks a room's DAG. The next event joins the
		// forks, on top of their resolved state.
		return s.mergedHead(ctx, r, h, evs)
	}
	snap, err := s.stateOfGroup(ctx, h.stateGroup)
	if err != nil {
		return nil, err
	}
	h.state, h.chainLen = snap.state, snap.chainLen
	return h, nil
}

// build makes a signed PDU from p on top of head, authorises it against the
// state, and returns it with the new state (the same map for messages).
func (s *Service) build(ctx context.Context, r *room, h *roomHead, p *proto) (*Event, error) {
	if err := checkContent(p.Content); err != nil {
		return nil, err
	}
	content, err := canonical(p.Content)
	if err != nil {
		return nil, mautrix.MBadJSON.WithMessage("Content is not valid JSON")
	}
	ev := &pdu.PDU{
		Type:           p.Type,
		StateKey:       p.StateKey,
		Sender:         p.Sender,
		Content:        content,
		OriginServerTS: s.Now().UnixMilli(),
		PrevEvents:     h.prevEvents,
		Depth:          h.depth,
		AuthEvents:     []id.EventID{},
	}
	if ev.PrevEvents == nil {
		ev.PrevEvents = []id.EventID{}
	}
	isV12Create := h.creating && p.Type == event.StateCreate.Type && r.Version.RoomIDIsCreateEventID()
	if !isV12Create {
		ev.RoomID = r.ID
	}
	if p.Redacts != "" {
		// From v11 "redacts" lives in the content; older versions keep it
		// at the top level. Both are set where allowed, as Synapse does.
		if !r.Version.RedactsInContent() {
			ev.Redacts = &p.Redacts
		}
	}
	for _, k := range ev.AuthEventSelection(r.Version) {
		if evID, ok := h.state[k]; ok {
			ev.AuthEvents = append(ev.AuthEvents, evID)
		}
	}
	evID, raw, err := s.seal(ctx, r, ev)
	if err != nil {
		return nil, err
	}
	ev.InternalMeta.EventID = evID
	if isV12Create {
		r.ID = id.RoomID("!" + strings.TrimPrefix(string(evID), "$"))
	}
	if len(raw) > MaxPDUSize {
		return nil, mautrix.MTooLarge.WithMessage(fmt.Sprintf("Event is %d bytes; the limit is %d", len(raw), MaxPDUSize))
	}
	if err := s.authorize(ctx, r, ev); err != nil {
		return nil, authError(err)
	}
	return &Event{PDU: ev, ID: evID, RoomID: r.ID, Version: r.Version, StateBefore: h.stateGroup, wire: raw}, nil
}

// authorize checks an event against the auth rules of its room version.
func (s *Service) authorize(ctx context.Context, r *room, ev *pdu.PDU) error {
	return authrules.Authorize(r.Version, ev, nil, s.pdus(ctx), s.signingKey)
}

// signingKey gives the auth rules the public keys they check signatures
// with (restricted joins, third-party invites). Only this server's own key
// is known until federation fetches others'.
func (s *Service) signingKey(serverName string, keyID id.KeyID, _ time.Time) (id.SigningKey, time.Time, error) {
	if serverName == s.serverName && keyID == s.key.ID {
		return s.key.Pub, time.Now().Add(24 * time.Hour), nil
	}
	return "", time.Time{}, fmt.Errorf("no key %s for server %s", keyID, serverName)
}

// authError turns an auth-rule failure into M_FORBIDDEN with the rule's
// reason, which tells the client what it lacked.
func authError(err error) error {
	var afe eventauth.AuthFailError
	if errors.As(err, &afe) {
		return mautrix.MForbidden.WithMessage("Not allowed: " + afe.Error())
	}
	return mautrix.MForbidden.WithMessage("Not allowed: " + err.Error())
}

// sendEvents builds, authorises and persists events of one room, in order,
// as one transaction, each on top of the previous. With creating set, the
// first proto is the create event of the new room r.
func (s *Service) sendEvents(ctx context.Context, r *room, protos []*proto, creating bool) ([]*Event, error) {
	var h *roomHead
	if creating {
		// A new room: nobody else knows its ID yet, so no lock is needed.
		h = &roomHead{creating: true, depth: 1, state: StateMap{}, chainLen: -1}
	} else {
		defer s.locks.lock(r.ID)()
		var err error
		if h, err = s.head(ctx, r); err != nil {
			return nil, err
		}
	}
	return s.sendEventsOn(ctx, r, protos, h, creating)
}

// sendEventsOn is sendEvents on a given head; the caller holds the lock.
func (s *Service) sendEventsOn(ctx context.Context, r *room, protos []*proto, h *roomHead, creating bool) ([]*Event, error) {
	nowTS := s.Now().UnixMilli()
	built := make([]*Event, 0, len(protos))
	states := make([]StateMap, 0, len(protos))
	batch := make([]*storage.NewEvent, 0, len(protos))
	// Later events of a batch are authorised against earlier ones before
	// any is stored, so the cache pins them meanwhile (an ordinary entry
	// could be cleared under a full cache, losing the only copy); they are
	// forgotten again if the batch fails.
	defer func() {
		s.cache.unpin(built, len(built) > 0 && built[0].StreamPos != 0)
	}()
	for i, p := range protos {
		if p.CheckRelation {
			if err := s.checkRelation(ctx, r, p); err != nil {
				return nil, err
			}
		}
		ev, err := s.build(ctx, r, h, p)
		if err != nil {
			return nil, err
		}
		ne := &storage.NewEvent{
			Event: storage.Event{
				EventID: ev.ID, RoomID: r.ID, Type: p.Type, StateKey: p.StateKey, Sender: p.Sender,
				Depth: ev.PDU.Depth, OriginServerTS: ev.PDU.OriginServerTS, StateBefore: h.stateGroup,
			},
			PrevEvents: ev.PDU.PrevEvents,
			Redacts:    p.Redacts,
			Relation:   relationOf(p.Content),
		}
		if h.resolved {
			ne.BeforeState = h.state
			h.resolved = false
		}
		// The JSON build made, in the room version's format; the cached
		// event does not keep it.
		ne.PDU, ev.wire = ev.wire, nil
		if creating && i == 0 {
			ne.NewRoom = &storage.Room{RoomID: r.ID, RoomVersion: r.Version, Creator: p.Sender, CreatedTS: nowTS}
		}
		if p.TxnID != "" {
			ne.TxnUserID, ne.TxnDeviceID, ne.TxnID = p.Sender, p.TxnDevice, p.TxnID
		}
		if p.StateKey != nil {
			key := pdu.StateKey{Type: p.Type, StateKey: *p.StateKey}
			if p.Type == event.StateMember.Type {
				ne.Membership = string(ev.Membership())
			}
			newState := maps.Clone(h.state)
			newState[key] = ev.ID
			// Keep delta chains short: every storage.MaxChainLen groups (and
			// for a room's first state) store a full snapshot instead.
			if h.chainLen < 0 || h.chainLen+1 >= storage.MaxChainLen {
				ne.FullState = newState
				h.chainLen = 0
			} else {
				ne.StateDelta = StateMap{key: ev.ID}
				h.chainLen++
			}
			h.state = newState
		}
		ev.RoomID = r.ID
		s.cache.pin(ev)
		built = append(built, ev)
		states = append(states, h.state)
		batch = append(batch, ne)
		// The next event attaches to this one; its state group is only known
		// once stored, which storage.PersistEvents resolves (StateBefore -1).
		h.creating = false
		h.prevEvents = []id.EventID{ev.ID}
		h.depth = ev.PDU.Depth + 1
		h.stateGroup = -1
	}
	positions, err := s.db.PersistEvents(ctx, batch, nowTS)
	if err != nil {
		return nil, err
	}
	for i, ev := range built {
		ev.StreamPos = positions[i]
		ev.StateBefore = batch[i].StateBefore
		ev.StateAfter = batch[i].StateAfter
		if ev.IsState() {
			s.cache.putState(ev.StateAfter, &stateSnapshot{state: states[i], chainLen: chainLenOf(batch[i])})
		}
		if batch[i].Redacts != "" {
			s.cache.dropEvent(batch[i].Redacts)
		}
	}
	for _, ev := range built {
		for _, l := range s.listen {
			l(ev)
		}
	}
	return built, nil
}

// chainLenOf is the delta chain length of the state group a persisted
// event made: 0 for a full snapshot.
func chainLenOf(ne *storage.NewEvent) int {
	if ne.FullState != nil {
		return 0
	}
	return ne.ChainLen
}
