package slidingsync

import (
	"cmp"
	"context"
	"encoding/json"
	"slices"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/storage"
)

// The server's room list for a user: every room they are joined to,
// invited to or knocking on, rooms they were kicked or banned from, and
// rooms they left themselves if this connection has already sent them;
// newest activity first.

// listRoom is one room of the list.
type listRoom struct {
	roomID      id.RoomID
	membership  event.Membership
	memberEvent id.EventID
	memberPos   int64
	stamp       int64 // sort key and bump_stamp
	entry       storage.RoomListEntry
}

func (r *listRoom) joined() bool { return r.membership == event.MembershipJoin }

// stripped tells whether the user may only see the room's stripped state.
func (r *listRoom) stripped() bool {
	return r.membership == event.MembershipInvite || r.membership == event.MembershipKnock
}

// roomList builds the user's sorted room list as of the builder's token.
func (b *builder) roomList(ctx context.Context) ([]*listRoom, error) {
	entries, err := b.consistentEntries(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*listRoom, 0, len(entries))
	for _, e := range entries {
		r := &listRoom{roomID: e.RoomID, membership: event.Membership(e.Membership), memberEvent: e.MemberEvent,
			memberPos: e.MemberPos, entry: e}
		switch r.membership {
		case event.MembershipJoin:
			// A room joined after its last message still comes up top.
			r.stamp = max(r.entry.BumpPos, r.memberPos)
		case event.MembershipInvite, event.MembershipKnock:
			ev, err := b.s.rooms.Event(ctx, r.memberEvent)
			if err != nil {
				return nil, err
			}
			if b.ignored[ev.PDU.Sender] {
				continue // the spec: never send invites from ignored users
			}
			r.stamp = r.memberPos
		case event.MembershipLeave, event.MembershipBan:
			keep, err := b.keepLeft(ctx, r)
			if err != nil {
				return nil, err
			}
			if !keep {
				continue
			}
			r.stamp = r.memberPos
		default:
			continue
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b *listRoom) int {
		if c := cmp.Compare(b.stamp, a.stamp); c != 0 {
			return c
		}
		return cmp.Compare(a.roomID, b.roomID)
	})
	return out, nil
}

// consistentEntries reads the room list's entries (with the user's current
// memberships) so that they agree with the builder's token: an event stored
// between reading the token and the entries would otherwise move its room
// up the list, or change the membership, while the room's timeline, read up
// to the token, lacked it. Such a newer event moves the token on (a few
// times at most; writes are rare next to this).
func (b *builder) consistentEntries(ctx context.Context) ([]storage.RoomListEntry, error) {
	for attempt := 0; ; attempt++ {
		entries, err := b.s.db.RoomListEntries(ctx, b.who.User)
		if err != nil {
			return nil, err
		}
		newer := false
		for _, e := range entries {
			newer = newer || e.LastPos > b.cur.Events
		}
		if !newer || attempt == 3 {
			return entries, nil
		}
		if b.cur, err = b.s.sync.Current(ctx); err != nil {
			return nil, err
		}
	}
}

// keepLeft decides whether a room the user is no longer in stays listed:
// kicks and bans do (the user may not know yet), a leave of the user's own
// only when this connection sent the room before, and never a forgotten
// room.
func (b *builder) keepLeft(ctx context.Context, r *listRoom) (bool, error) {
	if forgotten, err := b.s.db.IsRoomForgotten(ctx, b.who.User, r.roomID); err != nil || forgotten {
		return false, err
	}
	if b.prev.rooms[r.roomID] != nil {
		return true, nil
	}
	if r.membership == event.MembershipBan {
		// The MSC: not a room the user was banned from without ever
		// joining it.
		return b.s.db.EverJoined(ctx, b.who.User, r.roomID)
	}
	ev, err := b.s.rooms.Event(ctx, r.memberEvent)
	if err != nil {
		return false, err
	}
	return ev.PDU.Sender != b.who.User, nil
}

// filterData is what list filters look at beyond the room list itself,
// loaded once per request and only when a filter needs it.
type filterData struct {
	dms    map[id.RoomID]bool
	tags   map[id.RoomID]map[string]bool
	spaces map[id.RoomID]map[id.RoomID]bool // space → its children
}

// directRooms reads m.direct: the rooms the user marked as DMs.
func (b *builder) directRooms(ctx context.Context) (map[id.RoomID]bool, error) {
	if b.filters.dms != nil {
		return b.filters.dms, nil
	}
	out := map[id.RoomID]bool{}
	raw, err := b.s.db.GetAccountData(ctx, b.who.User, "", event.AccountDataDirectChats.Type)
	if err != nil && err != storage.ErrNotFound {
		return nil, err
	}
	var direct map[id.UserID][]id.RoomID
	if len(raw) > 0 && json.Unmarshal(raw, &direct) == nil {
		for _, roomIDs := range direct {
			for _, r := range roomIDs {
				out[r] = true
			}
		}
	}
	b.filters.dms = out
	return out, nil
}

