package slidingsync

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"strings"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/rooms"
	"github.com/palpo-im/palpo-desktop/server/storage"
	"github.com/palpo-im/palpo-desktop/server/syncer"
)

// room builds a room's result, or nil when the client already has
// everything about it; it records what was sent in the next state.
func (b *builder) room(ctx context.Context, m *match) (*RoomResult, error) {
	r := m.room
	cfg := combine(m.configs)
	sent := b.prev.rooms[r.roomID]
	if r.stripped() {
		return b.strippedRoom(ctx, m, cfg, sent)
	}
	initial := sent == nil || sent.stripped
	// The range of events the user can see: up to now, or to the moment
	// they left.
	to := b.cur.Events
	var joinedAt int64
	if r.joined() {
		joinedAt = r.memberPos
	} else {
		to = r.memberPos
	}
	from := int64(0)
	expanding := false
	if !initial {
		from = sent.pos
		// A larger timeline_limit than last time: resend the latest events
		// (the MSC's "Changes to timeline_limit").
		expanding = cfg.limit > sent.config.limit
		news := r.entry.LastPos > sent.pos && to > sent.pos
		if !news && !expanding && cfg.sig == sent.config.sig && sent.memberEvent == r.memberEvent && !b.receiptMoved[r.roomID] {
			if dms, err := b.directRooms(ctx); err != nil || dms[r.roomID] == sent.isDM {
				return nil, err // nothing new for this room
			}
		}
		if expanding {
			from = 0
		}
	}
	evs, limited, err := b.s.sync.VisibleTimeline(ctx, syncer.TimelineQuery{
		User: b.who.User, Ignored: b.ignored, RoomID: r.roomID, From: from, To: to,
		Limit: cfg.limit, JoinedAt: joinedAt,
	})
	if err != nil {
		return nil, err
	}
	if !initial && !expanding && limited && len(evs) == 0 {
		limited = false // a zero timeline_limit: nothing was left out that was asked for
	}
	expanded := expanding && len(evs) > 0 && evs[0].StreamPos <= sent.pos

	next := &sentRoom{membership: string(r.membership), memberEvent: r.memberEvent, pos: to, config: cfg, members: map[string]bool{}}
	if !initial {
		maps.Copy(next.members, sent.members)
	}
	rr := &RoomResult{Initial: initial, Membership: string(r.membership), Lists: m.lists, Limited: &limited}
	if expanded {
		rr.ExpandedTimeline, rr.UnstableExpandedTimeline = true, true
	}
	stamp := r.stamp
	rr.BumpStamp = &stamp

	state, err := b.s.rooms.StateAtPosition(ctx, r.roomID, to)
	if err != nil {
		return nil, err
	}
	if rr.RequiredState, err = b.requiredState(ctx, r.roomID, cfg, sent, initial, limited, state, evs, next); err != nil {
		return nil, err
	}
	for _, ev := range evs {
		ce, err := b.s.sync.ClientEvent(ctx, b.who.User, b.who.Device, ev)
		if err != nil {
			return nil, err
		}
		ce.RoomID = ""
		rr.Timeline = append(rr.Timeline, ce)
	}
	if limited || initial {
		if err := b.s.rooms.BundleAggregations(ctx, b.who.User, evs, rr.Timeline); err != nil {
			return nil, err
		}
	}
	if len(evs) > 0 {
		rr.PrevBatch = syncer.Token{Events: evs[0].StreamPos - 1}.String()
	}
	live := 0
	if !b.newConnection() {
		for _, ev := range evs {
			if ev.StreamPos > b.prev.token.Events {
				live++
			}
		}
	}
	rr.NumLive = &live

	if err := b.summary(ctx, r, state, sent, next, rr); err != nil {
		return nil, err
	}
	changed := initial || len(rr.Timeline) > 0 || len(rr.RequiredState) > 0 || rr.Name != nil || rr.Avatar != nil ||
		rr.Heroes != nil || rr.IsDM != nil || sent.memberEvent != r.memberEvent ||
		sent.joined != next.joined || sent.invited != next.invited || sent.counts != next.counts
	b.next.rooms[r.roomID] = next
	if !changed {
		return nil, nil
	}
	return rr, nil
}

