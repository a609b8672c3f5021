package storage

import (
	"context"
	"fmt"
	"maps"
	"testing"

	"maunium.net/go/mautrix/id"
)

// unreadTestEvent is a message of sender in !room:x (in a thread when
// thread is set), to store, that notifies each of notify, highlighting
// those in highlight.
func unreadTestEvent(n *int, sender id.UserID, thread string, notify []id.UserID, highlight ...id.UserID) *NewEvent {
	*n++
	evID := id.EventID(fmt.Sprintf("$ev%d", *n))
	ne := &NewEvent{Event: Event{EventID: evID, RoomID: "!room:x", Type: "m.room.message", Sender: sender, Depth: int64(*n),
		OriginServerTS: int64(*n), PDU: []byte(`{"type":"m.room.message","content":{}}`)}}
	for _, u := range notify {
		a := PushAction{UserID: u, RoomID: "!room:x", EventID: evID, ThreadID: thread, Notify: true, Actions: []byte(`["notify"]`), TS: int64(*n)}
		for _, h := range highlight {
			a.Highlight = a.Highlight || h == u
		}
		ne.PushActions = append(ne.PushActions, a)
	}
	ne.PushSent = []PushSent{{UserID: sender, RoomID: "!room:x", ThreadID: thread}}
	return ne
}

