// Command sync-bench measures /sync on a real Palpo server started
// in-process on a loopback port with a temporary data directory:
//
//  1. wake-up latency: a user long-polls /sync, another user sends a
//     message over HTTP, and the time from the start of the send to the
//     long-poll's answer is recorded, over -rounds rounds (target: p50
//     under 10 ms);
//  2. initial sync: a user in -rooms rooms of -events messages each (made
//     through the rooms service directly, for speed), timed as GET /sync
//     without since, once cold (right after a restart) and then -runs times
//     warm (target: median under 150 ms);
//  3. held long-polls: -pollers users in one room, one connection each,
//     first sync twice without waiting (their first syncs set them online,
//     which is news for everyone else), then long-poll /sync at once; the
//     server process's RSS is read from /proc/self/status while they wait
//     (target: under 100 MB), then one message wakes them all and a last
//     round checks they all come back on their timeout. The clients run in
//     a child process (this command re-run with -poller-child), so the RSS
//     is the server's alone. The server runs under `palpo serve`'s memory
//     policy (app.ManageMemory) for this part; GOMEMLIMIT overrides it.
//  4. sliding sync: a user in -sliding-rooms rooms of -sliding-events
//     messages each; the first sliding sync response with a 20-room window
//     as Element X asks for it against an initial GET /sync, bytes and time
//     (sliding.go).
//
// Run it with `go run ./cmd/sync-bench`; -only wake|initial|hold|sliding
// runs one part (part 3 alone gives the RSS of a fresh process).
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/app"
	"github.com/palpo-im/palpo-desktop/server"
	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/config"
	"github.com/palpo-im/palpo-desktop/server/rooms"
)

// memProfile is where part 3 writes a heap profile ("" for none).
var memProfile string

func main() {
	rounds := flag.Int("rounds", 200, "part 1: long-poll wake-ups to time")
	nRooms := flag.Int("rooms", 100, "part 2: rooms the user is in")
	nEvents := flag.Int("events", 100, "part 2: messages per room")
	runs := flag.Int("runs", 7, "part 2: warm initial syncs to time")
	pollers := flag.Int("pollers", 1000, "part 3: users long-polling at once, one connection each")
	slidingRooms := flag.Int("sliding-rooms", 500, "part 4: rooms the user is in")
	slidingEvents := flag.Int("sliding-events", 20, "part 4: messages per room")
	only := flag.String("only", "", "run one part only: wake, initial, hold or sliding")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the run to this file")
	flag.StringVar(&memProfile, "memprofile", "", "part 3: write a heap profile to this file while the long-polls are held")
	child := flag.Bool("poller-child", false, "internal: run as part 3's client process")
	flag.Parse()
	if *child {
		if err := runPollerChild(); err != nil {
			fmt.Fprintln(os.Stderr, "sync-bench poller child:", err)
			os.Exit(1)
		}
		return
	}
	if *rounds < 1 || *nRooms < 1 || *nEvents < 1 || *runs < 1 || *pollers < 1 || *slidingRooms < 1 || *slidingEvents < 1 {
		fmt.Fprintln(os.Stderr, "sync-bench: -rounds, -rooms, -events, -runs, -pollers and -sliding-* must be at least 1")
		os.Exit(2)
	}
	switch *only {
	case "", "wake", "initial", "hold", "sliding":
	default:
		fmt.Fprintln(os.Stderr, "sync-bench: -only must be wake, initial, hold or sliding")
		os.Exit(2)
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "sync-bench:", err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "sync-bench:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	fmt.Printf("sync-bench: %s/%s, %d CPUs, GOMAXPROCS %d, %s\n\n", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version())
	var err error
	if *only == "" || *only == "wake" {
		err = wakeLatency(*rounds)
	}
	if err == nil && (*only == "" || *only == "initial") {
		err = initialSync(*nRooms, *nEvents, *runs)
	}
	if err == nil && (*only == "" || *only == "hold") {
		err = holdPolls(*pollers)
	}
	if err == nil && (*only == "" || *only == "sliding") {
		err = slidingVsV3(*slidingRooms, *slidingEvents, *runs)
	}
	if err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "sync-bench:", err)
		os.Exit(1)
	}
}

// benchServer is a server on a data directory.
type benchServer struct {
	srv *server.Server
	dir string
	url string
}

