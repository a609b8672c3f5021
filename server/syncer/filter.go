package syncer

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/json/jsontext"
	"errors"
	"strconv"
	"strings"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto/canonicaljson"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/storage"
)

// defaultTimelineLimit is the number of timeline events per room when the
// filter does not say (Synapse's default).
const defaultTimelineLimit = 10

// maxTimelineLimit bounds what a filter may ask for per room.
const maxTimelineLimit = 1000

// SaveFilter validates and stores a filter, returning its ID.
func (s *Service) SaveFilter(ctx context.Context, user id.UserID, raw []byte) (string, error) {
	if _, err := parseNewFilter(raw); err != nil {
		return "", err
	}
	canon := jsontext.Value(bytes.Clone(raw))
	err := canonicaljson.Canonicalize(&canon)
	if err != nil {
		return "", mautrix.MBadJSON.WithMessage("Filter is not valid JSON")
	}
	filterID, err := s.db.SaveFilter(ctx, user, canon)
	if err != nil {
		return "", err
	}
	return strconv.FormatInt(filterID, 10), nil
}

// GetFilter returns a stored filter's JSON, or M_NOT_FOUND.
func (s *Service) GetFilter(ctx context.Context, user id.UserID, filterID string) (json.RawMessage, error) {
	n, err := strconv.ParseInt(filterID, 10, 64)
	if err != nil || n < 0 {
		return nil, mautrix.MNotFound.WithMessage("No such filter")
	}
	raw, err := s.db.GetFilter(ctx, user, n)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, mautrix.MNotFound.WithMessage("No such filter")
	}
	return raw, err
}

func parseFilter(raw []byte) (*mautrix.Filter, error) {
	var f mautrix.Filter
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, mautrix.MBadJSON.WithMessage("Invalid filter: " + err.Error())
	}
	if f.EventFormat != "" && f.EventFormat != mautrix.EventFormatClient && f.EventFormat != mautrix.EventFormatFederation {
		return nil, mautrix.MBadJSON.WithMessage("Invalid filter: event_format must be client or federation")
	}
	for _, part := range filterParts(&f) {
		if part.Limit < 0 {
			return nil, mautrix.MBadJSON.WithMessage("Invalid filter: limit must not be negative")
		}
	}
	if f.Room != nil && f.Room.Timeline != nil && f.Room.Timeline.Limit == 0 {
		// mautrix's type cannot tell "limit": 0 from no limit at all.
		var explicit struct {
			Room struct {
				Timeline struct {
					Limit *int `json:"limit"`
				} `json:"timeline"`
			} `json:"room"`
		}
		if json.Unmarshal(raw, &explicit) == nil && explicit.Room.Timeline.Limit != nil {
			f.Room.Timeline.Limit = noTimelineEvents
		}
	}
	return &f, nil
}

// noTimelineEvents marks a filter's room.timeline.limit of 0 (no timeline
// events, only state), apart from an absent limit (the default). A client
// cannot send it: negative limits are refused above.
const noTimelineEvents = -1

