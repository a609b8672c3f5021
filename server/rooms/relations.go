package rooms

import (
	"bytes"
	"context"
	jsonv1 "encoding/json"
	"errors"
	"math"
	"slices"
	"strings"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/storage"
)

// This file is event relationships (spec: "Forming relationships between
// events", edits, annotations, threads, references): the checks on a
// client's relation, GET /relations, GET /threads and the bundled
// aggregations added to events served to clients. Relations are indexed in
// storage as events are persisted (storage/relations.go).

// Limits of /relations and /threads. The defaults are Synapse's.
const (
	DefaultRelationsLimit = 5
	MaxRelationsLimit     = 1000
	DefaultThreadsLimit   = 5
	MaxThreadsLimit       = 100
	// RelationsRecursionDepth is how many levels of relations recurse=true
	// follows: the spec asks for at least 3, as Synapse does.
	RelationsRecursionDepth = 3
	// maxAnnotationKeyLen bounds an annotation's key (Synapse's limit).
	maxAnnotationKeyLen = 500
	// relationScanRounds bounds how many batches one page reads looking for
	// events the user may see; the token then points where the scan stopped.
	relationScanRounds = 20
	relationScanBatch  = 20
)

// relationOf reads content.m.relates_to as an indexable relation: nil
// unless it is an object with a non-empty string rel_type and an event_id
// that is an event ID. Replies (m.in_reply_to alone) are not relations.
func relationOf(content []byte) *storage.NewRelation {
	if !bytes.Contains(content, []byte(`"m.relates_to"`)) {
		return nil // the common case, without parsing the content
	}
	var c struct {
		RelatesTo *struct {
			RelType string            `json:"rel_type"`
			EventID string            `json:"event_id"`
			Key     jsonv1.RawMessage `json:"key"`
		} `json:"m.relates_to"`
	}
	if jsonUnmarshal(content, &c) != nil || c.RelatesTo == nil {
		return nil
	}
	r := c.RelatesTo
	if r.RelType == "" || len(r.EventID) < 2 || !strings.HasPrefix(r.EventID, "$") {
		return nil
	}
	rel := &storage.NewRelation{RelatesTo: id.EventID(r.EventID), RelType: r.RelType}
	var key string
	if len(r.Key) > 0 && jsonUnmarshal(r.Key, &key) == nil {
		rel.Key = &key
	}
	return rel
}

// errDuplicateAnnotation is the spec's answer to a second identical
// annotation ("Avoiding duplicate annotations").
var errDuplicateAnnotation = mautrix.RespError{ErrCode: "M_DUPLICATE_ANNOTATION", StatusCode: 400}.
	WithMessage("You already sent this annotation for this event")

// relationError is a 400 with M_UNKNOWN, which is what the spec asks for
// a thread started off a relation and what Synapse answers for the other
// broken relations.
func relationError(msg string) error {
	return mautrix.MUnknown.WithMessage(msg).WithStatus(400)
}

// checkRelation applies the rules on a relation a local client sends, as
// Synapse does: the parent must be known (or be the target of relations
// already seen) and in the same room; an annotation needs a key and may not
// repeat one the sender already gave (M_DUPLICATE_ANNOTATION); a thread may
// not start at an event that is itself a relation. The caller holds the
// room's lock, so two identical reactions sent at once cannot both pass.
func (s *Service) checkRelation(ctx context.Context, r *room, p *proto) error {
	rel := relationOf(p.Content)
	if rel == nil {
		return nil
	}
	parent, err := s.event(ctx, rel.RelatesTo)
	switch {
	case errors.Is(err, errEventNotFound):
		known, err := s.db.IsRelationTarget(ctx, rel.RelatesTo)
		if err != nil {
			return err
		}
		if !known {
			return relationError("Can't send a relation to an unknown event")
		}
	case err != nil:
		return err
	case parent.RoomID != r.ID:
		return relationError("Relations must be in the same room as the event they relate to")
	}
	switch rel.RelType {
	case storage.RelAnnotation:
		if rel.Key == nil || *rel.Key == "" {
			return mautrix.MBadJSON.WithMessage("An annotation needs a key")
		}
		if len(*rel.Key) > maxAnnotationKeyLen {
			return mautrix.MBadJSON.WithMessage("Annotation key is too long")
		}
		dup, err := s.db.HasAnnotation(ctx, rel.RelatesTo, p.Sender, p.Type, *rel.Key)
		if err != nil {
			return err
		}
		if dup {
			return errDuplicateAnnotation
		}
	case storage.RelThread:
		isRel, err := s.db.IsRelation(ctx, rel.RelatesTo)
		if err != nil {
			return err
		}
		if isRel {
			return relationError("Cannot start a thread from an event with a relation")
		}
	}
	return nil
}