func startServer(dir string) (*benchServer, error) {
	cfg := config.Default()
	cfg.Listen = []string{"127.0.0.1:0"}
	lifted := config.RateLimit{PerSecond: 1e6, Burst: 1e6}
	cfg.RateLimits = config.RateLimits{LoginPerAddress: lifted, LoginPerAccount: lifted, RegisterPerAddress: lifted}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, err := server.New(context.Background(), cfg, dir, log)
	if err != nil {
		return nil, err
	}
	if err := srv.Start(); err != nil {
		_ = srv.Shutdown(context.Background())
		return nil, err
	}
	return &benchServer{srv: srv, dir: dir, url: "http://" + srv.Addrs()[0].String()}, nil
}

func (b *benchServer) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = b.srv.Shutdown(ctx)
}

// user is an account with a session.
type user struct {
	id     id.UserID
	device id.DeviceID
	token  string
}

// newUser creates an account without a password (no argon2id cost: the
// bench is about sync, not logins) and logs it in.
func (b *benchServer) newUser(localpart string) (*user, error) {
	res, err := b.srv.Accounts().CreateAccount(context.Background(), accounts.NewAccount{
		Localpart: localpart, ByAdmin: true, Login: &accounts.SessionParams{DisplayName: "sync-bench"},
	})
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", localpart, err)
	}
	return &user{id: res.UserID, device: res.DeviceID, token: res.AccessToken}, nil
}

func (b *benchServer) join(u *user, roomID id.RoomID) error {
	_, err := b.srv.Rooms().ChangeMembership(context.Background(), rooms.MembershipChange{
		Sender: u.id, Target: u.id, RoomID: roomID, Membership: event.MembershipJoin,
	})
	return err
}

// newHTTPClient is a client with its own connection pool.
func newHTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4, DisableCompression: true}}
}

// call makes one request and reads the whole answer.
func call(c *http.Client, method, u, token string, body []byte) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s %s: %d %s", method, u, resp.StatusCode, bytes.TrimSpace(out))
	}
	return out, nil
}

func syncURL(base, since string, timeout time.Duration) string {
	q := url.Values{"timeout": {strconv.FormatInt(timeout.Milliseconds(), 10)}}
	if since != "" {
		q.Set("since", since)
	}
	return base + "/_matrix/client/v3/sync?" + q.Encode()
}

func sendURL(base string, roomID id.RoomID, txn string) string {
	return base + "/_matrix/client/v3/rooms/" + url.PathEscape(string(roomID)) + "/send/m.room.message/" + url.PathEscape(txn)
}

// waitForWaiters waits until n users have a long-poll registered with the
// notifier, so a send happens only once the sync is really waiting.
func waitForWaiters(b *benchServer, n int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for b.srv.Sync().Notifier().Waiting() < n {
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d long-polls registered after %v", b.srv.Sync().Notifier().Waiting(), n, limit)
		}
		time.Sleep(50 * time.Microsecond)
	}
	return nil
}

// part 1 -------------------------------------------------------------------

