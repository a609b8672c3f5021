package slidingsync

import (
	"context"
	"maps"
	"slices"

	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/syncer"
)

// builder assembles one response: from the connection's previous state
// (prev) and the streams' current positions (cur) it fills the response
// and the connection's next state.
type builder struct {
	s    *Service
	who  Caller
	req  *Request
	prev *connState
	next *connState
	cur  syncer.Token

	ignored map[id.UserID]bool
	filters filterData
	// matched are the rooms in a list's window or subscribed to.
	matched map[id.RoomID]*match
	// receiptMoved are the rooms where the user's own receipts moved since
	// prev (their unread counts may have changed).
	receiptMoved map[id.RoomID]bool
	// listsChanged notes a list whose count differs from the last response.
	listsChanged bool
}

// match is a room the request selects, with the configs that selected it.
type match struct {
	room       *listRoom
	configs    []*RoomConfig
	lists      []string
	subscribed bool
}

// newConnection tells whether this is a connection's first response.
func (b *builder) newConnection() bool { return b.req.Pos == nil }

func (b *builder) build(ctx context.Context) (*Response, error) {
	var err error
	if b.ignored, err = b.s.sync.IgnoredUsers(ctx, b.who.User); err != nil {
		return nil, err
	}
	list, err := b.roomList(ctx)
	if err != nil {
		return nil, err
	}
	byID := make(map[id.RoomID]*listRoom, len(list))
	for _, r := range list {
		byID[r.roomID] = r
	}
	resp := &Response{TxnID: b.req.TxnID, Lists: map[string]ListResult{}, Rooms: map[id.RoomID]*RoomResult{}}
	b.matched = map[id.RoomID]*match{}
	counts := map[string]int{}
	for _, name := range slices.Sorted(maps.Keys(b.req.Lists)) {
		lc := b.req.Lists[name]
		n := 0
		for _, r := range list {
			ok, err := b.passes(ctx, lc.Filters, r, byID)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
			if lc.inRange(n) {
				m := b.match(r)
				m.configs = append(m.configs, &lc.RoomConfig)
				m.lists = append(m.lists, name)
			}
			n++
		}
		counts[name] = n
		resp.Lists[name] = ListResult{Count: n}
	}
	b.listsChanged = !maps.Equal(counts, b.prev.lists)
	b.next.lists = counts
	for roomID, sub := range b.req.RoomSubscriptions {
		// Rooms the user has no membership in (or that do not exist) are
		// ignored, as the MSC says: no peeking.
		if r := byID[roomID]; r != nil {
			m := b.match(r)
			m.configs = append(m.configs, sub)
			m.subscribed = true
		}
	}
	if !b.newConnection() && b.prev.token.Receipts < b.cur.Receipts {
		moved, err := b.s.db.ReceiptRoomsSince(ctx, b.who.User, b.prev.token.Receipts, b.cur.Receipts)
		if err != nil {
			return nil, err
		}
		b.receiptMoved = map[id.RoomID]bool{}
		for _, r := range moved {
			b.receiptMoved[r] = true
		}
	}
	for _, roomID := range slices.Sorted(maps.Keys(b.matched)) {
		rr, err := b.room(ctx, b.matched[roomID])
		if err != nil {
			return nil, err
		}
		if rr != nil {
			resp.Rooms[roomID] = rr
		}
	}
	b.next.token = b.cur
	if err := b.extensions(ctx, resp); err != nil {
		return nil, err
	}
	return resp, nil
}

func (b *builder) match(r *listRoom) *match {
	m := b.matched[r.roomID]
	if m == nil {
		m = &match{room: r}
		b.matched[r.roomID] = m
	}
	return m
}

// hasNews tells whether a response is worth ending a long-poll for.
func (b *builder) hasNews(resp *Response) bool {
	return len(resp.Rooms) > 0 || b.listsChanged || resp.Extensions.hasNews()
}