// viewer decides what one user sees among many events of a request. Events
// after the user's current join are visible without reading the room's
// history; ignored users' events are left out where the spec says so.
type viewer struct {
	s        *Service
	user     id.UserID
	joinedAt map[id.RoomID]int64 // 0: not joined now
	ignored  map[id.UserID]bool
}

func (s *Service) newViewer(ctx context.Context, user id.UserID) (*viewer, error) {
	v := &viewer{s: s, user: user, joinedAt: map[id.RoomID]int64{}, ignored: map[id.UserID]bool{}}
	lists, err := s.db.IgnoredUserLists(ctx, []id.UserID{user})
	if err != nil {
		return nil, err
	}
	if raw, ok := lists[user]; ok {
		var c struct {
			IgnoredUsers map[id.UserID]jsonv1.RawMessage `json:"ignored_users"`
		}
		if jsonUnmarshal(raw, &c) == nil {
			for u := range c.IgnoredUsers {
				v.ignored[u] = true
			}
		}
	}
	return v, nil
}

func (v *viewer) ignoredList() []id.UserID {
	out := make([]id.UserID, 0, len(v.ignored))
	for u := range v.ignored {
		out = append(out, u)
	}
	slices.Sort(out)
	return out
}

// visible applies history visibility.
func (v *viewer) visible(ctx context.Context, ev *Event) (bool, error) {
	joined, ok := v.joinedAt[ev.RoomID]
	if !ok {
		m, memberEv, err := v.s.db.Membership(ctx, ev.RoomID, v.user)
		if err != nil {
			return false, err
		}
		if m == string(event.MembershipJoin) {
			me, err := v.s.event(ctx, memberEv)
			if err != nil {
				return false, err
			}
			joined = me.StreamPos
		}
		v.joinedAt[ev.RoomID] = joined
	}
	if joined > 0 && ev.StreamPos >= joined {
		return true, nil
	}
	return v.s.canSee(ctx, v.user, ev)
}

// RelationsRequest is a GET /rooms/{roomId}/relations/{eventId}[/{relType}[/{eventType}]].
type RelationsRequest struct {
	User      id.UserID
	Device    id.DeviceID // for unsigned.transaction_id
	RoomID    id.RoomID
	EventID   id.EventID
	RelType   string // "" for any
	EventType string // "" for any
	// From and To are stream positions from pagination tokens (nil when
	// absent); a position p means "after event p", as in /messages.
	From, To  *int64
	Backwards bool
	Limit     int // 0: the default
	Recurse   bool
}

// Page is one page of events; Next is where the next page starts, when
// More is set.
type Page struct {
	Chunk []*event.Event
	Next  int64
	More  bool
}

