package outbound_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	mfed "maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/federation/internal/fedtest"
	"github.com/palpo-im/palpo-desktop/server/federation/outbound"
	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
	"github.com/palpo-im/palpo-desktop/server/rooms"
	"github.com/palpo-im/palpo-desktop/server/syncer"
)

var _ syncer.EphemeralObserver = (*outbound.Sender)(nil)

const remote = "remote.test"

// fakeSender records every transaction attempt; a destination marked down
// fails them.
type fakeSender struct {
	mu       sync.Mutex
	down     map[string]bool
	attempts []attempt
}

type attempt struct {
	req mfed.ReqSendTransaction
	ok  bool
}

func newFake() *fakeSender { return &fakeSender{down: map[string]bool{}} }

func (f *fakeSender) SendTransaction(_ context.Context, req *mfed.ReqSendTransaction) (*mfed.RespSendTransaction, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cp := *req
	cp.PDUs = slices.Clone(req.PDUs)
	cp.EDUs = slices.Clone(req.EDUs)
	if f.down[req.Destination] {
		f.attempts = append(f.attempts, attempt{cp, false})
		return nil, errors.New("connection refused")
	}
	f.attempts = append(f.attempts, attempt{cp, true})
	return &mfed.RespSendTransaction{PDUs: map[id.EventID]mfed.PDUProcessingResult{}}, nil
}

func (f *fakeSender) setDown(dest string, down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down[dest] = down
}

// tried returns the attempts to a destination, failed ones too.
func (f *fakeSender) tried(dest string) []attempt {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []attempt
	for _, a := range f.attempts {
		if a.req.Destination == dest {
			out = append(out, a)
		}
	}
	return out
}

// delivered returns the transactions a destination answered 200.
func (f *fakeSender) delivered(dest string) []mfed.ReqSendTransaction {
	var out []mfed.ReqSendTransaction
	for _, a := range f.tried(dest) {
		if a.ok {
			out = append(out, a.req)
		}
	}
	return out
}

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// newSender builds a sender on the server's database with a fixed clock
// and no jitter (the factor is exactly 1).
func newSender(t *testing.T, srv *testserver.Server, f *fakeSender, c *clock) *outbound.Sender {
	s := outbound.New(srv.DB(), srv.ServerName(), f, testLog(t))
	if c != nil {
		s.Now = c.Now
	}
	s.Jitter = func() float64 { return 0.5 }
	return s
}

