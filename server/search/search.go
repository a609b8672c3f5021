// Package search is server-side search (spec: "Server Side Search"): a
// full-text index of message bodies, room names and topics (SQLite FTS5,
// kept a little behind the events by server/storage), searched over the rooms a user is
// or was in, with the results filtered by history visibility and the
// user's ignore list.
package search

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"slices"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/rooms"
	"github.com/palpo-im/palpo-desktop/server/storage"
	"github.com/palpo-im/palpo-desktop/server/syncer"
)

// Service searches room events.
type Service struct {
	db    *storage.DB
	rooms *rooms.Service
	sync  *syncer.Service
	log   *slog.Logger
}

// New builds the search service.
func New(db *storage.DB, roomsSvc *rooms.Service, syncSvc *syncer.Service, log *slog.Logger) *Service {
	s := &Service{db: db, rooms: roomsSvc, sync: syncSvc, log: log}
	roomsSvc.WhenIdle(s.indexPending)
	return s
}

// indexPending brings the full-text index up to the stored events; the
// rooms service runs it when its committer goes quiet.
func (s *Service) indexPending(ctx context.Context) {
	if _, err := s.db.IndexPendingSearch(ctx); err != nil {
		s.log.Warn("search: index new events", "error", err)
	}
}

// Criteria is search_categories.room_events of a /search request.
type Criteria struct {
	SearchTerm   *string             `json:"search_term"`
	Keys         []string            `json:"keys"`
	Filter       *mautrix.FilterPart `json:"filter"`
	OrderBy      string              `json:"order_by"`
	EventContext *EventContext       `json:"event_context"`
	IncludeState bool                `json:"include_state"`
	Groupings    *Groupings          `json:"groupings"`
}

// EventContext asks for the events around each result.
type EventContext struct {
	BeforeLimit    *int `json:"before_limit"`
	AfterLimit     *int `json:"after_limit"`
	IncludeProfile bool `json:"include_profile"`
}

// Groupings asks for results grouped by room or sender.
type Groupings struct {
	GroupBy []struct {
		Key string `json:"key"`
	} `json:"group_by"`
}

// Results is the room_events part of a /search response.
type Results struct {
	Count      int                          `json:"count"`
	Highlights []string                     `json:"highlights"`
	Results    []*Result                    `json:"results"`
	NextBatch  string                       `json:"next_batch,omitempty"`
	Groups     map[string]map[string]*Group `json:"groups,omitempty"`
	State      map[id.RoomID][]*event.Event `json:"state,omitempty"`
}

// Result is one matching event.
type Result struct {
	Rank    float64      `json:"rank"`
	Result  *event.Event `json:"result"`
	Context *Context     `json:"context,omitempty"`
}

// Context is the events around a result.
type Context struct {
	Start        string                `json:"start"`
	End          string                `json:"end"`
	ProfileInfo  map[id.UserID]Profile `json:"profile_info,omitempty"`
	EventsBefore []*event.Event        `json:"events_before"`
	EventsAfter  []*event.Event        `json:"events_after"`
}

// Profile is a sender's display name and avatar as of the context.
type Profile struct {
	DisplayName *string `json:"displayname,omitempty"`
	AvatarURL   *string `json:"avatar_url,omitempty"`
}

// Group is the results of one room or sender. Order is the position
// (from 1) of the group's first result in this page: the spec types it an
// integer, and mautrix decodes it as one.
type Group struct {
	NextBatch string   `json:"next_batch,omitempty"`
	Order     int      `json:"order"`
	Results   []string `json:"results"`
}

// Limits and defaults (the spec's for event context; Synapse's for the
// number of results).
const (
	defaultLimit   = 10
	maxLimit       = 100
	defaultContext = 5
	maxContext     = 100
	// A page is filled from chunks of matches, filtered for visibility;
	// after maxRounds chunks the page ends early with a next_batch.
	maxRounds = 5
)

var (
	mMissingParam = mautrix.RespError{ErrCode: "M_MISSING_PARAM", StatusCode: 400}
	// searchableKeys maps the spec's keys to the event type holding each.
	searchableKeys = map[string]string{
		"content.body":  event.EventMessage.Type,
		"content.name":  event.StateRoomName.Type,
		"content.topic": event.StateTopic.Type,
	}
)

