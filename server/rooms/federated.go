package rooms

import (
	"context"
	jsonv1 "encoding/json"
	"encoding/json/v2"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto/canonicaljson"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/rooms/authrules"
	"github.com/palpo-im/palpo-desktop/server/rooms/stateres"
	"github.com/palpo-im/palpo-desktop/server/storage"
)

// Events from other servers take the path local ones take: checked by the
// auth rules, stored in the DAG with their state, through the committer.
// They differ in what is checked first (the spec's "Checks performed on
// receipt of a PDU": format, signatures, content hash, auth against the
// event's own auth events, against the state before it, and soft failure
// against the room's current state) and in that the DAG may fork: an event
// whose prev_events are not this server's forward extremities leaves the
// room with several, and the current state is then resolved over them.

// KeyFunc gives the public key a server signed with (the federation key
// ring: cached, or fetched from the server or a notary).
type KeyFunc func(ctx context.Context, serverName string, keyID id.KeyID, at time.Time) (id.SigningKey, time.Time, error)

// Remote is how the rooms service asks other servers for what it lacks.
// The federation service implements it; rooms never knows the transport.
type Remote interface {
	// Event fetches one event (GET /event).
	Event(ctx context.Context, server string, eventID id.EventID) (jsonv1.RawMessage, error)
	// MissingEvents fetches events between earliest and latest
	// (POST /get_missing_events).
	MissingEvents(ctx context.Context, server string, roomID id.RoomID, earliest, latest []id.EventID, limit int) ([]jsonv1.RawMessage, error)
	// StateIDs fetches the state before an event and its auth chain, as
	// event IDs (GET /state_ids).
	StateIDs(ctx context.Context, server string, roomID id.RoomID, eventID id.EventID) (state, authChain []id.EventID, err error)
	// MakeJoin asks a resident server for a join event template.
	MakeJoin(ctx context.Context, server string, roomID id.RoomID, user id.UserID, versions []id.RoomVersion) (id.RoomVersion, jsonv1.RawMessage, error)
	// SendJoin hands a signed join event to a resident server.
	SendJoin(ctx context.Context, server string, roomID id.RoomID, eventID id.EventID, ev jsonv1.RawMessage) (*SendJoinResult, error)
	// QueryDirectory resolves another server's alias.
	QueryDirectory(ctx context.Context, server string, alias id.RoomAlias) (id.RoomID, []string, error)
}

// Errors of inbound events.
var (
	// ErrUnknownRoom is an event of a room this server is not in.
	ErrUnknownRoom = errors.New("this server is not in the room")
	// ErrServerDenied is an event sent by a server the room's server ACL
	// denies.
	ErrServerDenied = errors.New("the room's server ACL denies the sending server")
	// errNoRemote is federation being off.
	errNoRemote = mautrix.MForbidden.WithMessage("Federation is not enabled on this server")
)

// Limits of the event format (the spec's "Size limits" and room versions'
// event format: at most 20 prev_events and 10 auth_events).
const (
	maxRemotePrevEvents = 20
	maxRemoteAuthEvents = 10
	// missingEventsLimit is how many events /get_missing_events is asked
	// for when an event's prev_events are unknown.
	missingEventsLimit = 10
)

// remoteKey is the KeyFunc adapted to mautrix's signature checks, which
// carry no context.
func (s *Service) remoteKey(ctx context.Context) pdu.GetKeyFunc {
	return func(serverName string, keyID id.KeyID, at time.Time) (id.SigningKey, time.Time, error) {
		if serverName == s.serverName && keyID == s.key.ID {
			return s.key.Pub, time.Now().Add(24 * time.Hour), nil
		}
		if s.RemoteKeys == nil {
			return "", time.Time{}, fmt.Errorf("no key %s for server %s", keyID, serverName)
		}
		return s.RemoteKeys(ctx, serverName, keyID, at)
	}
}

