package storage

import (
	"context"
	"database/sql"
	"testing"

	"maunium.net/go/mautrix/id"
)

// TestPushActionsByEvent: notifications written before migration 0025 (kept
// by user) and after it (kept by event) are listed, counted per thread
// after each read position, and make the badge, whoever else in the room
// was notified by the same events.
func TestPushActionsByEvent(t *testing.T) {
	ctx := context.Background()
	db, path := openBefore(t, "push_actions_by_event")
	for n, typ := range []string{"m.room.create", "m.room.message", "m.room.message", "m.room.message"} {
		oldSchemaEvent(t, db, n+1, typ, `{}`)
	}
	// Before: bob and carol notified by $ev2 (main timeline) and $ev3 (a
	// thread, highlighting bob).
	execSQL(t, db,
		`INSERT INTO push_actions (user_id, room_id, stream_pos, event_id, thread_id, notify, highlight, actions, ts) VALUES ('@bob:x', '!room:x', 2, '$ev2', '', 1, 0, '["notify"]', 2)`,
		`INSERT INTO push_actions (user_id, room_id, stream_pos, event_id, thread_id, notify, highlight, actions, ts) VALUES ('@carol:x', '!room:x', 2, '$ev2', '', 1, 0, '["notify"]', 2)`,
		`INSERT INTO push_actions (user_id, room_id, stream_pos, event_id, thread_id, notify, highlight, actions, ts) VALUES ('@bob:x', '!room:x', 3, '$ev3', '$ev2', 1, 1, '["notify"]', 3)`,
		`INSERT INTO push_actions (user_id, room_id, stream_pos, event_id, thread_id, notify, highlight, actions, ts) VALUES ('@carol:x', '!room:x', 3, '$ev3', '$ev2', 1, 0, '["notify"]', 3)`,
		`INSERT INTO current_state (room_id, type, state_key, event_id, membership) VALUES ('!room:x', 'm.room.member', '@bob:x', '$ev1', 'join')`,
		`INSERT INTO current_state (room_id, type, state_key, event_id, membership) VALUES ('!other:x', 'm.room.member', '@bob:x', '$ev1', 'invite')`,
	)
	db = reopen(t, db, path)

	// After: $ev4 in the main timeline notifies both, stored as an event's
	// rows are.
	ev4 := []PushAction{
		{UserID: "@bob:x", RoomID: "!room:x", StreamPos: 4, EventID: "$ev4", Notify: true, Actions: []byte(`["notify"]`), TS: 4},
		{UserID: "@carol:x", RoomID: "!room:x", StreamPos: 4, EventID: "$ev4", Notify: true, Actions: []byte(`["notify"]`), TS: 4},
	}
	if err := db.WriteTx(ctx, func(tx *sql.Tx) error { return insertPushActions(ctx, tx, ev4, nil) }); err != nil {
		t.Fatal(err)
	}

	notes, _, err := db.Notifications(ctx, "@bob:x", 0, 10, false)
	if err != nil || len(notes) != 3 || notes[0].EventID != "$ev4" || notes[1].EventID != "$ev3" || notes[2].EventID != "$ev2" {
		t.Fatalf("bob's notifications %+v, %v; want $ev4, $ev3, $ev2", notes, err)
	}
	if notes, _, err := db.Notifications(ctx, "@bob:x", 4, 1, false); err != nil || len(notes) != 1 || notes[0].EventID != "$ev3" {
		t.Fatalf("bob's notifications before 4 %+v, %v; want $ev3", notes, err)
	}
	if pending, err := db.PendingPushes(ctx, "@carol:x", 2, 10); err != nil || len(pending) != 2 || pending[0].EventID != "$ev3" {
		t.Fatalf("carol's pushes after 2 %+v, %v; want $ev3, $ev4", pending, err)
	}

	counts := func(what string, rp ReadPositions, main, thread NotificationCounts) {
		t.Helper()
		m, threads, err := db.UnreadPushActions(ctx, "!room:x", "@bob:x", rp)
		if err != nil {
			t.Fatal(err)
		}
		if m != main || threads["$ev2"] != thread || len(threads) > 1 || (thread == NotificationCounts{}) != (len(threads) == 0) {
			t.Fatalf("%s: main %+v threads %+v; want %+v and %+v", what, m, threads, main, thread)
		}
	}
	counts("nothing read", ReadPositions{}, NotificationCounts{2, 0}, NotificationCounts{1, 1})
	counts("main read to 2", ReadPositions{Threads: map[string]int64{"": 2}}, NotificationCounts{1, 0}, NotificationCounts{1, 1})
	counts("thread read", ReadPositions{Threads: map[string]int64{"$ev2": 3}}, NotificationCounts{2, 0}, NotificationCounts{})
	counts("all read", ReadPositions{Unthreaded: 4}, NotificationCounts{}, NotificationCounts{})

	// The badge: the invite, and the joined room with unread notifications.
	if badge, err := db.PushBadge(ctx, "@bob:x"); err != nil || badge != 2 {
		t.Fatalf("bob's badge %d, %v; want 2", badge, err)
	}
	// Bob sends in the main timeline: read there, but the thread is not.
	sent := func(thread string, pos int64) {
		t.Helper()
		if err := db.WriteTx(ctx, func(tx *sql.Tx) error {
			return insertPushActions(ctx, tx, nil, []PushSent{{UserID: "@bob:x", RoomID: "!room:x", ThreadID: thread, StreamPos: pos}})
		}); err != nil {
			t.Fatal(err)
		}
	}
	sent("", 4)
	if badge, err := db.PushBadge(ctx, "@bob:x"); err != nil || badge != 2 {
		t.Fatalf("bob's badge with the thread unread %d, %v; want 2", badge, err)
	}
	sent("$ev2", 3)
	if badge, err := db.PushBadge(ctx, "@bob:x"); err != nil || badge != 1 {
		t.Fatalf("bob's badge after reading %d, %v; want 1 (the invite)", badge, err)
	}
	// Carol's counts are her own.
	if m, _, err := db.UnreadPushActions(ctx, "!room:x", id.UserID("@carol:x"), ReadPositions{}); err != nil || m.Notify != 2 {
		t.Fatalf("carol's counts %+v, %v; want 2", m, err)
	}
}
