package rooms

import (
	"context"
	jsonv1 "encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto/canonicaljson"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/rooms/authrules"
	"github.com/palpo-im/palpo-desktop/server/storage"
)

// Joins across servers. The joining server asks a resident server for a
// join event template (make_join), fills it in, signs it and hands it back
// (send_join); the resident server checks and stores it like any event from
// another server and answers with the room's state and auth chain, which
// the joining server checks event by event before it stores the room.

// ErrIncompatibleVersion is a room whose version the other server does not
// support (M_INCOMPATIBLE_ROOM_VERSION, with room_version).
type ErrIncompatibleVersion struct{ Version id.RoomVersion }

func (e ErrIncompatibleVersion) Error() string {
	return fmt.Sprintf("the room is of version %s, which the joining server does not support", e.Version)
}

// MakeJoin builds the join event template a resident server hands another
// server whose user wants to join (GET /make_join): unsigned, on top of the
// room's latest events. versions are the room versions the other server
// supports.
func (s *Service) MakeJoin(ctx context.Context, roomID id.RoomID, user id.UserID, versions []id.RoomVersion) (id.RoomVersion, jsonv1.RawMessage, error) {
	return s.makeMembership(ctx, roomID, user, versions, event.MembershipJoin)
}

// MakeLeave is MakeJoin for a leave (GET /make_leave).
func (s *Service) MakeLeave(ctx context.Context, roomID id.RoomID, user id.UserID) (id.RoomVersion, jsonv1.RawMessage, error) {
	return s.makeMembership(ctx, roomID, user, nil, event.MembershipLeave)
}

// MakeKnock is MakeJoin for a knock (GET /make_knock).
func (s *Service) MakeKnock(ctx context.Context, roomID id.RoomID, user id.UserID, versions []id.RoomVersion) (id.RoomVersion, jsonv1.RawMessage, error) {
	return s.makeMembership(ctx, roomID, user, versions, event.MembershipKnock)
}

func (s *Service) makeMembership(ctx context.Context, roomID id.RoomID, user id.UserID, versions []id.RoomVersion, m event.Membership) (id.RoomVersion, jsonv1.RawMessage, error) {
	r, err := s.room(ctx, roomID)
	if err != nil {
		return "", nil, err
	}
	if versions != nil && !slices.Contains(versions, r.Version) {
		return "", nil, ErrIncompatibleVersion{r.Version}
	}
	if joined, err := s.hasLocalMembers(ctx, r.ID); err != nil {
		return "", nil, err
	} else if !joined {
		return "", nil, mautrix.MNotFound.WithMessage("No user of this server is in the room")
	}
	content := map[string]any{"membership": m}
	if m == event.MembershipJoin {
		current, _, err := s.db.Membership(ctx, r.ID, user)
		if err != nil {
			return "", nil, err
		}
		if current != string(event.MembershipJoin) && current != string(event.MembershipInvite) {
			if via, err := s.restrictedJoinVia(ctx, r, user); err != nil {
				return "", nil, err
			} else if via != "" {
				content["join_authorised_via_users_server"] = via
			}
		}
	}
	key := string(user)
	p, err := newProto(user, event.StateMember.Type, &key, content)
	if err != nil {
		return "", nil, err
	}
	defer s.locks.lock(r.ID)()
	h, err := s.latestHead(ctx, r)
	if err != nil {
		return "", nil, err
	}
	ev := &pdu.PDU{
		Type: p.Type, StateKey: p.StateKey, Sender: user, Content: p.Content, RoomID: r.ID,
		OriginServerTS: s.Now().UnixMilli(), PrevEvents: h.prevEvents, Depth: h.depth, AuthEvents: []id.EventID{},
	}
	for _, k := range ev.AuthEventSelection(r.Version) {
		if evID, ok := h.state[k]; ok {
			ev.AuthEvents = append(ev.AuthEvents, evID)
		}
	}
	// The rules are checked now, so a user who may not join hears so at
	// once. A restricted join is not: its authoriser signs only at
	// send_join, and restrictedJoinVia has decided already.
	if _, restricted := content["join_authorised_via_users_server"]; !restricted {
		if err := authrules.Authorize(r.Version, ev, s.authEventsFrom(ctx, ev, r.Version, h.state), s.pdus(ctx), s.remoteKey(ctx)); err != nil {
			return "", nil, authError(err)
		}
	}
	var raw []byte
	if originalFormat(r.Version) {
		old, err := s.toOriginalFormat(ctx, ev, "")
		if err != nil {
			return "", nil, err
		}
		raw, err = canonicaljson.Marshal(old)
		if err != nil {
			return "", nil, err
		}
	} else if raw, err = canonicaljson.Marshal(ev); err != nil {
		return "", nil, err
	}
	return r.Version, raw, nil
}