// Relations lists the children of an event the user may see, with their
// bundled aggregations: the events whose m.relates_to points at it (with
// recurse, also their children, up to RelationsRecursionDepth levels),
// newest first unless paging forwards. The parent must be visible to the
// user; otherwise, as when it does not exist, the answer is M_NOT_FOUND.
// Edits of a redacted parent are left out, as Synapse does: they would
// leak its content.
func (s *Service) Relations(ctx context.Context, req *RelationsRequest) (*Page, error) {
	if _, err := s.room(ctx, req.RoomID); err != nil {
		return nil, err
	}
	parent, err := s.event(ctx, req.EventID)
	if errors.Is(err, errEventNotFound) {
		return nil, errNoSuchEvent
	}
	if err != nil {
		return nil, err
	}
	if parent.RoomID != req.RoomID || parent.Rejected {
		return nil, errNoSuchEvent
	}
	v, err := s.newViewer(ctx, req.User)
	if err != nil {
		return nil, err
	}
	if ok, err := v.visible(ctx, parent); err != nil {
		return nil, err
	} else if !ok {
		return nil, errNoSuchEvent
	}
	limit := req.Limit
	if limit <= 0 {
		limit = DefaultRelationsLimit
	}
	limit = min(limit, MaxRelationsLimit)
	q := storage.RelationQuery{
		RoomID: req.RoomID, Parent: req.EventID, RelType: req.RelType, EventType: req.EventType,
		MaxDepth: 1, After: 0, UpTo: math.MaxInt64, Backwards: req.Backwards,
	}
	if req.Recurse {
		q.MaxDepth = RelationsRecursionDepth
	}
	lower, upper := req.To, req.From
	if !req.Backwards {
		lower, upper = req.From, req.To
	}
	if lower != nil {
		q.After = *lower
	}
	if upper != nil {
		q.UpTo = *upper
	}
	page := &Page{Chunk: []*event.Event{}}
	fetch := func(want int) ([]scanRow, error) {
		if q.After >= q.UpTo {
			return nil, nil
		}
		q.Limit = want
		rows, err := s.db.Relations(ctx, q)
		out := make([]scanRow, len(rows))
		for i, r := range rows {
			out[i] = scanRow{eventID: r.EventID, pos: r.StreamPos, skip: parent.RedactedBy != "" && r.RelType == storage.RelReplace}
		}
		return out, err
	}
	advance := func(r scanRow) int64 {
		if req.Backwards {
			q.UpTo = r.pos - 1
			return q.UpTo
		}
		q.After = r.pos
		return q.After
	}
	evs, err := s.scanPage(ctx, page, limit, fetch, advance, func(ev *Event) (bool, error) {
		// Ignored users' message events are hidden, as in /messages.
		if ev.Rejected || (v.ignored[ev.PDU.Sender] && !ev.IsState()) {
			return false, nil
		}
		return v.visible(ctx, ev)
	})
	if err != nil {
		return nil, err
	}
	for _, ev := range evs {
		ce, err := s.ClientEventFor(ctx, req.User, req.Device, ev)
		if err != nil {
			return nil, err
		}
		page.Chunk = append(page.Chunk, ce)
	}
	if err := s.bundle(ctx, v, evs, page.Chunk, true); err != nil {
		return nil, err
	}
	return page, nil
}

// scanRow is a candidate for a page: an event and the stream position
// that orders it; skip drops it without loading.
type scanRow struct {
	eventID id.EventID
	pos     int64
	skip    bool
}

// scanPage fills a page with up to limit events that keep accepts, read
// in batches from fetch (asked for want rows; fewer means the range is
// exhausted), each row moving the caller's cursor on through advance,
// which returns the cursor to resume from. Hidden events cost extra
// batches, at most relationScanRounds; a page cut short, by the limit or
// by that bound, gets More and the cursor as Next.
func (s *Service) scanPage(ctx context.Context, page *Page, limit int, fetch func(want int) ([]scanRow, error),
	advance func(scanRow) int64, keep func(*Event) (bool, error)) ([]*Event, error) {
	var evs []*Event
	var boundary int64
	for round := 0; len(evs) < limit; round++ {
		if round == relationScanRounds {
			page.More, page.Next = true, boundary
			break
		}
		// One more than needed tells whether more follow; at least a
		// few dozen, so hidden events cost few rounds.
		want := max(limit-len(evs), relationScanBatch) + 1
		rows, err := fetch(want)
		if err != nil {
			return nil, err
		}
		ids := make([]id.EventID, 0, len(rows))
		for _, r := range rows {
			ids = append(ids, r.eventID)
		}
		loaded, err := s.Events(ctx, ids)
		if err != nil {
			return nil, err
		}
		for _, r := range rows {
			if len(evs) == limit {
				page.More, page.Next = true, boundary
				break
			}
			boundary = advance(r)
			ev, ok := loaded[r.eventID]
			if !ok || r.skip {
				continue
			}
			if ok, err := keep(ev); err != nil {
				return nil, err
			} else if ok {
				evs = append(evs, ev)
			}
		}
		if len(rows) < want {
			break // the range is exhausted
		}
		if len(evs) == limit && !page.More {
			// Filled by the batch's last row: more may follow.
			page.More, page.Next = true, boundary
		}
	}
	return evs, nil
}

// ThreadsRequest is a GET /rooms/{roomId}/threads.
type ThreadsRequest struct {
	User         id.UserID
	RoomID       id.RoomID
	Participated bool   // include=participated
	From         *int64 // from a previous page's next_batch
	Limit        int    // 0: the default
}

