package devicelists

import (
	"context"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/rooms"
)

// RoomEvents hears new events (rooms.Service.OnEvent) to drop the cached
// device lists of remote users no local user shares a room with any more:
// their servers stop sending this one their updates, so a list kept would
// go out of date unnoticed, and be trusted again once a room is shared
// anew. Joins need nothing: a list not cached is fetched when asked for.
func (s *Service) RoomEvents(evs []*rooms.Event) {
	var affected []id.UserID
	for _, ev := range evs {
		if ev.Rejected || ev.PDU.Type != event.StateMember.Type || ev.PDU.StateKey == nil {
			continue
		}
		switch ev.Membership() {
		case event.MembershipLeave, event.MembershipBan:
		default:
			continue
		}
		user := id.UserID(*ev.PDU.StateKey)
		if !s.isLocal(user) {
			affected = append(affected, user)
			continue
		}
		// A local user left: the room's remote members may now share no
		// room with anyone here.
		members, err := s.db.Members(context.Background(), ev.RoomID, string(event.MembershipJoin))
		if err != nil {
			s.log.Warn("device lists: members of a room left", "room", ev.RoomID, "error", err)
			continue
		}
		for _, m := range members {
			if !s.isLocal(m) {
				affected = append(affected, m)
			}
		}
	}
	if len(affected) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), announceTimeout)
	defer cancel()
	current, err := s.db.CurrentRemoteDeviceLists(ctx, affected)
	if err != nil {
		s.log.Warn("device lists: cached lists", "error", err)
		return
	}
	for u := range current {
		shares, err := s.sharesRoomWithLocal(ctx, u)
		if err != nil {
			s.log.Warn("device lists: shared rooms", "user", u, "error", err)
			continue
		}
		if !shares {
			if err := s.db.ForgetRemoteDeviceList(ctx, u); err != nil {
				s.log.Warn("device lists: forget", "user", u, "error", err)
			}
		}
	}
}
