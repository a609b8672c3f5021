package syncer

import (
	"context"
	"math"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/rooms"
)

// MessagesRequest is a GET /rooms/{roomId}/messages.
type MessagesRequest struct {
	User      id.UserID
	Device    id.DeviceID
	RoomID    id.RoomID
	From      *Token // nil: from the newest (dir b) or oldest (dir f) event
	To        *Token
	Backwards bool
	Limit     int
	Filter    *mautrix.FilterPart
}

// MessagesResponse is the answer to /messages.
type MessagesResponse struct {
	Start string         `json:"start"`
	End   string         `json:"end,omitempty"`
	Chunk []*event.Event `json:"chunk"`
	State []*event.Event `json:"state,omitempty"`
}

// maxMessagesLimit bounds one page.
const maxMessagesLimit = 1000

// Messages pages through a room's events in stream order. A token's events
// position p means "after event p": backwards pages return events at or
// before p, forwards pages events after p, so sync's prev_batch and
// next_batch tokens page exactly up to and from a sync's timeline.
func (s *Service) Messages(ctx context.Context, req *MessagesRequest) (*MessagesResponse, error) {
	if err := s.CheckCanRead(ctx, req.User, req.RoomID); err != nil {
		return nil, err
	}
	cur, err := s.Current(ctx)
	if err != nil {
		return nil, err
	}
	ignored, err := s.IgnoredUsers(ctx, req.User)
	if err != nil {
		return nil, err
	}
	limit := req.Limit
	if limit <= 0 {
		limit = 10
	}
	limit = min(limit, maxMessagesLimit)
	var from int64
	switch {
	case req.From != nil:
		from = req.From.Events
	case req.Backwards:
		from = cur.Events
	}
	resp := &MessagesResponse{Start: Token{Events: from}.String(), Chunk: []*event.Event{}}
	var lower, upper int64
	if req.Backwards {
		// History backfilled from other servers lies below position 1.
		lower, upper = math.MinInt64, from
		if req.To != nil {
			lower = req.To.Events
		}
	} else {
		lower, upper = from, cur.Events
		if req.To != nil && req.To.Events < upper {
			upper = req.To.Events
		}
	}
	var page []*rooms.Event
	more, backfilled := false, false
	// Fetch until the page is full of events the user may see and the
	// filter allows, or the range is exhausted.
	for len(page) < limit {
		batch, batchMore, err := s.rooms.Timeline(ctx, req.RoomID, lower, upper, limit, req.Backwards)
		if err != nil {
			return nil, err
		}
		if req.Backwards {
			// Timeline returns oldest first; walk newest first.
			for i, j := 0, len(batch)-1; i < j; i, j = i+1, j-1 {
				batch[i], batch[j] = batch[j], batch[i]
			}
		}
		for i, ev := range batch {
			if req.Backwards {
				upper = ev.StreamPos - 1
			} else {
				lower = ev.StreamPos
			}
			ok, err := s.rooms.CanSee(ctx, req.User, ev)
			if err != nil {
				return nil, err
			}
			ok = ok && !HiddenByIgnore(ignored, ev)
			if ok && req.Filter != nil {
				ce, err := s.rooms.ClientEvent(ctx, ev)
				if err != nil {
					return nil, err
				}
				ok = allows(req.Filter, ce)
			}
			if ok {
				page = append(page, ev)
			}
			if len(page) == limit {
				more = batchMore || i < len(batch)-1
				if !more && req.Backwards && req.To == nil {
					// The start of the room here: other servers may
					// have what came before.
					if more, err = s.rooms.MayBackfill(ctx, req.RoomID); err != nil {
						return nil, err
					}
				}
				break
			}
		}
		if !batchMore && len(page) < limit && req.Backwards && req.To == nil && !backfilled {
			// The start of the room here: other servers may have more.
			backfilled = true
			if n, err := s.rooms.Backfill(ctx, req.RoomID, limit-len(page)); err != nil {
				return nil, err
			} else if n > 0 {
				continue
			}
		}
		if !batchMore || len(page) == limit {
			if len(page) < limit {
				more = false
			}
			break
		}
	}
	lazyUsers := map[id.UserID]bool{}
	for _, ev := range page {
		ce, err := s.clientEvent(ctx, &Request{User: req.User, Device: req.Device}, ev)
		if err != nil {
			return nil, err
		}
		resp.Chunk = append(resp.Chunk, ce)
		lazyUsers[ev.PDU.Sender] = true
	}
	if err := s.rooms.BundleAggregations(ctx, req.User, page, resp.Chunk); err != nil {
		return nil, err
	}
	if more {
		if req.Backwards {
			resp.End = Token{Events: upper}.String()
		} else {
			resp.End = Token{Events: lower}.String()
		}
	}
	if req.Filter != nil && req.Filter.LazyLoadMembers && len(page) > 0 {
		state, err := s.rooms.StateBefore(ctx, page[0])
		if err != nil {
			return nil, err
		}
		for u := range lazyUsers {
			ev, err := s.rooms.StateEvents(ctx, state, stateKeys(event.StateMember.Type, string(u)))
			if err != nil {
				return nil, err
			}
			for _, e := range ev {
				ce, err := s.rooms.ClientEvent(ctx, e)
				if err != nil {
					return nil, err
				}
				resp.State = append(resp.State, ce)
			}
		}
	}
	return resp, nil
}

// CheckCanRead refuses users who were never in the room, unless its
// history is world-readable; what they may see of it is then decided per
// event by history visibility. A room that does not exist gets the same
// 403 (as Synapse answers /messages), so the answer does not tell whether
// it exists. /messages checks this before its parameters.
func (s *Service) CheckCanRead(ctx context.Context, user id.UserID, roomID id.RoomID) error {
	m, _, err := s.db.Membership(ctx, roomID, user)
	if err != nil {
		return err
	}
	if m != "" {
		return nil
	}
	hv, err := s.rooms.CurrentStateEvent(ctx, roomID, event.StateHistoryVisibility.Type, "")
	if err != nil {
		return err
	}
	if hv != nil {
		var c event.HistoryVisibilityEventContent
		if jsonUnmarshal(hv.PDU.Content, &c) == nil && c.HistoryVisibility == event.HistoryVisibilityWorldReadable {
			return nil
		}
	}
	return mautrix.MForbidden.WithMessage("You are not in this room")
}
