package rooms

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/storage"
)

func TestRelationOf(t *testing.T) {
	key := "👍"
	cases := []struct {
		content string
		want    *storage.NewRelation
	}{
		{`{"body":"plain"}`, nil},
		{`{"m.relates_to":{"rel_type":"m.annotation","event_id":"$e","key":"👍"}}`, &storage.NewRelation{RelatesTo: "$e", RelType: "m.annotation", Key: &key}},
		{`{"m.relates_to":{"rel_type":"m.thread","event_id":"$e","is_falling_back":true,"m.in_reply_to":{"event_id":"$r"}}}`, &storage.NewRelation{RelatesTo: "$e", RelType: "m.thread"}},
		{`{"m.relates_to":{"rel_type":"m.annotation","event_id":"$e","key":12}}`, &storage.NewRelation{RelatesTo: "$e", RelType: "m.annotation"}},
		{`{"m.relates_to":{"m.in_reply_to":{"event_id":"$r"}}}`, nil},    // a reply is no relation
		{`{"m.relates_to":{"rel_type":"m.thread"}}`, nil},                // no parent
		{`{"m.relates_to":{"rel_type":"","event_id":"$e"}}`, nil},        // empty type
		{`{"m.relates_to":{"rel_type":1,"event_id":"$e"}}`, nil},         // wrong type
		{`{"m.relates_to":{"rel_type":"m.thread","event_id":"e"}}`, nil}, // not an event ID
		{`{"m.relates_to":{"rel_type":"m.thread","event_id":"$"}}`, nil},
		{`{"m.relates_to":["$e"]}`, nil},
		{`{"m.relates_to":null}`, nil},
	}
	for _, c := range cases {
		got := relationOf([]byte(c.content))
		if (got == nil) != (c.want == nil) {
			t.Errorf("%s: got %+v, want %+v", c.content, got, c.want)
			continue
		}
		if got == nil {
			continue
		}
		if got.RelatesTo != c.want.RelatesTo || got.RelType != c.want.RelType || (got.Key == nil) != (c.want.Key == nil) ||
			(got.Key != nil && *got.Key != *c.want.Key) {
			t.Errorf("%s: got %+v, want %+v", c.content, got, c.want)
		}
	}
}

// TestRelationToAnotherRoomNotIndexed stores (bypassing the send-time
// check, as an event from federation would be) an event whose relation
// points at an event of another room: it is stored, but is no relation, so
// neither /relations nor the aggregations of that event see it.
func TestRelationToAnotherRoomNotIndexed(t *testing.T) {
	s := newTestService(t)
	ctx := context.Background()
	alice := id.UserID("@alice:localhost")
	roomA, err := s.CreateRoom(ctx, alice, &CreateRoomRequest{})
	if err != nil {
		t.Fatal(err)
	}
	roomB, err := s.CreateRoom(ctx, alice, &CreateRoomRequest{})
	if err != nil {
		t.Fatal(err)
	}
	parent, err := s.Send(ctx, alice, "DEV", roomA, "m.room.message", message(0), "t0")
	if err != nil {
		t.Fatal(err)
	}
	rB, err := s.room(ctx, roomB)
	if err != nil {
		t.Fatal(err)
	}
	content := fmt.Sprintf(`{"m.relates_to":{"rel_type":"m.thread","event_id":%q},"msgtype":"m.text","body":"x"}`, parent)
	evs, err := s.sendEvents(ctx, rB, []*proto{{Sender: alice, Type: "m.room.message", Content: []byte(content)}}, false)
	if err != nil {
		t.Fatalf("store an event relating to another room: %v", err)
	}
	if isRel, err := s.db.IsRelation(ctx, evs[0].ID); err != nil || isRel {
		t.Fatalf("cross-room relation indexed: %v %v", isRel, err)
	}
	page, err := s.Relations(ctx, &RelationsRequest{User: alice, RoomID: roomA, EventID: parent})
	if err != nil || len(page.Chunk) != 0 {
		t.Fatalf("relations of the parent: %+v %v", page, err)
	}
	got, err := s.GetEvent(ctx, alice, "", roomA, parent)
	if err != nil || got.Unsigned.Relations != nil {
		t.Fatalf("parent has aggregations: %+v %v", got.Unsigned.Relations, err)
	}
	// The same event through the client path is refused outright.
	if _, err := s.Send(ctx, alice, "DEV", roomB, "m.room.message", []byte(content), "t1"); err == nil {
		t.Fatal("client relation to another room's event accepted")
	}
}

