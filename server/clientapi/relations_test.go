package clientapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
)

// relSend sends an event with raw content and returns its ID.
func relSend(t *testing.T, c *mautrix.Client, roomID id.RoomID, evType string, content map[string]any) id.EventID {
	t.Helper()
	resp, err := c.SendMessageEvent(context.Background(), roomID, event.Type{Type: evType, Class: event.MessageEventType}, content)
	if err != nil {
		t.Fatalf("send %s: %v", evType, err)
	}
	return resp.EventID
}

func relTo(relType string, parent id.EventID) map[string]any {
	return map[string]any{"rel_type": relType, "event_id": string(parent)}
}

func relReact(t *testing.T, c *mautrix.Client, roomID id.RoomID, parent id.EventID, key string) id.EventID {
	t.Helper()
	rel := relTo("m.annotation", parent)
	rel["key"] = key
	return relSend(t, c, roomID, "m.reaction", map[string]any{"m.relates_to": rel})
}

func relText(t *testing.T, c *mautrix.Client, roomID id.RoomID, body string, rel map[string]any) id.EventID {
	t.Helper()
	content := map[string]any{"msgtype": "m.text", "body": body}
	if rel != nil {
		content["m.relates_to"] = rel
	}
	return relSend(t, c, roomID, "m.room.message", content)
}

func relEdit(t *testing.T, c *mautrix.Client, roomID id.RoomID, parent id.EventID, body string) id.EventID {
	t.Helper()
	return relSend(t, c, roomID, "m.room.message", map[string]any{
		"msgtype": "m.text", "body": "* " + body,
		"m.new_content": map[string]any{"msgtype": "m.text", "body": body},
		"m.relates_to":  relTo("m.replace", parent),
	})
}

// relIDs lists the IDs of events.
func relIDs(evs []*event.Event) []id.EventID {
	out := make([]id.EventID, 0, len(evs))
	for _, ev := range evs {
		out = append(out, ev.ID)
	}
	return out
}

// relList calls /relations through mautrix and fails the test on error.
func relList(t *testing.T, c *mautrix.Client, roomID id.RoomID, parent id.EventID, req *mautrix.ReqGetRelations) *mautrix.RespGetRelations {
	t.Helper()
	resp, err := c.GetRelations(context.Background(), roomID, parent, req)
	if err != nil {
		t.Fatalf("relations of %s: %v", parent, err)
	}
	return resp
}

// relRaw calls a client API path with a raw query and decodes the answer
// into a generic map (to see which fields are present).
func relRaw(c *mautrix.Client, ts *testserver.Server, path, query string) (map[string]any, error) {
	u := ts.URL + path
	if query != "" {
		u += "?" + query
	}
	var out map[string]any
	_, err := c.MakeRequest(context.Background(), http.MethodGet, u, nil, &out)
	return out, err
}

func relPath(roomID id.RoomID, parts ...string) string {
	p := "/_matrix/client/v1/rooms/" + url.PathEscape(string(roomID))
	for _, s := range parts {
		p += "/" + url.PathEscape(s)
	}
	return p
}