// hasLocalMembers tells whether a user of this server is joined to a room.
func (s *Service) hasLocalMembers(ctx context.Context, roomID id.RoomID) (bool, error) {
	members, err := s.JoinedUsers(ctx, roomID)
	if err != nil {
		return false, err
	}
	for _, m := range members {
		if m.Homeserver() == s.serverName {
			return true, nil
		}
	}
	return false, nil
}

// SendJoinResult is what a resident server answers send_join with.
type SendJoinResult struct {
	Event         jsonv1.RawMessage
	State         []jsonv1.RawMessage
	AuthChain     []jsonv1.RawMessage
	ServersInRoom []string
}

// SendJoin accepts a join event another server signed for its user
// (PUT /send_join): checked like any event from origin, countersigned when
// it names one of our users as the restricted join's authoriser, stored,
// and answered with the state before it and that state's auth chain.
func (s *Service) SendJoin(ctx context.Context, origin string, roomID id.RoomID, evID id.EventID, raw jsonv1.RawMessage) (*SendJoinResult, error) {
	ev, stored, err := s.acceptMembership(ctx, origin, roomID, evID, raw, event.MembershipJoin)
	if err != nil {
		return nil, err
	}
	stateIDs, err := s.StateBefore(ctx, ev)
	if err != nil {
		return nil, err
	}
	ids := make([]id.EventID, 0, len(stateIDs))
	for _, evID := range stateIDs {
		ids = append(ids, evID)
	}
	res := &SendJoinResult{Event: stored}
	if res.State, err = s.rawPDUs(ctx, ids); err != nil {
		return nil, err
	}
	chain, err := s.AuthChain(ctx, ids)
	if err != nil {
		return nil, err
	}
	if res.AuthChain, err = s.rawPDUs(ctx, chain); err != nil {
		return nil, err
	}
	if res.ServersInRoom, err = s.ServersInRoom(ctx, roomID); err != nil {
		return nil, err
	}
	return res, nil
}

// SendLeave accepts a leave event another server signed (PUT /send_leave).
func (s *Service) SendLeave(ctx context.Context, origin string, roomID id.RoomID, evID id.EventID, raw jsonv1.RawMessage) error {
	_, _, err := s.acceptMembership(ctx, origin, roomID, evID, raw, event.MembershipLeave)
	return err
}

// SendKnock accepts a knock event another server signed (PUT /send_knock)
// and returns the stripped state the knocker may see.
func (s *Service) SendKnock(ctx context.Context, origin string, roomID id.RoomID, evID id.EventID, raw jsonv1.RawMessage) ([]*event.Event, error) {
	ev, _, err := s.acceptMembership(ctx, origin, roomID, evID, raw, event.MembershipKnock)
	if err != nil {
		return nil, err
	}
	return s.StrippedState(ctx, ev)
}