// TestUnreadCountsFollowWrites: the unread counts a sync reads from memory
// are the database's after messages (in the main timeline and in a
// thread), a receipt, the user's own message, another write, and a group
// commit with a failed batch; a message's commit adds its notifications
// to the cached counts instead of dropping them.
func TestUnreadCountsFollowWrites(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	const alice, bob, carol = id.UserID("@alice:x"), id.UserID("@bob:x"), id.UserID("@carol:x")
	n := 0
	searchTestEvent(t, db, &n, "m.room.create", new(string), `{}`)
	persist := func(evs ...*NewEvent) {
		t.Helper()
		if _, err := db.PersistEvents(ctx, evs, 0); err != nil {
			t.Fatal(err)
		}
	}
	check := func(step string, user id.UserID, want UnreadCounts) {
		t.Helper()
		got, err := db.UnreadNotifications(ctx, "!room:x", user)
		if err != nil {
			t.Fatal(err)
		}
		rp, err := db.UserReadPositions(ctx, "!room:x", user)
		if err != nil {
			t.Fatal(err)
		}
		main, threads, err := db.UnreadPushActions(ctx, "!room:x", user, rp)
		if err != nil {
			t.Fatal(err)
		}
		same := func(a, b UnreadCounts) bool { return a.Main == b.Main && maps.Equal(a.Threads, b.Threads) }
		if counted := (UnreadCounts{Main: main, Threads: threads}); !same(got, counted) || !same(got, want) {
			t.Fatalf("%s: %s has %+v, the database %+v, want %+v", step, user, got, counted, want)
		}
	}
	cached := func(step string, user id.UserID, want bool) {
		t.Helper()
		if _, ok := db.unread.get(unreadKey{user, "!room:x"}); ok != want {
			t.Fatalf("%s: %s's counts cached %v, want %v", step, user, ok, want)
		}
	}

	first := unreadTestEvent(&n, alice, "", []id.UserID{bob, carol})
	persist(first)
	check("one message", bob, UnreadCounts{Main: NotificationCounts{1, 0}})
	check("one message", carol, UnreadCounts{Main: NotificationCounts{1, 0}})
	cached("read once", bob, true)

	root := string(first.EventID)
	mention := unreadTestEvent(&n, alice, "", []id.UserID{bob, carol}, carol)
	persist(mention, unreadTestEvent(&n, alice, root, []id.UserID{bob}, bob))
	cached("after a message", bob, true)
	cached("after a message", carol, true)
	threads := map[string]NotificationCounts{root: {1, 1}}
	check("a mention and a thread", bob, UnreadCounts{Main: NotificationCounts{2, 0}, Threads: threads})
	check("a mention and a thread", carol, UnreadCounts{Main: NotificationCounts{2, 1}})

	// Bob reads the main timeline up to the mention: only his counts go.
	if _, err := db.PutReceipt(ctx, Receipt{RoomID: "!room:x", UserID: bob, Type: "m.read", ThreadID: "main", EventID: mention.EventID}, mention.StreamPos); err != nil {
		t.Fatal(err)
	}
	cached("after bob's receipt", bob, false)
	cached("after bob's receipt", carol, true)
	check("bob read the main timeline", bob, UnreadCounts{Threads: threads})
	check("bob read the main timeline", carol, UnreadCounts{Main: NotificationCounts{2, 1}})

	// Bob answers in the thread: read for him there, news for carol.
	persist(unreadTestEvent(&n, bob, root, []id.UserID{carol}))
	cached("after bob's message", bob, true)
	check("bob answered", bob, UnreadCounts{})
	check("bob answered", carol, UnreadCounts{Main: NotificationCounts{2, 1}, Threads: map[string]NotificationCounts{root: {1, 0}}})

	// A group commit whose second batch fails: only the first is counted.
	// Carol sends it: she has read the main timeline, not bob's answer.
	good := &EventBatch{Events: []*NewEvent{unreadTestEvent(&n, carol, "", []id.UserID{alice, bob})}}
	failing := unreadTestEvent(&n, alice, "", []id.UserID{bob, carol}, bob, carol)
	dup := &NewEvent{Event: Event{EventID: "$ev2", RoomID: "!room:x", Type: "m.room.message", Sender: alice, Depth: 99, PDU: []byte(`{}`)}}
	bad := &EventBatch{Events: []*NewEvent{failing, dup}}
	if err := db.PersistBatches(ctx, []*EventBatch{good, bad}, 0); err != nil || good.Err != nil || bad.Err == nil {
		t.Fatalf("group commit: %v, batches %v and %v", err, good.Err, bad.Err)
	}
	cached("after a group commit", carol, true)
	check("after a group commit", bob, UnreadCounts{Main: NotificationCounts{1, 0}})
	check("after a group commit", carol, UnreadCounts{Threads: map[string]NotificationCounts{root: {1, 0}}})

	// Any other write drops them all.
	if _, err := db.SetAccountData(ctx, alice, "", "m.direct", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	cached("after account data", carol, false)
	check("after account data", carol, UnreadCounts{Threads: map[string]NotificationCounts{root: {1, 0}}})
}

// TestUnreadCountsFollowBackfill: a receipt may name an event this server
// held only as an outlier; backfilling that event moves it to the start of
// the timeline, and the receipt's read position with it, so the counts
// are read again.
func TestUnreadCountsFollowBackfill(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	n := 0
	searchTestEvent(t, db, &n, "m.room.create", new(string), `{}`)
	if _, err := db.PersistEvents(ctx, []*NewEvent{unreadTestEvent(&n, "@alice:x", "", []id.UserID{"@bob:x"})}, 0); err != nil {
		t.Fatal(err)
	}
	out := func(outlier int, backfilled bool) *NewEvent {
		return &NewEvent{Event: Event{EventID: "$old", RoomID: "!room:x", Type: "m.room.message", Sender: "@alice:x", Depth: 1,
			PDU: []byte(`{}`), Outlier: outlier}, Backfilled: backfilled}
	}
	pos, err := db.PersistEvents(ctx, []*NewEvent{out(OutlierState, false)}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.PutReceipt(ctx, Receipt{RoomID: "!room:x", UserID: "@bob:x", Type: "m.read", EventID: "$old"}, pos[0]); err != nil {
		t.Fatal(err)
	}
	if c, err := db.UnreadNotifications(ctx, "!room:x", "@bob:x"); err != nil || c.Main != (NotificationCounts{}) {
		t.Fatalf("read up to the outlier: %+v, %v", c, err)
	}
	if _, err := db.PersistEvents(ctx, []*NewEvent{out(0, true)}, 0); err != nil {
		t.Fatal(err)
	}
	if c, err := db.UnreadNotifications(ctx, "!room:x", "@bob:x"); err != nil || c.Main != (NotificationCounts{1, 0}) {
		t.Fatalf("read up to the backfilled event: %+v, %v; want one unread", c, err)
	}
}

// TestUnreadCountsNotStoredAcrossACommit: counts read while a commit of
// events is in flight are not kept, since the commit then adds its
// notifications to what is kept; a commit that fails drops them all.
func TestUnreadCountsNotStoredAcrossACommit(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	n := 0
	searchTestEvent(t, db, &n, "m.room.create", new(string), `{}`)
	db.unread.commitStarting()
	if _, err := db.UnreadNotifications(ctx, "!room:x", "@bob:x"); err != nil {
		t.Fatal(err)
	}
	if _, ok := db.unread.get(unreadKey{"@bob:x", "!room:x"}); ok {
		t.Fatal("counts read during a commit were kept")
	}
	db.unread.commitFailed()
	if _, err := db.UnreadNotifications(ctx, "!room:x", "@bob:x"); err != nil {
		t.Fatal(err)
	}
	if _, ok := db.unread.get(unreadKey{"@bob:x", "!room:x"}); !ok {
		t.Fatal("counts read after the commit were not kept")
	}
	// The lone batch fails (its event is already stored).
	dup := &NewEvent{Event: Event{EventID: "$ev1", RoomID: "!room:x", Type: "m.room.message", Sender: "@alice:x", Depth: 9, PDU: []byte(`{}`)}}
	b := &EventBatch{Events: []*NewEvent{dup}}
	if err := db.PersistBatches(ctx, []*EventBatch{b}, 0); err != nil || b.Err == nil {
		t.Fatalf("a duplicate event: %v, batch %v", err, b.Err)
	}
	if _, ok := db.unread.get(unreadKey{"@bob:x", "!room:x"}); ok {
		t.Fatal("a failed commit left counts cached")
	}
	if db.unread.committing != 0 {
		t.Fatalf("%d commits still in flight", db.unread.committing)
	}
}

// BenchmarkUnreadCounts: a sync's unread counts for a member of a room of
// ten who has not read its last 2,000 messages, counted from the database
// (as every sync did before unreadCache) and as a woken sync finds them.
func BenchmarkUnreadCounts(b *testing.B) {
	ctx := context.Background()
	path := b.TempDir() + "/palpo.db"
	db, err := Open(ctx, path, 2)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	members := make([]id.UserID, 10)
	for i := range members {
		members[i] = id.UserID(fmt.Sprintf("@u%d:x", i))
	}
	n := 0
	create := &NewEvent{Event: Event{EventID: "$ev1", RoomID: "!room:x", Type: "m.room.create", StateKey: new(string), Sender: members[0], Depth: 1,
		PDU: []byte(`{}`)}, NewRoom: &Room{RoomID: "!room:x", RoomVersion: "12", Creator: members[0]}}
	n++
	if _, err := db.PersistEvents(ctx, []*NewEvent{create}, 0); err != nil {
		b.Fatal(err)
	}
	for i := range 2000 {
		sender := members[1+i%9]
		var others []id.UserID
		for _, m := range members {
			if m != sender {
				others = append(others, m)
			}
		}
		if _, err := db.PersistEvents(ctx, []*NewEvent{unreadTestEvent(&n, sender, "", others)}, 0); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("counted", func(b *testing.B) {
		for b.Loop() {
			rp, err := db.UserReadPositions(ctx, "!room:x", members[0])
			if err != nil {
				b.Fatal(err)
			}
			if m, _, err := db.UnreadPushActions(ctx, "!room:x", members[0], rp); err != nil || m.Notify != 2000 {
				b.Fatal(m, err)
			}
		}
	})
	b.Run("cached", func(b *testing.B) {
		for b.Loop() {
			if c, err := db.UnreadNotifications(ctx, "!room:x", members[0]); err != nil || c.Main.Notify != 2000 {
				b.Fatal(c, err)
			}
		}
	})
}
