package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"math"
	"strings"
	"testing"

	"maunium.net/go/mautrix/id"
)

// TestCachedPositionsFollowWrites: the stream positions a sync reads from
// memory are the database's after every kind of write, and a message's
// commit moves them itself, so a long-poll woken by it reads nothing again.
func TestCachedPositionsFollowWrites(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	check := func(step string) Positions {
		t.Helper()
		got, err := db.StreamPositions(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var want Positions
		if err := db.reader.QueryRowContext(ctx, selectPositions).Scan(&want.Events, &want.AccountData, &want.Receipts, &want.ToDevice, &want.DeviceLists, &want.Presence); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("%s: positions %+v, the database has %+v", step, got, want)
		}
		return got
	}
	check("empty")
	addDevices(t, db, "@alice:x/A", "@bob:x/B")
	n := 0
	searchTestEvent(t, db, &n, "m.room.create", new(string), `{}`)
	check("after the first event")
	searchTestEvent(t, db, &n, "m.room.message", nil, `{"body":"hi"}`)
	if _, ok := db.positions.get(); !ok {
		t.Fatal("a message's commit left the positions to be read again")
	}
	before := check("after a message")

	if _, err := db.SetAccountData(ctx, "@alice:x", "", "m.direct", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if p := check("after account data"); p.AccountData <= before.AccountData {
		t.Fatalf("account data did not move: %+v", p)
	}
	if _, err := db.PutReceipt(ctx, Receipt{RoomID: "!room:x", UserID: "@alice:x", Type: "m.read", EventID: "$ev2", TS: 1}, 2); err != nil {
		t.Fatal(err)
	}
	check("after a receipt")
	if _, _, err := db.SendToDevice(ctx, &ToDeviceSend{Sender: "@alice:x", SenderDevice: "A", Type: "m.test", TxnID: "t1", Now: 1,
		Messages: []ToDeviceMessage{{UserID: "@bob:x", DeviceID: "B", Content: json.RawMessage(`{}`)}}}); err != nil {
		t.Fatal(err)
	}
	check("after a to-device message")
	if err := db.AddDeviceListChanges(ctx, []DeviceListChange{{UserID: "@alice:x"}}); err != nil {
		t.Fatal(err)
	}
	check("after a device list change")
	if err := db.PutPresence(ctx, &Presence{UserID: "@alice:x", State: "online", LastActiveTS: 1, LastSyncTS: 1}, true); err != nil {
		t.Fatal(err)
	}
	check("after presence")

	// A batch that fails stores nothing, and the positions say so.
	dup := &NewEvent{Event: Event{EventID: "$ev2", RoomID: "!room:x", Type: "m.room.message", Sender: "@alice:x", Depth: 9, PDU: []byte(`{}`)}}
	b := &EventBatch{Events: []*NewEvent{dup}}
	if err := db.PersistBatches(ctx, []*EventBatch{b}, 0); err != nil || b.Err == nil {
		t.Fatalf("a duplicate event: %v, batch %v", err, b.Err)
	}
	check("after a failed batch")
}

// TestMembershipReadsSkippedOnlyWithoutMembership: a sync's membership
// reads are skipped for a range holding messages only, and not once a
// membership event is stored in it.
func TestMembershipReadsSkippedOnlyWithoutMembership(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	n := aliceJoined(t, db)
	from, err := db.StreamPositions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	searchTestEvent(t, db, &n, "m.room.message", nil, `{"body":"hi"}`)
	if db.positions.membershipAfter(from.Events) {
		t.Fatal("a message alone counts as a membership change")
	}
	bob := "@bob:x"
	searchTestEvent(t, db, &n, "m.room.member", &bob, `{"membership":"join"}`)
	if !db.positions.membershipAfter(from.Events) {
		t.Fatal("a join is not seen as a membership change")
	}
	to, err := db.StreamPositions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	deltas, err := db.OwnMemberDeltas(ctx, id.UserID(bob), from.Events, to.Events)
	if err != nil || len(deltas) != 1 {
		t.Fatalf("bob's join: %+v, %v", deltas, err)
	}
}

// TestMembershipsCarryRoomLastPos: each membership comes with its room's
// latest stream position, which a sync compares with its range; a room
// none of whose events was recorded says "maybe later", never "nothing
// new".
func TestMembershipsCarryRoomLastPos(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	n := aliceJoined(t, db)
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

// aliceJoined stores !room:x's create event and @alice:x's join, and
// returns how many events it stored (searchTestEvent's count).
func aliceJoined(t *testing.T, db *DB) int {
	t.Helper()
	n := 0
	searchTestEvent(t, db, &n, "m.room.create", new(string), `{}`)
	alice := "@alice:x"
	searchTestEvent(t, db, &n, "m.room.member", &alice, `{"membership":"join"}`)
	return n
}

// TestKeyCountsFollowClaims: the key counts every sync reports stay in
// memory across messages, and a claim by someone else shows at once.
func TestKeyCountsFollowClaims(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	addDevices(t, db, "@alice:x/A")
	up := &KeyUpload{UserID: "@alice:x", DeviceID: "A", NowTS: 1, OneTimeKeys: []UploadedKey{
		{Algorithm: "signed_curve25519", KeyID: "k1", JSON: json.RawMessage(`{"key":"1"}`)},
		{Algorithm: "signed_curve25519", KeyID: "k2", JSON: json.RawMessage(`{"key":"2"}`)},
	}}
	if _, _, err := db.UploadKeys(ctx, up); err != nil {
		t.Fatal(err)
	}
	counts, fallback, err := db.DeviceKeyCounts(ctx, "@alice:x", "A")
	if err != nil || counts["signed_curve25519"] != 2 || len(fallback) != 0 {
		t.Fatalf("after the upload: %v %v %v", counts, fallback, err)
	}
	counts["signed_curve25519"] = 99 // the caller's copy
	n := 0
	searchTestEvent(t, db, &n, "m.room.create", new(string), `{}`)
	if e, ok := db.keyCounts.get(keyCountsKey{"@alice:x", "A"}); !ok || e.otk["signed_curve25519"] != 2 {
		t.Fatalf("after a message the counts are %v (cached %v), want 2 still in memory", e.otk, ok)
	}
	if _, err := db.ClaimKeys(ctx, []KeyClaim{{UserID: "@alice:x", DeviceID: "A", Algorithm: "signed_curve25519"}}); err != nil {
		t.Fatal(err)
	}
	if counts, _, err := db.DeviceKeyCounts(ctx, "@alice:x", "A"); err != nil || counts["signed_curve25519"] != 1 {
		t.Fatalf("after a claim: %v %v", counts, err)
	}
}

// addDevices makes users and their devices, named "@user:x/DEVICE".
func addDevices(t *testing.T, db *DB, devices ...string) {
	t.Helper()
	ctx := context.Background()
	err := db.WriteTx(ctx, func(tx *sql.Tx) error {
		for _, d := range devices {
			user, device, _ := strings.Cut(d, "/")
			if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO users (user_id, created_ts) VALUES ($1, 1)`, user); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO devices (user_id, device_id, created_ts) VALUES ($1, $2, 1)`, user, device); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestPresenceRefreshKeepsCaches: a sync's once-a-minute "last synced"
// refresh stores the new time and leaves the caches every sync reads; a
// presence change moves the stream and drops them.
func TestPresenceRefreshKeepsCaches(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	n := 0
	searchTestEvent(t, db, &n, "m.room.create", new(string), `{}`)
	p := &Presence{UserID: "@alice:x", State: "online", LastActiveTS: 1, LastSyncTS: 1}
	if err := db.PutPresence(ctx, p, true); err != nil {
		t.Fatal(err)
	}
	before, err := db.StreamPositions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.UnreadNotifications(ctx, "!room:x", "@alice:x"); err != nil {
		t.Fatal(err)
	}
	p.LastSyncTS = 60001
	if err := db.PutPresence(ctx, p, false); err != nil {
		t.Fatal(err)
	}
	if got, err := db.GetPresence(ctx, "@alice:x"); err != nil || got.LastSyncTS != 60001 || got.StreamID != p.StreamID {
		t.Fatalf("after the refresh: %+v, %v", got, err)
	}
	if _, ok := db.positions.get(); !ok {
		t.Fatal("a refresh dropped the cached positions")
	}
	if _, ok := db.unread.get(unreadKey{"@alice:x", "!room:x"}); !ok {
		t.Fatal("a refresh dropped the cached unread counts")
	}
	p.State = "unavailable"
	if err := db.PutPresence(ctx, p, true); err != nil {
		t.Fatal(err)
	}
	if _, ok := db.positions.get(); ok {
		t.Fatal("a presence change left the positions cached")
	}
	if after, err := db.StreamPositions(ctx); err != nil || after.Presence <= before.Presence {
		t.Fatalf("presence position %d after a change, %d before (%v)", after.Presence, before.Presence, err)
	}
}
