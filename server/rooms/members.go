package rooms

import (
	"context"
	"errors"
	"math"
	"slices"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/storage"
)

// This file serves the member lists of the client API: GET
// /rooms/{roomId}/members and /joined_members.

// MembersQuery selects what Members returns.
type MembersQuery struct {
	// At, when set, is a stream position: the members as of then.
	At *int64
	// Membership keeps only members with this membership; NotMembership
	// drops those with it. Given both, a member must pass both: the spec
	// words it as an "or", but Synapse, Dendrite and conduwuit all apply
	// "and" (matrix-spec issue 2308), and clients (mautrix's state store
	// among them) rely on membership=X returning only X.
	Membership    event.Membership
	NotMembership event.Membership
}

func (q *MembersQuery) keeps(m event.Membership) bool {
	if q.Membership != "" && m != q.Membership {
		return false
	}
	return q.NotMembership == "" || m != q.NotMembership
}

// errMembersHidden refuses an `at` position the user could not see.
var errMembersHidden = mautrix.MForbidden.WithMessage("You may not see the room's members at that point")

// Members returns the room's member events a user may read: the current
// ones when joined (or when the room is world-readable), the ones as of
// their leave for a user who left or was banned, and 403 for anyone else.
// With q.At, the members as of that stream position; a user who left sees
// no further than their leave, and must have been able to see the room at
// that point (history visibility).
func (s *Service) Members(ctx context.Context, user id.UserID, roomID id.RoomID, q MembersQuery) ([]*event.Event, error) {
	view, err := s.ReadView(ctx, user, roomID)
	if err != nil {
		return nil, err
	}
	// left is the user's leave (or ban) when that bounds what they see.
	left := view.Left

	var state StateMap
	switch {
	case q.At != nil:
		pos := *q.At
		if cur, err := s.db.MaxStreamPos(ctx); err != nil {
			return nil, err
		} else if pos > cur {
			return nil, mautrix.MInvalidParam.WithMessage("The at token is ahead of this server")
		}
		if left != nil && pos > left.StreamPos {
			pos = left.StreamPos
		}
		last, err := s.lastEventAt(ctx, roomID, pos)
		if err != nil {
			return nil, err
		}
		if last == nil {
			return []*event.Event{}, nil
		}
		// The state at a point is as visible as the room's last event then
		// (as Synapse decides it).
		if ok, err := s.canSee(ctx, user, last); err != nil {
			return nil, err
		} else if !ok {
			return nil, errMembersHidden
		}
		if state, err = s.StateAfter(ctx, last); err != nil {
			return nil, err
		}
	case left != nil:
		// The members as they were when the user left, their own leave
		// included.
		if state, err = s.StateAfter(ctx, left); err != nil {
			return nil, err
		}
	default:
		// Current members: read only the member rows, and filter before
		// loading any event.
		rows, err := s.db.CurrentMembers(ctx, roomID, string(q.Membership))
		if err != nil {
			return nil, err
		}
		ids := make([]id.EventID, 0, len(rows))
		for _, r := range rows {
			if q.keeps(event.Membership(r.Membership)) {
				ids = append(ids, r.EventID)
			}
		}
		return s.memberEvents(ctx, ids, &q)
	}
	ids := make([]id.EventID, 0, len(state))
	for k, evID := range state {
		if k.Type == event.StateMember.Type {
			ids = append(ids, evID)
		}
	}
	return s.memberEvents(ctx, ids, &q)
}

// membersStartScan bounds the events read looking for a room's first
// member event (in a room made here it is the second event).
const membersStartScan = 50

// lastEventAt is the event whose state /members?at=pos reads: the room's
// last event at or before pos. A position before the room's first event is
// what a sync hands out as prev_batch when its timeline begins with the
// room's creation (Synapse hands out the sync's own position there); it is
// read as the room's start once it had a member, its creator's join, since
// "no members" would describe no point a client ever saw. Nil when the
// room has no member event at all.
func (s *Service) lastEventAt(ctx context.Context, roomID id.RoomID, pos int64) (*Event, error) {
	se, err := s.db.LastEventAt(ctx, roomID, pos)
	if err == nil {
		return s.event(ctx, se.EventID)
	}
	if !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	}
	evs, _, err := s.Timeline(ctx, roomID, pos, math.MaxInt64, membersStartScan, false)
	if err != nil {
		return nil, err
	}
	for _, ev := range evs {
		if ev.PDU.Type == event.StateMember.Type {
			return ev, nil
		}
	}
	return nil, nil
}

// memberEvents loads member events, keeps those q allows, and returns them
// as client events ordered by user ID.
func (s *Service) memberEvents(ctx context.Context, ids []id.EventID, q *MembersQuery) ([]*event.Event, error) {
	evs, err := s.Events(ctx, ids)
	if err != nil {
		return nil, err
	}
	kept := make([]*Event, 0, len(evs))
	for _, ev := range evs {
		if q.keeps(ev.Membership()) {
			kept = append(kept, ev)
		}
	}
	slices.SortFunc(kept, func(a, b *Event) int {
		switch {
		case a.StateKey() < b.StateKey():
			return -1
		case a.StateKey() > b.StateKey():
			return 1
		}
		return 0
	})
	out := make([]*event.Event, 0, len(kept))
	for _, ev := range kept {
		ce, err := s.ClientEvent(ctx, ev)
		if err != nil {
			return nil, err
		}
		out = append(out, ce)
	}
	return out, nil
}

// JoinedMembers returns the room's joined members with the display name
// and avatar of their member events. Only joined users may ask (the spec:
// "the current user must be in the room").
func (s *Service) JoinedMembers(ctx context.Context, user id.UserID, roomID id.RoomID) (map[id.UserID]mautrix.JoinedMember, error) {
	if _, err := s.room(ctx, roomID); err != nil {
		return nil, err
	}
	m, _, err := s.db.Membership(ctx, roomID, user)
	if err != nil {
		return nil, err
	}
	if m != string(event.MembershipJoin) {
		return nil, errNotInRoom
	}
	rows, err := s.db.CurrentMembers(ctx, roomID, string(event.MembershipJoin))
	if err != nil {
		return nil, err
	}
	ids := make([]id.EventID, len(rows))
	for i, r := range rows {
		ids[i] = r.EventID
	}
	evs, err := s.Events(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make(map[id.UserID]mautrix.JoinedMember, len(rows))
	for _, r := range rows {
		var jm mautrix.JoinedMember
		if ev, ok := evs[r.EventID]; ok {
			content := []byte(ev.PDU.Content)
			if ev.RedactedBy != "" {
				// A redacted member event keeps only its membership.
				content = nil
			}
			var c map[string]any
			if content != nil && jsonUnmarshal(content, &c) == nil {
				// Other servers' events may carry anything: only strings count.
				jm.DisplayName, _ = c["displayname"].(string)
				jm.AvatarURL, _ = c["avatar_url"].(string)
			}
		}
		out[r.UserID] = jm
	}
	return out, nil
}

// worldReadable tells whether a room's current history visibility lets
// anyone read it.
func (s *Service) worldReadable(ctx context.Context, roomID id.RoomID) (bool, error) {
	hv, err := s.CurrentStateEvent(ctx, roomID, event.StateHistoryVisibility.Type, "")
	if err != nil || hv == nil {
		return false, err
	}
	return historyVisibility(hv) == event.HistoryVisibilityWorldReadable, nil
}
