package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"go.mau.fi/util/jsontime"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	mfed "maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
)

var toDeviceTest = event.Type{Type: "org.example.fed_test", Class: event.ToDeviceEventType}

// toDeviceReader long-polls one client's /sync and keeps every to-device
// message it has been given.
type toDeviceReader struct {
	t     *testing.T
	c     *mautrix.Client
	since string
	got   []*event.Event
}

// until syncs until a to-device message whose "n" is n has arrived (or
// fails after a deadline), and returns it.
func (r *toDeviceReader) until(n string) *event.Event {
	r.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		for _, ev := range r.got {
			if v, _ := ev.Content.Raw["n"].(string); v == n {
				return ev
			}
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%s %s never got to-device message %q (got %d)", r.c.UserID, r.c.DeviceID, n, len(r.got))
		}
		resp, err := r.c.SyncRequest(context.Background(), 5000, r.since, "", false, event.PresenceOnline)
		if err != nil {
			r.t.Fatalf("sync: %v", err)
		}
		r.since = resp.NextBatch
		r.got = append(r.got, resp.ToDevice.Events...)
	}
}

// count is how many messages with "n" = n arrived.
func (r *toDeviceReader) count(n string) int {
	c := 0
	for _, ev := range r.got {
		if v, _ := ev.Content.Raw["n"].(string); v == n {
			c++
		}
	}
	return c
}

// putToDevice sends PUT /sendToDevice with a chosen transaction ID.
func putToDevice(t *testing.T, c *mautrix.Client, txnID string, msgs map[id.UserID]map[id.DeviceID]map[string]any) {
	t.Helper()
	u := c.BuildClientURL("v3", "sendToDevice", toDeviceTest.Type, txnID)
	if _, err := c.MakeRequest(context.Background(), http.MethodPut, u, map[string]any{"messages": msgs}, nil); err != nil {
		t.Fatalf("sendToDevice %s: %v", txnID, err)
	}
}

// TestFederationToDevice: alice on A sends to-device messages to one of
// bob's devices on B and to all of them ("*"); each arrives once, with
// alice as sender and the type she sent, in /sync and in sliding sync's
// to-device extension; a retried client request delivers nothing twice.
func TestFederationToDevice(t *testing.T) {
	a, b := fedPair(t)
	alice := a.RegisterUser("alice")
	bob1 := b.RegisterUser("bob")
	bob2 := b.Login("bob", testserver.DefaultPassword)
	r1 := &toDeviceReader{t: t, c: bob1}
	r2 := &toDeviceReader{t: t, c: bob2}

	putToDevice(t, alice, "t1", map[id.UserID]map[id.DeviceID]map[string]any{bob1.UserID: {bob1.DeviceID: {"n": "one"}}})
	// The same request again (a client retrying after a lost answer).
	putToDevice(t, alice, "t1", map[id.UserID]map[id.DeviceID]map[string]any{bob1.UserID: {bob1.DeviceID: {"n": "one"}}})
	ev := r1.until("one")
	if ev.Sender != alice.UserID || ev.Type.Type != toDeviceTest.Type {
		t.Fatalf("got sender %s type %s, want %s %s", ev.Sender, ev.Type.Type, alice.UserID, toDeviceTest.Type)
	}
	putToDevice(t, alice, "t2", map[id.UserID]map[id.DeviceID]map[string]any{bob1.UserID: {"*": {"n": "all"}}})
	r1.until("all")
	r2.until("all")
	// Messages from one sender device arrive in order, so once "all" is
	// here a second copy of "one" would be too.
	if n := r1.count("one"); n != 1 {
		t.Fatalf("message one arrived %d times", n)
	}
	if n := r2.count("one"); n != 0 {
		t.Fatalf("message for device 1 reached device 2")
	}

	// Sliding sync's to-device extension delivers them the same way.
	bob3 := b.Login("bob", testserver.DefaultPassword)
	putToDevice(t, alice, "t3", map[id.UserID]map[id.DeviceID]map[string]any{bob3.UserID: {bob3.DeviceID: {"n": "sliding"}}})
	ev = slidingToDevice(t, bob3, "sliding")
	if ev.Sender != alice.UserID || ev.Type.Type != toDeviceTest.Type {
		t.Fatalf("sliding sync: got sender %s type %s", ev.Sender, ev.Type.Type)
	}
}

// slidingToDevice long-polls sliding sync with only the to-device
// extension until a message with "n" = n arrives.
func slidingToDevice(t *testing.T, c *mautrix.Client, n string) *event.Event {
	t.Helper()
	const ss = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"
	deadline := time.Now().Add(30 * time.Second)
	pos, since := "", ""
	for time.Now().Before(deadline) {
		q := url.Values{"timeout": {"5000"}}
		if pos != "" {
			q.Set("pos", pos)
		}
		u := c.HomeserverURL.String() + ss + "?" + q.Encode()
		td := map[string]any{"enabled": true}
		if since != "" {
			td["since"] = since
		}
		var resp struct {
			Pos        string `json:"pos"`
			Extensions struct {
				ToDevice *struct {
					NextBatch string         `json:"next_batch"`
					Events    []*event.Event `json:"events"`
				} `json:"to_device"`
			} `json:"extensions"`
		}
		if _, err := c.MakeRequest(context.Background(), http.MethodPost, u, map[string]any{"extensions": map[string]any{"to_device": td}}, &resp); err != nil {
			t.Fatalf("sliding sync: %v", err)
		}
		pos = resp.Pos
		if td := resp.Extensions.ToDevice; td != nil {
			since = td.NextBatch
			for _, ev := range td.Events {
				if v, _ := ev.Content.Raw["n"].(string); v == n {
					return ev
				}
			}
		}
	}
	t.Fatalf("sliding sync never got to-device message %q", n)
	return nil
}