func TestRelationsListing(t *testing.T) {
	ts, alice, bob, roomID := pairInRoom(t, "")
	root := relText(t, alice, roomID, "root", nil)
	r1 := relReact(t, bob, roomID, root, "👍")
	e1 := relEdit(t, alice, roomID, root, "root, edited")
	t1 := relText(t, bob, roomID, "in thread", relTo("m.thread", root))
	ref := relText(t, alice, roomID, "see above", relTo("m.reference", root))
	// Neither a reply nor an unrelated message is a relation.
	relText(t, bob, roomID, "a reply", map[string]any{"m.in_reply_to": map[string]any{"event_id": string(root)}})
	relText(t, bob, roomID, "unrelated", nil)
	r2 := relReact(t, alice, roomID, root, "🎉")
	t2 := relText(t, alice, roomID, "in thread too", relTo("m.thread", root))

	all := []id.EventID{t2, r2, ref, t1, e1, r1}
	if got := relIDs(relList(t, bob, roomID, root, &mautrix.ReqGetRelations{Limit: 50}).Chunk); !slices.Equal(got, all) {
		t.Fatalf("all children, newest first:\n got %v\nwant %v", got, all)
	}
	for _, c := range []struct {
		rel  event.RelationType
		typ  string
		want []id.EventID
	}{
		{"m.annotation", "", []id.EventID{r2, r1}},
		{"m.annotation", "m.reaction", []id.EventID{r2, r1}},
		{"m.annotation", "m.room.message", nil},
		{"m.thread", "", []id.EventID{t2, t1}},
		{"m.thread", "m.room.message", []id.EventID{t2, t1}},
		{"m.replace", "", []id.EventID{e1}},
		{"m.reference", "", []id.EventID{ref}},
		{"org.example.unused", "", nil},
	} {
		resp := relList(t, bob, roomID, root, &mautrix.ReqGetRelations{RelationType: c.rel, EventType: event.Type{Type: c.typ}, Limit: 50})
		if got := relIDs(resp.Chunk); !slices.Equal(got, c.want) && !(len(got) == 0 && len(c.want) == 0) {
			t.Errorf("%s/%s: got %v, want %v", c.rel, c.typ, got, c.want)
		}
		if resp.NextBatch != "" {
			t.Errorf("%s/%s: next_batch %q on the only page", c.rel, c.typ, resp.NextBatch)
		}
	}

	// Backwards in pages of two; prev_batch echoes from.
	var pages [][]id.EventID
	from := ""
	for {
		resp := relList(t, bob, roomID, root, &mautrix.ReqGetRelations{Limit: 2, From: from})
		if resp.PrevBatch != from {
			t.Fatalf("prev_batch %q, want %q", resp.PrevBatch, from)
		}
		pages = append(pages, relIDs(resp.Chunk))
		if resp.NextBatch == "" {
			break
		}
		if len(pages) > 5 {
			t.Fatal("pagination does not end")
		}
		from = resp.NextBatch
	}
	if want := [][]id.EventID{{t2, r2}, {ref, t1}, {e1, r1}}; !slices.EqualFunc(pages, want, slices.Equal) {
		t.Fatalf("backward pages %v, want %v", pages, want)
	}

	// Forwards: oldest first.
	fwd := relList(t, bob, roomID, root, &mautrix.ReqGetRelations{Dir: mautrix.DirectionForward, Limit: 2})
	if got := relIDs(fwd.Chunk); !slices.Equal(got, []id.EventID{r1, e1}) || fwd.NextBatch == "" {
		t.Fatalf("forward page 1: %v next %q", got, fwd.NextBatch)
	}
	fwd2 := relList(t, bob, roomID, root, &mautrix.ReqGetRelations{Dir: mautrix.DirectionForward, Limit: 10, From: fwd.NextBatch})
	if got := relIDs(fwd2.Chunk); !slices.Equal(got, []id.EventID{t1, ref, r2, t2}) || fwd2.NextBatch != "" {
		t.Fatalf("forward page 2: %v next %q", got, fwd2.NextBatch)
	}
	// to stops a backwards listing: everything after e1.
	upTo := relList(t, bob, roomID, root, &mautrix.ReqGetRelations{Limit: 10, To: fwd.NextBatch})
	if got := relIDs(upTo.Chunk); !slices.Equal(got, []id.EventID{t2, r2, ref, t1}) {
		t.Fatalf("backwards down to e1: %v", got)
	}
	// ... and a forwards one, from the first page's end to the second's.
	between := relList(t, bob, roomID, root, &mautrix.ReqGetRelations{Dir: mautrix.DirectionForward, Limit: 10, From: fwd.NextBatch,
		To: relList(t, bob, roomID, root, &mautrix.ReqGetRelations{Dir: mautrix.DirectionForward, Limit: 4}).NextBatch})
	if got := relIDs(between.Chunk); !slices.Equal(got, []id.EventID{t1, ref}) {
		t.Fatalf("forwards between tokens: %v", got)
	}

	// A sync's next_batch works as from: later children are not included.
	since := syncOnce(t, bob, "", "", 0).NextBatch
	r3 := relReact(t, bob, roomID, root, "🎉")
	if got := relIDs(relList(t, bob, roomID, root, &mautrix.ReqGetRelations{From: since, Limit: 1}).Chunk); !slices.Equal(got, []id.EventID{t2}) {
		t.Fatalf("from a sync token: %v", got)
	}
	if got := relIDs(relList(t, bob, roomID, root, &mautrix.ReqGetRelations{Limit: 1}).Chunk); !slices.Equal(got, []id.EventID{r3}) {
		t.Fatalf("newest child: %v", got)
	}

	// The default limit is 5; recursion_depth is absent unless recurse is given.
	raw, err := relRaw(bob, ts, relPath(roomID, "relations", string(root)), "")
	if err != nil {
		t.Fatal(err)
	}
	if chunk, _ := raw["chunk"].([]any); len(chunk) != 5 || raw["next_batch"] == nil || raw["recursion_depth"] != nil || raw["prev_batch"] != nil {
		t.Fatalf("default page: %d events, next %v, depth %v, prev %v", len(chunk), raw["next_batch"], raw["recursion_depth"], raw["prev_batch"])
	}
	// Children carry their own bundled aggregations: the thread reply t1
	// is not a root, but e.g. an edit of it shows.
	e2 := relEdit(t, bob, roomID, t1, "in thread, edited")
	resp := relList(t, alice, roomID, root, &mautrix.ReqGetRelations{RelationType: "m.thread", Limit: 10})
	if len(resp.Chunk) != 2 || resp.Chunk[1].ID != t1 || resp.Chunk[1].Unsigned.Relations.GetLatestEdit() == nil ||
		resp.Chunk[1].Unsigned.Relations.GetLatestEdit().ID != e2 {
		t.Fatalf("thread reply without its edit bundled: %+v", resp.Chunk)
	}
}