// isDM tells whether a room is a direct chat: listed in m.direct, or for
// an invite, sent with is_direct (the user has not had the chance to list
// it yet).
func (b *builder) isDM(ctx context.Context, r *listRoom) (bool, error) {
	dms, err := b.directRooms(ctx)
	if err != nil || dms[r.roomID] || r.membership != event.MembershipInvite {
		return dms[r.roomID], err
	}
	ev, err := b.s.rooms.Event(ctx, r.memberEvent)
	if err != nil {
		return false, err
	}
	var content struct {
		IsDirect bool `json:"is_direct"`
	}
	return json.Unmarshal(ev.PDU.Content, &content) == nil && content.IsDirect, nil
}

func (b *builder) roomTags(ctx context.Context) (map[id.RoomID]map[string]bool, error) {
	if b.filters.tags != nil {
		return b.filters.tags, nil
	}
	raw, err := b.s.db.RoomAccountDataOfType(ctx, b.who.User, event.AccountDataRoomTags.Type)
	if err != nil {
		return nil, err
	}
	out := map[id.RoomID]map[string]bool{}
	for roomID, c := range raw {
		var content struct {
			Tags map[string]json.RawMessage `json:"tags"`
		}
		if json.Unmarshal(c, &content) != nil {
			continue
		}
		set := map[string]bool{}
		for t := range content.Tags {
			set[t] = true
		}
		out[roomID] = set
	}
	b.filters.tags = out
	return out, nil
}

// spaceChildren lists a joined space's m.space.child rooms (those with a
// via list; an empty content removes a child). The MSC: no subspaces, and
// spaces the user is not joined to are ignored.
func (b *builder) spaceChildren(ctx context.Context, space id.RoomID, byID map[id.RoomID]*listRoom) (map[id.RoomID]bool, error) {
	if b.filters.spaces == nil {
		b.filters.spaces = map[id.RoomID]map[id.RoomID]bool{}
	}
	if set, ok := b.filters.spaces[space]; ok {
		return set, nil
	}
	set := map[id.RoomID]bool{}
	b.filters.spaces[space] = set
	if r := byID[space]; r == nil || !r.joined() {
		return set, nil
	}
	state, err := b.s.rooms.CurrentState(ctx, space)
	if err != nil {
		return nil, err
	}
	for k := range state {
		if k.Type != event.StateSpaceChild.Type {
			continue
		}
		ev, err := b.s.rooms.CurrentStateEvent(ctx, space, k.Type, k.StateKey)
		if err != nil {
			return nil, err
		}
		var content struct {
			Via []string `json:"via"`
		}
		if json.Unmarshal(ev.PDU.Content, &content) == nil && len(content.Via) > 0 {
			set[id.RoomID(k.StateKey)] = true
		}
	}
	return set, nil
}

// passes applies a list's filters to a room.
func (b *builder) passes(ctx context.Context, f *ListFilters, r *listRoom, byID map[id.RoomID]*listRoom) (bool, error) {
	if f == nil {
		return true, nil
	}
	if inv := f.invited(); inv != nil && *inv != (r.membership == event.MembershipInvite) {
		return false, nil
	}
	if f.IsEncrypted != nil && *f.IsEncrypted != r.entry.Encrypted {
		return false, nil
	}
	if f.IsDM != nil {
		isDM, err := b.isDM(ctx, r)
		if err != nil {
			return false, err
		}
		if *f.IsDM != isDM {
			return false, nil
		}
	}
	if slices.ContainsFunc(f.NotRoomTypes, r.hasType) {
		return false, nil
	}
	if f.RoomTypes != nil && !slices.ContainsFunc(f.RoomTypes, r.hasType) {
		return false, nil
	}
	if len(f.Tags) > 0 || len(f.NotTags) > 0 {
		tags, err := b.roomTags(ctx)
		if err != nil {
			return false, err
		}
		has := func(t string) bool { return tags[r.roomID][t] }
		if slices.ContainsFunc(f.NotTags, has) {
			return false, nil
		}
		if len(f.Tags) > 0 && !slices.ContainsFunc(f.Tags, has) {
			return false, nil
		}
	}
	if len(f.Spaces) > 0 {
		in := false
		for _, space := range f.Spaces {
			children, err := b.spaceChildren(ctx, space, byID)
			if err != nil {
				return false, err
			}
			if children[r.roomID] {
				in = true
				break
			}
		}
		if !in {
			return false, nil
		}
	}
	return true, nil
}

// hasType matches a room_types entry: a type, or null for rooms without
// one. An invite's room type is not known from the list (stripped state
// would tell); such rooms count as untyped.
func (r *listRoom) hasType(t *string) bool {
	if t == nil {
		return r.entry.RoomType == ""
	}
	return *t == r.entry.RoomType
}