// errCannotViewRoom is /threads's 403 for a room the user cannot read (or
// that does not exist: telling them apart would leak its existence).
var errCannotViewRoom = mautrix.MForbidden.WithMessage("You are not allowed to view this room")

// Threads lists the thread roots of a room the user may see, the thread
// with the newest reply first, each with its bundled aggregations. With
// Participated, only threads the user started or replied in. A root sent
// by a user the caller ignores is returned redacted (the spec). Like
// Synapse, the room must be one the user is in, has left, or can read
// because it is world-readable.
func (s *Service) Threads(ctx context.Context, req *ThreadsRequest) (*Page, error) {
	if err := s.checkCanViewRoom(ctx, req.User, req.RoomID); err != nil {
		return nil, err
	}
	v, err := s.newViewer(ctx, req.User)
	if err != nil {
		return nil, err
	}
	limit := req.Limit
	if limit <= 0 {
		limit = DefaultThreadsLimit
	}
	limit = min(limit, MaxThreadsLimit)
	upTo := int64(math.MaxInt64)
	if req.From != nil {
		upTo = *req.From
	}
	var participant id.UserID
	if req.Participated {
		participant = req.User
	}
	page := &Page{Chunk: []*event.Event{}}
	fetch := func(want int) ([]scanRow, error) {
		if upTo <= 0 {
			return nil, nil
		}
		rows, err := s.db.Threads(ctx, req.RoomID, participant, upTo, want)
		out := make([]scanRow, len(rows))
		for i, t := range rows {
			out[i] = scanRow{eventID: t.RootID, pos: t.LatestPos}
		}
		return out, err
	}
	advance := func(r scanRow) int64 {
		upTo = r.pos - 1
		return upTo
	}
	roots, err := s.scanPage(ctx, page, limit, fetch, advance, func(root *Event) (bool, error) {
		if root.RoomID != req.RoomID || root.Rejected {
			return false, nil
		}
		return v.visible(ctx, root)
	})
	if err != nil {
		return nil, err
	}
	for i, root := range roots {
		if v.ignored[root.PDU.Sender] && root.RedactedBy == "" {
			// Shown redacted, as a client aggregating locally would.
			redacted := *root
			redacted.PDU = root.PDU.Clone().Redact(root.Version)
			roots[i] = &redacted
		}
		ce, err := s.ClientEventFor(ctx, req.User, "", roots[i])
		if err != nil {
			return nil, err
		}
		page.Chunk = append(page.Chunk, ce)
	}
	if err := s.bundle(ctx, v, roots, page.Chunk, true); err != nil {
		return nil, err
	}
	return page, nil
}

// checkCanViewRoom lets through users who are in the room or have left it
// (and not forgotten it), and anyone when its history is world-readable.
func (s *Service) checkCanViewRoom(ctx context.Context, user id.UserID, roomID id.RoomID) error {
	if _, err := s.room(ctx, roomID); err != nil {
		if errors.Is(err, errRoomNotFound) {
			return errCannotViewRoom
		}
		return err
	}
	m, _, err := s.db.Membership(ctx, roomID, user)
	if err != nil {
		return err
	}
	switch m {
	case string(event.MembershipJoin):
		return nil
	case string(event.MembershipLeave):
		forgotten, err := s.db.IsRoomForgotten(ctx, user, roomID)
		if err != nil || !forgotten {
			return err
		}
	}
	readable, err := s.worldReadable(ctx, roomID)
	if err != nil {
		return err
	}
	if !readable {
		return errCannotViewRoom
	}
	return nil
}

// BundleAggregations adds to client events the bundled aggregations of
// their children (spec: "Aggregations of child events") in
// unsigned.m.relations: the latest valid edit (m.replace), the thread
// summary (m.thread) and the references (m.reference). ces[i] is evs[i] as
// a client event. Annotations are not aggregated by the server (the spec),
// state events get none, nor do edits and annotations themselves. A batch
// with no children costs two indexed queries (the user's ignore list and
// the children counts), whatever its size.
func (s *Service) BundleAggregations(ctx context.Context, user id.UserID, evs []*Event, ces []*event.Event) error {
	if len(evs) == 0 {
		return nil
	}
	v, err := s.newViewer(ctx, user)
	if err != nil {
		return err
	}
	return s.bundle(ctx, v, evs, ces, true)
}