func TestRelationsRecurse(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	roomID := roomCreate(t, alice, &mautrix.ReqCreateRoom{})
	root := relText(t, alice, roomID, "root", nil)
	// A chain of references four deep, and a reaction reached only through
	// a reference.
	a := relText(t, alice, roomID, "a", relTo("m.reference", root))
	b := relText(t, alice, roomID, "b", relTo("m.reference", a))
	c := relText(t, alice, roomID, "c", relTo("m.reference", b))
	relText(t, alice, roomID, "d", relTo("m.reference", c))
	x := relReact(t, alice, roomID, a, "👍")

	if got := relIDs(relList(t, alice, roomID, root, &mautrix.ReqGetRelations{Limit: 50}).Chunk); !slices.Equal(got, []id.EventID{a}) {
		t.Fatalf("direct children: %v", got)
	}
	rec := relList(t, alice, roomID, root, &mautrix.ReqGetRelations{Limit: 50, Recurse: true})
	if got := relIDs(rec.Chunk); !slices.Equal(got, []id.EventID{x, c, b, a}) || rec.RecursionDepth != 3 {
		t.Fatalf("recursive, three levels: %v depth %d", got, rec.RecursionDepth)
	}
	// Filters apply at every level: the reaction hangs off a reference.
	if got := relIDs(relList(t, alice, roomID, root, &mautrix.ReqGetRelations{RelationType: "m.annotation", Limit: 50, Recurse: true}).Chunk); len(got) != 0 {
		t.Fatalf("annotation reached through a reference: %v", got)
	}
	if got := relIDs(relList(t, alice, roomID, root, &mautrix.ReqGetRelations{RelationType: "m.reference", Limit: 50, Recurse: true}).Chunk); !slices.Equal(got, []id.EventID{c, b, a}) {
		t.Fatalf("references, recursively: %v", got)
	}
	// Recursive pagination, forwards.
	page := relList(t, alice, roomID, root, &mautrix.ReqGetRelations{Dir: mautrix.DirectionForward, Limit: 3, Recurse: true})
	next := relList(t, alice, roomID, root, &mautrix.ReqGetRelations{Dir: mautrix.DirectionForward, Limit: 3, Recurse: true, From: page.NextBatch})
	if !slices.Equal(relIDs(page.Chunk), []id.EventID{a, b, c}) || !slices.Equal(relIDs(next.Chunk), []id.EventID{x}) || next.NextBatch != "" {
		t.Fatalf("recursive pages: %v then %v (%q)", relIDs(page.Chunk), relIDs(next.Chunk), next.NextBatch)
	}
	// recurse=false is answered with the depth used: 1.
	raw, err := relRaw(alice, ts, relPath(roomID, "relations", string(root)), "recurse=false")
	if err != nil || raw["recursion_depth"] != float64(1) {
		t.Fatalf("recurse=false: depth %v, %v", raw["recursion_depth"], err)
	}
}