// query is a validated request.
type query struct {
	user     id.UserID
	match    matchQuery
	types    []string
	filter   *mautrix.FilterPart
	limit    int
	byRank   bool
	batch    *batch
	context  *EventContext
	before   int
	after    int
	state    bool
	groupBy  []string
	rooms    []storage.SearchRoom
	joinedAt map[id.RoomID]int64
	ignored  map[id.UserID]bool
}

// Search runs a room_events search for a user; nextBatch is the
// next_batch query parameter ("" for the first page).
func (s *Service) Search(ctx context.Context, user id.UserID, c *Criteria, nextBatch string) (*Results, error) {
	q, err := s.parse(user, c, nextBatch)
	if err != nil {
		return nil, err
	}
	out := &Results{Highlights: q.match.highlights, Results: []*Result{}}
	if out.Highlights == nil {
		out.Highlights = []string{}
	}
	if q.match.match == "" {
		return out, nil
	}
	if err := s.searchRooms(ctx, q); err != nil {
		return nil, err
	}
	if len(q.rooms) == 0 {
		return out, nil
	}
	if q.ignored, err = s.sync.IgnoredUsers(ctx, user); err != nil {
		return nil, err
	}
	// The index follows the events a little behind (the rooms service
	// indexes when the committer goes quiet): what was stored since is
	// indexed first, so a message sent just before is found.
	if _, err := s.db.IndexPendingSearch(ctx); err != nil {
		// The index as it is still answers, a little behind.
		s.log.Warn("search: index new events", "error", err)
	}
	sq := &storage.SearchQuery{Match: q.match.match, Rooms: q.rooms, Types: q.types, ByRank: q.byRank}
	if q.filter != nil {
		sq.Senders, sq.NotSenders = q.filter.Senders, q.filter.NotSenders
	}
	if err := s.count(ctx, q, sq, out); err != nil {
		return nil, err
	}
	hits, next, err := s.page(ctx, q, sq)
	if err != nil {
		return nil, err
	}
	if next != nil {
		out.NextBatch = next.String()
	}
	if err := s.fill(ctx, q, hits, next, out); err != nil {
		return nil, err
	}
	return out, nil
}

// parse validates the request, answering the spec's 400s.
func (s *Service) parse(user id.UserID, c *Criteria, nextBatch string) (*query, error) {
	if c.SearchTerm == nil {
		return nil, mMissingParam.WithMessage("search_term is required")
	}
	q := &query{user: user, match: parseTerm(*c.SearchTerm), filter: c.Filter, limit: defaultLimit, byRank: true}
	for _, k := range c.Keys {
		t, ok := searchableKeys[k]
		if !ok {
			return nil, mautrix.MInvalidParam.WithMessage("Unknown search key " + k + "; use content.body, content.name or content.topic")
		}
		if !slices.Contains(q.types, t) {
			q.types = append(q.types, t)
		}
	}
	switch c.OrderBy {
	case "", "rank":
	case "recent":
		q.byRank = false
	default:
		return nil, mautrix.MInvalidParam.WithMessage("order_by must be rank or recent")
	}
	if f := c.Filter; f != nil {
		if f.Limit < 0 {
			return nil, mautrix.MInvalidParam.WithMessage("filter.limit must not be negative")
		}
		if f.Limit > 0 {
			q.limit = min(f.Limit, maxLimit)
		}
	}
	if ec := c.EventContext; ec != nil {
		q.context = ec
		q.before, q.after = defaultContext, defaultContext
		if ec.BeforeLimit != nil {
			q.before = *ec.BeforeLimit
		}
		if ec.AfterLimit != nil {
			q.after = *ec.AfterLimit
		}
		if q.before < 0 || q.after < 0 {
			return nil, mautrix.MInvalidParam.WithMessage("before_limit and after_limit must not be negative")
		}
		q.before, q.after = min(q.before, maxContext), min(q.after, maxContext)
	}
	q.state = c.IncludeState
	if c.Groupings != nil {
		for _, g := range c.Groupings.GroupBy {
			if g.Key != "room_id" && g.Key != "sender" {
				return nil, mautrix.MInvalidParam.WithMessage("Unknown group_by key " + g.Key + "; use room_id or sender")
			}
			if !slices.Contains(q.groupBy, g.Key) {
				q.groupBy = append(q.groupBy, g.Key)
			}
		}
	}
	if nextBatch != "" {
		b, err := parseBatch(nextBatch)
		if err != nil {
			return nil, err
		}
		if b.byRank != q.byRank {
			return nil, mautrix.MInvalidParam.WithMessage("next_batch belongs to a search with another order_by")
		}
		q.batch = &b
	}
	return q, nil
}