// BenchmarkRelationsThousandReactions measures the relations work for an
// event with 1,000 reactions: listing all of them (limit 1000, with
// visibility checks and their own aggregation step) and bundling the
// aggregations of the event itself, which also has an edit and a thread.
func BenchmarkRelationsThousandReactions(b *testing.B) {
	s := newTestService(b)
	ctx := context.Background()
	alice := id.UserID("@alice:localhost")
	roomID, err := s.CreateRoom(ctx, alice, &CreateRoomRequest{})
	if err != nil {
		b.Fatal(err)
	}
	target, err := s.Send(ctx, alice, "DEV", roomID, "m.room.message", message(0), "root")
	if err != nil {
		b.Fatal(err)
	}
	for i := range 1000 {
		c, _ := json.Marshal(map[string]any{"m.relates_to": map[string]any{"rel_type": "m.annotation", "event_id": target, "key": fmt.Sprintf("k%d", i)}})
		if _, err := s.Send(ctx, alice, "DEV", roomID, "m.reaction", c, fmt.Sprintf("r%d", i)); err != nil {
			b.Fatal(err)
		}
	}
	edit, _ := json.Marshal(map[string]any{"msgtype": "m.text", "body": "* e", "m.new_content": map[string]any{"msgtype": "m.text", "body": "e"},
		"m.relates_to": map[string]any{"rel_type": "m.replace", "event_id": target}})
	reply, _ := json.Marshal(map[string]any{"msgtype": "m.text", "body": "t", "m.relates_to": map[string]any{"rel_type": "m.thread", "event_id": target}})
	for i, c := range [][]byte{edit, reply} {
		if _, err := s.Send(ctx, alice, "DEV", roomID, "m.room.message", c, fmt.Sprintf("x%d", i)); err != nil {
			b.Fatal(err)
		}
	}
	root, err := s.event(ctx, target)
	if err != nil {
		b.Fatal(err)
	}
	var listT, bundleT time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		page, err := s.Relations(ctx, &RelationsRequest{User: alice, RoomID: roomID, EventID: target, RelType: "m.annotation", Backwards: true, Limit: 1000})
		if err != nil || len(page.Chunk) != 1000 || page.More {
			b.Fatalf("listing: %d events, more %v, %v", len(page.Chunk), page.More, err)
		}
		mid := time.Now()
		ce, err := s.ClientEvent(ctx, root)
		if err != nil {
			b.Fatal(err)
		}
		if err := s.BundleAggregations(ctx, alice, []*Event{root}, []*event.Event{ce}); err != nil {
			b.Fatal(err)
		}
		if ce.Unsigned.Relations == nil || ce.Unsigned.Relations.LatestEdit == nil || ce.Unsigned.Relations.Thread.GetCount() != 1 {
			b.Fatalf("aggregations: %+v", ce.Unsigned.Relations)
		}
		listT += mid.Sub(start)
		bundleT += time.Since(mid)
	}
	b.StopTimer()
	b.ReportMetric(float64(listT.Microseconds())/1000/float64(b.N), "list-ms/op")
	b.ReportMetric(float64(bundleT.Microseconds())/1000/float64(b.N), "bundle-ms/op")
}

// TestLatestEditOrdering pins the clock to check the spec's order of
// edits: the latest origin_server_ts wins, whatever the order of arrival,
// and among equal timestamps the largest event ID.
func TestLatestEditOrdering(t *testing.T) {
	s := newTestService(t)
	ctx := context.Background()
	alice := id.UserID("@alice:localhost")
	now := time.UnixMilli(1_700_000_000_000)
	s.Now = func() time.Time { return now }
	roomID, err := s.CreateRoom(ctx, alice, &CreateRoomRequest{})
	if err != nil {
		t.Fatal(err)
	}
	orig, err := s.Send(ctx, alice, "DEV", roomID, "m.room.message", message(0), "orig")
	if err != nil {
		t.Fatal(err)
	}
	edit := func(i int) id.EventID {
		t.Helper()
		c, _ := json.Marshal(map[string]any{"msgtype": "m.text", "body": "* e", "m.new_content": map[string]any{"msgtype": "m.text", "body": fmt.Sprint(i)},
			"m.relates_to": map[string]any{"rel_type": "m.replace", "event_id": orig}})
		evID, err := s.Send(ctx, alice, "DEV", roomID, "m.room.message", c, fmt.Sprintf("e%d", i))
		if err != nil {
			t.Fatal(err)
		}
		return evID
	}
	latest := func() id.EventID {
		t.Helper()
		ev, err := s.GetEvent(ctx, alice, "", roomID, orig)
		if err != nil {
			t.Fatal(err)
		}
		if e := ev.Unsigned.Relations.GetLatestEdit(); e != nil {
			return e.ID
		}
		return ""
	}
	var sameTS []id.EventID
	for i := range 5 {
		sameTS = append(sameTS, edit(i))
	}
	if got, want := latest(), slices.Max(sameTS); got != want {
		t.Fatalf("equal timestamps: %s, want the largest ID %s", got, want)
	}
	now = now.Add(time.Second)
	newest := edit(10)
	// Arriving last with an older timestamp does not make an edit newer.
	now = now.Add(-time.Minute)
	edit(11)
	if got := latest(); got != newest {
		t.Fatalf("latest by timestamp: %s, want %s", got, newest)
	}
}