// TestRelationsVisibility: children from a stretch of history the user may
// not see are left out; a parent they may not see is not found.
func TestRelationsVisibility(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	carol := ts.RegisterUser("carol")
	roomID := roomCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat",
		InitialState: []*event.Event{{Type: event.StateHistoryVisibility, Content: event.Content{Parsed: &event.HistoryVisibilityEventContent{HistoryVisibility: event.HistoryVisibilityJoined}}}}})
	if _, err := bob.JoinRoomByID(ctx, roomID); err != nil {
		t.Fatal(err)
	}
	root := relText(t, alice, roomID, "root", nil)
	seen := relReact(t, alice, roomID, root, "👀")
	if _, err := bob.LeaveRoom(ctx, roomID); err != nil {
		t.Fatal(err)
	}
	hidden := relReact(t, alice, roomID, root, "🙈")
	hiddenReply := relText(t, alice, roomID, "while bob was away", relTo("m.thread", root))
	whileAway := relText(t, alice, roomID, "also while away", nil)
	relReact(t, alice, roomID, whileAway, "👍")
	if _, err := bob.JoinRoomByID(ctx, roomID); err != nil {
		t.Fatal(err)
	}
	back := relReact(t, alice, roomID, root, "👋")

	if got := relIDs(relList(t, alice, roomID, root, &mautrix.ReqGetRelations{Limit: 10}).Chunk); !slices.Equal(got, []id.EventID{back, hiddenReply, hidden, seen}) {
		t.Fatalf("alice sees %v", got)
	}
	if got := relIDs(relList(t, bob, roomID, root, &mautrix.ReqGetRelations{Limit: 10}).Chunk); !slices.Equal(got, []id.EventID{back, seen}) {
		t.Fatalf("bob sees %v, want only what he was there for", got)
	}
	// Pages fill with visible events only; tokens carry on past hidden ones.
	p1 := relList(t, bob, roomID, root, &mautrix.ReqGetRelations{Limit: 1})
	p2 := relList(t, bob, roomID, root, &mautrix.ReqGetRelations{Limit: 1, From: p1.NextBatch})
	if !slices.Equal(relIDs(p1.Chunk), []id.EventID{back}) || !slices.Equal(relIDs(p2.Chunk), []id.EventID{seen}) || p2.NextBatch != "" {
		t.Fatalf("bob's pages: %v, %v (next %q)", relIDs(p1.Chunk), relIDs(p2.Chunk), p2.NextBatch)
	}
	// The only thread reply is hidden from bob: no thread summary for him.
	if ev, err := bob.GetEvent(ctx, roomID, root); err != nil || ev.Unsigned.Relations.GetThread() != nil {
		t.Fatalf("bob's view of the root: %+v %v", ev, err)
	}
	if ev, err := alice.GetEvent(ctx, roomID, root); err != nil || ev.Unsigned.Relations.GetThread().GetLatestEvent() == nil {
		t.Fatalf("alice's view of the root has no thread: %+v %v", ev, err)
	}
	// A parent bob may not see, and a room carol was never in: not found.
	_, err := bob.GetRelations(ctx, roomID, whileAway, &mautrix.ReqGetRelations{})
	roomErr(t, "parent sent while away", err, http.StatusNotFound, "M_NOT_FOUND")
	_, err = carol.GetRelations(ctx, roomID, root, &mautrix.ReqGetRelations{})
	roomErr(t, "not a member", err, http.StatusNotFound, "M_NOT_FOUND")
}

