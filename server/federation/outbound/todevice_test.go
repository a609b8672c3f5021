package outbound_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/federation/outbound"
	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
	"github.com/palpo-im/palpo-desktop/server/syncer"
	"github.com/palpo-im/palpo-desktop/server/todevice"
)

// To-device EDUs queued between presence changes (which coalesce) all go
// out, in the order sent, each once, split into transactions of 100; a
// client's retried request queues nothing twice.
func TestToDeviceEDUsKeepOrder(t *testing.T) {
	srv := testserver.New(t)
	alice, _ := roomWithRemote(t, srv)
	f := newFake()
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	s := newSender(t, srv, f, c)
	srv.Sync().Ephemeral = s
	t.Cleanup(func() { srv.Sync().Ephemeral = nil })
	td := todevice.New(srv.DB(), srv.ServerName(), srv.Sync().Notifier(), testLog(t))
	td.Federation = s
	f.setDown(remote, true)
	ctx := context.Background()
	bob := id.UserID("@bob:" + remote)
	const n = 150
	for i := range n {
		state := syncer.PresenceOnline
		if i%2 == 1 {
			state = syncer.PresenceUnavailable
		}
		if err := srv.Sync().SetPresence(ctx, alice.UserID, state, nil, true); err != nil {
			t.Fatal(err)
		}
		req := &todevice.Request{Sender: alice.UserID, SenderDevice: alice.DeviceID, Type: "org.example.test",
			TxnID: fmt.Sprint("txn", i), Messages: map[id.UserID]map[id.DeviceID]json.RawMessage{
				bob: {"BOBDEVICE": json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))},
			}}
		if err := td.Send(ctx, req); err != nil {
			t.Fatal(err)
		}
		if i == 3 {
			// The client retries a request whose answer it lost.
			if err := td.Send(ctx, req); err != nil {
				t.Fatal(err)
			}
		}
	}
	if st := status(t, s, remote); st.Queued != n+1 {
		t.Fatalf("queued %d EDUs, want %d to-device and the latest presence", st.Queued, n+1)
	}
	f.setDown(remote, false)
	c.Advance(2 * time.Hour)
	flush(t, s)
	var got []int
	ids := map[string]bool{}
	for _, txn := range f.delivered(remote) {
		if len(txn.EDUs) > outbound.MaxEDUsPerTxn {
			t.Fatalf("transaction of %d EDUs", len(txn.EDUs))
		}
		for _, raw := range txn.EDUs {
			var e struct {
				Type    string                  `json:"edu_type"`
				Content todevice.DirectToDevice `json:"content"`
			}
			if err := json.Unmarshal(raw, &e); err != nil {
				t.Fatal(err)
			}
			if e.Type != outbound.EDUDirectToDevice {
				continue
			}
			if e.Content.Sender != alice.UserID || e.Content.Type != "org.example.test" || e.Content.MessageID == "" || ids[e.Content.MessageID] {
				t.Fatalf("bad EDU: %s", raw)
			}
			ids[e.Content.MessageID] = true
			var m struct{ N int }
			if err := json.Unmarshal(e.Content.Messages[bob]["BOBDEVICE"], &m); err != nil {
				t.Fatal(err)
			}
			got = append(got, m.N)
		}
	}
	if len(got) != n {
		t.Fatalf("%d to-device EDUs delivered, want %d", len(got), n)
	}
	for i, v := range got {
		if v != i {
			t.Fatalf("to-device EDU %d carries message %d: out of order", i, v)
		}
	}
	if st := status(t, s, remote); st.Queued != 0 {
		t.Fatalf("%d EDUs left in the queue", st.Queued)
	}
}
