package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server"
	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/config"
	"github.com/palpo-im/palpo-desktop/server/rooms"
)

// crashChildDir is set in the environment of the server process the crash
// test starts (this test binary, run as TestCrashChild).
const crashChildDir = "PALPO_CRASH_CHILD_DIR"

// TestCrashChild is the server process of TestCrashUnderSendLoad: it serves
// the data directory it is given on a loopback port, says which, and runs
// until it is killed. Run on its own it does nothing.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildDir)
	if dir == "" {
		t.Skip("the crash test's server process")
	}
	srv, err := server.New(context.Background(), crashConfig(), dir, slog.New(slog.DiscardHandler))
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	if err := srv.Start(); err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("listening http://" + srv.Addrs()[0].String())
	select {}
}

func crashConfig() *config.Config {
	cfg := config.Default()
	cfg.Listen = []string{"127.0.0.1:0"}
	return cfg
}

// crashSender is one device sending messages with numbered transactions.
// crashAcks is the number of sends answered so far, over all senders.
func crashAcks(senders []*crashSender) int64 {
	var n int64
	for _, s := range senders {
		n += s.acks.Load()
	}
	return n
}

type crashSender struct {
	token string
	room  id.RoomID
	name  string
	// next is the transaction to send next; it is retried, with the same
	// ID, after a kill cut its answer off.
	next int
	// acked maps each answered transaction to its event.
	acked map[string]id.EventID
	// cut tells that next was sent and its answer cut off by a kill;
	// retried counts such transactions answered after a restart.
	cut     bool
	retried int
	// acks counts answered sends, read by the test while sending runs.
	acks atomic.Int64
}

func (s *crashSender) txn(n int) string { return fmt.Sprintf("%s-%d", s.name, n) }

// TestCrashUnderSendLoad kills the server with SIGKILL again and again
// while senders on several devices send into two rooms, restarting it each
// time. After every restart, what it acknowledged before the kill is there;
// a retried transaction answers with its first event if it was stored; and
// at the end every acknowledged event is stored once, no transaction
// twice, and each room's events form one chain with its current state the
// state after its last event. PALPO_CRASH_KILLS sets the number of kills
// (default 50).
func TestCrashUnderSendLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("kills a server process many times")
	}
	kills := 50
	if v := os.Getenv("PALPO_CRASH_KILLS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("PALPO_CRASH_KILLS=%q: want a number of kills", v)
		}
		kills = n
	}
	dir := t.TempDir()
	senders := crashSetup(t, dir)
	client := &http.Client{Timeout: 10 * time.Second}
	rng := rand.New(rand.NewPCG(1, 2))
	total := 0
	for round := range kills {
		base, child := crashStart(t, dir)
		// What was acknowledged before the last kill must all be there.
		crashCheckAcked(t, client, base, senders)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for _, s := range senders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				crashSend(t, client, base, s, stop)
			}()
		}
		// Kill once the senders are running (the first send of the round
		// answered: a loaded machine may take a while), at a random moment.
		before := crashAcks(senders)
		for deadline := time.Now().Add(15 * time.Second); crashAcks(senders) == before && time.Now().Before(deadline); {
			time.Sleep(2 * time.Millisecond)
		}
		time.Sleep(time.Duration(rng.IntN(120)) * time.Millisecond)
		if err := child.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatalf("round %d: kill: %v", round, err)
		}
		_ = child.Wait()
		close(stop)
		wg.Wait()
		if t.Failed() {
			return
		}
	}
	retried := 0
	for _, s := range senders {
		total += len(s.acked)
		retried += s.retried
	}
	if total < kills {
		t.Fatalf("only %d sends were acknowledged in %d rounds: the senders hardly ran", total, kills)
	}
	t.Logf("%d kills, %d acknowledged sends, %d of them retries of a send a kill cut off", kills, total, retried)
	crashVerify(t, dir, senders)
}

// crashSetup makes four users, each a sender on its own device, and two
// rooms, in the data directory the server processes will use: three
// senders share the first room, one has the second.
func crashSetup(t *testing.T, dir string) []*crashSender {
	t.Helper()
	ctx := context.Background()
	srv, err := server.New(ctx, crashConfig(), dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(ctx)
	var roomIDs []id.RoomID
	for range 2 {
		roomID, err := srv.Rooms().CreateRoom(ctx, "@alice:localhost", &rooms.CreateRoomRequest{Preset: rooms.PresetPublicChat})
		if err != nil {
			t.Fatal(err)
		}
		roomIDs = append(roomIDs, roomID)
	}
	var senders []*crashSender
	for i, name := range []string{"alice", "bob", "carol", "dave"} {
		res, err := srv.Accounts().CreateAccount(ctx, accounts.NewAccount{Localpart: name, ByAdmin: true, Login: &accounts.SessionParams{DisplayName: "crash"}})
		if err != nil {
			t.Fatal(err)
		}
		s := &crashSender{token: res.AccessToken, name: name, room: roomIDs[i/3], acked: map[string]id.EventID{}}
		if name != "alice" {
			if _, err := srv.Rooms().ChangeMembership(ctx, rooms.MembershipChange{Sender: res.UserID, Target: res.UserID, RoomID: s.room, Membership: event.MembershipJoin}); err != nil {
				t.Fatal(err)
			}
		}
		senders = append(senders, s)
	}
	return senders
}

// crashStart starts a server process on the data directory and waits for
// it to listen.
func crashStart(t *testing.T, dir string) (string, *exec.Cmd) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildDir+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	lines := bufio.NewScanner(out)
	for lines.Scan() {
		if base, ok := strings.CutPrefix(lines.Text(), "listening "); ok {
			go func() { _, _ = io.Copy(io.Discard, out) }()
			return base, cmd
		}
		if strings.HasPrefix(lines.Text(), "error:") {
			t.Fatalf("server process: %s", lines.Text())
		}
	}
	t.Fatalf("server process ended before listening: %v", lines.Err())
	return "", nil
}