func wakeLatency(rounds int) error {
	dir, err := os.MkdirTemp("", "palpo-sync-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	b, err := startServer(dir)
	if err != nil {
		return err
	}
	defer b.stop()
	ctx := context.Background()
	alice, err := b.newUser("alice")
	if err != nil {
		return err
	}
	bob, err := b.newUser("bob")
	if err != nil {
		return err
	}
	roomID, err := b.srv.Rooms().CreateRoom(ctx, alice.id, &rooms.CreateRoomRequest{Preset: rooms.PresetPublicChat})
	if err != nil {
		return err
	}
	if err := b.join(bob, roomID); err != nil {
		return err
	}
	// One connection for bob's long-polls, another for alice's sends.
	pollClient, sendClient := newHTTPClient(), newHTTPClient()
	first, err := call(pollClient, http.MethodGet, syncURL(b.url, "", 0), bob.token, nil)
	if err != nil {
		return err
	}
	since, err := nextBatch(first)
	if err != nil {
		return err
	}

	type polled struct {
		body []byte
		at   time.Time
		err  error
	}
	const warmup = 5
	wake := make([]time.Duration, 0, rounds)
	send := make([]time.Duration, 0, rounds)
	for i := range warmup + rounds {
		done := make(chan polled, 1)
		go func() {
			body, err := call(pollClient, http.MethodGet, syncURL(b.url, since, 30*time.Second), bob.token, nil)
			done <- polled{body, time.Now(), err}
		}()
		if err := waitForWaiters(b, 1, 10*time.Second); err != nil {
			return err
		}
		content := fmt.Appendf(nil, `{"msgtype":"m.text","body":"wake %d"}`, i)
		t0 := time.Now()
		if _, err := call(sendClient, http.MethodPut, sendURL(b.url, roomID, "wake-"+strconv.Itoa(i)), alice.token, content); err != nil {
			return err
		}
		sent := time.Since(t0)
		var p polled
		select {
		case p = <-done:
		case <-time.After(30 * time.Second):
			return fmt.Errorf("round %d: the long-poll did not return", i)
		}
		if p.err != nil {
			return p.err
		}
		var resp mautrix.RespSync
		if err := json.Unmarshal(p.body, &resp); err != nil {
			return err
		}
		jr := resp.Rooms.Join[roomID]
		if jr == nil || len(jr.Timeline.Events) == 0 {
			return fmt.Errorf("round %d: the long-poll returned without the message", i)
		}
		since = resp.NextBatch
		if i >= warmup {
			wake = append(wake, p.at.Sub(t0))
			send = append(send, sent)
		}
	}
	slices.Sort(wake)
	slices.Sort(send)
	fmt.Printf("1. sync wake-up latency, %d rounds (+%d warm-up): bob long-polls /sync, alice sends over HTTP\n", rounds, warmup)
	fmt.Printf("   send start -> long-poll answered: p50 %v, p90 %v, p99 %v, max %v  (target p50 < 10ms)\n",
		ms(pct(wake, 0.50)), ms(pct(wake, 0.90)), ms(pct(wake, 0.99)), ms(wake[len(wake)-1]))
	fmt.Printf("   the send itself (PUT /send answered): p50 %v, p90 %v, p99 %v\n\n",
		ms(pct(send, 0.50)), ms(pct(send, 0.90)), ms(pct(send, 0.99)))
	return nil
}

func nextBatch(body []byte) (string, error) {
	var r struct {
		NextBatch string `json:"next_batch"`
	}
	if err := json.Unmarshal(body, &r); err != nil || r.NextBatch == "" {
		return "", fmt.Errorf("sync answer without next_batch: %v", err)
	}
	return r.NextBatch, nil
}

// part 2 -------------------------------------------------------------------

// populated is a server whose reader is in rooms full of a writer's
// messages.
type populated struct {
	b       *benchServer
	dir     string
	reader  *user
	writer  *user
	roomIDs []id.RoomID
	made    time.Duration
}

// populate makes a server whose reader is in nRooms rooms of nEvents
// messages each (through the rooms service, for speed), then restarts it
// so the first requests meet empty caches, as after a reboot. close stops
// it and removes its data.
func populate(nRooms, nEvents int) (*populated, error) {
	dir, err := os.MkdirTemp("", "palpo-sync-bench-")
	if err != nil {
		return nil, err
	}
	p := &populated{dir: dir}
	if p.b, err = startServer(dir); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := p.fill(nRooms, nEvents); err != nil {
		p.close()
		return nil, err
	}
	p.b.stop()
	if p.b, err = startServer(dir); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return p, nil
}

func (p *populated) fill(nRooms, nEvents int) error {
	ctx := context.Background()
	var err error
	if p.reader, err = p.b.newUser("reader"); err != nil {
		return err
	}
	if p.writer, err = p.b.newUser("writer"); err != nil {
		return err
	}
	writer := p.writer
	t0 := time.Now()
	rs := p.b.srv.Rooms()
	for r := range nRooms {
		name := fmt.Sprintf("Room %d", r)
		roomID, err := rs.CreateRoom(ctx, p.reader.id, &rooms.CreateRoomRequest{Preset: rooms.PresetPublicChat, Name: &name})
		if err == nil {
			err = p.b.join(writer, roomID)
		}
		contents := make([][]byte, nEvents)
		for e := range contents {
			contents[e] = fmt.Appendf(nil, `{"msgtype":"m.text","body":"message %d of room %d"}`, e, r)
		}
		if err == nil {
			_, err = rs.SendMessages(ctx, writer.id, roomID, event.EventMessage.Type, contents)
		}
		if err != nil {
			return fmt.Errorf("room %d: %w", r, err)
		}
		p.roomIDs = append(p.roomIDs, roomID)
	}
	p.made = time.Since(t0)
	return nil
}

func (p *populated) close() {
	p.b.stop()
	os.RemoveAll(p.dir)
}

func initialSync(nRooms, nEvents, runs int) error {
	p, err := populate(nRooms, nEvents)
	if err != nil {
		return err
	}
	defer p.close()
	b, reader := p.b, p.reader
	total := nRooms * nEvents
	fmt.Printf("2. initial sync: a user in %d rooms of %d messages each (%d messages, made through the rooms service in %v, %.0f events/s)\n",
		nRooms, nEvents, total, p.made.Round(time.Millisecond), float64(total)/p.made.Seconds())
	c := newHTTPClient()
	var times []time.Duration
	var size int
	for i := range runs + 1 {
		t0 := time.Now()
		body, err := call(c, http.MethodGet, syncURL(b.url, "", 0), reader.token, nil)
		if err != nil {
			return err
		}
		took := time.Since(t0)
		var resp mautrix.RespSync
		if err := json.Unmarshal(body, &resp); err != nil {
			return err
		}
		if len(resp.Rooms.Join) != nRooms {
			return fmt.Errorf("initial sync has %d joined rooms, want %d", len(resp.Rooms.Join), nRooms)
		}
		for roomID, jr := range resp.Rooms.Join {
			if len(jr.Timeline.Events) == 0 || len(jr.State.Events) == 0 {
				return fmt.Errorf("room %s: %d timeline and %d state events", roomID, len(jr.Timeline.Events), len(jr.State.Events))
			}
		}
		if i == 0 {
			size = len(body)
			fmt.Printf("   GET /sync without since (default filter: 10 timeline events per room), %d KiB answer\n", size/1024)
			fmt.Printf("   cold (first after a restart): %v\n", ms(took))
			continue
		}
		times = append(times, took)
	}
	sorted := slices.Clone(times)
	slices.Sort(sorted)
	fmt.Printf("   warm, %d runs: median %v, min %v, max %v  (target median < 150ms)\n\n",
		len(times), ms(pct(sorted, 0.5)), ms(sorted[0]), ms(sorted[len(sorted)-1]))
	return nil
}

// part 3 -------------------------------------------------------------------

// pollerSetup is what the parent tells the child first.
type pollerSetup struct {
	URL    string   `json:"url"`
	Tokens []string `json:"tokens"`
	Since  string   `json:"since"`
}

// pollerRound asks the child for one long-poll per user.
type pollerRound struct {
	TimeoutMS int64 `json:"timeout_ms"`
}

// pollerResult is the child's report of one round.
type pollerResult struct {
	OK         int     `json:"ok"`
	Errors     int     `json:"errors"`
	FirstError string  `json:"first_error,omitempty"`
	WithEvents int     `json:"with_events"` // answers with a timeline event
	DoneUnixNS []int64 `json:"done_unix_ns"`
	// RSSKiB is the child's own resident size while its polls were held.
	RSSKiB int64 `json:"rss_kib"`
}

func holdPolls(n int) error {
	dir, err := os.MkdirTemp("", "palpo-sync-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	b, err := startServer(dir)
	if err != nil {
		return err
	}
	defer b.stop()
	ctx := context.Background()
	// The server's memory policy, as `palpo serve` runs it (app/memory.go).
	memCtx, stopMem := context.WithCancel(ctx)
	defer stopMem()
	go app.ManageMemory(memCtx)
	host, err := b.newUser("host")
	if err != nil {
		return err
	}
	roomID, err := b.srv.Rooms().CreateRoom(ctx, host.id, &rooms.CreateRoomRequest{Preset: rooms.PresetPublicChat})
	if err != nil {
		return err
	}
	t0 := time.Now()
	tokens := make([]string, n)
	for i := range n {
		u, err := b.newUser(fmt.Sprintf("poller%05d", i))
		if err != nil {
			return err
		}
		if err := b.join(u, roomID); err != nil {
			return err
		}
		tokens[i] = u.token
	}
	_, setupHWM := rssKiB()
	fmt.Printf("3. %d users, one connection each, long-poll /sync at once; all in one room (made in %v, peak RSS %.1f MiB so far)\n",
		n, time.Since(t0).Round(time.Millisecond), float64(setupHWM)/1024)
	// Every user may start from the current position: no initial syncs.
	cur, err := b.srv.Sync().Current(ctx)
	if err != nil {
		return err
	}

	exe, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(exe, "-poller-child")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		stdin.Close()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
		}
	}()
	enc := json.NewEncoder(stdin)
	dec := json.NewDecoder(bufio.NewReader(stdout))
	if err := enc.Encode(pollerSetup{URL: b.url, Tokens: tokens, Since: cur.String()}); err != nil {
		return err
	}
	// startRound asks the child for one long-poll per user; the report
	// arrives on the channel when all have returned.
	type report struct {
		r   *pollerResult
		err error
	}
	startRound := func(timeout time.Duration) (<-chan report, error) {
		if err := enc.Encode(pollerRound{TimeoutMS: timeout.Milliseconds()}); err != nil {
			return nil, err
		}
		ch := make(chan report, 1)
		go func() {
			var r pollerResult
			if err := dec.Decode(&r); err != nil {
				ch <- report{err: fmt.Errorf("read the poller child's report: %w", err)}
				return
			}
			ch <- report{r: &r}
		}()
		return ch, nil
	}
	await := func(ch <-chan report, limit time.Duration) (*pollerResult, error) {
		select {
		case rep := <-ch:
			if rep.err == nil && rep.r.Errors > 0 {
				rep.err = fmt.Errorf("%d of %d long-polls failed, first: %s", rep.r.Errors, n, rep.r.FirstError)
			}
			return rep.r, rep.err
		case <-time.After(limit):
			return nil, fmt.Errorf("the long-polls did not all return within %v", limit)
		}
	}

	// Two catch-up rounds without waiting: each user's first sync sets
	// them online, which is news for everyone in the room; the second
	// round collects that news, so the held round starts with none.
	for range 2 {
		ch, err := startRound(0)
		if err != nil {
			return err
		}
		if _, err := await(ch, 120*time.Second); err != nil {
			return err
		}
	}

	// The baseline: everything set up, the catch-up's garbage returned.
	runtime.GC()
	debug.FreeOSMemory()
	baseRSS, _ := rssKiB()
	baseGoroutines := runtime.NumGoroutine()

	// Round 1: held, then woken by one message.
	tHold := time.Now()
	ch, err := startRound(120 * time.Second)
	if err != nil {
		return err
	}
	waited := make(chan error, 1)
	go func() { waited <- waitForWaiters(b, n, 60*time.Second) }()
	select {
	case err := <-waited:
		if err != nil {
			return err
		}
	case rep := <-ch:
		if rep.err != nil {
			return rep.err
		}
		return fmt.Errorf("the long-polls returned before anything was sent (%d with events)", rep.r.WithEvents)
	}
	registered := time.Since(tHold)
	rss, hwm := rssKiB()
	if memProfile != "" {
		if err := writeHeapProfile(memProfile); err != nil {
			return err
		}
	}
	var ms1 runtime.MemStats
	runtime.ReadMemStats(&ms1)
	goroutines := runtime.NumGoroutine()
	fmt.Printf("   all %d long-polls waiting %v after the child started sending them\n", n, registered.Round(time.Millisecond))
	fmt.Printf("   server process RSS %.1f MiB while held (%.1f MiB before, %.1f KiB per held poll; peak so far %.1f MiB)  (target < 100 MiB)\n",
		float64(rss)/1024, float64(baseRSS)/1024, float64(rss-baseRSS)/float64(n), float64(hwm)/1024)
	fmt.Printf("   Go heap in use %.1f MiB, goroutine stacks %.1f MiB, Go runtime total %.1f MiB (Sys - HeapReleased); goroutines %d (%d before)\n",
		float64(ms1.HeapInuse)/(1<<20), float64(ms1.StackInuse)/(1<<20), float64(ms1.Sys-ms1.HeapReleased)/(1<<20), goroutines, baseGoroutines)
	anon, file := rssParts()
	fmt.Printf("   of the RSS: %.1f MiB anonymous memory, %.1f MiB mapped files (the program's code)\n", float64(anon)/1024, float64(file)/1024)

	tSend := time.Now()
	if _, err := call(newHTTPClient(), http.MethodPut, sendURL(b.url, roomID, "wake-all"), host.token, []byte(`{"msgtype":"m.text","body":"wake up, everyone"}`)); err != nil {
		return err
	}
	r1, err := await(ch, 90*time.Second)
	if err != nil {
		return err
	}
	lat := make([]time.Duration, len(r1.DoneUnixNS))
	for i, ns := range r1.DoneUnixNS {
		lat[i] = time.Unix(0, ns).Sub(tSend)
	}
	slices.Sort(lat)
	fmt.Printf("   one message woke them: %d of %d answered with it; send start -> answered p50 %v, p99 %v, last %v\n",
		r1.WithEvents, n, ms(pct(lat, 0.5)), ms(pct(lat, 0.99)), ms(lat[len(lat)-1]))
	_, hwm = rssKiB()
	fmt.Printf("   server peak RSS (VmHWM) after the wake-up %.1f MiB; client process RSS while held %.1f MiB\n",
		float64(hwm)/1024, float64(r1.RSSKiB)/1024)
	if r1.WithEvents != n {
		return fmt.Errorf("only %d of %d long-polls answered with the message", r1.WithEvents, n)
	}

	// Round 2: nothing happens; every poll must come back on its timeout.
	const timeout = 2 * time.Second
	tHold = time.Now()
	if ch, err = startRound(timeout); err != nil {
		return err
	}
	r2, err := await(ch, timeout+60*time.Second)
	if err != nil {
		return err
	}
	lat = lat[:0]
	for _, ns := range r2.DoneUnixNS {
		lat = append(lat, time.Unix(0, ns).Sub(tHold))
	}
	slices.Sort(lat)
	fmt.Printf("   timeout round (%v, no news): %d of %d returned empty; first after %v, last after %v\n\n",
		timeout, r2.OK-r2.WithEvents, n, ms(lat[0]), ms(lat[len(lat)-1]))
	if r2.OK != n || r2.WithEvents != 0 {
		return fmt.Errorf("timeout round: %d ok, %d with events, want %d and 0", r2.OK, r2.WithEvents, n)
	}
	return nil
}