// parseRemote reads an event from another server in a room of the given
// version and checks its format, its signatures and its content hash: a
// bad signature is an error (the event is dropped); a hash that does not
// match makes the event redacted, as the spec says. It returns the event
// and the JSON to store.
func (s *Service) parseRemote(ctx context.Context, r *room, raw []byte) (*Event, []byte, error) {
	if len(raw) > MaxPDUSize {
		return nil, nil, fmt.Errorf("event is %d bytes; the limit is %d", len(raw), MaxPDUSize)
	}
	// Canonical form first: duplicate keys and invalid UTF-8 are refused.
	raw, err := canonical(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("event is not valid JSON: %w", err)
	}
	p, err := parsePDU(r.Version, raw)
	if err != nil {
		return nil, nil, fmt.Errorf("event is malformed: %w", err)
	}
	var evID id.EventID
	if originalFormat(r.Version) {
		evID = p.InternalMeta.EventID
		if !strings.HasPrefix(string(evID), "$") || authrules.EventIDDomain(evID) == "" {
			return nil, nil, fmt.Errorf("event has an invalid event_id %q", evID)
		}
	} else if evID, err = p.GetEventID(r.Version); err != nil {
		return nil, nil, fmt.Errorf("event ID: %w", err)
	}
	p.InternalMeta.EventID = evID
	if err := checkRemoteFormat(r, p, evID); err != nil {
		return nil, nil, err
	}
	// Signatures: the sender's server, and in room versions 1 and 2 the
	// server that named the event.
	signers := []string{p.Sender.Homeserver()}
	if originalFormat(r.Version) && authrules.EventIDDomain(evID) != signers[0] {
		signers = append(signers, authrules.EventIDDomain(evID))
	}
	getKey := s.remoteKey(ctx)
	var hashOK bool
	if originalFormat(r.Version) {
		var old pdu.RoomV1PDU
		if err := json.Unmarshal(raw, &old); err != nil {
			return nil, nil, fmt.Errorf("event is malformed: %w", err)
		}
		for _, server := range signers {
			if err := old.VerifySignature(r.Version, server, getKey); err != nil {
				return nil, nil, fmt.Errorf("signature of %s: %w", server, err)
			}
		}
		hashOK = old.VerifyContentHash()
		if !hashOK {
			red := old.Redact(r.Version)
			red.Unsigned = nil
			if raw, err = canonicaljson.Marshal(red); err != nil {
				return nil, nil, err
			}
		}
	} else {
		for _, server := range signers {
			if err := p.VerifySignature(r.Version, server, getKey); err != nil {
				return nil, nil, fmt.Errorf("signature of %s: %w", server, err)
			}
		}
		hashOK = p.VerifyContentHash()
	}
	if !hashOK {
		s.log.Warn("event from another server has a wrong content hash; redacted", "event", evID, "sender", p.Sender)
		p = p.Redact(r.Version)
		p.InternalMeta.EventID = evID
	}
	// unsigned is the sender's business, not covered by signatures.
	p.Unsigned = nil
	if !originalFormat(r.Version) {
		if raw, err = canonicaljson.Marshal(p); err != nil {
			return nil, nil, err
		}
	} else if hashOK {
		var old pdu.RoomV1PDU
		if err := json.Unmarshal(raw, &old); err == nil {
			old.Unsigned = nil
			if enc, err := canonicaljson.Marshal(&old); err == nil {
				raw = enc
			}
		}
	}
	roomID := r.ID
	return &Event{PDU: p, ID: evID, RoomID: roomID, Version: r.Version}, raw, nil
}