// crashSend sends until the server goes away or stop is closed.
func crashSend(t *testing.T, client *http.Client, base string, s *crashSender, stop chan struct{}) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		txn := s.txn(s.next)
		u := fmt.Sprintf("%s/_matrix/client/v3/rooms/%s/send/m.room.message/%s", base, url.PathEscape(string(s.room)), txn)
		body, _ := json.Marshal(map[string]string{"msgtype": "m.text", "body": txn})
		req, _ := http.NewRequest(http.MethodPut, u, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+s.token)
		resp, err := client.Do(req)
		if err != nil {
			s.cut = true
			return // killed: this transaction is retried after the restart
		}
		raw, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return
		}
		if resp.StatusCode != http.StatusOK {
			t.Errorf("send %s: HTTP %d %s", txn, resp.StatusCode, raw)
			return
		}
		var r struct {
			EventID id.EventID `json:"event_id"`
		}
		if json.Unmarshal(raw, &r) != nil || r.EventID == "" {
			t.Errorf("send %s: answer %s", txn, raw)
			return
		}
		s.acked[txn] = r.EventID
		s.acks.Add(1)
		s.next++
		if s.cut {
			s.retried++
			s.cut = false
		}
	}
}

// crashCheckAcked reads back, after a restart, the events acknowledged in
// the round before it (and a sample of earlier ones).
func crashCheckAcked(t *testing.T, client *http.Client, base string, senders []*crashSender) {
	t.Helper()
	for _, s := range senders {
		for n := s.next - 1; n >= 0 && n >= s.next-5; n-- {
			evID := s.acked[s.txn(n)]
			u := fmt.Sprintf("%s/_matrix/client/v3/rooms/%s/event/%s", base, url.PathEscape(string(s.room)), url.PathEscape(string(evID)))
			req, _ := http.NewRequest(http.MethodGet, u, nil)
			req.Header.Set("Authorization", "Bearer "+s.token)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(raw), `"body":"`+s.txn(n)+`"`) {
				t.Fatalf("acknowledged event %s (%s) after a restart: HTTP %d %s", evID, s.txn(n), resp.StatusCode, raw)
			}
		}
	}
}

// crashVerify opens the data directory and checks every room: each
// acknowledged event stored, no transaction's message twice, one chain of
// events, and the current state the state after the last event.
func crashVerify(t *testing.T, dir string, senders []*crashSender) {
	t.Helper()
	ctx := context.Background()
	srv, err := server.New(ctx, crashConfig(), dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(ctx)
	seen := map[string]id.EventID{}
	roomsSeen := map[id.RoomID]bool{}
	for _, s := range senders {
		if roomsSeen[s.room] {
			continue
		}
		roomsSeen[s.room] = true
		stored, _, err := srv.DB().RoomEvents(ctx, s.room, 0, 1<<62, 1<<30, false)
		if err != nil {
			t.Fatal(err)
		}
		var prev *rooms.Event
		for i, se := range stored {
			evs, err := srv.Rooms().Events(ctx, []id.EventID{se.EventID})
			if err != nil || evs[se.EventID] == nil {
				t.Fatalf("load %s: %v", se.EventID, err)
			}
			ev := evs[se.EventID]
			if prev != nil && (len(ev.PDU.PrevEvents) != 1 || ev.PDU.PrevEvents[0] != prev.ID || ev.PDU.Depth != prev.PDU.Depth+1 || ev.StateBefore != prev.StateAfter) {
				t.Fatalf("room %s, event %d: prev_events %v depth %d state before %d; want [%s] %d %d", s.room, i, ev.PDU.PrevEvents, ev.PDU.Depth, ev.StateBefore, prev.ID, prev.PDU.Depth+1, prev.StateAfter)
			}
			prev = ev
			if ev.PDU.Type != event.EventMessage.Type {
				continue
			}
			var c struct {
				Body string `json:"body"`
			}
			_ = json.Unmarshal(ev.PDU.Content, &c)
			if other, dup := seen[c.Body]; dup {
				t.Fatalf("transaction %s stored twice: %s and %s", c.Body, other, ev.ID)
			}
			seen[c.Body] = ev.ID
		}
		ext, err := srv.DB().ForwardExtremities(ctx, s.room)
		if err != nil || len(ext) != 1 || ext[0] != prev.ID {
			t.Fatalf("room %s: forward extremities %v (%v), want its last event %s", s.room, ext, err, prev.ID)
		}
		after, err := srv.Rooms().StateAfter(ctx, prev)
		if err != nil {
			t.Fatal(err)
		}
		current, err := srv.Rooms().CurrentState(ctx, s.room)
		if err != nil || !maps.Equal(current, after) {
			t.Fatalf("room %s: current state (%d entries, %v) is not the state after its last event (%d)", s.room, len(current), err, len(after))
		}
	}
	for _, s := range senders {
		for txn, evID := range s.acked {
			if got, ok := seen[txn]; !ok || got != evID {
				t.Fatalf("acknowledged %s as %s; stored: %q", txn, evID, got)
			}
		}
	}
	if len(seen) == 0 {
		t.Fatal(errors.New("no messages stored"))
	}
}
