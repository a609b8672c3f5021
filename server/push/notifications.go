package push

import (
	"context"
	"encoding/json"
	"strconv"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/storage"
)

// GET /notifications (spec: "Listing Notifications").

// Notification is one entry of GET /notifications.
type Notification struct {
	Actions []json.RawMessage `json:"actions"`
	Event   *event.Event      `json:"event"`
	Read    bool              `json:"read"`
	RoomID  id.RoomID         `json:"room_id"`
	TS      int64             `json:"ts"`
}

// Notifications is the body of GET /notifications.
type Notifications struct {
	NextToken     string         `json:"next_token,omitempty"`
	Notifications []Notification `json:"notifications"`
}

// Paging of GET /notifications.
const (
	defaultNotificationLimit = 50 // Synapse's default
	maxNotificationLimit     = 1000
)

// ListNotifications pages through the user's notifications, newest first.
// from is a next_token from an earlier page ("" for the newest); limit 0
// means the default.
func (s *Service) ListNotifications(ctx context.Context, user id.UserID, from string, limit int, onlyHighlight bool) (*Notifications, error) {
	var before int64
	if from != "" {
		n, err := strconv.ParseInt(from, 10, 64)
		if err != nil || n <= 0 {
			return nil, mautrix.MInvalidParam.WithMessage("from is not a token from an earlier /notifications")
		}
		before = n
	}
	switch {
	case limit < 0:
		return nil, mautrix.MInvalidParam.WithMessage("limit must not be negative")
	case limit == 0:
		limit = defaultNotificationLimit
	}
	limit = min(limit, maxNotificationLimit)
	rows, more, err := s.db.Notifications(ctx, user, before, limit, onlyHighlight)
	if err != nil {
		return nil, err
	}
	out := &Notifications{Notifications: []Notification{}}
	read := map[id.RoomID]storage.ReadPositions{}
	for _, row := range rows {
		ev, err := s.rooms.Event(ctx, row.EventID)
		if err != nil {
			// An event that cannot be loaded is left out rather than
			// failing the whole page.
			s.log.Warn("notifications: load event", "event", row.EventID, "error", err)
			continue
		}
		ce, err := s.rooms.ClientEvent(ctx, ev)
		if err != nil {
			return nil, err
		}
		ce.RoomID = "" // the notification carries room_id; its event does not
		rp, ok := read[row.RoomID]
		if !ok {
			if rp, err = s.db.UserReadPositions(ctx, row.RoomID, user); err != nil {
				return nil, err
			}
			read[row.RoomID] = rp
		}
		var actions []json.RawMessage
		if err := json.Unmarshal(row.Actions, &actions); err != nil {
			actions = []json.RawMessage{}
		}
		out.Notifications = append(out.Notifications, Notification{
			Actions: actions, Event: ce, Read: row.StreamPos <= rp.Of(row.ThreadID), RoomID: row.RoomID, TS: row.TS,
		})
	}
	if more && len(rows) > 0 {
		out.NextToken = strconv.FormatInt(rows[len(rows)-1].StreamPos, 10)
	}
	return out, nil
}
