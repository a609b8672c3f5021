package edus_test

import (
	"context"
	"errors"
	"testing"

	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/federation/edus"
)

// Inbound m.direct_to_device: "*" reaches every device of the recipient;
// bad input and forged senders store nothing; the same message_id from
// another origin is another message.
func TestDirectToDevice(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	alice2 := f.srv.Login("alice", "correct horse battery staple")
	db := f.srv.DB()
	count := func(d id.DeviceID) int {
		t.Helper()
		n, err := db.CountToDevice(ctx, f.alice.UserID, d)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	apply := func(origin string, content map[string]any) error {
		return f.apply.ApplyEDU(ctx, origin, eduOf(t, edus.TypeDirectToDevice, content))
	}
	msg := func(sender id.UserID, mid string, devices map[string]any) map[string]any {
		return map[string]any{"sender": sender, "type": "m.room_key_request", "message_id": mid,
			"messages": map[id.UserID]any{f.alice.UserID: devices}}
	}

	if err := apply(remote, msg(bob, "m1", map[string]any{"*": map[string]any{"a": 1}})); err != nil {
		t.Fatal(err)
	}
	if count(f.alice.DeviceID) != 1 || count(alice2.DeviceID) != 1 {
		t.Fatalf("\"*\" reached %d and %d devices' queues", count(f.alice.DeviceID), count(alice2.DeviceID))
	}
	// The same message_id from another server is not a duplicate.
	if err := apply("other.test", msg("@eve:other.test", "m1", map[string]any{string(f.alice.DeviceID): map[string]any{}})); err != nil {
		t.Fatal(err)
	}
	if count(f.alice.DeviceID) != 2 {
		t.Fatal("a message_id of one server hid another server's message")
	}

	bad := []struct {
		name   string
		origin string
		c      map[string]any
		forged bool
	}{
		{"sender of another server", remote, msg("@eve:other.test", "m2", map[string]any{"*": map[string]any{}}), true},
		{"sender of this server", remote, msg(f.alice.UserID, "m3", map[string]any{"*": map[string]any{}}), true},
		{"no message_id", remote, msg(bob, "", map[string]any{"*": map[string]any{}}), false},
		{"no type", remote, map[string]any{"sender": bob, "message_id": "m4", "messages": map[id.UserID]any{f.alice.UserID: map[string]any{"*": map[string]any{}}}}, false},
		{"content not an object", remote, msg(bob, "m5", map[string]any{"*": "text"}), false},
		{"messages not a map", remote, map[string]any{"sender": bob, "type": "x", "message_id": "m6", "messages": []int{1}}, false},
	}
	for _, b := range bad {
		err := apply(b.origin, b.c)
		if err == nil {
			t.Errorf("%s: accepted", b.name)
		}
		if b.forged && !errors.Is(err, edus.ErrNotAllowed) {
			t.Errorf("%s: %v, want ErrNotAllowed", b.name, err)
		}
	}
	if count(f.alice.DeviceID) != 2 || count(alice2.DeviceID) != 1 {
		t.Fatal("refused EDUs stored messages")
	}
}