// checkRemoteFormat checks what the auth rules take for granted.
func checkRemoteFormat(r *room, p *pdu.PDU, evID id.EventID) error {
	isCreate := p.Type == event.StateCreate.Type && p.StateKey != nil && *p.StateKey == ""
	if isCreate && r.Version.RoomIDIsCreateEventID() {
		if p.RoomID != "" {
			return errors.New("a create event of this room version has no room_id")
		}
		if want := id.RoomID("!" + string(evID)[1:]); want != r.ID {
			return fmt.Errorf("create event %s is not of room %s", evID, r.ID)
		}
	} else if p.RoomID != r.ID {
		return fmt.Errorf("event is of room %s, not %s", p.RoomID, r.ID)
	}
	if p.Type == "" {
		return errors.New("event has no type")
	}
	if _, _, err := p.Sender.ParseAndValidateRelaxed(); err != nil {
		return fmt.Errorf("event has an invalid sender: %w", err)
	}
	if len(p.PrevEvents) > maxRemotePrevEvents || len(p.AuthEvents) > maxRemoteAuthEvents {
		return fmt.Errorf("event has %d prev_events and %d auth_events; the limits are %d and %d",
			len(p.PrevEvents), len(p.AuthEvents), maxRemotePrevEvents, maxRemoteAuthEvents)
	}
	if p.Depth < 0 || p.Depth > 1<<53 {
		return fmt.Errorf("event has an invalid depth %d", p.Depth)
	}
	return nil
}

// ReceivePDU takes an event another server sent (PUT /send): it is checked
// and stored if this server is in its room; origin is the server that sent
// it, asked for what is missing. An error says why the event was dropped or
// rejected; a rejected event is remembered so it is never asked for again.
func (s *Service) ReceivePDU(ctx context.Context, origin string, raw jsonv1.RawMessage) (id.EventID, error) {
	var head struct {
		RoomID id.RoomID `json:"room_id"`
	}
	if err := json.Unmarshal(raw, &head, json.RejectUnknownMembers(false)); err != nil {
		return "", fmt.Errorf("event is malformed: %w", err)
	}
	if head.RoomID == "" {
		return "", errors.New("event has no room_id")
	}
	r, err := s.room(ctx, head.RoomID)
	if err != nil {
		if errors.Is(err, errRoomNotFound) {
			return "", ErrUnknownRoom
		}
		return "", err
	}
	if ok, err := s.ServerAllowed(ctx, r.ID, origin); err != nil {
		return "", err
	} else if !ok {
		return "", ErrServerDenied
	}
	ev, stored, err := s.parseRemote(ctx, r, raw)
	if err != nil {
		return "", err
	}
	return ev.ID, s.receive(ctx, r, origin, ev, stored, true, false)
}

// receive stores a checked event from another server. With fillGaps, its
// unknown prev_events are fetched from origin first.
func (s *Service) receive(ctx context.Context, r *room, origin string, ev *Event, raw []byte, fillGaps, forward bool) error {
	if have, err := s.db.GetEvents(ctx, []id.EventID{ev.ID}); err != nil {
		return err
	} else if old, ok := have[ev.ID]; ok && old.Outlier != storage.OutlierState {
		return nil // seen already
	}
	if err := s.fetchAuthEvents(ctx, r, origin, ev.PDU, 0); err != nil {
		return err
	}
	if fillGaps {
		if err := s.fillGap(ctx, r, origin, ev); err != nil {
			s.log.Warn("could not fill a gap in a room's history", "room", r.ID, "event", ev.ID, "origin", origin, "error", err)
		}
	}
	// State before each prev_event we lack comes from origin.
	gapStates, err := s.gapStates(ctx, r, origin, ev.PDU.PrevEvents)
	if err != nil {
		return err
	}
	return s.persistRemote(ctx, r, ev, raw, gapStates, forward)
}