// searchRooms decides where the user may search: every room they are in,
// and every room they were in up to when they left (the spec: "including
// those that they have left"; Synapse only searches joined rooms). A room
// the user forgot is not searched. The filter's rooms narrow this, and
// bring in the rooms they replaced (upgrades), as Synapse does, so a
// search "in this room" finds its history before the upgrade.
func (s *Service) searchRooms(ctx context.Context, q *query) error {
	mems, err := s.rooms.MembershipsAt(ctx, q.user, math.MaxInt64)
	if err != nil {
		return err
	}
	var wanted map[id.RoomID]bool
	if q.filter != nil && q.filter.Rooms != nil {
		wanted = map[id.RoomID]bool{}
		for _, r := range q.filter.Rooms {
			wanted[r] = true
			if err := s.addPredecessors(ctx, r, wanted); err != nil {
				return err
			}
		}
	}
	q.joinedAt = map[id.RoomID]int64{}
	for _, m := range mems {
		if wanted != nil && !wanted[m.RoomID] {
			continue
		}
		if q.filter != nil && slices.Contains(q.filter.NotRooms, m.RoomID) {
			continue
		}
		if q.batch != nil && q.batch.room != "" && q.batch.room != m.RoomID {
			continue
		}
		if m.Membership == string(event.MembershipJoin) {
			q.joinedAt[m.RoomID] = m.StreamPos
			q.rooms = append(q.rooms, storage.SearchRoom{RoomID: m.RoomID, MaxPos: math.MaxInt64})
			continue
		}
		if forgotten, err := s.db.IsRoomForgotten(ctx, q.user, m.RoomID); err != nil {
			return err
		} else if forgotten {
			continue
		}
		// Left, banned, or invited or knocking again after leaving: what
		// history visibility lets them see up to that membership.
		q.rooms = append(q.rooms, storage.SearchRoom{RoomID: m.RoomID, MaxPos: m.StreamPos})
	}
	return nil
}

// maxPredecessors bounds the walk back through room upgrades.
const maxPredecessors = 20

func (s *Service) addPredecessors(ctx context.Context, roomID id.RoomID, into map[id.RoomID]bool) error {
	for range maxPredecessors {
		create, err := s.rooms.CurrentStateEvent(ctx, roomID, event.StateCreate.Type, "")
		if err != nil || create == nil {
			return err
		}
		var c event.CreateEventContent
		if json.Unmarshal(create.PDU.Content, &c) != nil || c.Predecessor == nil || c.Predecessor.RoomID == "" || into[c.Predecessor.RoomID] {
			return nil
		}
		roomID = c.Predecessor.RoomID
		into[roomID] = true
	}
	return nil
}

// hit is a visible match.
type hit struct {
	ev   *rooms.Event
	rank float64
}

// window is how many of the newest matches a search counts exactly and
// ranks: past it, the count is estimated and ranking looks at the newest
// window matches only, so that a word in most messages costs little more
// than a rarer one. (Over 100,000 messages, counting and ranking every
// match of such a word took 100-270 ms; with the window, 15-30 ms. See
// BenchmarkSearch.) A variable for tests.
var window = 2000

// count fills the response's count: exact below the window, otherwise
// extrapolated from the window's share of the stream. Only matches the
// user may search count, so the figure reveals nothing of other rooms. It
// also sets, for a rank search over more matches than the window, the
// floor below which matches are not ranked (kept in next_batch so that
// pages stay consistent).
func (s *Service) count(ctx context.Context, q *query, sq *storage.SearchQuery, out *Results) error {
	n, oldest, err := s.db.SearchWindow(ctx, sq, window)
	if err != nil {
		return s.queryErr(err)
	}
	out.Count = n
	if n == window {
		newest, err := s.db.MaxStreamPos(ctx)
		if err != nil {
			return err
		}
		// Assume matches spread evenly over the stream.
		out.Count = int(int64(n) * newest / max(newest-oldest+1, 1))
		if q.byRank {
			sq.Floor = oldest
		}
	}
	if q.byRank && q.batch != nil {
		sq.Floor = q.batch.floor
	}
	return nil
}