// strippedRoom is an invite or knock: the stripped state the membership
// event came with, sent once per membership event.
func (b *builder) strippedRoom(ctx context.Context, m *match, cfg *roomConfig, sent *sentRoom) (*RoomResult, error) {
	r := m.room
	if sent != nil && sent.memberEvent == r.memberEvent {
		return nil, nil
	}
	ev, err := b.s.rooms.Event(ctx, r.memberEvent)
	if err != nil {
		return nil, err
	}
	stripped, err := b.s.rooms.StrippedState(ctx, ev)
	if err != nil {
		return nil, err
	}
	for _, e := range stripped {
		e.RoomID = ""
	}
	stamp := r.stamp
	rr := &RoomResult{Initial: true, InviteState: stripped, StrippedState: stripped, Membership: string(r.membership),
		Lists: m.lists, BumpStamp: &stamp}
	isDM, err := b.isDM(ctx, r)
	if err != nil {
		return nil, err
	}
	if isDM {
		rr.IsDM = ptr(true)
	}
	b.next.rooms[r.roomID] = &sentRoom{membership: string(r.membership), memberEvent: r.memberEvent, stripped: true,
		pos: r.memberPos, config: cfg, isDM: isDM}
	return rr, nil
}

// stateStub stands for state that was removed (state resolution can drop
// an entry); it has no content.
type stateStub struct {
	Type     string `json:"type"`
	StateKey string `json:"state_key"`
}

// requiredState picks the state to send: on an initial room, the current
// state the config asks for; afterwards, the entries that changed since
// the room was last sent, and those a wider config now asks for. Lazily
// loaded members are the timeline's senders and targets the connection has
// not sent yet, and, when the timeline is not limited, every membership
// change (so a client can keep a member cache, as the MSC describes).
func (b *builder) requiredState(ctx context.Context, roomID id.RoomID, cfg *roomConfig, sent *sentRoom, initial, limited bool,
	state rooms.StateMap, evs []*rooms.Event, next *sentRoom) ([]any, error) {
	user := b.who.User
	lazy := cfg.lazyMembers()
	want := map[pdu.StateKey]bool{}
	var removed []pdu.StateKey
	if initial {
		for k := range state {
			if cfg.wants(user, k.Type, k.StateKey) {
				want[k] = true
			}
		}
	} else {
		before, err := b.s.rooms.StateAtPosition(ctx, roomID, sent.pos)
		if err != nil {
			return nil, err
		}
		for k, v := range state {
			switch {
			case before[k] == v:
				if cfg.wants(user, k.Type, k.StateKey) && !sent.config.wants(user, k.Type, k.StateKey) {
					want[k] = true // newly asked for
				}
			case cfg.wants(user, k.Type, k.StateKey):
				want[k] = true
			case lazy && k.Type == memberTyp && (!limited || sent.members[k.StateKey]):
				want[k] = true
			}
		}
		for k := range before {
			if _, still := state[k]; !still && cfg.wants(user, k.Type, k.StateKey) {
				removed = append(removed, k)
			}
		}
	}
	if lazy {
		for _, ev := range evs {
			users := []string{string(ev.PDU.Sender)}
			if ev.PDU.Type == memberTyp {
				users = append(users, ev.StateKey())
			}
			for _, u := range users {
				k := pdu.StateKey{Type: memberTyp, StateKey: u}
				if _, ok := state[k]; ok && !next.members[u] {
					want[k] = true
				}
			}
		}
	}
	if len(want) == 0 && len(removed) == 0 {
		return nil, nil
	}
	// Never nil: StateEvents reads a nil key list as "all state".
	keys := append([]pdu.StateKey{}, slices.Collect(maps.Keys(want))...)
	stateEvs, err := b.s.rooms.StateEvents(ctx, state, keys)
	if err != nil {
		return nil, err
	}
	out := make([]any, 0, len(stateEvs)+len(removed))
	var sorted []*event.Event
	for _, ev := range stateEvs {
		ce, err := b.s.rooms.ClientEvent(ctx, ev)
		if err != nil {
			return nil, err
		}
		ce.RoomID = ""
		sorted = append(sorted, ce)
		if ev.PDU.Type == memberTyp {
			next.members[ev.StateKey()] = true
		}
	}
	slices.SortFunc(sorted, func(a, b *event.Event) int {
		if c := strings.Compare(a.Type.Type, b.Type.Type); c != 0 {
			return c
		}
		return strings.Compare(*a.StateKey, *b.StateKey)
	})
	for _, ce := range sorted {
		out = append(out, ce)
	}
	for _, k := range removed {
		out = append(out, stateStub{Type: k.Type, StateKey: k.StateKey})
	}
	return out, nil
}

// maxHeroes is how many members a nameless room's heroes list holds.
const maxHeroes = 5

