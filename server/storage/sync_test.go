package storage

import (
	"context"
	"math"
	"testing"
)

// TestMembershipsCarryRoomLastPos: each membership comes with its room's
// latest stream position, which a sync compares with its range; a room
// none of whose events was recorded says "maybe later", never "nothing
// new".
func TestMembershipsCarryRoomLastPos(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	n := 0
	searchTestEvent(t, db, &n, "m.room.create", new(string), `{}`)
	alice := "@alice:x"
	searchTestEvent(t, db, &n, "m.room.member", &alice, `{"membership":"join"}`)
	searchTestEvent(t, db, &n, "m.room.message", nil, `{"body":"hi"}`)
	check := func(step string, want int64) {
		t.Helper()
		ms, err := db.MembershipsAt(ctx, "@alice:x", math.MaxInt64)
		if err != nil || len(ms) != 1 {
			t.Fatalf("%s: memberships %+v, %v", step, ms, err)
		}
		if ms[0].RoomLastPos != want {
			t.Fatalf("%s: last position %d, want %d", step, ms[0].RoomLastPos, want)
		}
	}
	check("after a message", 3)
	execSQL(t, db, `UPDATE rooms SET last_pos = 0`)
	check("with no event recorded", math.MaxInt64)
}
