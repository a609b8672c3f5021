package syncer

import (
	"context"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/rooms"
)

// This file is the old snapshot APIs: GET /initialSync (deprecated by
// /sync) and GET /rooms/{roomId}/initialSync, which is how a client
// previews a world-readable room it is not in (spec: "Room Previews").
// Each room's snapshot is a view on the sync engine's timeline and state.

// PaginationChunk is a room's latest messages in a snapshot: start pages
// backwards through /messages, end forwards and through /events.
type PaginationChunk struct {
	Start string         `json:"start,omitempty"`
	End   string         `json:"end"`
	Chunk []*event.Event `json:"chunk"`
}

// RoomSnapshot is one room of GET /initialSync.
type RoomSnapshot struct {
	RoomID id.RoomID `json:"room_id"`
	// Membership is left out when the user only peeks into the room.
	Membership  event.Membership `json:"membership,omitempty"`
	Invite      *event.Event     `json:"invite,omitempty"`
	Messages    *PaginationChunk `json:"messages,omitempty"`
	State       []*event.Event   `json:"state,omitempty"`
	Visibility  string           `json:"visibility,omitempty"`
	AccountData []*event.Event   `json:"account_data,omitempty"`
}

// RoomInitialSyncResponse is the answer to GET /rooms/{roomId}/initialSync:
// the room's snapshot with its members' presence and its read receipts (as
// Synapse adds them).
type RoomInitialSyncResponse struct {
	RoomSnapshot
	Presence []*event.Event `json:"presence"`
	Receipts []*event.Event `json:"receipts"`
}

// InitialSyncResponse is the answer to GET /initialSync.
type InitialSyncResponse struct {
	End         string          `json:"end"`
	Rooms       []*RoomSnapshot `json:"rooms"`
	Presence    []*event.Event  `json:"presence"`
	AccountData []*event.Event  `json:"account_data"`
	Receipts    []*event.Event  `json:"receipts"`
}

// DefaultSnapshotLimit is the number of messages per room a snapshot shows
// when the client does not say (Synapse's).
const DefaultSnapshotLimit = 10