// runPollerChild is part 3's client process: it reads the setup, then for
// each round holds one long-poll per user, each on its own connection, and
// reports when all have returned.
func runPollerChild() error {
	dec := json.NewDecoder(bufio.NewReader(os.Stdin))
	enc := json.NewEncoder(os.Stdout)
	var setup pollerSetup
	if err := dec.Decode(&setup); err != nil {
		return err
	}
	n := len(setup.Tokens)
	clients := make([]*http.Client, n)
	since := make([]string, n)
	for i := range n {
		// A transport per user: its own TCP connection, as separate
		// devices would have.
		clients[i] = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}}
		since[i] = setup.Since
	}
	type answer struct {
		i      int
		next   string
		events bool
		at     time.Time
		err    error
	}
	for {
		var round pollerRound
		if err := dec.Decode(&round); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
		answers := make(chan answer, n)
		for i := range n {
			go func() {
				body, err := call(clients[i], http.MethodGet, syncURL(setup.URL, since[i], time.Duration(round.TimeoutMS)*time.Millisecond), setup.Tokens[i], nil)
				a := answer{i: i, at: time.Now(), err: err}
				if err == nil {
					var resp mautrix.RespSync
					if a.err = json.Unmarshal(body, &resp); a.err == nil {
						a.next = resp.NextBatch
						for _, jr := range resp.Rooms.Join {
							a.events = a.events || len(jr.Timeline.Events) > 0
						}
					}
				}
				answers <- a
			}()
		}
		// Sample this process's size while the polls are out (once the
		// connections are likely open).
		rssSample := make(chan int64, 1)
		go func() {
			time.Sleep(500 * time.Millisecond)
			rss, _ := rssKiB()
			rssSample <- rss
		}()
		res := pollerResult{DoneUnixNS: make([]int64, 0, n)}
		for range n {
			a := <-answers
			res.DoneUnixNS = append(res.DoneUnixNS, a.at.UnixNano())
			if a.err != nil {
				res.Errors++
				if res.FirstError == "" {
					res.FirstError = a.err.Error()
				}
				continue
			}
			res.OK++
			since[a.i] = a.next
			if a.events {
				res.WithEvents++
			}
		}
		res.RSSKiB = <-rssSample
		if err := enc.Encode(res); err != nil {
			return err
		}
	}
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// rssKiB reads this process's resident set size and its peak from
// /proc/self/status (0 where unavailable, as off Linux).
// rssParts splits the RSS into anonymous memory (heaps, stacks, SQLite's
// page cache) and file-backed pages (the executable).
func rssParts() (anon, file int64) {
	v := procStatusKiB()
	return v["RssAnon"], v["RssFile"]
}

func rssKiB() (rss, hwm int64) {
	v := procStatusKiB()
	return v["VmRSS"], v["VmHWM"]
}

// procStatusKiB reads the kB figures of /proc/self/status.
func procStatusKiB() map[string]int64 {
	out := map[string]int64{}
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return out
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		name, val, ok := strings.Cut(line, ":")
		if ok && strings.HasSuffix(val, " kB") {
			out[name], _ = strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 10, 64)
		}
	}
	return out
}

func pct(sorted []time.Duration, p float64) time.Duration {
	return sorted[int(p*float64(len(sorted)-1)+0.5)]
}

// ms rounds a duration for printing.
func ms(d time.Duration) time.Duration {
	if d > time.Millisecond {
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}