// summary fills name, avatar, heroes, is_dm and the counts: all of them
// on an initial room, afterwards only what changed (counts always).
func (b *builder) summary(ctx context.Context, r *listRoom, state rooms.StateMap, sent, next *sentRoom, rr *RoomResult) error {
	initial := rr.Initial
	var err error
	if next.name, err = b.stateString(ctx, state, event.StateRoomName.Type, "name"); err != nil {
		return err
	}
	if next.avatar, err = b.stateString(ctx, state, event.StateRoomAvatar.Type, "url"); err != nil {
		return err
	}
	if initial || !sameString(sent.name, next.name) {
		rr.Name = jsonString(next.name, initial)
	}
	if initial || !sameString(sent.avatar, next.avatar) {
		rr.Avatar = jsonString(next.avatar, initial)
	}
	if next.name == nil {
		heroes, err := b.heroes(ctx, r.roomID, state)
		if err != nil {
			return err
		}
		next.heroes = heroSignature(heroes)
		if initial || sent.heroes != next.heroes {
			rr.Heroes = heroes
		}
	}
	dms, err := b.directRooms(ctx)
	if err != nil {
		return err
	}
	next.isDM = dms[r.roomID]
	if (initial && next.isDM) || (!initial && sent.isDM != next.isDM) {
		rr.IsDM = ptr(next.isDM)
	}
	if !r.joined() {
		return nil
	}
	if next.joined, next.invited, err = b.s.db.MemberCounts(ctx, r.roomID); err != nil {
		return err
	}
	if next.counts, err = b.s.sync.UnreadCounts(ctx, b.who.User, r.roomID); err != nil {
		return err
	}
	rr.JoinedCount, rr.InvitedCount = ptr(next.joined), ptr(next.invited)
	rr.NotificationCount, rr.HighlightCount = ptr(next.counts.NotificationCount), ptr(next.counts.HighlightCount)
	return nil
}

// stateString reads a string field of a state event's content; nil when
// the event or the field is absent or empty.
func (b *builder) stateString(ctx context.Context, state rooms.StateMap, evType, field string) (*string, error) {
	evs, err := b.s.rooms.StateEvents(ctx, state, []pdu.StateKey{{Type: evType}})
	if err != nil || len(evs) == 0 || evs[0].RedactedBy != "" {
		return nil, err
	}
	var content map[string]json.RawMessage
	if json.Unmarshal(evs[0].PDU.Content, &content) != nil {
		return nil, nil
	}
	var v string
	if json.Unmarshal(content[field], &v) != nil || v == "" {
		return nil, nil
	}
	return &v, nil
}

// heroes are the room's first members other than the user (joined, then
// invited, then those who left), with the profile from their member event:
// what v3's m.heroes holds. Memberships come from the current-state index,
// so only the chosen few member events are loaded, whatever the room's
// size; entries the given state does not share (changed since the user
// left) are passed over.
func (b *builder) heroes(ctx context.Context, roomID id.RoomID, state rooms.StateMap) ([]Hero, error) {
	members, err := b.s.db.CurrentMembers(ctx, roomID, "")
	if err != nil {
		return nil, err
	}
	rank := map[string]int{"join": 0, "invite": 1, "leave": 2, "ban": 2}
	var picked []storage.CurrentMember
	for _, m := range members {
		_, ranked := rank[m.Membership]
		if ranked && m.UserID != b.who.User && state[pdu.StateKey{Type: memberTyp, StateKey: string(m.UserID)}] == m.EventID {
			picked = append(picked, m)
		}
	}
	// Stable: within a rank, by user ID as CurrentMembers returns them.
	slices.SortStableFunc(picked, func(x, y storage.CurrentMember) int { return rank[x.Membership] - rank[y.Membership] })
	picked = picked[:min(len(picked), maxHeroes)]
	ids := make([]id.EventID, len(picked))
	for i, m := range picked {
		ids[i] = m.EventID
	}
	evs, err := b.s.rooms.Events(ctx, ids)
	if err != nil {
		return nil, err
	}
	heroes := make([]Hero, 0, len(picked))
	for _, m := range picked {
		h := Hero{UserID: m.UserID}
		if ev := evs[m.EventID]; ev != nil {
			var c struct {
				DisplayName string `json:"displayname"`
				AvatarURL   string `json:"avatar_url"`
			}
			if json.Unmarshal(ev.PDU.Content, &c) == nil {
				h.DisplayName, h.AvatarURL = c.DisplayName, c.AvatarURL
			}
		}
		heroes = append(heroes, h)
	}
	return heroes, nil
}

func heroSignature(hs []Hero) string {
	var b strings.Builder
	for _, h := range hs {
		b.WriteString(string(h.UserID) + "\x00" + h.DisplayName + "\x00" + h.AvatarURL + "\x00")
	}
	return b.String()
}

func sameString(a, b *string) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// jsonString is a name or avatar field: the string, or null for one that
// was removed (on an initial room an absent field already says so).
func jsonString(v *string, initial bool) json.RawMessage {
	if v == nil {
		if initial {
			return nil
		}
		return json.RawMessage("null")
	}
	out, _ := json.Marshal(*v)
	return out
}

func ptr[T any](v T) *T { return &v }