// acceptMembership checks and stores a membership event signed by another
// server for its own user, returning it and its JSON as stored (with our
// signature added when we authorised a restricted join).
func (s *Service) acceptMembership(ctx context.Context, origin string, roomID id.RoomID, evID id.EventID, raw jsonv1.RawMessage, m event.Membership) (*Event, []byte, error) {
	r, err := s.room(ctx, roomID)
	if err != nil {
		return nil, nil, err
	}
	ev, stored, err := s.parseRemote(ctx, r, raw)
	if err != nil {
		return nil, nil, mautrix.MBadJSON.WithMessage(err.Error())
	}
	if ev.ID != evID {
		return nil, nil, mautrix.MBadJSON.WithMessage(fmt.Sprintf("the event's ID is %s, not %s", ev.ID, evID))
	}
	p := ev.PDU
	if p.Type != event.StateMember.Type || p.StateKey == nil || *p.StateKey != string(p.Sender) || ev.Membership() != m {
		return nil, nil, mautrix.MBadJSON.WithMessage(fmt.Sprintf("the event must be the sender's own %s", m))
	}
	if p.Sender.Homeserver() != origin {
		return nil, nil, mautrix.MForbidden.WithMessage("The sender is not a user of the requesting server")
	}
	if m == event.MembershipJoin && r.Version.RestrictedJoins() {
		var c struct {
			Via id.UserID `json:"join_authorised_via_users_server"`
		}
		_ = jsonUnmarshal(p.Content, &c)
		if c.Via != "" && c.Via.Homeserver() == s.serverName {
			if stored, err = s.countersign(r, ev); err != nil {
				return nil, nil, err
			}
		}
	}
	if err := s.receive(ctx, r, origin, ev, stored, false, true); err != nil {
		return nil, nil, err
	}
	got, err := s.Events(ctx, []id.EventID{ev.ID})
	if err != nil {
		return nil, nil, err
	}
	sev, ok := got[ev.ID]
	if !ok || sev.Rejected {
		return nil, nil, mautrix.MForbidden.WithMessage("The event was rejected")
	}
	if st, err := s.db.GetEvents(ctx, []id.EventID{ev.ID}); err == nil && st[ev.ID] != nil && st[ev.ID].Outlier == storage.OutlierSoftFailed {
		return nil, nil, mautrix.MForbidden.WithMessage("The event is not allowed by the room's current state")
	}
	return sev, stored, nil
}

// countersign adds this server's signature to an event of another server
// (a restricted join we authorise), returning its new JSON.
func (s *Service) countersign(r *room, ev *Event) ([]byte, error) {
	if originalFormat(r.Version) {
		return nil, errors.New("restricted joins do not exist in room versions 1 and 2")
	}
	// Sign recomputes the content hash, which is unchanged.
	if err := ev.PDU.Sign(r.Version, s.serverName, s.key.ID, s.key.Priv); err != nil {
		return nil, fmt.Errorf("countersign: %w", err)
	}
	return canonicaljson.Marshal(ev.PDU)
}

