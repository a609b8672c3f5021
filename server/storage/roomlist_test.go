package storage

import (
	"context"
	"testing"
)

// TestRoomListColumns checks that migration 0013 fills the room list's
// columns from the events an older version stored, and that persisting
// keeps them current: a message bumps the room, a reaction only moves its
// last position.
func TestRoomListColumns(t *testing.T) {
	ctx := context.Background()
	db, path := openBefore(t, "room_list")
	oldSchemaEvent(t, db, 1, "m.room.create", `{"type":"m.space"}`)
	oldSchemaEvent(t, db, 2, "m.room.member", `{"membership":"join"}`)
	oldSchemaEvent(t, db, 3, "m.room.message", `{"body":"hi"}`)
	oldSchemaEvent(t, db, 4, "m.reaction", `{}`)
	if _, err := db.writer.ExecContext(ctx, `UPDATE events SET state_key = '@alice:x', membership = 'join' WHERE event_id = '$ev2'`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.writer.ExecContext(ctx, `INSERT INTO current_state (room_id, type, state_key, event_id, membership) VALUES ('!room:x', 'm.room.member', '@alice:x', '$ev2', 'join')`); err != nil {
		t.Fatal(err)
	}
	db = reopen(t, db, path)
	e := onlyEntry(t, db)
	if e.BumpPos != 3 || e.LastPos != 4 || e.RoomType != "m.space" || e.Encrypted || e.Membership != "join" || e.MemberEvent != "$ev2" || e.MemberPos != 2 {
		t.Fatalf("backfilled entry %+v, want bump 3, last 4, m.space, joined by $ev2", e)
	}

	n := 10
	searchTestEvent(t, db, &n, "m.reaction", nil, `{}`)
	if e := onlyEntry(t, db); e.BumpPos != 3 || e.LastPos <= 4 {
		t.Fatalf("after a reaction %+v: last moves, bump does not", e)
	}
	empty := ""
	searchTestEvent(t, db, &n, "m.room.encrypted", nil, `{}`)
	searchTestEvent(t, db, &n, "m.room.encryption", &empty, `{"algorithm":"m.megolm.v1.aes-sha2"}`)
	if e := onlyEntry(t, db); e.BumpPos != e.LastPos-1 {
		t.Fatalf("after an encrypted message %+v: bump should be the message", e)
	}
}

func onlyEntry(t *testing.T, db *DB) RoomListEntry {
	t.Helper()
	entries, err := db.RoomListEntries(context.Background(), "@alice:x")
	if err != nil || len(entries) != 1 {
		t.Fatalf("room list: %v %+v", err, entries)
	}
	return entries[0]
}
