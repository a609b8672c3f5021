package syncer

import (
	"context"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// ephemeralSection fills each joined room's ephemeral events: m.typing when
// the room's typing set changed since the token (on an initial sync, when
// someone is typing), and one m.receipt with the receipts that changed
// (on an initial sync, the room's latest ones). A room with nothing but
// ephemeral news still gets its rooms.join entry.
func (s *Service) ephemeralSection(ctx context.Context, req *Request, since, cur Token, resp *mautrix.RespSync) error {
	full := req.Since == nil || req.FullState
	if !full && since.Typing >= cur.Typing && since.Receipts >= cur.Receipts {
		return nil // nothing changed anywhere: skip the membership lookup
	}
	var rf *mautrix.RoomFilter
	var ef *mautrix.FilterPart
	if req.Filter != nil && req.Filter.Room != nil {
		rf = req.Filter.Room
		ef = rf.Ephemeral
	}
	memberships, err := s.rooms.MembershipsAt(ctx, req.User, cur.Events)
	if err != nil {
		return err
	}
	var joined []id.RoomID
	for _, m := range memberships {
		if m.Membership != string(event.MembershipJoin) {
			continue
		}
		if rf != nil && !allowsRoom(rf.Rooms, rf.NotRooms, m.RoomID) {
			continue
		}
		if ef != nil && !allowsRoom(ef.Rooms, ef.NotRooms, m.RoomID) {
			continue
		}
		joined = append(joined, m.RoomID)
	}
	if len(joined) == 0 {
		return nil
	}
	typing := s.TypingSince(joined, since.Typing, full)
	receipts, err := s.ReceiptContents(ctx, req.User, joined, since, cur, full)
	if err != nil {
		return err
	}
	for _, roomID := range joined {
		var evs []*event.Event
		if users, ok := typing[roomID]; ok {
			evs = append(evs, typingEvent("", users))
		}
		if content, ok := receipts[roomID]; ok {
			evs = append(evs, receiptEvent("", content))
		}
		for _, ev := range evs {
			if !allows(ef, ev) {
				continue
			}
			jr := resp.Rooms.Join[roomID]
			if jr == nil {
				if resp.Rooms.Join == nil {
					resp.Rooms.Join = map[id.RoomID]*mautrix.SyncJoinedRoom{}
				}
				jr = &mautrix.SyncJoinedRoom{}
				resp.Rooms.Join[roomID] = jr
			}
			jr.Ephemeral.Events = append(jr.Ephemeral.Events, ev)
		}
	}
	return nil
}

// typingEvent is an m.typing event of the users typing in a room; roomID
// is left out ("") inside a sync's room entry.
func typingEvent(roomID id.RoomID, users []id.UserID) *event.Event {
	ids := make([]any, len(users))
	for i, u := range users {
		ids[i] = string(u)
	}
	return &event.Event{
		Type:    event.Type{Type: event.EphemeralEventTyping.Type, Class: event.EphemeralEventType},
		RoomID:  roomID,
		Content: event.Content{Raw: map[string]any{"user_ids": ids}},
	}
}

// receiptEvent is an m.receipt event with a content from ReceiptContents;
// roomID is left out ("") inside a sync's room entry.
func receiptEvent(roomID id.RoomID, content map[string]any) *event.Event {
	return &event.Event{
		Type:    event.Type{Type: event.EphemeralEventReceipt.Type, Class: event.EphemeralEventType},
		RoomID:  roomID,
		Content: event.Content{Raw: content},
	}
}

// ReceiptContents builds, per room, the content of an m.receipt event
// ({event_id: {receipt_type: {user_id: {ts, thread_id?}}}}) from the
// receipts in (since, cur] (all current ones when full). Other users'
// private receipts are left out: only their owner may see them.
func (s *Service) ReceiptContents(ctx context.Context, user id.UserID, roomIDs []id.RoomID, since, cur Token, full bool) (map[id.RoomID]map[string]any, error) {
	from := since.Receipts
	if full {
		from = 0
	}
	if from >= cur.Receipts {
		return nil, nil
	}
	rs, err := s.db.ReceiptsInRooms(ctx, roomIDs, from, cur.Receipts)
	if err != nil {
		return nil, err
	}
	out := map[id.RoomID]map[string]any{}
	for _, r := range rs {
		if r.Type == ReceiptReadPrivate && r.UserID != user {
			continue
		}
		content := out[r.RoomID]
		if content == nil {
			content = map[string]any{}
			out[r.RoomID] = content
		}
		byType, _ := content[string(r.EventID)].(map[string]any)
		if byType == nil {
			byType = map[string]any{}
			content[string(r.EventID)] = byType
		}
		byUser, _ := byType[r.Type].(map[string]any)
		if byUser == nil {
			byUser = map[string]any{}
			byType[r.Type] = byUser
		}
		receipt := map[string]any{"ts": r.TS}
		if r.ThreadID != "" {
			receipt["thread_id"] = r.ThreadID
		}
		byUser[string(r.UserID)] = receipt
	}
	return out, nil
}
