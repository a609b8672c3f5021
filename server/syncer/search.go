package syncer

import (
	"context"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/rooms"
)

// What the search service (server/search) borrows from the sync engine:
// the same event windows /context serves, and the same filter matching.

// Around is the context of a search result: visible events before it
// (newest first, as /context's events_before) and after it (oldest first),
// and /messages tokens to page on from there.
type Around struct {
	Before []*rooms.Event
	After  []*rooms.Event
	Start  string
	End    string
}

// EventsAround returns up to nBefore and nAfter events around ev that the
// user may see and does not ignore, with /context's tokens.
func (s *Service) EventsAround(ctx context.Context, user id.UserID, ignored map[id.UserID]bool, ev *rooms.Event, nBefore, nAfter int) (*Around, error) {
	cur, err := s.db.MaxStreamPos(ctx)
	if err != nil {
		return nil, err
	}
	req := &ContextRequest{User: user, RoomID: ev.RoomID, EventID: ev.ID, ignored: ignored}
	before, start, err := s.contextScan(ctx, req, 0, ev.StreamPos-1, nBefore, true)
	if err != nil {
		return nil, err
	}
	after, end, err := s.contextScan(ctx, req, ev.StreamPos, cur, nAfter, false)
	if err != nil {
		return nil, err
	}
	return &Around{Before: before, After: after, Start: Token{Events: start}.String(), End: Token{Events: end}.String()}, nil
}

// FilterAllows applies a RoomEventFilter's types, senders and contains_url
// to an event (rooms are the caller's business).
func FilterAllows(f *mautrix.FilterPart, ev *event.Event) bool { return allows(f, ev) }
