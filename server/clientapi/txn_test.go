package clientapi_test

import (
	"context"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"

	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
)

// TestTxnIDScopedToPath: the spec scopes transaction IDs to the device and
// the request path. The same ID reused in another room, for another event
// type or for a redaction after a send makes a new event each time; only a
// retry of the same path gets the first event back.
func TestTxnIDScopedToPath(t *testing.T) {
	ts, alice, bob, roomA := pairInRoom(t, "A")
	roomB := sharedRoom(t, alice, bob, "B")
	ctx := context.Background()
	msg := map[string]any{"msgtype": "m.text", "body": "hi"}
	inA, err := bob.SendMessageEvent(ctx, roomA, event.EventMessage, msg, mautrix.ReqSendEvent{TransactionID: "same"})
	if err != nil {
		t.Fatal(err)
	}
	inB, err := bob.SendMessageEvent(ctx, roomB, event.EventMessage, msg, mautrix.ReqSendEvent{TransactionID: "same"})
	if err != nil || inB.EventID == inA.EventID {
		t.Fatalf("same txn ID in another room: %v, %v; want a new event", inB, err)
	}
	if ev, err := alice.GetEvent(ctx, roomB, inB.EventID); err != nil || ev.RoomID != roomB {
		t.Fatalf("the second room's event: %+v, %v", ev, err)
	}
	reaction := map[string]any{"m.relates_to": map[string]any{"rel_type": "m.annotation", "event_id": inA.EventID, "key": "👍"}}
	react, err := bob.SendMessageEvent(ctx, roomA, event.EventReaction, reaction, mautrix.ReqSendEvent{TransactionID: "same"})
	if err != nil || react.EventID == inA.EventID {
		t.Fatalf("same txn ID for m.reaction: %v, %v; want a new event", react, err)
	}
	red, err := bob.RedactEvent(ctx, roomA, inA.EventID, mautrix.ReqRedact{TxnID: "same"})
	if err != nil || red.EventID == inA.EventID || red.EventID == react.EventID {
		t.Fatalf("same txn ID for /redact: %v, %v; want a new event", red, err)
	}
	if ev, err := alice.GetEvent(ctx, roomA, inA.EventID); err != nil || ev.Unsigned.RedactedBecause == nil {
		t.Fatalf("the message was not redacted: %+v, %v", ev, err)
	}
	// Retries of each path still answer with their first event.
	for _, c := range []struct {
		name  string
		send  func() (*mautrix.RespSendEvent, error)
		first *mautrix.RespSendEvent
	}{
		{"send in A", func() (*mautrix.RespSendEvent, error) {
			return bob.SendMessageEvent(ctx, roomA, event.EventMessage, msg, mautrix.ReqSendEvent{TransactionID: "same"})
		}, inA},
		{"send in B", func() (*mautrix.RespSendEvent, error) {
			return bob.SendMessageEvent(ctx, roomB, event.EventMessage, msg, mautrix.ReqSendEvent{TransactionID: "same"})
		}, inB},
		{"reaction", func() (*mautrix.RespSendEvent, error) {
			return bob.SendMessageEvent(ctx, roomA, event.EventReaction, reaction, mautrix.ReqSendEvent{TransactionID: "same"})
		}, react},
		{"redaction", func() (*mautrix.RespSendEvent, error) {
			r, err := bob.RedactEvent(ctx, roomA, inA.EventID, mautrix.ReqRedact{TxnID: "same"})
			if err != nil {
				return nil, err
			}
			return &mautrix.RespSendEvent{EventID: r.EventID}, nil
		}, &mautrix.RespSendEvent{EventID: red.EventID}},
	} {
		again, err := c.send()
		if err != nil || again.EventID != c.first.EventID {
			t.Errorf("retry of %s: %v, %v; want %s", c.name, again, err, c.first.EventID)
		}
	}
	// Another device of the same user has its own transactions.
	bob2 := ts.Login("bob", testserver.DefaultPassword)
	other, err := bob2.SendMessageEvent(ctx, roomA, event.EventMessage, msg, mautrix.ReqSendEvent{TransactionID: "same"})
	if err != nil || other.EventID == inA.EventID {
		t.Fatalf("another device's txn: %v, %v; want a new event", other, err)
	}
}