// page fills one page with matches the user may see, reading the index in
// chunks, and returns where the next page starts (nil at the end).
func (s *Service) page(ctx context.Context, q *query, sq *storage.SearchQuery) ([]hit, *batch, error) {
	chunk := max(q.limit*2, 20)
	if q.batch != nil {
		if q.byRank {
			sq.Offset = int(min(q.batch.pos, math.MaxInt32))
		} else {
			sq.Before = q.batch.pos
		}
	}
	var out []hit
	for range maxRounds {
		sq.Limit = chunk
		rows, err := s.db.SearchEvents(ctx, sq)
		if err != nil {
			return nil, nil, s.queryErr(err)
		}
		ids := make([]id.EventID, len(rows))
		for i, r := range rows {
			ids[i] = r.EventID
		}
		evs, err := s.rooms.Events(ctx, ids)
		if err != nil {
			return nil, nil, err
		}
		for i, r := range rows {
			ev, ok := evs[r.EventID]
			if !ok {
				continue
			}
			ok, err := s.visible(ctx, q, ev)
			if err != nil {
				return nil, nil, err
			}
			if !ok {
				continue
			}
			out = append(out, hit{ev: ev, rank: r.Rank})
			if len(out) == q.limit {
				if i == len(rows)-1 && len(rows) < chunk {
					return out, nil, nil // the page ends exactly at the last match
				}
				return out, s.after(q, sq, rows, i), nil
			}
		}
		if len(rows) < chunk {
			return out, nil, nil
		}
		if q.byRank {
			sq.Offset += len(rows)
		} else {
			sq.Before = rows[len(rows)-1].StreamPos
		}
	}
	// Many matches in a row were hidden: end the page here, short, and let
	// the client ask for more.
	b := s.position(q, sq)
	return out, &b, nil
}

// after is the batch that resumes just past rows[i].
func (s *Service) after(q *query, sq *storage.SearchQuery, rows []storage.SearchHit, i int) *batch {
	b := batch{byRank: q.byRank, floor: sq.Floor}
	if q.batch != nil {
		b.room = q.batch.room
	}
	if q.byRank {
		b.pos = int64(sq.Offset + i + 1)
	} else {
		b.pos = rows[i].StreamPos
	}
	return &b
}

// position is the batch that resumes where sq now stands.
func (s *Service) position(q *query, sq *storage.SearchQuery) batch {
	b := batch{byRank: q.byRank, pos: sq.Before, floor: sq.Floor}
	if q.byRank {
		b.pos = int64(sq.Offset)
	}
	if q.batch != nil {
		b.room = q.batch.room
	}
	return b
}

// visible tells whether a match may be shown: history visibility, the
// ignore list, and the filter's types and contains_url (its rooms and
// senders were applied in SQL).
func (s *Service) visible(ctx context.Context, q *query, ev *rooms.Event) (bool, error) {
	if ev.Rejected || ev.RedactedBy != "" || syncer.HiddenByIgnore(q.ignored, ev) {
		return false, nil
	}
	if joined := q.joinedAt[ev.RoomID]; joined == 0 || ev.StreamPos < joined {
		// Before the user's current join (or in a room they left): the
		// room's history visibility decides.
		ok, err := s.rooms.CanSee(ctx, q.user, ev)
		if err != nil || !ok {
			return false, err
		}
	}
	if f := q.filter; f != nil && (f.Types != nil || len(f.NotTypes) > 0 || f.ContainsURL != nil) {
		ce, err := s.rooms.ClientEvent(ctx, ev)
		if err != nil {
			return false, err
		}
		return syncer.FilterAllows(f, ce), nil
	}
	return true, nil
}

