package syncer

import (
	"context"
	"encoding/json"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/push"
)

// Unread notification counts (spec: "Receiving notifications") and the
// user's push rules as m.push_rules account data. The push service records
// which events notify whom as they are persisted; here they are counted
// from each thread's read position (receipts, and the user's own events).

// ThreadCounts are a sync's unread counts per room and thread root.
type ThreadCounts map[id.RoomID]map[string]mautrix.UnreadNotificationCounts

// Response is a /sync answer: mautrix's response and what its types have
// no field for (unread_thread_notifications).
type Response struct {
	*mautrix.RespSync
	ThreadCounts ThreadCounts
}

// unreadCounts gives every room in rooms.join its unread_notifications
// (the spec wants them whenever they change; with the room's every
// appearance they are never stale), adds rooms whose counts a receipt of
// the user changed, and puts the push rules in an initial sync. With
// unread_thread_notifications in the timeline filter, threads are counted
// apart and returned per room; otherwise they are in the room's count.
func (s *Service) unreadCounts(ctx context.Context, req *Request, resp *mautrix.RespSync) (ThreadCounts, error) {
	if err := s.pushRulesAccountData(ctx, req, resp); err != nil {
		return nil, err
	}
	if err := s.addReceiptRooms(ctx, req, resp); err != nil {
		return nil, err
	}
	perThread := false
	if tf := timelineFilter(req); tf != nil {
		perThread = tf.UnreadThreadNotifications
	}
	var threads ThreadCounts
	for roomID, jr := range resp.Rooms.Join {
		unread, err := s.db.UnreadNotifications(ctx, roomID, req.User)
		if err != nil {
			return nil, err
		}
		counts := &mautrix.UnreadNotificationCounts{NotificationCount: unread.Main.Notify, HighlightCount: unread.Main.Highlight}
		for thread, c := range unread.Threads {
			if !perThread {
				counts.NotificationCount += c.Notify
				counts.HighlightCount += c.Highlight
				continue
			}
			if threads == nil {
				threads = ThreadCounts{}
			}
			if threads[roomID] == nil {
				threads[roomID] = map[string]mautrix.UnreadNotificationCounts{}
			}
			threads[roomID][thread] = mautrix.UnreadNotificationCounts{NotificationCount: c.Notify, HighlightCount: c.Highlight}
		}
		jr.UnreadNotifications = counts
	}
	return threads, nil
}

// addReceiptRooms adds to an incremental sync the joined rooms where the
// user's own receipts moved since the token: their counts may have dropped,
// and the client must hear so even when its filter hides receipts.
func (s *Service) addReceiptRooms(ctx context.Context, req *Request, resp *mautrix.RespSync) error {
	if req.Since == nil {
		return nil
	}
	cur, err := ParseToken(resp.NextBatch)
	if err != nil {
		return err
	}
	roomIDs, err := s.db.ReceiptRoomsSince(ctx, req.User, req.Since.Receipts, cur.Receipts)
	if err != nil {
		return err
	}
	var rf *mautrix.RoomFilter
	if req.Filter != nil {
		rf = req.Filter.Room
	}
	for _, roomID := range roomIDs {
		if resp.Rooms.Join[roomID] != nil || (rf != nil && !allowsRoom(rf.Rooms, rf.NotRooms, roomID)) {
			continue
		}
		m, _, err := s.db.Membership(ctx, roomID, req.User)
		if err != nil {
			return err
		}
		if m != string(event.MembershipJoin) {
			continue
		}
		if resp.Rooms.Join == nil {
			resp.Rooms.Join = map[id.RoomID]*mautrix.SyncJoinedRoom{}
		}
		resp.Rooms.Join[roomID] = &mautrix.SyncJoinedRoom{}
	}
	return nil
}

// pushRulesAccountData makes the m.push_rules account data current. The
// push service stores the ruleset there whenever the user changes it, so
// an incremental sync carries changes; an initial (or full-state) sync
// always carries it, computed afresh, so a new account — or one whose
// server gained default rules since its last change — sees its rules.
func (s *Service) pushRulesAccountData(ctx context.Context, req *Request, resp *mautrix.RespSync) error {
	full := req.Since == nil || req.FullState
	at := -1
	for i, ev := range resp.AccountData.Events {
		if ev.Type.Type == push.PushRulesType {
			at = i
		}
	}
	if at < 0 && !full {
		return nil
	}
	ev, err := s.PushRulesEvent(ctx, req.User)
	if err != nil {
		return err
	}
	if at >= 0 {
		resp.AccountData.Events[at] = ev
		return nil
	}
	var global *mautrix.FilterPart
	if req.Filter != nil {
		global = req.Filter.AccountData
	}
	if allows(global, ev) {
		resp.AccountData.Events = append(resp.AccountData.Events, ev)
	}
	return nil
}

// PushRulesEvent is the user's m.push_rules account data, computed afresh
// from their stored rules and the server's defaults.
func (s *Service) PushRulesEvent(ctx context.Context, user id.UserID) (*event.Event, error) {
	rs, err := push.LoadRuleset(ctx, s.db, user)
	if err != nil {
		return nil, err
	}
	content, err := push.RulesJSON(rs)
	if err != nil {
		return nil, err
	}
	ev := &event.Event{Type: event.Type{Type: push.PushRulesType, Class: event.AccountDataEventType}}
	if err := json.Unmarshal(content, &ev.Content); err != nil {
		return nil, err
	}
	return ev, nil
}

// UnreadCounts counts a user's unread notifications and highlights in a
// room, threads included (sliding sync has one count per room).
func (s *Service) UnreadCounts(ctx context.Context, user id.UserID, roomID id.RoomID) (mautrix.UnreadNotificationCounts, error) {
	var out mautrix.UnreadNotificationCounts
	unread, err := s.db.UnreadNotifications(ctx, roomID, user)
	if err != nil {
		return out, err
	}
	out.NotificationCount, out.HighlightCount = unread.Main.Notify, unread.Main.Highlight
	for _, c := range unread.Threads {
		out.NotificationCount += c.Notify
		out.HighlightCount += c.Highlight
	}
	return out, nil
}
