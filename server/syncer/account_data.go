package syncer

import (
	"context"
	"encoding/json"
	"errors"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/storage"
)

// SetAccountData stores global (roomID "") or per-room account data and
// wakes the user's syncs.
func (s *Service) SetAccountData(ctx context.Context, user id.UserID, roomID id.RoomID, evType string, content []byte) error {
	if _, err := s.db.SetAccountData(ctx, user, roomID, evType, content); err != nil {
		return err
	}
	s.notifier.Wake(user)
	return nil
}

// GetAccountData returns account data content, or M_NOT_FOUND.
func (s *Service) GetAccountData(ctx context.Context, user id.UserID, roomID id.RoomID, evType string) (json.RawMessage, error) {
	c, err := s.db.GetAccountData(ctx, user, roomID, evType)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, mautrix.MNotFound.WithMessage("Account data not found")
	}
	return c, err
}

// accountDataSection fills the global account_data and each joined room's
// account_data with what changed in (since, cur] (everything on an initial
// sync).
func (s *Service) accountDataSection(ctx context.Context, req *Request, since, cur Token, resp *mautrix.RespSync) error {
	from := since.AccountData
	if req.Since == nil || req.FullState {
		from = 0
	}
	if from >= cur.AccountData {
		return nil // nothing changed (a long-poll woken by a message)
	}
	items, err := s.db.AccountDataSince(ctx, req.User, from, cur.AccountData)
	if err != nil {
		return err
	}
	var global, roomPart *mautrix.FilterPart
	if req.Filter != nil {
		global = req.Filter.AccountData
		if req.Filter.Room != nil {
			roomPart = req.Filter.Room.AccountData
		}
	}
	for _, it := range items {
		ev := accountDataEvent(&it)
		if ev == nil {
			continue
		}
		if it.RoomID == "" {
			if allows(global, ev) {
				resp.AccountData.Events = append(resp.AccountData.Events, ev)
			}
			continue
		}
		jr := resp.Rooms.Join[it.RoomID]
		if jr == nil {
			m, _, err := s.db.Membership(ctx, it.RoomID, req.User)
			if err != nil {
				return err
			}
			if m != string(event.MembershipJoin) {
				continue
			}
			if resp.Rooms.Join == nil {
				resp.Rooms.Join = map[id.RoomID]*mautrix.SyncJoinedRoom{}
			}
			jr = &mautrix.SyncJoinedRoom{}
			resp.Rooms.Join[it.RoomID] = jr
		}
		if allows(roomPart, ev) {
			jr.AccountData.Events = append(jr.AccountData.Events, ev)
		}
	}
	return nil
}

// accountDataEvent is a piece of account data as an event (nil if its
// content is not JSON).
func accountDataEvent(it *storage.AccountData) *event.Event {
	ev := &event.Event{Type: event.Type{Type: it.Type, Class: event.AccountDataEventType}}
	if err := json.Unmarshal(it.Content, &ev.Content); err != nil {
		return nil
	}
	return ev
}

// RoomTags reads a user's tags of a room (m.tag room account data): none
// when the user has set none.
func (s *Service) RoomTags(ctx context.Context, user id.UserID, roomID id.RoomID) (map[string]json.RawMessage, error) {
	raw, err := s.db.GetAccountData(ctx, user, roomID, event.AccountDataRoomTags.Type)
	if errors.Is(err, storage.ErrNotFound) {
		return map[string]json.RawMessage{}, nil
	}
	if err != nil {
		return nil, err
	}
	var c struct {
		Tags map[string]json.RawMessage `json:"tags"`
	}
	if json.Unmarshal(raw, &c) != nil || c.Tags == nil {
		return map[string]json.RawMessage{}, nil
	}
	return c.Tags, nil
}

// SetRoomTags replaces a user's tags of a room.
func (s *Service) SetRoomTags(ctx context.Context, user id.UserID, roomID id.RoomID, tags map[string]json.RawMessage) error {
	raw, err := json.Marshal(struct {
		Tags map[string]json.RawMessage `json:"tags"`
	}{tags})
	if err != nil {
		return err
	}
	return s.SetAccountData(ctx, user, roomID, event.AccountDataRoomTags.Type, raw)
}