func (s *Service) bundle(ctx context.Context, v *viewer, evs []*Event, ces []*event.Event, withThreads bool) error {
	at := map[id.EventID][]int{} // where each parent sits in evs
	var parents []id.EventID
	isChild := map[id.EventID]bool{}
	for i, ev := range evs {
		if ev.IsState() || ev.Rejected || ces[i] == nil {
			continue
		}
		if ev.RedactedBy == "" {
			if rel := relationOf(ev.PDU.Content); rel != nil {
				if rel.RelType == storage.RelAnnotation || rel.RelType == storage.RelReplace {
					continue
				}
				isChild[ev.ID] = true
			}
		}
		if _, ok := at[ev.ID]; !ok {
			parents = append(parents, ev.ID)
		}
		at[ev.ID] = append(at[ev.ID], i)
	}
	if len(parents) == 0 {
		return nil
	}
	sums, err := s.db.RelationSummaries(ctx, parents, v.user, v.ignoredList())
	if err != nil || len(sums) == 0 {
		return err
	}
	parentOf := func(p id.EventID) *Event { return evs[at[p][0]] }
	out := map[id.EventID]*event.Relations{}
	relsOf := func(p id.EventID) *event.Relations {
		r, ok := out[p]
		if !ok {
			r = &event.Relations{}
			out[p] = r
		}
		return r
	}
	var threads []storage.RelationSummary
	var withRows []id.EventID // parents with edits or references to list
	listed := map[id.EventID]bool{}
	for _, sm := range sums {
		p := parentOf(sm.Parent)
		if sm.RoomID != p.RoomID {
			continue // children in another room are no relation
		}
		switch sm.RelType {
		case storage.RelThread:
			// A relation cannot be a thread root (the spec).
			if withThreads && !isChild[p.ID] {
				threads = append(threads, sm)
			}
			continue
		case storage.RelReplace:
			if p.RedactedBy != "" {
				continue // a redacted event's edits are not bundled (the spec)
			}
		}
		if !listed[sm.Parent] {
			listed[sm.Parent] = true
			withRows = append(withRows, sm.Parent)
		}
	}
	if err := s.bundleThreads(ctx, v, threads, parentOf, relsOf); err != nil {
		return err
	}
	if len(withRows) > 0 {
		rows, err := s.db.RelationsOfParents(ctx, withRows, []string{storage.RelReplace, storage.RelReference}, v.ignoredList())
		if err != nil {
			return err
		}
		edits := map[id.EventID][]storage.Relation{}
		for _, r := range rows {
			p := parentOf(r.RelatesTo)
			if r.RoomID != p.RoomID {
				continue
			}
			switch r.RelType {
			case storage.RelReference:
				rel := relsOf(p.ID)
				if rel.References == nil {
					rel.References = &event.ReferenceAggregation{}
				}
				rel.References.Chunk = append(rel.References.Chunk, event.ReferenceAggregationItem{EventID: r.EventID})
			case storage.RelReplace:
				// An edit must come from the original's sender and keep
				// its type; other checks need the edit itself.
				if p.RedactedBy == "" && r.Sender == p.PDU.Sender && r.Type == p.PDU.Type {
					edits[p.ID] = append(edits[p.ID], r)
				}
			}
		}
		if err := s.bundleEdits(ctx, v, edits, parentOf, relsOf); err != nil {
			return err
		}
	}
	for p, rel := range out {
		for _, i := range at[p] {
			ces[i].Unsigned.Relations = rel
		}
	}
	return nil
}

// bundleThreads builds the m.thread summaries: the latest reply the user
// may see (with its own aggregations), the number of replies from users
// they do not ignore, and whether they took part.
func (s *Service) bundleThreads(ctx context.Context, v *viewer, sums []storage.RelationSummary, parentOf func(id.EventID) *Event, relsOf func(id.EventID) *event.Relations) error {
	if len(sums) == 0 {
		return nil
	}
	ids := make([]id.EventID, len(sums))
	for i, sm := range sums {
		ids[i] = sm.Latest
	}
	loaded, err := s.Events(ctx, ids)
	if err != nil {
		return err
	}
	var latest []*Event
	var latestCE []*event.Event
	for _, sm := range sums {
		root := parentOf(sm.Parent)
		ev := loaded[sm.Latest]
		visible := false
		if ev != nil {
			if visible, err = v.visible(ctx, ev); err != nil {
				return err
			}
		}
		if !visible {
			if ev, err = s.latestVisibleReply(ctx, v, root); err != nil {
				return err
			}
			if ev == nil {
				continue // no reply the user may see: no summary
			}
		}
		ce, err := s.ClientEvent(ctx, ev)
		if err != nil {
			return err
		}
		relsOf(root.ID).Thread = &event.ThreadAggregation{
			LatestEvent:             ce,
			Count:                   sm.Count,
			CurrentUserParticipated: sm.ByUser > 0 || root.PDU.Sender == v.user,
		}
		latest = append(latest, ev)
		latestCE = append(latestCE, ce)
	}
	// The latest event is served with its own aggregations (an edit of
	// it, say); it is in a thread, so it has no thread summary itself.
	return s.bundle(ctx, v, latest, latestCE, false)
}

