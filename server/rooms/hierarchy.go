package rooms

import (
	"cmp"
	"context"
	"encoding/base64"
	jsonv1 "encoding/json"
	"errors"
	"slices"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// This file serves spaces (GET /hierarchy) and room previews
// (GET /room_summary): which rooms a user may see the summary of, and the
// walk down a space's m.space.child events.

// Hierarchy limits, as in Synapse: at most 50 rooms an answer. The walk
// visits each room once, which bounds it and breaks loops; max_depth has no
// server default for the same reason.
const (
	DefaultHierarchyLimit = 50
	MaxHierarchyLimit     = 50
)

// errCannotPreview is the hierarchy's answer for a root room the user may
// not see, or that does not exist: the spec gives both as 403.
var errCannotPreview = mautrix.MForbidden.WithMessage("You may not see this room: join it, or ask to be invited")

// previewable tells whether a user may see a room's summary without being
// in it, following the hierarchy's rules in the spec (as Synapse applies
// them): members and invitees may; anyone may see a room with a public,
// knock or knock_restricted join rule (where the room version has it) or
// world-readable history; and a restricted room shows to users in one of
// the rooms its join rule allows. Banned users may not. user may be empty
// for an anonymous request.
func (s *Service) previewable(ctx context.Context, user id.UserID, r *room, sum *RoomSummary) (bool, error) {
	return s.previewableSummary(ctx, user, r.ID, r.Version, sum)
}

// previewableSummary is previewable for a room known by its summary only
// (another server's answer): version may be empty when that server did not
// say, and then the join rule is taken as the server gave it.
func (s *Service) previewableSummary(ctx context.Context, user id.UserID, roomID id.RoomID, version id.RoomVersion, sum *RoomSummary) (bool, error) {
	if user != "" {
		m, _, err := s.db.Membership(ctx, roomID, user)
		if err != nil {
			return false, err
		}
		switch event.Membership(m) {
		case event.MembershipBan:
			return false, nil
		case event.MembershipJoin, event.MembershipInvite:
			return true, nil
		}
	}
	if openToAll(version, sum) {
		return true, nil
	}
	if user == "" {
		return false, nil
	}
	// summarize fills AllowedRoomIDs only for restricted join rules the
	// room's version knows.
	for _, allowed := range sum.AllowedRoomIDs {
		m, _, err := s.db.Membership(ctx, allowed, user)
		if err != nil {
			return false, err
		}
		if m == string(event.MembershipJoin) {
			return true, nil
		}
	}
	return false, nil
}

// openToAll tells whether anyone may see a room's summary: its join rule
// is public, knock or knock_restricted (where the version has them), or
// its history is world-readable. An empty version (a remote summary that
// does not name it) trusts the join rule as given.
func openToAll(version id.RoomVersion, sum *RoomSummary) bool {
	switch {
	case sum.JoinRule == event.JoinRulePublic,
		sum.JoinRule == event.JoinRuleKnock && (version == "" || version.Knocks()),
		sum.JoinRule == event.JoinRuleKnockRestricted && (version == "" || version.KnockRestricted()),
		sum.WorldReadable:
		return true
	}
	return false
}

// SummaryWithMembership is the answer of GET /room_summary.
type SummaryWithMembership struct {
	*RoomSummary
	// Membership is the user's membership ("leave" if none); absent for an
	// anonymous request.
	Membership event.Membership `json:"membership,omitempty"`
}

// Summary returns a room's summary for GET /room_summary, if the user
// (empty for an anonymous request) may see it. Rooms the user may not see
// are as unknown as rooms that do not exist, as in Synapse.
func (s *Service) Summary(ctx context.Context, user id.UserID, roomID id.RoomID) (*SummaryWithMembership, error) {
	notFound := mautrix.MNotFound.WithMessage("Room not found or not visible to you")
	r, err := s.room(ctx, roomID)
	if errors.Is(err, errRoomNotFound) {
		return nil, notFound
	}
	if err != nil {
		return nil, err
	}
	sum, err := s.summarize(ctx, r)
	if err != nil {
		return nil, err
	}
	if ok, err := s.previewable(ctx, user, r, sum); err != nil {
		return nil, err
	} else if !ok {
		return nil, notFound
	}
	out := &SummaryWithMembership{RoomSummary: sum}
	if user != "" {
		m, _, err := s.db.Membership(ctx, roomID, user)
		if err != nil {
			return nil, err
		}
		out.Membership = event.Membership(m)
		if out.Membership == "" {
			out.Membership = event.MembershipLeave
		}
	}
	return out, nil
}

// HierarchyQuery is a request for GET /hierarchy.
type HierarchyQuery struct {
	// From is the next_batch of an earlier page.
	From string
	// Limit bounds the rooms of the page (0: the default).
	Limit int
	// MaxDepth stops the walk this many levels below the root; negative
	// means no limit.
	MaxDepth      int
	SuggestedOnly bool
}

// ChildState is an m.space.child event as the hierarchy shows it: stripped
// state with its origin_server_ts.
type ChildState struct {
	Type           string            `json:"type"`
	StateKey       string            `json:"state_key"`
	Content        jsonv1.RawMessage `json:"content"`
	Sender         id.UserID         `json:"sender"`
	OriginServerTS int64             `json:"origin_server_ts"`

	child id.RoomID // the child room: the state key
	order *string   // a valid order key, if any
	via   []string  // the servers the child may be reached through
}

// HierarchyRoom is one room of a hierarchy page.
type HierarchyRoom struct {
	*RoomSummary
	ChildrenState []*ChildState `json:"children_state"`
}

// HierarchyPage is an answer of GET /hierarchy.
type HierarchyPage struct {
	Rooms     []*HierarchyRoom `json:"rooms"`
	NextBatch string           `json:"next_batch,omitempty"`
}

// hierarchyToken is what a next_batch token holds. The walk is
// deterministic, so a page is found again by walking from the root and
// skipping the rooms earlier pages showed; the token needs no server-side
// session and survives restarts. It also holds the parameters the spec
// forbids changing between pages.
type hierarchyToken struct {
	Room          id.RoomID `json:"r"`
	SuggestedOnly bool      `json:"s"`
	MaxDepth      int       `json:"d"`
	Skip          int       `json:"o"`
}

func (t hierarchyToken) String() string {
	raw, _ := jsonv1.Marshal(t)
	return base64.RawURLEncoding.EncodeToString(raw)
}

func parseHierarchyToken(s string) (hierarchyToken, error) {
	var t hierarchyToken
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || jsonv1.Unmarshal(raw, &t) != nil || t.Skip < 1 || t.Room == "" {
		return t, mautrix.MInvalidParam.WithMessage("Unknown pagination token")
	}
	return t, nil
}

// Hierarchy walks a space depth first, as GET /hierarchy asks: the root,
// then each child in the spec's order, entering a child space before its
// later siblings. Only the rooms the user may preview are shown (a space
// the user may not see is not entered). A room this server is not in is
// asked of the servers its m.space.child event names (the root: of the
// server in its room ID, and the servers that were in it when this server
// last was) over federation (remote_hierarchy.go); what this
// server knows first hand is preferred to what others say. Each room is
// shown once, which also breaks loops.
func (s *Service) Hierarchy(ctx context.Context, user id.UserID, rootID id.RoomID, q HierarchyQuery) (*HierarchyPage, error) {
	if q.Limit < 0 {
		return nil, mautrix.MInvalidParam.WithMessage("limit must be a positive number")
	}
	limit := q.Limit
	if limit == 0 {
		limit = DefaultHierarchyLimit
	}
	limit = min(limit, MaxHierarchyLimit)
	maxDepth := q.MaxDepth
	if maxDepth < 0 {
		maxDepth = -1
	}
	skip := 0
	if q.From != "" {
		t, err := parseHierarchyToken(q.From)
		if err != nil {
			return nil, err
		}
		if t.Room != rootID || t.SuggestedOnly != q.SuggestedOnly || t.MaxDepth != maxDepth {
			return nil, mautrix.MInvalidParam.WithMessage("suggested_only and max_depth cannot change between pages of a hierarchy")
		}
		skip = t.Skip
	}

	w := newSpaceWalk(s, user, q.SuggestedOnly)
	via, err := s.rootVia(ctx, rootID)
	if err != nil {
		return nil, err
	}
	root, err := w.visit(ctx, rootID, via)
	if err != nil {
		return nil, err
	}
	if root == nil {
		return nil, errCannotPreview
	}

	type entry struct {
		roomID id.RoomID
		depth  int
		via    []string
	}
	page := &HierarchyPage{Rooms: []*HierarchyRoom{}}
	stack := []entry{{rootID, 0, nil}}
	seen := map[id.RoomID]bool{}
	shown := 0
	for len(stack) > 0 {
		e := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[e.roomID] {
			continue
		}
		seen[e.roomID] = true
		node := root
		if e.depth > 0 {
			if node, err = w.visit(ctx, e.roomID, e.via); err != nil {
				return nil, err
			}
		}
		if node == nil {
			continue
		}
		if len(page.Rooms) == limit {
			// One more room to show: there is a next page.
			page.NextBatch = hierarchyToken{Room: rootID, SuggestedOnly: q.SuggestedOnly, MaxDepth: maxDepth, Skip: shown}.String()
			break
		}
		if shown >= skip {
			page.Rooms = append(page.Rooms, node)
		}
		shown++
		if maxDepth < 0 || e.depth < maxDepth {
			// Pushed last first, so the first child is walked next.
			for i := len(node.ChildrenState) - 1; i >= 0; i-- {
				c := node.ChildrenState[i]
				stack = append(stack, entry{c.child, e.depth + 1, c.via})
			}
		}
	}
	return page, nil
}

// localHierarchyRoom is a room of this server's as the hierarchy shows it
// to user, or nil if the user may not preview it.
func (s *Service) localHierarchyRoom(ctx context.Context, user id.UserID, r *room, suggestedOnly bool) (*HierarchyRoom, error) {
	sum, err := s.summarize(ctx, r)
	if err != nil {
		return nil, err
	}
	if ok, err := s.previewable(ctx, user, r, sum); err != nil || !ok {
		return nil, err
	}
	children := []*ChildState{}
	if sum.RoomType == event.RoomTypeSpace {
		if children, err = s.spaceChildren(ctx, r, suggestedOnly); err != nil {
			return nil, err
		}
	}
	return &HierarchyRoom{RoomSummary: sum, ChildrenState: children}, nil
}

// spaceChildren returns a space's valid m.space.child events in the spec's
// order (sortChildren).
func (s *Service) spaceChildren(ctx context.Context, r *room, suggestedOnly bool) ([]*ChildState, error) {
	byKey, err := s.db.CurrentStateByKey(ctx, r.ID, event.StateSpaceChild.Type)
	if err != nil {
		return nil, err
	}
	ids := make([]id.EventID, 0, len(byKey))
	for _, evID := range byKey {
		ids = append(ids, evID)
	}
	evs, err := s.Events(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := []*ChildState{}
	for key, evID := range byKey {
		ev, ok := evs[evID]
		if !ok {
			continue
		}
		// A child with a via list is not redacted: its content is as sent.
		cs := &ChildState{
			Type: event.StateSpaceChild.Type, StateKey: key, Content: jsonv1.RawMessage(ev.PDU.Content), Sender: ev.PDU.Sender,
			OriginServerTS: ev.PDU.OriginServerTS,
		}
		if cs.parse(eventContent(ev), suggestedOnly) {
			out = append(out, cs)
		}
	}
	sortChildren(out)
	return out, nil
}

// parse checks a child event's content and fills the fields the walk
// uses. A child without a via list (or one that is not a list of strings)
// is no child: that is how children are removed. With suggestedOnly, a
// child not marked suggested is left out too.
func (cs *ChildState) parse(content map[string]any, suggestedOnly bool) bool {
	if cs.Type != event.StateSpaceChild.Type || len(cs.StateKey) < 2 || cs.StateKey[0] != '!' {
		return false
	}
	via, ok := content["via"].([]any)
	if !ok || len(via) == 0 {
		return false
	}
	cs.via = make([]string, 0, len(via))
	for _, v := range via {
		str, isStr := v.(string)
		if !isStr {
			return false
		}
		cs.via = append(cs.via, str)
	}
	if suggestedOnly {
		if suggested, _ := content["suggested"].(bool); !suggested {
			return false
		}
	}
	cs.child = id.RoomID(cs.StateKey)
	if order, ok := content["order"].(string); ok && validChildOrder(order) {
		cs.order = &order
	}
	return true
}

// sortChildren puts children in the spec's order: those with a valid order
// key by it, then the rest, ties broken by timestamp and then room ID.
func sortChildren(out []*ChildState) {
	slices.SortFunc(out, func(a, b *ChildState) int {
		switch {
		case a.order != nil && b.order == nil:
			return -1
		case a.order == nil && b.order != nil:
			return 1
		case a.order != nil:
			if c := cmp.Compare(*a.order, *b.order); c != 0 {
				return c
			}
		}
		if c := cmp.Compare(a.OriginServerTS, b.OriginServerTS); c != 0 {
			return c
		}
		return cmp.Compare(a.StateKey, b.StateKey)
	})
}

// validChildOrder checks an order key: 1 to 50 characters from ' ' to '~'.
func validChildOrder(order string) bool {
	if order == "" || len(order) > 50 {
		return false
	}
	for i := 0; i < len(order); i++ {
		if order[i] < 0x20 || order[i] > 0x7E {
			return false
		}
	}
	return true
}