// rawPDUs returns events as stored, in the federation format.
func (s *Service) rawPDUs(ctx context.Context, ids []id.EventID) ([]jsonv1.RawMessage, error) {
	stored, err := s.db.GetEvents(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make([]jsonv1.RawMessage, 0, len(ids))
	for _, evID := range ids {
		if se, ok := stored[evID]; ok {
			out = append(out, jsonv1.RawMessage(se.PDU))
		}
	}
	return out, nil
}

// AuthChain returns the auth chain of events: their auth events, theirs,
// and so on (not the events themselves unless one is another's auth event).
func (s *Service) AuthChain(ctx context.Context, ids []id.EventID) ([]id.EventID, error) {
	seen := map[id.EventID]bool{}
	var out []id.EventID
	frontier := slices.Clone(ids)
	for len(frontier) > 0 {
		evs, err := s.Events(ctx, frontier)
		if err != nil {
			return nil, err
		}
		var next []id.EventID
		for _, evID := range frontier {
			ev, ok := evs[evID]
			if !ok {
				continue
			}
			for _, a := range ev.PDU.AuthEvents {
				if !seen[a] {
					seen[a] = true
					out = append(out, a)
					next = append(next, a)
				}
			}
		}
		frontier = next
	}
	return out, nil
}

// ServersInRoom lists the servers with a user joined to a room.
func (s *Service) ServersInRoom(ctx context.Context, roomID id.RoomID) ([]string, error) {
	members, err := s.JoinedUsers(ctx, roomID)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range members {
		if hs := m.Homeserver(); !slices.Contains(out, hs) {
			out = append(out, hs)
		}
	}
	sort.Strings(out)
	return out, nil
}

// JoinRemote joins a local user to a room this server is not in, through
// the first of servers that answers: make_join, sign, send_join, then the
// returned state and auth chain are checked and the room stored with the
// join as its first timeline event here.
func (s *Service) JoinRemote(ctx context.Context, user id.UserID, roomID id.RoomID, servers []string, extra map[string]jsonv1.RawMessage) (id.EventID, error) {
	if s.Remote == nil {
		return "", errNoRemote
	}
	return s.throughServers(servers, "join the room", func(server string) (id.EventID, error) {
		return s.joinVia(ctx, user, roomID, server, extra)
	})
}

// throughServers tries a membership change through each of servers in
// turn (never this one) until one succeeds; a refusal (403, or a room
// version we lack) ends the tries, since another server would say the
// same. what names the change for the error.
func (s *Service) throughServers(servers []string, what string, try func(server string) (id.EventID, error)) (id.EventID, error) {
	var lastErr error
	for _, server := range servers {
		if server == s.serverName || server == "" {
			continue
		}
		evID, err := try(server)
		if err == nil {
			return evID, nil
		}
		s.log.Info("could not "+what+" through a server", "server", server, "error", err)
		lastErr = err
		var re mautrix.RespError
		if errors.As(err, &re) && (re.ErrCode == mautrix.MForbidden.ErrCode || re.ErrCode == "M_INCOMPATIBLE_ROOM_VERSION") {
			return "", err
		}
	}
	if lastErr == nil {
		return "", mautrix.MNotFound.WithMessage("No server to " + what + " through; give one with server_name or via")
	}
	var re mautrix.RespError
	if errors.As(lastErr, &re) {
		return "", lastErr
	}
	return "", mautrix.MUnknown.WithMessage("Could not " + what + ": " + lastErr.Error())
}

func (s *Service) joinVia(ctx context.Context, user id.UserID, roomID id.RoomID, server string, extra map[string]jsonv1.RawMessage) (id.EventID, error) {
	version, tmpl, err := s.Remote.MakeJoin(ctx, server, roomID, user, SupportedRoomVersions)
	if err != nil {
		return "", err
	}
	if !slices.Contains(SupportedRoomVersions, version) {
		return "", mautrix.RespError{ErrCode: "M_INCOMPATIBLE_ROOM_VERSION", Err: "The room's version " + string(version) + " is not supported", StatusCode: 400}
	}
	r := &room{ID: roomID, Version: version}
	evID, raw, err := s.fillTemplateAs(ctx, r, user, tmpl, extra, event.MembershipJoin)
	if err != nil {
		return "", fmt.Errorf("join template from %s: %w", server, err)
	}
	resp, err := s.Remote.SendJoin(ctx, server, roomID, evID, raw)
	if err != nil {
		return "", err
	}
	if len(resp.Event) > 0 {
		// The resident's copy carries its signature for a restricted join.
		raw = resp.Event
	}
	return evID, s.storeJoinedRoom(ctx, r, server, evID, raw, resp)
}

// fillTemplateAs completes a make_join (or make_leave) template of
// membership m: our user's content, the time, hashes and signature; it
// returns the event's ID and JSON.
func (s *Service) fillTemplateAs(ctx context.Context, r *room, user id.UserID, tmpl jsonv1.RawMessage, extra map[string]jsonv1.RawMessage, m event.Membership) (id.EventID, []byte, error) {
	var fields map[string]jsonv1.RawMessage
	if err := jsonv1.Unmarshal(tmpl, &fields); err != nil {
		return "", nil, fmt.Errorf("template is not a JSON object: %w", err)
	}
	var head struct {
		Type     string    `json:"type"`
		StateKey *string   `json:"state_key"`
		Sender   id.UserID `json:"sender"`
		RoomID   id.RoomID `json:"room_id"`
		Content  struct {
			Membership event.Membership `json:"membership"`
		} `json:"content"`
	}
	if err := jsonv1.Unmarshal(tmpl, &head); err != nil {
		return "", nil, err
	}
	if head.Type != event.StateMember.Type || head.StateKey == nil || *head.StateKey != string(user) || head.Sender != user ||
		head.RoomID != r.ID || head.Content.Membership != m {
		return "", nil, fmt.Errorf("the template is not a %s of this user in this room", m)
	}
	var content map[string]any
	if err := jsonv1.Unmarshal(fields["content"], &content); err != nil {
		return "", nil, err
	}
	for k, v := range extra {
		if !slices.Contains(serverMemberKeys, k) || k == "reason" {
			content[k] = v
		}
	}
	if m == event.MembershipJoin || m == event.MembershipKnock {
		s.addProfile(ctx, content, user)
	}
	c, err := jsonv1.Marshal(content)
	if err != nil {
		return "", nil, err
	}
	fields["content"] = c
	fields["origin_server_ts"], _ = jsonv1.Marshal(s.Now().UnixMilli())
	fields["origin"], _ = jsonv1.Marshal(s.serverName)
	delete(fields, "signatures")
	delete(fields, "hashes")
	delete(fields, "unsigned")
	delete(fields, "event_id")
	if originalFormat(r.Version) {
		evID := id.EventID("$" + randomString(18) + ":" + s.serverName)
		fields["event_id"], _ = jsonv1.Marshal(evID)
		b, err := jsonv1.Marshal(fields)
		if err != nil {
			return "", nil, err
		}
		var old pdu.RoomV1PDU
		if err := jsonv1.Unmarshal(b, &old); err != nil {
			return "", nil, err
		}
		if err := old.Sign(r.Version, s.serverName, s.key.ID, s.key.Priv); err != nil {
			return "", nil, err
		}
		raw, err := canonicaljson.Marshal(&old)
		return evID, raw, err
	}
	delete(fields, "origin") // not part of the format since v3 (it was never required)
	b, err := jsonv1.Marshal(fields)
	if err != nil {
		return "", nil, err
	}
	p, err := parsePDU(r.Version, b)
	if err != nil {
		return "", nil, err
	}
	if err := p.Sign(r.Version, s.serverName, s.key.ID, s.key.Priv); err != nil {
		return "", nil, err
	}
	evID, err := p.GetEventID(r.Version)
	if err != nil {
		return "", nil, err
	}
	raw, err := canonicaljson.Marshal(p)
	return evID, raw, err
}

// storeJoinedRoom checks a send_join answer and stores the room: every
// state and auth chain event checked (format, signatures, hash, auth rules
// against its own auth events) and stored as an outlier, then the join as
// the room's first timeline event here, on the returned state.
func (s *Service) storeJoinedRoom(ctx context.Context, r *room, server string, joinID id.EventID, joinRaw []byte, resp *SendJoinResult) error {
	type item struct {
		ev  *Event
		raw []byte
	}
	seen := map[id.EventID]bool{}
	var items []item
	var stateIDs []id.EventID
	add := func(raws []jsonv1.RawMessage, isState bool) error {
		for _, raw := range raws {
			ev, st, err := s.parseRemote(ctx, r, raw)
			if err != nil {
				// One bad event of a big room is dropped; the auth rules
				// decide whether the rest still holds together.
				s.log.Info("dropped an event of a room being joined", "room", r.ID, "server", server, "error", err)
				continue
			}
			if isState {
				stateIDs = append(stateIDs, ev.ID)
			}
			if !seen[ev.ID] {
				seen[ev.ID] = true
				items = append(items, item{ev, st})
			}
		}
		return nil
	}
	if err := add(resp.AuthChain, false); err != nil {
		return err
	}
	if err := add(resp.State, true); err != nil {
		return err
	}
	join, joinStored, err := s.parseRemote(ctx, r, joinRaw)
	if err != nil {
		return fmt.Errorf("the join event: %w", err)
	}
	if join.ID != joinID {
		return fmt.Errorf("%s changed the join event's ID", server)
	}
	// Auth events come before the events they authorise: order by depth,
	// which grows along every path of the DAG.
	sort.SliceStable(items, func(a, b int) bool { return items[a].ev.PDU.Depth < items[b].ev.PDU.Depth })
	var create *Event
	for _, it := range items {
		if it.ev.PDU.Type == event.StateCreate.Type && it.ev.StateKey() == "" {
			create = it.ev
		}
	}
	if create == nil {
		return fmt.Errorf("%s sent no create event of the room", server)
	}
	if r.Version.RoomIDIsCreateEventID() {
		if id.RoomID("!"+strings.TrimPrefix(string(create.ID), "$")) != r.ID {
			return fmt.Errorf("the create event %s is not of room %s", create.ID, r.ID)
		}
	}
	var cc struct {
		RoomVersion id.RoomVersion `json:"room_version"`
	}
	_ = jsonUnmarshal(create.PDU.Content, &cc)
	if cc.RoomVersion == "" {
		cc.RoomVersion = id.RoomV1
	}
	if cc.RoomVersion != r.Version {
		return fmt.Errorf("the room's create event says version %s, make_join said %s", cc.RoomVersion, r.Version)
	}

	defer s.locks.lock(r.ID)()
	s.settle(r.ID)
	// A room known already (left before, or invited to) keeps its row and
	// the events it has; the join starts its timeline afresh.
	_, roomErr := s.db.GetRoom(ctx, r.ID)
	known := roomErr == nil
	ids := make([]id.EventID, 0, len(items)+1)
	for _, it := range items {
		ids = append(ids, it.ev.ID)
	}
	have, err := s.db.GetEvents(ctx, append(ids, join.ID))
	if err != nil {
		return err
	}
	if _, ok := have[join.ID]; ok {
		return nil // stored already (the join came back in a transaction first)
	}
	stored := make([]*storage.NewEvent, 0, len(items)+1)
	built := make([]*Event, 0, len(items)+1)
	getKey := s.remoteKey(ctx)
	for _, it := range items {
		if prev, ok := have[it.ev.ID]; ok {
			// Known: used for the state below as this server judged it.
			it.ev.Rejected = prev.Rejected
			built = append(built, it.ev)
			continue
		}
		ne := s.remoteNewEvent(r, it.ev, it.raw)
		ne.Outlier = storage.OutlierState
		s.cache.pin(it.ev)
		if err := authrules.Authorize(r.Version, it.ev.PDU, nil, s.pdus(ctx), getKey); err != nil {
			s.log.Info("rejected an event of a room being joined", "room", r.ID, "event", it.ev.ID, "reason", err)
			ne.Outlier, ne.Rejected, it.ev.Rejected = 0, true, true
		}
		stored = append(stored, ne)
		built = append(built, it.ev)
	}
	newEvents := built
	built = make([]*Event, 0, len(stored)+1)
	for _, ev := range newEvents {
		if _, ok := have[ev.ID]; !ok {
			built = append(built, ev)
		}
	}
	state := StateMap{}
	byID := make(map[id.EventID]*Event, len(newEvents))
	for _, ev := range newEvents {
		byID[ev.ID] = ev
	}
	for _, sid := range stateIDs {
		if ev := byID[sid]; ev != nil && !ev.Rejected && ev.IsState() {
			state[pdu.StateKey{Type: ev.PDU.Type, StateKey: ev.StateKey()}] = sid
		}
	}
	// The join, on the returned state.
	if err := authrules.Authorize(r.Version, join.PDU, s.authEventsFrom(ctx, join.PDU, r.Version, state), s.pdus(ctx), getKey); err != nil {
		s.cache.unpin(built, false)
		return mautrix.MForbidden.WithMessage("The join is not allowed by the room's state: " + err.Error())
	}
	ne := s.remoteNewEvent(r, join, joinStored)
	ne.BeforeState = state
	ne.ResetExtremities, ne.ReplacesOutOfRoom = known, known
	ne.StateDelta = StateMap{{Type: event.StateMember.Type, StateKey: string(join.PDU.Sender)}: join.ID}
	s.cache.pin(join)
	stored = append(stored, ne)
	built = append(built, join)
	if !known {
		stored[0].NewRoom = &storage.Room{RoomID: r.ID, RoomVersion: r.Version, Creator: create.PDU.Sender, CreatedTS: create.PDU.OriginServerTS}
	}
	b := &pendingBatch{room: r.ID, events: stored, built: built, done: make(chan struct{})}
	s.committer.enqueue(b)
	<-b.done
	if b.err != nil {
		return b.err
	}
	s.cache.putRoom(r)
	for _, l := range s.listen {
		l([]*Event{join})
	}
	return nil
}