// roomWithRemote makes a room of alice's that @bob:remote.test has joined.
func roomWithRemote(t *testing.T, srv *testserver.Server) (*mautrix.Client, id.RoomID) {
	t.Helper()
	alice := srv.RegisterUser("alice")
	resp, err := alice.CreateRoom(context.Background(), &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	fedtest.StoreRemoteMember(t, srv.DB(), resp.RoomID, id.UserID("@bob:"+remote), "join")
	return alice, resp.RoomID
}

func send(t *testing.T, c *mautrix.Client, roomID id.RoomID, body string) id.EventID {
	t.Helper()
	resp, err := c.SendText(context.Background(), roomID, body)
	if err != nil {
		t.Fatalf("send %q: %v", body, err)
	}
	return resp.EventID
}

// bodies returns the message bodies of a transaction's PDUs, in order.
func bodies(t *testing.T, req mfed.ReqSendTransaction) []string {
	t.Helper()
	var out []string
	for _, raw := range req.PDUs {
		var p struct {
			Type     string         `json:"type"`
			Content  map[string]any `json:"content"`
			Unsigned any            `json:"unsigned"`
		}
		if err := json.Unmarshal(raw, &p); err != nil {
			t.Fatalf("PDU is not JSON: %v", err)
		}
		if p.Unsigned != nil {
			t.Errorf("PDU carries unsigned: %s", raw)
		}
		if p.Type == "m.room.message" {
			out = append(out, fmt.Sprint(p.Content["body"]))
		}
	}
	return out
}

func allBodies(t *testing.T, reqs []mfed.ReqSendTransaction) []string {
	var out []string
	for _, r := range reqs {
		out = append(out, bodies(t, r)...)
	}
	return out
}

func status(t *testing.T, s *outbound.Sender, dest string) outbound.DestinationStatus {
	t.Helper()
	all, err := s.Destinations(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range all {
		if d.Name == dest {
			return d
		}
	}
	t.Fatalf("no destination %s in %+v", dest, all)
	return outbound.DestinationStatus{}
}

func flush(t *testing.T, s *outbound.Sender) {
	t.Helper()
	if err := s.Flush(context.Background()); err != nil {
		t.Fatalf("flush: %v", err)
	}
}

// 120 events go out as transactions of 50, 50 and 20, in order, each
// under its own ID; the queue is then empty.
func TestBatchesOfFifty(t *testing.T) {
	srv := testserver.New(t)
	alice, roomID := roomWithRemote(t, srv)
	f := newFake()
	s := newSender(t, srv, f, nil)
	flush(t, s) // the remote join is bob's own: nothing owed
	if n := len(f.tried(remote)); n != 0 {
		t.Fatalf("%d transactions before any event of ours", n)
	}
	var want []string
	for i := range 120 {
		body := fmt.Sprintf("m%03d", i)
		send(t, alice, roomID, body)
		want = append(want, body)
	}
	flush(t, s)
	got := f.delivered(remote)
	if len(got) != 3 {
		t.Fatalf("%d transactions, want 3", len(got))
	}
	ids := map[string]bool{}
	for i, n := range []int{50, 50, 20} {
		if len(got[i].PDUs) != n {
			t.Errorf("transaction %d has %d PDUs, want %d", i, len(got[i].PDUs), n)
		}
		if got[i].Origin != srv.ServerName() || got[i].Destination != remote {
			t.Errorf("transaction %d: origin %q destination %q", i, got[i].Origin, got[i].Destination)
		}
		ids[got[i].TxnID] = true
	}
	if len(ids) != 3 {
		t.Errorf("transaction IDs repeat: %v", ids)
	}
	if b := allBodies(t, got); !slices.Equal(b, want) {
		t.Errorf("sent out of order or incomplete: %v", b)
	}
	st := status(t, s, remote)
	if st.Queued != 0 || st.LastSuccess.IsZero() || st.LastError != "" {
		t.Errorf("status after delivery: %+v", st)
	}
	flush(t, s)
	if n := len(f.tried(remote)); n != 3 {
		t.Errorf("%d transactions after a second flush, want still 3", n)
	}
}

// A transaction not answered 200 is resent under the same ID with the same
// PDUs, across a restart of the whole server; once answered, nothing is
// sent twice and events queued meanwhile follow in a new transaction.
func TestUnansweredTransactionSurvivesRestart(t *testing.T) {
	srv := testserver.New(t)
	alice, roomID := roomWithRemote(t, srv)
	f := newFake()
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	s := newSender(t, srv, f, c)
	f.setDown(remote, true)
	send(t, alice, roomID, "one")
	send(t, alice, roomID, "two")
	flush(t, s)
	tried := f.tried(remote)
	if len(tried) != 1 || tried[0].ok {
		t.Fatalf("attempts: %+v", tried)
	}
	first := tried[0].req
	if b := bodies(t, first); !slices.Equal(b, []string{"one", "two"}) {
		t.Fatalf("first transaction holds %v", b)
	}

	// Sent after the first transaction was made: must not join it.
	send(t, alice, roomID, "three")
	srv.Restart()
	f.setDown(remote, false)
	c.Advance(time.Hour)
	s2 := newSender(t, srv, f, c)
	flush(t, s2)
	tried = f.tried(remote)
	if len(tried) != 3 {
		t.Fatalf("%d attempts after restart, want 3 (the failed one, its resend, the next)", len(tried))
	}
	resent := tried[1].req
	if resent.TxnID != first.TxnID || !slices.Equal(bodies(t, resent), bodies(t, first)) ||
		!resent.OriginServerTS.Equal(first.OriginServerTS.Time) {
		t.Errorf("resent transaction differs: %s %v, first was %s %v", resent.TxnID, bodies(t, resent), first.TxnID, bodies(t, first))
	}
	next := tried[2].req
	if next.TxnID == first.TxnID || !slices.Equal(bodies(t, next), []string{"three"}) {
		t.Errorf("next transaction %s holds %v", next.TxnID, bodies(t, next))
	}
	flush(t, s2)
	if n := len(f.tried(remote)); n != 3 {
		t.Errorf("%d attempts after everything was answered, want 3: something was sent twice", n)
	}
	if st := status(t, s2, remote); st.Queued != 0 {
		t.Errorf("still queued: %+v", st)
	}
}

// Failures back off 5 s, 10 s, 20 s…; an attempt before the time is not
// made; Wake ends the backoff at once, also in a sender made after a
// restart.
func TestBackoffAndWake(t *testing.T) {
	srv := testserver.New(t)
	alice, roomID := roomWithRemote(t, srv)
	f := newFake()
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	s := newSender(t, srv, f, c)
	f.setDown(remote, true)
	send(t, alice, roomID, "hello")
	start := c.Now()
	flush(t, s)
	waits := []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second, 40 * time.Second}
	for i, w := range waits {
		st := status(t, s, remote)
		if st.RetryCount != i+1 || !st.NextRetry.Equal(c.Now().Add(w)) || st.LastError == "" || st.Queued != 1 {
			t.Fatalf("after failure %d: %+v, want next retry in %v", i+1, st, w)
		}
		c.Advance(w - time.Second)
		flush(t, s)
		if n := len(f.tried(remote)); n != i+1 {
			t.Fatalf("attempted before the backoff ended (%d attempts)", n)
		}
		c.Advance(time.Second)
		flush(t, s)
	}
	if c.Now().Sub(start) != 75*time.Second {
		t.Fatalf("clock at %v", c.Now().Sub(start))
	}
	st := status(t, s, remote)
	if st.RetryCount != 5 {
		t.Fatalf("retry count %d, want 5", st.RetryCount)
	}

	// A restart keeps the backoff; Wake (the server contacted us) ends it.
	s2 := newSender(t, srv, f, c)
	flush(t, s2)
	if n := len(f.tried(remote)); n != 5 {
		t.Fatalf("a new sender ignored the backoff (%d attempts)", n)
	}
	f.setDown(remote, false)
	s2.Wake(remote)
	if st := status(t, s2, remote); st.RetryCount != 0 || !st.NextRetry.IsZero() {
		t.Errorf("after Wake: %+v", st)
	}
	flush(t, s2)
	got := f.delivered(remote)
	if len(got) != 1 || !slices.Equal(bodies(t, got[0]), []string{"hello"}) {
		t.Fatalf("delivered after Wake: %d transactions", len(got))
	}
	if st := status(t, s2, remote); st.LastError != "" || st.Queued != 0 || st.LastSuccess.IsZero() {
		t.Errorf("after delivery: %+v", st)
	}
}

// Jitter spreads a wait by ±20% and the wait stops growing at the cap.
func TestBackoffJitterAndCap(t *testing.T) {
	srv := testserver.New(t)
	alice, roomID := roomWithRemote(t, srv)
	f := newFake()
	f.setDown(remote, true)
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	s := newSender(t, srv, f, c)
	s.MaxBackoff = 30 * time.Second
	jitter := 0.0
	s.Jitter = func() float64 { return jitter }
	send(t, alice, roomID, "x")
	flush(t, s)
	if st := status(t, s, remote); st.NextRetry.Sub(c.Now()) != 4*time.Second {
		t.Errorf("lowest jitter: wait %v, want 4s", st.NextRetry.Sub(c.Now()))
	}
	jitter = 0.999999
	for range 5 {
		c.Advance(time.Hour)
		flush(t, s)
	}
	if w := status(t, s, remote).NextRetry.Sub(c.Now()); w < 35*time.Second || w > 36*time.Second {
		t.Errorf("capped wait with highest jitter is %v, want just under 36s", w)
	}
}

// Events committed while the sender was stopped are queued when it
// starts, and sent by its background workers; a ban reaches the banned
// user's server, which has no member in the room, and an invite does not
// (it travels by /invite: a server not in the room cannot place it).
func TestStartQueuesWhatWasMissed(t *testing.T) {
	srv := testserver.New(t)
	alice, roomID := roomWithRemote(t, srv)
	f := newFake()
	s := newSender(t, srv, f, nil)
	s.Start()
	send(t, alice, roomID, "while running") // no listener registered: found at the next start
	s.Stop()
	ctx := context.Background()
	if _, err := alice.InviteUser(ctx, roomID, &mautrix.ReqInviteUser{UserID: "@carol:third.test"}); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.BanUser(ctx, roomID, &mautrix.ReqBanUser{UserID: "@dave:fourth.test", Reason: "spam"}); err != nil {
		t.Fatal(err)
	}
	send(t, alice, roomID, "while stopped")
	s2 := newSender(t, srv, f, nil)
	s2.Start()
	defer s2.Stop()
	waitFor(t, func() bool {
		return len(allBodies(t, f.delivered(remote))) == 2 && len(f.delivered("fourth.test")) == 1
	})
	if b := allBodies(t, f.delivered(remote)); !slices.Equal(b, []string{"while running", "while stopped"}) {
		t.Errorf("remote got %v", b)
	}
	// fourth.test gets the ban only: dave is not joined, so the message
	// after it is none of its business.
	ban := f.delivered("fourth.test")[0]
	if len(ban.PDUs) != 1 || len(bodies(t, ban)) != 0 {
		t.Errorf("fourth.test got %d PDUs", len(ban.PDUs))
	}
	var p struct {
		Type     string `json:"type"`
		StateKey string `json:"state_key"`
	}
	_ = json.Unmarshal(ban.PDUs[0], &p)
	if p.Type != event.StateMember.Type || p.StateKey != "@dave:fourth.test" {
		t.Errorf("fourth.test got %s %s", p.Type, p.StateKey)
	}
	// Everything queued before the message has been delivered by now.
	if got := f.delivered("third.test"); len(got) != 0 {
		t.Errorf("the invite went to third.test in %d transactions too", len(got))
	}
}

// The live path: with the listener registered, a new event is sent
// without a restart; a destination that was down gets it all after Wake.
func TestLiveSendAndWake(t *testing.T) {
	srv := testserver.New(t)
	alice, roomID := roomWithRemote(t, srv)
	f := newFake()
	s := newSender(t, srv, f, nil)
	s.MinBackoff = time.Hour // only Wake can end it within the test
	s.Start()
	defer s.Stop()
	f.setDown(remote, true)
	send(t, alice, roomID, "a")
	s.RoomEvents(nil) // no events: no effect
	wake := func() { s.RoomEvents(lastEvents(t, srv, roomID)) }
	wake()
	waitFor(t, func() bool {
		all, err := s.Destinations(context.Background())
		return err == nil && len(all) == 1 && all[0].RetryCount == 1
	})
	send(t, alice, roomID, "b")
	wake()
	f.setDown(remote, false)
	s.Wake(remote)
	waitFor(t, func() bool { return slices.Equal(allBodies(t, f.delivered(remote)), []string{"a", "b"}) })
}

// A member of the room when an event was sent gets it even if they left
// before the queue saw it.
func TestDestinationsAtTheEvent(t *testing.T) {
	srv := testserver.New(t)
	alice, roomID := roomWithRemote(t, srv)
	f := newFake()
	s := newSender(t, srv, f, nil)
	send(t, alice, roomID, "bob sees this")
	fedtest.StoreRemoteMember(t, srv.DB(), roomID, id.UserID("@bob:"+remote), "leave")
	send(t, alice, roomID, "bob has gone")
	flush(t, s)
	if b := allBodies(t, f.delivered(remote)); !slices.Equal(b, []string{"bob sees this"}) {
		t.Errorf("remote got %v", b)
	}
}

// EDUs: queued ones are sent (not to ourselves), at most 100 a
// transaction; presence and receipts of local users go to the servers
// sharing the room, a newer one replacing one not yet sent; typing goes
// out too but is not persisted.
func TestEDUs(t *testing.T) {
	srv := testserver.New(t)
	alice, roomID := roomWithRemote(t, srv)
	evID := send(t, alice, roomID, "read me")
	f := newFake()
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	s := newSender(t, srv, f, c)
	flush(t, s)
	base := len(f.tried(remote))

	ctx := context.Background()
	for i := range 150 {
		if err := s.QueueEDU(ctx, []string{remote, srv.ServerName(), remote}, "org.example.test", map[string]int{"n": i}); err != nil {
			t.Fatal(err)
		}
	}
	flush(t, s)
	got := f.delivered(remote)[base:]
	if len(got) != 2 || len(got[0].EDUs) != 100 || len(got[1].EDUs) != 50 {
		t.Fatalf("EDU transactions: %d", len(got))
	}
	var first struct {
		Type    string         `json:"edu_type"`
		Content map[string]int `json:"content"`
	}
	if err := json.Unmarshal(got[0].EDUs[0], &first); err != nil || first.Type != "org.example.test" || first.Content["n"] != 0 {
		t.Errorf("first EDU: %s", got[0].EDUs[0])
	}
	if len(f.tried(srv.ServerName())) != 0 {
		t.Error("sent a transaction to ourselves")
	}

	// Local activity through the sync engine's observer. Set before any
	// request reads it.
	srv.Sync().Ephemeral = s
	f.setDown(remote, true)
	aliceID := alice.UserID
	if err := srv.Sync().SetPresence(ctx, aliceID, syncer.PresenceOnline, nil, true); err != nil {
		t.Fatal(err)
	}
	msg := "away for lunch"
	if err := srv.Sync().SetPresence(ctx, aliceID, syncer.PresenceUnavailable, &msg, true); err != nil {
		t.Fatal(err)
	}
	if err := srv.Sync().SendReceipt(ctx, aliceID, roomID, syncer.ReceiptRead, evID, ""); err != nil {
		t.Fatal(err)
	}
	if err := srv.Sync().SendReceipt(ctx, aliceID, roomID, syncer.ReceiptReadPrivate, evID, "main"); err != nil {
		t.Fatal(err)
	}
	if err := srv.Sync().SetTyping(ctx, aliceID, roomID, true, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if st := status(t, s, remote); st.Queued != 2 {
		t.Errorf("queued %d EDUs, want 2 (the latest presence and the public receipt)", st.Queued)
	}
	f.setDown(remote, false)
	flush(t, s)
	all := f.delivered(remote)
	last := all[len(all)-1]
	types := map[string][]json.RawMessage{}
	for _, raw := range last.EDUs {
		var e struct {
			Type    string          `json:"edu_type"`
			Content json.RawMessage `json:"content"`
		}
		if err := json.Unmarshal(raw, &e); err != nil {
			t.Fatal(err)
		}
		types[e.Type] = append(types[e.Type], e.Content)
	}
	if len(types["m.presence"]) != 1 || len(types["m.receipt"]) != 1 || len(types["m.typing"]) != 1 || len(types) != 3 {
		t.Fatalf("EDUs sent: %s", last.EDUs)
	}
	var pres struct {
		Push []struct {
			UserID    id.UserID `json:"user_id"`
			Presence  string    `json:"presence"`
			StatusMsg string    `json:"status_msg"`
		} `json:"push"`
	}
	_ = json.Unmarshal(types["m.presence"][0], &pres)
	if len(pres.Push) != 1 || pres.Push[0].UserID != aliceID || pres.Push[0].Presence != "unavailable" || pres.Push[0].StatusMsg != msg {
		t.Errorf("presence EDU: %s", types["m.presence"][0])
	}
	var rcpt map[id.RoomID]map[string]map[id.UserID]struct {
		EventIDs []id.EventID   `json:"event_ids"`
		Data     map[string]any `json:"data"`
	}
	_ = json.Unmarshal(types["m.receipt"][0], &rcpt)
	if r := rcpt[roomID]["m.read"][aliceID]; len(r.EventIDs) != 1 || r.EventIDs[0] != evID || r.Data["ts"] == nil {
		t.Errorf("receipt EDU: %s", types["m.receipt"][0])
	}
	var typing struct {
		RoomID id.RoomID `json:"room_id"`
		UserID id.UserID `json:"user_id"`
		Typing bool      `json:"typing"`
	}
	_ = json.Unmarshal(types["m.typing"][0], &typing)
	if typing.RoomID != roomID || typing.UserID != aliceID || !typing.Typing {
		t.Errorf("typing EDU: %s", types["m.typing"][0])
	}

	// Typing lives in memory: a transaction pending at a restart is resent
	// without it, and a new sender has none.
	f.setDown(remote, true)
	if err := srv.Sync().SetTyping(ctx, aliceID, roomID, false, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.QueueEDU(ctx, []string{remote}, "org.example.test", map[string]int{"n": -1}); err != nil {
		t.Fatal(err)
	}
	flush(t, s)
	failed := f.tried(remote)[len(f.tried(remote))-1].req
	if len(failed.EDUs) != 2 {
		t.Fatalf("pending transaction has %d EDUs, want 2", len(failed.EDUs))
	}
	srv.Sync().Ephemeral = nil
	f.setDown(remote, false)
	c.Advance(time.Hour)
	s2 := newSender(t, srv, f, c)
	flush(t, s2)
	resent := f.tried(remote)[len(f.tried(remote))-1].req
	if resent.TxnID != failed.TxnID || len(resent.EDUs) != 1 {
		t.Errorf("resent %s with %d EDUs, want %s with the persisted one", resent.TxnID, len(resent.EDUs), failed.TxnID)
	}
}

// lastEvents returns the room's newest event as the rooms listener would
// hand it over.
func lastEvents(t *testing.T, srv *testserver.Server, roomID id.RoomID) []*rooms.Event {
	t.Helper()
	evs, _, err := srv.Rooms().Timeline(context.Background(), roomID, 0, 1<<62, 1, true)
	if err != nil || len(evs) == 0 {
		t.Fatalf("timeline: %v", err)
	}
	return evs
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline:
			t.Fatal("condition not met within 10s")
		case <-tick.C:
		}
	}
}

// Local users who are online have their presence sent again now and then,
// so other servers do not time them out; offline and remote users do not.
func TestPresencePing(t *testing.T) {
	srv := testserver.New(t)
	alice, _ := roomWithRemote(t, srv)
	ctx := context.Background()
	if err := srv.Sync().SetPresence(ctx, alice.UserID, syncer.PresenceOnline, nil, true); err != nil {
		t.Fatal(err)
	}
	srv.RegisterUser("otto") // never synced: no presence
	f := newFake()
	s := newSender(t, srv, f, nil)
	s.PingPresence(ctx)
	s.PingPresence(ctx) // coalesced with the first
	flush(t, s)
	got := f.delivered(remote)
	if len(got) != 1 || len(got[0].EDUs) != 1 {
		t.Fatalf("presence ping sent %d transactions", len(got))
	}
	var e struct {
		Type    string `json:"edu_type"`
		Content struct {
			Push []struct {
				UserID id.UserID `json:"user_id"`
			} `json:"push"`
		} `json:"content"`
	}
	if err := json.Unmarshal(got[0].EDUs[0], &e); err != nil || e.Type != "m.presence" || len(e.Content.Push) != 1 || e.Content.Push[0].UserID != alice.UserID {
		t.Errorf("presence ping: %s", got[0].EDUs[0])
	}
}