// InitialSync answers GET /initialSync: every room the user is joined or
// invited to (with archived, also those they left or were banned from),
// with its latest limit messages and its state.
func (s *Service) InitialSync(ctx context.Context, user id.UserID, device id.DeviceID, limit int, archived bool) (*InitialSyncResponse, error) {
	release, err := s.BuildSlot(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	cur, err := s.Current(ctx)
	if err != nil {
		return nil, err
	}
	ignored, err := s.IgnoredUsers(ctx, user)
	if err != nil {
		return nil, err
	}
	global, byRoom, err := s.accountDataEvents(ctx, user, cur)
	if err != nil {
		return nil, err
	}
	memberships, err := s.rooms.MembershipsAt(ctx, user, cur.Events)
	if err != nil {
		return nil, err
	}
	resp := &InitialSyncResponse{End: cur.String(), Rooms: []*RoomSnapshot{}, Presence: []*event.Event{}, AccountData: global, Receipts: []*event.Event{}}
	var joined []id.RoomID
	for _, m := range memberships {
		view := &rooms.ReadView{Membership: event.Membership(m.Membership)}
		switch view.Membership {
		case event.MembershipJoin:
			joined = append(joined, m.RoomID)
		case event.MembershipInvite:
			ev, err := s.rooms.Event(ctx, m.EventID)
			if err != nil {
				return nil, err
			}
			if ignored[ev.PDU.Sender] {
				continue // as /sync: never an invite from an ignored user
			}
			ce, err := s.ClientEvent(ctx, user, device, ev)
			if err != nil {
				return nil, err
			}
			resp.Rooms = append(resp.Rooms, &RoomSnapshot{RoomID: m.RoomID, Membership: view.Membership, Invite: ce})
			continue
		case event.MembershipLeave, event.MembershipBan:
			if !archived {
				continue
			}
			if forgotten, err := s.db.IsRoomForgotten(ctx, user, m.RoomID); err != nil {
				return nil, err
			} else if forgotten {
				continue
			}
			if view.Left, err = s.rooms.Event(ctx, m.EventID); err != nil {
				return nil, err
			}
		default:
			continue // a knock is not in this API's membership list
		}
		snap, err := s.roomSnapshot(ctx, user, device, m.RoomID, view, cur, limit, ignored)
		if err != nil {
			return nil, err
		}
		snap.AccountData = byRoom[m.RoomID]
		resp.Rooms = append(resp.Rooms, snap)
	}
	changes, err := s.db.PresenceChanges(ctx, user, 0, cur.Presence)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	for i := range changes {
		resp.Presence = append(resp.Presence, legacyPresenceEvent(&changes[i], now))
	}
	if resp.Receipts, err = s.receiptEvents(ctx, user, joined, cur); err != nil {
		return nil, err
	}
	return resp, nil
}

// RoomInitialSync answers GET /rooms/{roomId}/initialSync for any room the
// user may read (rooms.ReadView): joined, left, or a world-readable room
// they are not in.
func (s *Service) RoomInitialSync(ctx context.Context, user id.UserID, device id.DeviceID, roomID id.RoomID, limit int) (*RoomInitialSyncResponse, error) {
	view, err := s.rooms.ReadView(ctx, user, roomID)
	if err != nil {
		return nil, err
	}
	cur, err := s.Current(ctx)
	if err != nil {
		return nil, err
	}
	ignored, err := s.IgnoredUsers(ctx, user)
	if err != nil {
		return nil, err
	}
	snap, err := s.roomSnapshot(ctx, user, device, roomID, view, cur, limit, ignored)
	if err != nil {
		return nil, err
	}
	_, byRoom, err := s.accountDataEvents(ctx, user, cur)
	if err != nil {
		return nil, err
	}
	snap.AccountData = byRoom[roomID]
	resp := &RoomInitialSyncResponse{RoomSnapshot: *snap, Presence: []*event.Event{}, Receipts: []*event.Event{}}
	if view.Left != nil {
		return resp, nil // what the user saw when they left has no live presence or receipts
	}
	members, err := s.rooms.JoinedUsers(ctx, roomID)
	if err != nil {
		return nil, err
	}
	known, err := s.db.PresenceOf(ctx, members)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	for i := range known {
		resp.Presence = append(resp.Presence, legacyPresenceEvent(&known[i], now))
	}
	if resp.Receipts, err = s.receiptEvents(ctx, user, []id.RoomID{roomID}, cur); err != nil {
		return nil, err
	}
	return resp, nil
}

// roomSnapshot is a room as the user may read it: the latest limit
// messages they may see and the state, now, or as of their leave.
func (s *Service) roomSnapshot(ctx context.Context, user id.UserID, device id.DeviceID, roomID id.RoomID, view *rooms.ReadView, cur Token, limit int, ignored map[id.UserID]bool) (*RoomSnapshot, error) {
	snap := &RoomSnapshot{RoomID: roomID}
	limit = min(limit, maxMessagesLimit)
	if !view.Peeking() {
		snap.Membership = view.Membership
	}
	upper, end := cur.Events, cur
	var state rooms.StateMap
	var err error
	if view.Left != nil {
		upper, end = view.Left.StreamPos, Token{Events: view.Left.StreamPos}
		state, err = s.rooms.StateAfter(ctx, view.Left)
	} else {
		state, err = s.rooms.CurrentState(ctx, roomID)
	}
	if err != nil {
		return nil, err
	}
	evs, _, err := s.VisibleTimeline(ctx, TimelineQuery{User: user, Ignored: ignored, RoomID: roomID, To: upper, Limit: limit})
	if err != nil {
		return nil, err
	}
	snap.Messages = &PaginationChunk{Start: end.String(), End: end.String(), Chunk: make([]*event.Event, 0, len(evs))}
	if len(evs) > 0 {
		snap.Messages.Start = Token{Events: evs[0].StreamPos - 1}.String()
	}
	for _, ev := range evs {
		ce, err := s.ClientEvent(ctx, user, device, ev)
		if err != nil {
			return nil, err
		}
		snap.Messages.Chunk = append(snap.Messages.Chunk, ce)
	}
	if err := s.rooms.BundleAggregations(ctx, user, evs, snap.Messages.Chunk); err != nil {
		return nil, err
	}
	stateEvs, err := s.rooms.StateEvents(ctx, state, nil)
	if err != nil {
		return nil, err
	}
	snap.State = make([]*event.Event, 0, len(stateEvs))
	for _, ev := range stateEvs {
		ce, err := s.rooms.ClientEvent(ctx, ev)
		if err != nil {
			return nil, err
		}
		snap.State = append(snap.State, ce)
	}
	sortState(snap.State)
	published, err := s.rooms.DirectoryVisibility(ctx, roomID)
	if err != nil {
		return nil, err
	}
	snap.Visibility = "private"
	if published {
		snap.Visibility = "public"
	}
	return snap, nil
}

// accountDataEvents returns all of a user's account data as events: the
// global ones, and the per-room ones by room (tags among them, as m.tag).
func (s *Service) accountDataEvents(ctx context.Context, user id.UserID, cur Token) ([]*event.Event, map[id.RoomID][]*event.Event, error) {
	items, err := s.db.AccountDataSince(ctx, user, 0, cur.AccountData)
	if err != nil {
		return nil, nil, err
	}
	global := []*event.Event{}
	byRoom := map[id.RoomID][]*event.Event{}
	for i := range items {
		it := &items[i]
		ev := accountDataEvent(it)
		if ev == nil {
			continue
		}
		if it.RoomID == "" {
			global = append(global, ev)
		} else {
			byRoom[it.RoomID] = append(byRoom[it.RoomID], ev)
		}
	}
	return global, byRoom, nil
}

// receiptEvents returns the rooms' current read receipts as one m.receipt
// event per room (other users' private receipts left out).
func (s *Service) receiptEvents(ctx context.Context, user id.UserID, roomIDs []id.RoomID, cur Token) ([]*event.Event, error) {
	out := []*event.Event{}
	if len(roomIDs) == 0 {
		return out, nil
	}
	contents, err := s.ReceiptContents(ctx, user, roomIDs, Token{}, cur, true)
	if err != nil {
		return nil, err
	}
	for _, roomID := range roomIDs {
		if content, ok := contents[roomID]; ok {
			out = append(out, receiptEvent(roomID, content))
		}
	}
	return out, nil
}