// latestVisibleReply finds the newest reply of a thread the user may see,
// when the newest of all is hidden from them (rare: history visibility).
func (s *Service) latestVisibleReply(ctx context.Context, v *viewer, root *Event) (*Event, error) {
	rows, err := s.db.Relations(ctx, storage.RelationQuery{
		RoomID: root.RoomID, Parent: root.ID, RelType: storage.RelThread, MaxDepth: 1,
		UpTo: math.MaxInt64, Backwards: true, Limit: 50,
	})
	if err != nil {
		return nil, err
	}
	ids := make([]id.EventID, len(rows))
	for i, r := range rows {
		ids[i] = r.EventID
	}
	loaded, err := s.Events(ctx, ids)
	if err != nil {
		return nil, err
	}
	for _, r := range rows {
		ev, ok := loaded[r.EventID]
		if !ok || v.ignored[ev.PDU.Sender] {
			continue
		}
		if ok, err := v.visible(ctx, ev); err != nil || ok {
			return ev, err
		}
	}
	return nil, nil
}

// bundleEdits picks each parent's m.replace: its most recent valid edit
// (origin_server_ts, then the larger event ID, as the spec orders them)
// that the user may see. candidates are the indexed edits by the
// original's sender with its type.
func (s *Service) bundleEdits(ctx context.Context, v *viewer, candidates map[id.EventID][]storage.Relation, parentOf func(id.EventID) *Event, relsOf func(id.EventID) *event.Relations) error {
	for p, c := range candidates {
		slices.SortFunc(c, func(a, b storage.Relation) int {
			if a.OriginServerTS != b.OriginServerTS {
				if a.OriginServerTS > b.OriginServerTS {
					return -1
				}
				return 1
			}
			return -strings.Compare(string(a.EventID), string(b.EventID))
		})
		candidates[p] = c
	}
	// Load the newest candidate of every parent at once; an invalid one
	// gives way to the next in another round (rare).
	for len(candidates) > 0 {
		ids := make([]id.EventID, 0, len(candidates))
		for _, c := range candidates {
			ids = append(ids, c[0].EventID)
		}
		loaded, err := s.Events(ctx, ids)
		if err != nil {
			return err
		}
		for p, c := range candidates {
			edit, ok := loaded[c[0].EventID]
			valid := ok && validEdit(edit)
			if valid {
				if valid, err = v.visible(ctx, edit); err != nil {
					return err
				}
			}
			if valid {
				ce, err := s.ClientEvent(ctx, edit)
				if err != nil {
					return err
				}
				relsOf(parentOf(p).ID).LatestEdit = ce
				delete(candidates, p)
			} else if len(c) == 1 {
				delete(candidates, p)
			} else {
				candidates[p] = c[1:]
			}
		}
	}
	return nil
}

// validEdit applies the spec's rules on a replacement that need the edit
// event (same sender and type as the original were checked from the
// index, and the original is neither a state event nor an edit): the edit
// is not a state event, is not redacted, and has m.new_content, which an
// encrypted edit carries inside its ciphertext where the server cannot
// look.
func validEdit(edit *Event) bool {
	if edit.IsState() || edit.Rejected || edit.RedactedBy != "" {
		return false
	}
	if edit.PDU.Type == event.EventEncrypted.Type {
		return true
	}
	var c struct {
		NewContent jsonv1.RawMessage `json:"m.new_content"`
	}
	if jsonUnmarshal(edit.PDU.Content, &c) != nil {
		return false
	}
	nc := bytes.TrimSpace(c.NewContent)
	return len(nc) > 0 && nc[0] == '{'
}