func TestRelationsBadInput(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")
	roomID := roomCreate(t, alice, &mautrix.ReqCreateRoom{})
	otherRoom := roomCreate(t, alice, &mautrix.ReqCreateRoom{})
	root := relText(t, alice, roomID, "root", nil)
	elsewhere := relText(t, alice, otherRoom, "in another room", nil)
	path := relPath(roomID, "relations", string(root))
	for _, c := range []struct {
		what, path, query string
		status            int
		code              string
	}{
		{"unknown event", relPath(roomID, "relations", "$nope"), "", 404, "M_NOT_FOUND"},
		{"event of another room", relPath(roomID, "relations", string(elsewhere)), "", 404, "M_NOT_FOUND"},
		{"unknown room", relPath("!nope:localhost", "relations", string(root)), "", 404, "M_NOT_FOUND"},
		{"bad room ID", relPath("nope", "relations", string(root)), "", 400, "M_INVALID_PARAM"},
		{"bad dir", path, "dir=sideways", 400, "M_INVALID_PARAM"},
		{"limit not a number", path, "limit=many", 400, "M_INVALID_PARAM"},
		{"negative limit", path, "limit=-1", 400, "M_INVALID_PARAM"},
		{"bad from", path, "from=page2", 400, "M_INVALID_PARAM"},
		{"bad to", path, "to=s1_x", 400, "M_INVALID_PARAM"},
		{"bad recurse", path, "recurse=maybe", 400, "M_INVALID_PARAM"},
	} {
		_, err := relRaw(alice, ts, c.path, c.query)
		roomErr(t, c.what, err, c.status, c.code)
	}
	anon := ts.Client()
	_, err := anon.GetRelations(ctx, roomID, root, &mautrix.ReqGetRelations{})
	roomErr(t, "no token", err, http.StatusUnauthorized, "M_MISSING_TOKEN")
	anon.AccessToken = "bogus"
	_, err = anon.GetRelations(ctx, roomID, root, &mautrix.ReqGetRelations{})
	roomErr(t, "bad token", err, http.StatusUnauthorized, "M_UNKNOWN_TOKEN")

	// limit=0 means the default; a huge limit is capped, not refused.
	for _, q := range []string{"limit=0", "limit=100000"} {
		if _, err := relRaw(alice, ts, path, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// TestRelationSendRules covers what the server refuses when a relation is
// sent: a parent it does not know or in another room, a thread off a
// relation, an annotation without a key, and the same annotation twice.
func TestRelationSendRules(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	roomID := roomCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	otherRoom := roomCreate(t, alice, &mautrix.ReqCreateRoom{})
	if _, err := bob.JoinRoomByID(ctx, roomID); err != nil {
		t.Fatal(err)
	}
	root := relText(t, alice, roomID, "root", nil)
	elsewhere := relText(t, alice, otherRoom, "elsewhere", nil)
	send := func(c *mautrix.Client, content map[string]any, txn string) (id.EventID, error) {
		resp, err := c.SendMessageEvent(ctx, roomID, event.EventReaction, content, mautrix.ReqSendEvent{TransactionID: txn})
		if err != nil {
			return "", err
		}
		return resp.EventID, nil
	}
	react := func(parent id.EventID, key string) map[string]any {
		rel := relTo("m.annotation", parent)
		rel["key"] = key
		return map[string]any{"m.relates_to": rel}
	}

	first, err := send(alice, react(root, "👍"), "r1")
	if err != nil {
		t.Fatal(err)
	}
	_, err = send(alice, react(root, "👍"), "r2")
	roomErr(t, "the same reaction twice", err, http.StatusBadRequest, "M_DUPLICATE_ANNOTATION")
	// A retried transaction is the same event, not a duplicate.
	if again, err := send(alice, react(root, "👍"), "r1"); err != nil || again != first {
		t.Fatalf("retried transaction: %s %v, want %s", again, err, first)
	}
	// Another key, another user, another event type: not duplicates.
	if _, err := send(alice, react(root, "🎉"), "r3"); err != nil {
		t.Fatalf("another key: %v", err)
	}
	if _, err := send(bob, react(root, "👍"), "b1"); err != nil {
		t.Fatalf("another user: %v", err)
	}
	if _, err := alice.SendMessageEvent(ctx, roomID, event.Type{Type: "org.example.vote"}, react(root, "👍")); err != nil {
		t.Fatalf("another event type: %v", err)
	}
	// Once the first is redacted, the reaction can be sent again.
	if _, err := alice.RedactEvent(ctx, roomID, first); err != nil {
		t.Fatal(err)
	}
	if _, err := send(alice, react(root, "👍"), "r4"); err != nil {
		t.Fatalf("reaction after redacting the first: %v", err)
	}

	_, err = send(alice, map[string]any{"m.relates_to": relTo("m.annotation", root)}, "nokey")
	roomErr(t, "annotation without a key", err, http.StatusBadRequest, "M_BAD_JSON")
	_, err = send(alice, react("$unknown", "👍"), "unknown")
	roomErr(t, "relation to an unknown event", err, http.StatusBadRequest, "M_UNKNOWN")
	_, err = send(alice, react(elsewhere, "👍"), "elsewhere")
	roomErr(t, "relation to an event in another room", err, http.StatusBadRequest, "M_UNKNOWN")
	if got := relList(t, alice, otherRoom, elsewhere, &mautrix.ReqGetRelations{}); len(got.Chunk) != 0 {
		t.Fatalf("refused relation listed: %v", relIDs(got.Chunk))
	}

	reply := relText(t, bob, roomID, "reply", relTo("m.thread", root))
	_, err = alice.SendMessageEvent(ctx, roomID, event.EventMessage, map[string]any{"msgtype": "m.text", "body": "x", "m.relates_to": relTo("m.thread", reply)})
	roomErr(t, "thread off a thread reply", err, http.StatusBadRequest, "M_UNKNOWN")
	// A reaction to a thread reply, or a reply to it, is fine.
	relReact(t, alice, roomID, reply, "👍")
	relText(t, alice, roomID, "in thread, replying", map[string]any{"rel_type": "m.thread", "event_id": string(root),
		"m.in_reply_to": map[string]any{"event_id": string(reply)}})
}

// relEventTS reads an event's origin_server_ts as the server stored it.
func relEventTS(t *testing.T, c *mautrix.Client, roomID id.RoomID, evID id.EventID) int64 {
	t.Helper()
	ev, err := c.GetEvent(context.Background(), roomID, evID)
	if err != nil {
		t.Fatal(err)
	}
	return ev.Timestamp
}

// relNewest returns which of the edits the spec calls the most recent.
func relNewest(t *testing.T, c *mautrix.Client, roomID id.RoomID, edits ...id.EventID) id.EventID {
	best, bestTS := id.EventID(""), int64(-1)
	for _, e := range edits {
		ts := relEventTS(t, c, roomID, e)
		if ts > bestTS || (ts == bestTS && e > best) {
			best, bestTS = e, ts
		}
	}
	return best
}

func TestBundledEdits(t *testing.T) {
	_, alice, bob, roomID := pairInRoom(t, "")
	ctx := context.Background()
	root := relText(t, alice, roomID, "original", nil)
	edit1 := relEdit(t, alice, roomID, root, "first edit")
	edit2 := relEdit(t, alice, roomID, root, "second edit")
	// Invalid edits: someone else's, without m.new_content, of another
	// type, and an edit of an edit.
	relEdit(t, bob, roomID, root, "bob's edit")
	relSend(t, alice, roomID, "m.room.message", map[string]any{"msgtype": "m.text", "body": "* no new content", "m.relates_to": relTo("m.replace", root)})
	relSend(t, alice, roomID, "org.example.message", map[string]any{"body": "* other type", "m.new_content": map[string]any{"body": "x"}, "m.relates_to": relTo("m.replace", root)})
	relEdit(t, alice, roomID, edit2, "edit of an edit")

	latest := func(c *mautrix.Client, evID id.EventID) *event.Event {
		t.Helper()
		ev, err := c.GetEvent(ctx, roomID, evID)
		if err != nil {
			t.Fatal(err)
		}
		return ev.Unsigned.Relations.GetLatestEdit()
	}
	want := relNewest(t, alice, roomID, edit1, edit2)
	got := latest(bob, root)
	if got == nil || got.ID != want {
		t.Fatalf("m.replace: %+v, want %s", got, want)
	}
	// The whole edit event is bundled; the original's content is untouched.
	if got.Sender != alice.UserID || got.Content.Raw["m.new_content"] == nil || got.RoomID != roomID {
		t.Fatalf("bundled edit is not the full event: %+v", got)
	}
	if ev, _ := bob.GetEvent(ctx, roomID, root); ev.Content.Raw["body"] != "original" {
		t.Fatalf("original content replaced: %v", ev.Content.Raw)
	}
	// Edits get no aggregations of their own (an edit of an edit is ignored).
	if e := latest(alice, edit2); e != nil {
		t.Fatalf("an edit has an m.replace: %+v", e)
	}

	// The same bundle comes with /messages, /context and a limited sync.
	msgs, err := bob.Messages(ctx, roomID, "", "", mautrix.DirectionBackward, nil, 20)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range msgs.Chunk {
		if ev.ID == root && ev.Unsigned.Relations.GetLatestEdit().ID != want {
			t.Fatalf("/messages: %+v", ev.Unsigned.Relations)
		}
	}
	cx, err := bob.Context(ctx, roomID, root, nil, 2)
	if err != nil || cx.Event.Unsigned.Relations.GetLatestEdit() == nil || cx.Event.Unsigned.Relations.GetLatestEdit().ID != want {
		t.Fatalf("/context: %+v %v", cx, err)
	}

	// A third edit takes over; redacting it brings the previous one back.
	edit3 := relEdit(t, alice, roomID, root, "third edit")
	if want3 := relNewest(t, alice, roomID, edit1, edit2, edit3); latest(bob, root).ID != want3 {
		t.Fatalf("after a third edit: %s, want %s", latest(bob, root).ID, want3)
	}
	if _, err := alice.RedactEvent(ctx, roomID, edit3); err != nil {
		t.Fatal(err)
	}
	if got := latest(bob, root); got == nil || got.ID != want {
		t.Fatalf("after redacting the latest edit: %+v, want %s", got, want)
	}
	// Redacting the original drops its edits from the bundle and from
	// /relations (they would leak the content).
	if _, err := alice.RedactEvent(ctx, roomID, root); err != nil {
		t.Fatal(err)
	}
	if got := latest(bob, root); got != nil {
		t.Fatalf("redacted original has an edit bundled: %+v", got)
	}
	if rel := relList(t, bob, roomID, root, &mautrix.ReqGetRelations{RelationType: "m.replace"}); len(rel.Chunk) != 0 {
		t.Fatalf("edits of a redacted event listed: %v", relIDs(rel.Chunk))
	}
}

// TestBundledAggregationsInLimitedSync: a limited sync timeline carries the
// thread summary and references of its events.
func TestBundledAggregationsInLimitedSync(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")
	roomID := roomCreate(t, alice, &mautrix.ReqCreateRoom{})
	since := syncOnce(t, alice, "", "", 0).NextBatch
	relText(t, alice, roomID, "left out", nil)
	root := relText(t, alice, roomID, "root", nil)
	relText(t, alice, roomID, "reply", relTo("m.thread", root))
	ref := relText(t, alice, roomID, "reference", relTo("m.reference", root))
	for i := range 12 {
		relText(t, alice, roomID, fmt.Sprintf("filler %d", i), nil)
	}
	// A limited timeline that still reaches back to the root.
	filter := `{"room":{"timeline":{"limit":15}}}`
	resp, err := alice.FullSyncRequest(ctx, mautrix.ReqSync{Since: since, FilterID: filter})
	if err != nil {
		t.Fatal(err)
	}
	jr := resp.Rooms.Join[roomID]
	if jr == nil || !jr.Timeline.Limited {
		t.Fatalf("expected a limited timeline: %+v", jr)
	}
	var found *event.Event
	for _, ev := range jr.Timeline.Events {
		if ev.ID == root {
			found = ev
		}
	}
	if found == nil {
		t.Fatal("root not in the timeline")
	}
	th := found.Unsigned.Relations.GetThread()
	refs := found.Unsigned.Relations.GetReferences().GetEventIDs()
	if th == nil || th.Count != 1 || !th.CurrentUserParticipated || !slices.Equal(refs, []id.EventID{ref}) {
		b, _ := json.Marshal(found.Unsigned)
		t.Fatalf("root's aggregations in sync: %s", b)
	}
}