// fill builds the results, their contexts, groups and state.
func (s *Service) fill(ctx context.Context, q *query, hits []hit, next *batch, out *Results) error {
	var roomOrder []id.RoomID
	groups := map[string]map[string]*Group{}
	for _, g := range q.groupBy {
		groups[g] = map[string]*Group{}
	}
	// Every event returned, for one bundling of aggregations (edits,
	// threads, references), as /messages and /context bundle them.
	b := &bundle{}
	for i, h := range hits {
		ce, err := s.rooms.ClientEvent(ctx, h.ev)
		if err != nil {
			return err
		}
		b.add(h.ev, ce)
		res := &Result{Rank: h.rank, Result: ce}
		if q.context != nil {
			if res.Context, err = s.context(ctx, q, h.ev, b); err != nil {
				return err
			}
		}
		out.Results = append(out.Results, res)
		if !slices.Contains(roomOrder, h.ev.RoomID) {
			roomOrder = append(roomOrder, h.ev.RoomID)
		}
		for key, byValue := range groups {
			value := string(h.ev.RoomID)
			if key == "sender" {
				value = string(h.ev.PDU.Sender)
			}
			g := byValue[value]
			if g == nil {
				g = &Group{Order: i + 1, Results: []string{}}
				byValue[value] = g
				// Paging within a room's group (newest first only, as
				// Synapse: a rank page's offset means nothing in a room).
				if key == "room_id" && next != nil && !q.byRank {
					nb := *next
					nb.room = h.ev.RoomID
					g.NextBatch = nb.String()
				}
			}
			g.Results = append(g.Results, string(h.ev.ID))
		}
	}
	if err := s.rooms.BundleAggregations(ctx, q.user, b.evs, b.ces); err != nil {
		return err
	}
	if len(groups) > 0 {
		out.Groups = groups
	}
	if q.state && len(roomOrder) > 0 {
		out.State = map[id.RoomID][]*event.Event{}
		for _, roomID := range roomOrder {
			evs, err := s.rooms.GetState(ctx, q.user, roomID)
			if err != nil {
				return err
			}
			out.State[roomID] = evs
		}
	}
	return nil
}

// context returns the events around a result, and with include_profile the
// senders' display names and avatars as of the last of them.
func (s *Service) context(ctx context.Context, q *query, ev *rooms.Event, b *bundle) (*Context, error) {
	around, err := s.sync.EventsAround(ctx, q.user, q.ignored, ev, q.before, q.after)
	if err != nil {
		return nil, err
	}
	c := &Context{Start: around.Start, End: around.End, EventsBefore: []*event.Event{}, EventsAfter: []*event.Event{}}
	for _, e := range around.Before {
		ce, err := s.rooms.ClientEvent(ctx, e)
		if err != nil {
			return nil, err
		}
		b.add(e, ce)
		c.EventsBefore = append(c.EventsBefore, ce)
	}
	for _, e := range around.After {
		ce, err := s.rooms.ClientEvent(ctx, e)
		if err != nil {
			return nil, err
		}
		b.add(e, ce)
		c.EventsAfter = append(c.EventsAfter, ce)
	}
	if !q.context.IncludeProfile {
		return c, nil
	}
	last := ev
	if len(around.After) > 0 {
		last = around.After[len(around.After)-1]
	}
	state, err := s.rooms.StateAfter(ctx, last)
	if err != nil {
		return nil, err
	}
	var keys []pdu.StateKey
	for _, e := range slices.Concat(around.Before, []*rooms.Event{ev}, around.After) {
		k := pdu.StateKey{Type: event.StateMember.Type, StateKey: string(e.PDU.Sender)}
		if !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	members, err := s.rooms.StateEvents(ctx, state, keys)
	if err != nil {
		return nil, err
	}
	c.ProfileInfo = map[id.UserID]Profile{}
	for _, m := range members {
		// Through ClientEvent, so a redacted member event shows no profile.
		ce, err := s.rooms.ClientEvent(ctx, m)
		if err != nil {
			return nil, err
		}
		var mc event.MemberEventContent
		_ = json.Unmarshal(ce.Content.VeryRaw, &mc)
		var p Profile
		if mc.Displayname != "" {
			p.DisplayName = &mc.Displayname
		}
		if mc.AvatarURL != "" {
			avatar := string(mc.AvatarURL)
			p.AvatarURL = &avatar
		}
		c.ProfileInfo[id.UserID(m.StateKey())] = p
	}
	return c, nil
}

// bundle collects the events of a response with their client forms.
type bundle struct {
	evs []*rooms.Event
	ces []*event.Event
}

func (b *bundle) add(ev *rooms.Event, ce *event.Event) {
	b.evs = append(b.evs, ev)
	b.ces = append(b.ces, ce)
}

// queryErr answers a query FTS5 refused with a 400 rather than a 500;
// parseTerm should never produce one.
func (s *Service) queryErr(err error) error {
	if errors.Is(err, storage.ErrBadSearchQuery) {
		s.log.Warn("search: the index refused a query", "error", err)
		return mautrix.MInvalidParam.WithMessage("The search term could not be understood")
	}
	return err
}
