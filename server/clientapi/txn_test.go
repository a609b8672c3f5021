package clientapi_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

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

// TestTxnIDRememberedForADay: a retry is answered with the first event,
// across restarts, for a day, as Synapse keeps transaction IDs; after that
// the same ID sends a new event (the old record does not get in its way),
// whether the server restarted meanwhile or forgot the ID by itself.
func TestTxnIDRememberedForADay(t *testing.T) {
	ts, _, bob, roomID := pairInRoom(t, "R")
	ctx := context.Background()
	var now atomic.Int64
	now.Store(time.Now().UnixMilli())
	clock := func() time.Time { return time.UnixMilli(now.Load()) }
	ts.Rooms().Now = clock
	later := func(d time.Duration) { now.Add(d.Milliseconds()) }
	restart := func() {
		ts.Restart()
		ts.Rooms().Now = clock
		bob.HomeserverURL = mustParse(t, ts.URL)
	}
	send := func(txn string) id.EventID {
		t.Helper()
		resp, err := bob.SendMessageEvent(ctx, roomID, event.EventMessage, map[string]any{"msgtype": "m.text", "body": txn}, mautrix.ReqSendEvent{TransactionID: txn})
		if err != nil {
			t.Fatalf("send %s: %v", txn, err)
		}
		return resp.EventID
	}

	first := send("t1")
	later(23 * time.Hour)
	restart()
	if again := send("t1"); again != first {
		t.Fatalf("retry 23 hours on, after a restart: %s, want the first event %s", again, first)
	}
	later(2 * time.Hour)
	restart()
	second := send("t1")
	if second == first {
		t.Fatal("a retry 25 hours on, after a restart, was answered with the first event")
	}
	if again := send("t1"); again != second {
		t.Fatalf("retry of the new event: %s, want %s", again, second)
	}

	// No restart: the server forgets old transactions when it goes quiet.
	later(25 * time.Hour)
	recent := send("t2")
	deadline := time.Now().Add(10 * time.Second)
	for {
		evID, err := ts.DB().TxnEvent(ctx, bob.UserID, bob.DeviceID, roomID, "send/"+event.EventMessage.Type, "t1")
		if err != nil {
			t.Fatal(err)
		}
		if evID == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a transaction 25 hours old is still recorded")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if third := send("t1"); third == second || third == first {
		t.Fatalf("a retry 25 hours on was answered with an earlier event %s", third)
	}
	// What the server forgot is only what the window let go.
	if again := send("t2"); again != recent {
		t.Fatalf("retry of a transaction just sent: %s, want %s", again, recent)
	}
}