// sendEDU sends, signed by from, one transaction holding one
// m.direct_to_device EDU to to.
func sendEDU(t *testing.T, from, to *testserver.Server, txnID string, content map[string]any) {
	t.Helper()
	edu, err := json.Marshal(map[string]any{"edu_type": "m.direct_to_device", "content": content})
	if err != nil {
		t.Fatal(err)
	}
	_, err = from.Federation().Client().SendTransaction(context.Background(), &mfed.ReqSendTransaction{
		Destination: to.ServerName(), Origin: from.ServerName(), TxnID: txnID,
		OriginServerTS: jsontime.UnixMilliNow(), PDUs: []json.RawMessage{}, EDUs: []json.RawMessage{edu},
	})
	if err != nil {
		t.Fatalf("send transaction %s: %v", txnID, err)
	}
}

func directToDevice(sender id.UserID, messageID string, to *mautrix.Client, n string) map[string]any {
	return map[string]any{
		"sender": sender, "type": toDeviceTest.Type, "message_id": messageID,
		"messages": map[id.UserID]map[id.DeviceID]map[string]any{to.UserID: {to.DeviceID: {"n": n}}},
	}
}

// TestFederationToDeviceInboundChecks: an m.direct_to_device EDU resent in
// another transaction (same message_id) is delivered once, and one whose
// sender is not a user of the server that sent it is refused.
func TestFederationToDeviceInboundChecks(t *testing.T) {
	a, b := fedPair(t)
	bob := b.RegisterUser("bob")
	r := &toDeviceReader{t: t, c: bob}
	alice := id.NewUserID("alice", a.ServerName())

	sendEDU(t, a, b, "txn-1", directToDevice(alice, "msg-1", bob, "once"))
	sendEDU(t, a, b, "txn-2", directToDevice(alice, "msg-1", bob, "once"))
	// A forged message: A speaks for a user of B, and for one of a third
	// server.
	sendEDU(t, a, b, "txn-3", directToDevice(id.NewUserID("carol", b.ServerName()), "msg-2", bob, "forged"))
	sendEDU(t, a, b, "txn-4", directToDevice("@mallory:elsewhere.example", "msg-3", bob, "forged"))
	// Recipients of other servers are ignored, not delivered here.
	sendEDU(t, a, b, "txn-5", map[string]any{
		"sender": alice, "type": toDeviceTest.Type, "message_id": "msg-4",
		"messages": map[string]any{"@dave:elsewhere.example": map[string]any{"DEV": map[string]any{"n": "elsewhere"}}},
	})
	sendEDU(t, a, b, "txn-6", directToDevice(alice, "msg-5", bob, "last"))
	r.until("last")
	if n := r.count("once"); n != 1 {
		t.Fatalf("message resent under the same message_id arrived %d times", n)
	}
	if n := r.count("forged"); n != 0 {
		t.Fatalf("a forged to-device message was delivered %d times", n)
	}
	if n := r.count("elsewhere"); n != 0 {
		t.Fatalf("a message for another server's user was delivered")
	}
}

// TestFederationToDeviceServerDownAndBack: a to-device message sent while
// the recipient's server is down waits in the sender's queue and arrives,
// once, after it is back.
func TestFederationToDeviceServerDownAndBack(t *testing.T) {
	a, b := fedPair(t)
	ctx := context.Background()
	alice := a.RegisterUser("alice")
	bob := b.RegisterUser("bob")
	b.Down()
	putToDevice(t, alice, "while-down", map[id.UserID]map[id.DeviceID]map[string]any{bob.UserID: {bob.DeviceID: {"n": "waited"}}})
	putToDevice(t, alice, "while-down-2", map[id.UserID]map[id.DeviceID]map[string]any{bob.UserID: {"*": {"n": "waited too"}}})
	dests, err := a.Outbound().Destinations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	queued := 0
	for _, d := range dests {
		if d.Name == b.Config.ServerName {
			queued = d.Queued
		}
	}
	if queued != 2 {
		t.Fatalf("%d EDUs queued for the server that is down, want 2", queued)
	}
	b.Up()
	// The same account and device, at B's new client address.
	u, err := url.Parse(b.URL)
	if err != nil {
		t.Fatal(err)
	}
	bob.HomeserverURL = u
	// B's first transaction tells A it is back, which ends A's backoff.
	putToDevice(t, bob, "back", map[id.UserID]map[id.DeviceID]map[string]any{alice.UserID: {"*": {"n": "back"}}})
	r := &toDeviceReader{t: t, c: bob}
	r.until("waited too")
	if got := [2]int{r.count("waited"), r.count("waited too")}; got != [2]int{1, 1} {
		t.Fatalf("messages arrived %v times, want once each", got)
	}
	// In the order sent.
	if v, _ := r.got[0].Content.Raw["n"].(string); v != "waited" {
		t.Fatalf("first message is %q", v)
	}
	(&toDeviceReader{t: t, c: alice}).until("back")
}