// fetchAuthEvents makes sure an event's auth events are stored, fetching
// the missing ones (and theirs) from server as outliers.
func (s *Service) fetchAuthEvents(ctx context.Context, r *room, server string, p *pdu.PDU, depth int) error {
	have, err := s.db.GetEvents(ctx, p.AuthEvents)
	if err != nil {
		return err
	}
	for _, authID := range p.AuthEvents {
		if _, ok := have[authID]; ok {
			continue
		}
		if depth > 50 || s.Remote == nil {
			return fmt.Errorf("auth event %s of %s is unknown", authID, p.InternalMeta.EventID)
		}
		if err := s.fetchOutlier(ctx, r, server, authID, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// fetchOutlier fetches one event from server and stores it as an outlier,
// after its own auth events; it is checked against those.
func (s *Service) fetchOutlier(ctx context.Context, r *room, server string, evID id.EventID, depth int) error {
	raw, err := s.Remote.Event(ctx, server, evID)
	if err != nil {
		return fmt.Errorf("fetch event %s from %s: %w", evID, server, err)
	}
	ev, stored, err := s.parseRemote(ctx, r, raw)
	if err != nil {
		return fmt.Errorf("event %s from %s: %w", evID, server, err)
	}
	if ev.ID != evID {
		return fmt.Errorf("%s answered event %s when asked for %s", server, ev.ID, evID)
	}
	if err := s.fetchAuthEvents(ctx, r, server, ev.PDU, depth); err != nil {
		return err
	}
	return s.storeOutliers(ctx, r, []*Event{ev}, [][]byte{stored})
}

// storeOutliers stores events as outliers, each checked against its own
// auth events (which must be stored or earlier in evs); a failing one is
// stored rejected.
func (s *Service) storeOutliers(ctx context.Context, r *room, evs []*Event, raws [][]byte) error {
	defer s.locks.lock(r.ID)()
	s.settle(r.ID)
	var stored []*storage.NewEvent
	var built []*Event
	for i, ev := range evs {
		ne := s.remoteNewEvent(r, ev, raws[i])
		ne.Outlier = storage.OutlierState
		if err := authrules.Authorize(r.Version, ev.PDU, nil, s.pdus(ctx), s.remoteKey(ctx)); err != nil {
			s.log.Info("rejected an event from another server", "room", r.ID, "event", ev.ID, "reason", err)
			ne.Outlier, ne.Rejected = 0, true
			ev.Rejected = true
		}
		s.cache.pin(ev)
		stored = append(stored, ne)
		built = append(built, ev)
	}
	return s.commitRemote(r, stored, built, false)
}

// remoteNewEvent is what storage needs of an event from another server.
func (s *Service) remoteNewEvent(r *room, ev *Event, raw []byte) *storage.NewEvent {
	p := ev.PDU
	ne := &storage.NewEvent{
		Event: storage.Event{
			EventID: ev.ID, RoomID: r.ID, Type: p.Type, StateKey: p.StateKey, Sender: p.Sender,
			Depth: p.Depth, OriginServerTS: p.OriginServerTS, PDU: raw,
		},
		PrevEvents: p.PrevEvents,
		Relation:   relationOf(p.Content),
	}
	if p.Type == event.StateMember.Type && p.StateKey != nil {
		ne.Membership = string(ev.Membership())
	}
	if p.Type == event.EventRedaction.Type {
		if p.Redacts != nil {
			ne.Redacts = *p.Redacts
		} else {
			var c struct {
				Redacts id.EventID `json:"redacts"`
			}
			_ = jsonUnmarshal(p.Content, &c)
			ne.Redacts = c.Redacts
		}
	}
	return ne
}

// settle waits until the room's local events still queued are committed,
// so that the database holds the room's head (the caller holds the room's
// lock, so no more are queued meanwhile).
func (s *Service) settle(roomID id.RoomID) {
	s.tails.mu.Lock()
	h := s.tails.heads[roomID]
	s.tails.mu.Unlock()
	if h != nil && h.pending != nil {
		<-h.pending.done
	}
}

// commitRemote queues events through the committer and waits for them
// (the caller holds the room's lock). With notify, the listeners hear of
// them (timeline events).
func (s *Service) commitRemote(r *room, stored []*storage.NewEvent, built []*Event, notify bool) error {
	if notify {
		// Notifications and unread counts for our users, in the events'
		// transaction, as for local events.
		for _, prepare := range s.prepare {
			prepare(context.Background(), built, stored, nil)
		}
	}
	// The caller settled the room: nothing of it is queued before these.
	var after *pendingBatch
	q := &queued{built: built}
	for start := 0; start < len(stored); start += persistChunk {
		end := min(start+persistChunk, len(stored))
		b := &pendingBatch{room: r.ID, events: stored[start:end], built: built[start:end], after: after, done: make(chan struct{})}
		q.batches = append(q.batches, b)
		after = b
		s.committer.enqueue(b)
	}
	if !notify {
		q.repeat = true // nobody to tell
	}
	// A failed outlier batch leaves the pinned events to be unpinned by
	// finish; nothing else to undo.
	_, err := s.awaitEvents(q)
	s.tails.mu.Lock()
	delete(s.tails.heads, r.ID)
	s.tails.mu.Unlock()
	return err
}

// fillGap fetches the events between the room's forward extremities and
// ev when ev's prev_events are unknown, oldest first, and stores them.
func (s *Service) fillGap(ctx context.Context, r *room, origin string, ev *Event) error {
	missing, err := s.missingEvents(ctx, ev.PDU.PrevEvents)
	if err != nil || len(missing) == 0 || s.Remote == nil {
		return err
	}
	extremities, err := s.db.ForwardExtremities(ctx, r.ID)
	if err != nil {
		return err
	}
	raws, err := s.Remote.MissingEvents(ctx, origin, r.ID, extremities, []id.EventID{ev.ID}, missingEventsLimit)
	if err != nil {
		return err
	}
	var got []*Event
	var stored [][]byte
	for _, raw := range raws {
		gev, st, err := s.parseRemote(ctx, r, raw)
		if err != nil {
			s.log.Info("dropped a missing event from another server", "room", r.ID, "origin", origin, "error", err)
			continue
		}
		got = append(got, gev)
		stored = append(stored, st)
	}
	order := make([]int, len(got))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return got[order[a]].PDU.Depth < got[order[b]].PDU.Depth })
	for _, i := range order {
		// Each takes the normal path, without filling gaps again: one
		// that remains is bridged with the state at it.
		if err := s.receive(ctx, r, origin, got[i], stored[i], false, false); err != nil {
			s.log.Info("a missing event from another server was not stored", "room", r.ID, "event", got[i].ID, "error", err)
		}
	}
	return nil
}

// missingEvents returns the IDs among ids this server does not have in the
// room's DAG (outliers count as missing: they have no state).
func (s *Service) missingEvents(ctx context.Context, ids []id.EventID) ([]id.EventID, error) {
	have, err := s.db.GetEvents(ctx, ids)
	if err != nil {
		return nil, err
	}
	var out []id.EventID
	for _, evID := range ids {
		if e, ok := have[evID]; !ok || e.Outlier != 0 {
			out = append(out, evID)
		}
	}
	return out, nil
}

// gapStates returns, for each of prevs this server lacks, the state after
// it, asked of server (/state_ids, then each event it lacks).
func (s *Service) gapStates(ctx context.Context, r *room, server string, prevs []id.EventID) (map[id.EventID]StateMap, error) {
	missing, err := s.missingEvents(ctx, prevs)
	if err != nil || len(missing) == 0 {
		return nil, err
	}
	if s.Remote == nil {
		return nil, fmt.Errorf("prev_events %v are unknown", missing)
	}
	out := map[id.EventID]StateMap{}
	for _, prevID := range missing {
		stateIDs, authIDs, err := s.Remote.StateIDs(ctx, server, r.ID, prevID)
		if err != nil {
			return nil, fmt.Errorf("state at %s from %s: %w", prevID, server, err)
		}
		need := append(append(slices.Clone(authIDs), stateIDs...), prevID)
		if err := s.fetchOutliers(ctx, r, server, need); err != nil {
			return nil, err
		}
		evs, err := s.Events(ctx, append(slices.Clone(stateIDs), prevID))
		if err != nil {
			return nil, err
		}
		state := StateMap{}
		for _, sid := range stateIDs {
			sev, ok := evs[sid]
			if !ok || !sev.IsState() || sev.Rejected {
				continue
			}
			state[pdu.StateKey{Type: sev.PDU.Type, StateKey: sev.StateKey()}] = sid
		}
		if prev, ok := evs[prevID]; ok && prev.IsState() && !prev.Rejected {
			state[pdu.StateKey{Type: prev.PDU.Type, StateKey: prev.StateKey()}] = prevID
		}
		out[prevID] = state
	}
	return out, nil
}

// fetchOutliers fetches the events among ids this server lacks from
// server, and stores them as outliers, each after its auth events.
func (s *Service) fetchOutliers(ctx context.Context, r *room, server string, ids []id.EventID) error {
	have, err := s.db.GetEvents(ctx, ids)
	if err != nil {
		return err
	}
	for _, evID := range ids {
		if _, ok := have[evID]; ok {
			continue
		}
		if err := s.fetchOutlier(ctx, r, server, evID, 0); err != nil {
			return err
		}
		have[evID] = nil
	}
	return nil
}

// persistRemote authorises a checked event at its place in the DAG and
// stores it: rejected when it fails against its auth events or the state
// before it, soft-failed when it fails against the current state, in the
// timeline otherwise. gapStates gives the state after prev_events this
// server lacks.
func (s *Service) persistRemote(ctx context.Context, r *room, ev *Event, raw []byte, gapStates map[id.EventID]StateMap, forward bool) error {
	defer s.locks.lock(r.ID)()
	s.settle(r.ID)
	if have, err := s.db.GetEvents(ctx, []id.EventID{ev.ID}); err != nil {
		return err
	} else if old, ok := have[ev.ID]; ok && old.Outlier != storage.OutlierState {
		return nil
	} else if ok {
		// Known as an outlier (state learned at a join); now it arrives
		// in the timeline. It stays as it is: its state is the DAG's.
		return nil
	}
	ne := s.remoteNewEvent(r, ev, raw)
	ne.Forward = forward
	getKey := s.remoteKey(ctx)
	reject := func(why error) error {
		s.log.Info("rejected an event from another server", "room", r.ID, "event", ev.ID, "sender", ev.PDU.Sender, "reason", why)
		ne.Rejected, ev.Rejected = true, true
		ev.PDU.InternalMeta.Rejected = true
		s.cache.pin(ev)
		if err := s.commitRemote(r, []*storage.NewEvent{ne}, []*Event{ev}, false); err != nil {
			return err
		}
		return authError(why)
	}
	// 1. Against its own auth events.
	if err := authrules.Authorize(r.Version, ev.PDU, nil, s.pdus(ctx), getKey); err != nil {
		return reject(err)
	}
	// 2. Against the state before it.
	prevs, err := s.Events(ctx, ev.PDU.PrevEvents)
	if err != nil {
		return err
	}
	states := make([]stateres.StateMap, 0, len(ev.PDU.PrevEvents))
	for _, prevID := range ev.PDU.PrevEvents {
		if st, ok := gapStates[prevID]; ok {
			states = append(states, stateres.StateMap(st))
			continue
		}
		prev, ok := prevs[prevID]
		if !ok || prev.StateAfter == 0 && prev.StateBefore == 0 {
			return fmt.Errorf("prev_event %s of %s is unknown", prevID, ev.ID)
		}
		st, err := s.StateAfter(ctx, prev)
		if err != nil {
			return err
		}
		states = append(states, stateres.StateMap(st))
	}
	var before StateMap
	switch len(states) {
	case 0:
		before = StateMap{}
	case 1:
		before = StateMap(states[0])
	default:
		res, err := stateres.Resolve(ctx, r.Version, states, pduLoader{s: s})
		if err != nil {
			return fmt.Errorf("resolve state before %s: %w", ev.ID, err)
		}
		before = StateMap(res)
	}
	if err := authrules.Authorize(r.Version, ev.PDU, s.authEventsFrom(ctx, ev.PDU, r.Version, before), s.pdus(ctx), getKey); err != nil {
		return reject(err)
	}
	// Where its state group comes from: the one prev_event's, or a new
	// snapshot of the resolved (or gap) state.
	single := len(ev.PDU.PrevEvents) == 1 && gapStates == nil
	if single {
		ne.StateBefore = prevs[ev.PDU.PrevEvents[0]].StateAfter
	} else {
		ne.BeforeState = before
	}
	after := before
	if ev.IsState() {
		key := pdu.StateKey{Type: ev.PDU.Type, StateKey: ev.StateKey()}
		ne.StateDelta = StateMap{key: ev.ID}
		after = maps.Clone(before)
		after[key] = ev.ID
	}
	// 3. Soft failure: against the room's current state. The event stays
	// in the DAG's history but is not shown or built upon.
	extremities, err := s.db.ForwardExtremities(ctx, r.ID)
	if err != nil {
		return err
	}
	current, err := s.CurrentState(ctx, r.ID)
	if err != nil {
		return err
	}
	if err := authrules.Authorize(r.Version, ev.PDU, s.authEventsFrom(ctx, ev.PDU, r.Version, current), s.pdus(ctx), getKey); err != nil {
		s.log.Info("soft-failed an event from another server", "room", r.ID, "event", ev.ID, "sender", ev.PDU.Sender, "reason", err)
		ne.Outlier = storage.OutlierSoftFailed
		ne.BeforeState, ne.StateDelta = nil, nil
		s.cache.pin(ev)
		return s.commitRemote(r, []*storage.NewEvent{ne}, []*Event{ev}, false)
	}
	// The room's forward extremities after it: those it does not build on,
	// and itself. With others left, the current state is resolved over
	// them all.
	var others []id.EventID
	for _, x := range extremities {
		if !slices.Contains(ev.PDU.PrevEvents, x) {
			others = append(others, x)
		}
	}
	if len(others) > 0 {
		xs, err := s.Events(ctx, others)
		if err != nil {
			return err
		}
		states := []stateres.StateMap{stateres.StateMap(after)}
		for _, x := range others {
			xev, ok := xs[x]
			if !ok {
				continue
			}
			st, err := s.StateAfter(ctx, xev)
			if err != nil {
				return err
			}
			states = append(states, stateres.StateMap(st))
		}
		res, err := stateres.Resolve(ctx, r.Version, states, pduLoader{s: s, extra: ev})
		if err != nil {
			return fmt.Errorf("resolve current state of %s: %w", r.ID, err)
		}
		ne.CurrentState = StateMap(res)
	}
	s.cache.pin(ev)
	return s.commitRemote(r, []*storage.NewEvent{ne}, []*Event{ev}, true)
}

// authEventsFrom selects an event's auth events from a state map (the
// state before it, or the current state), as the auth rules want them.
func (s *Service) authEventsFrom(ctx context.Context, p *pdu.PDU, v id.RoomVersion, state StateMap) []*pdu.PDU {
	var ids []id.EventID
	for _, k := range p.AuthEventSelection(v) {
		if evID, ok := state[k]; ok {
			ids = append(ids, evID)
		}
	}
	evs, err := s.events(ctx, ids, true)
	if err != nil {
		return []*pdu.PDU{}
	}
	out := make([]*pdu.PDU, 0, len(ids))
	for _, evID := range ids {
		if ev, ok := evs[evID]; ok {
			out = append(out, ev.PDU)
		}
	}
	return out
}