// parseNewFilter is parseFilter for a filter a client sends now (to store,
// or inline in /sync), whose IDs are checked too. Filters stored before
// that check are not refused, so a client that saved one keeps syncing.
func parseNewFilter(raw []byte) (*mautrix.Filter, error) {
	f, err := parseFilter(raw)
	if err != nil {
		return nil, err
	}
	for _, part := range filterParts(f) {
		if err := checkFilterIDs(part.Rooms, part.NotRooms, part.Senders, part.NotSenders); err != nil {
			return nil, err
		}
	}
	if f.Room != nil {
		if err := checkFilterIDs(f.Room.Rooms, f.Room.NotRooms, nil, nil); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// CheckEventFilter refuses an event filter given inline (the filter of
// GET /messages or /context) whose room or user IDs are not IDs, as stored
// and /sync filters are refused.
func CheckEventFilter(part *mautrix.FilterPart) error {
	return checkFilterIDs(part.Rooms, part.NotRooms, part.Senders, part.NotSenders)
}

// checkFilterIDs refuses room and user IDs that are not IDs at all, as
// Synapse's filter schema does (M_BAD_JSON): such a filter can only be a
// client bug, and silently matching nothing would hide it. Room IDs are
// only checked for their sigil, as those of room v12 have no server name.
func checkFilterIDs(rooms, notRooms []id.RoomID, senders, notSenders []id.UserID) error {
	for _, list := range [][]id.RoomID{rooms, notRooms} {
		for _, r := range list {
			if len(r) < 2 || len(r) > 255 || r[0] != '!' || strings.ContainsAny(string(r), " \t\r\n\x00") {
				return mautrix.MBadJSON.WithMessage("Invalid filter: " + strconv.Quote(string(r)) + " is not a room ID")
			}
		}
	}
	for _, list := range [][]id.UserID{senders, notSenders} {
		for _, u := range list {
			if localpart, _, err := u.ParseAndValidateRelaxed(); err != nil || localpart == "" {
				return mautrix.MBadJSON.WithMessage("Invalid filter: " + strconv.Quote(string(u)) + " is not a user ID")
			}
		}
	}
	return nil
}

// filterParts are the event filters a filter has.
func filterParts(f *mautrix.Filter) []*mautrix.FilterPart {
	var out []*mautrix.FilterPart
	for _, part := range []*mautrix.FilterPart{f.AccountData, f.Presence, roomPart(f, "timeline"), roomPart(f, "state"), roomPart(f, "ephemeral"), roomPart(f, "account_data")} {
		if part != nil {
			out = append(out, part)
		}
	}
	return out
}

func roomPart(f *mautrix.Filter, which string) *mautrix.FilterPart {
	if f.Room == nil {
		return nil
	}
	switch which {
	case "timeline":
		return f.Room.Timeline
	case "state":
		return f.Room.State
	case "ephemeral":
		return f.Room.Ephemeral
	case "account_data":
		return f.Room.AccountData
	}
	return nil
}

// ResolveFilter reads a sync's filter parameter: a stored filter ID or
// inline JSON (which starts with '{').
func (s *Service) ResolveFilter(ctx context.Context, user id.UserID, param string) (*mautrix.Filter, error) {
	if param == "" {
		return &mautrix.Filter{}, nil
	}
	if strings.HasPrefix(strings.TrimSpace(param), "{") {
		return parseNewFilter([]byte(param))
	}
	raw, err := s.GetFilter(ctx, user, param)
	if err != nil {
		return nil, mautrix.MInvalidParam.WithMessage("Unknown filter ID " + param)
	}
	return parseFilter(raw)
}

// matchType matches an event type against a filter pattern, where '*' is
// a wildcard for any sequence of characters.
func matchType(pattern, t string) bool {
	if !strings.Contains(pattern, "*") {
		return pattern == t
	}
	parts := strings.Split(pattern, "*")
	if !strings.HasPrefix(t, parts[0]) {
		return false
	}
	t = t[len(parts[0]):]
	for i, p := range parts[1:] {
		if i == len(parts)-2 {
			return strings.HasSuffix(t, p)
		}
		idx := strings.Index(t, p)
		if idx < 0 {
			return false
		}
		t = t[idx+len(p):]
	}
	return true
}

// allows applies a filter part's type, sender and URL rules to an event.
func allows(p *mautrix.FilterPart, ev *event.Event) bool {
	if p == nil {
		return true
	}
	for _, nt := range p.NotTypes {
		if matchType(nt.Type, ev.Type.Type) {
			return false
		}
	}
	if p.Types != nil {
		ok := false
		for _, t := range p.Types {
			if matchType(t.Type, ev.Type.Type) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	for _, ns := range p.NotSenders {
		if ns == ev.Sender {
			return false
		}
	}
	if p.Senders != nil {
		ok := false
		for _, snd := range p.Senders {
			if snd == ev.Sender {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if p.ContainsURL != nil {
		_, has := ev.Content.Raw["url"]
		if has != *p.ContainsURL {
			return false
		}
	}
	return true
}

// allowsRoom applies rooms / not_rooms.
func allowsRoom(rooms, notRooms []id.RoomID, roomID id.RoomID) bool {
	for _, r := range notRooms {
		if r == roomID {
			return false
		}
	}
	if rooms == nil {
		return true
	}
	for _, r := range rooms {
		if r == roomID {
			return true
		}
	}
	return false
}
