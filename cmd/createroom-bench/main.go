// Command createroom-bench measures POST /createRoom with long initial_state
// and invite lists on a real Palpo server started in-process on a loopback
// port with a temporary data directory. For each case it reports the time
// of the request and its answer, the process's peak RSS during it (VmHWM,
// reset before each case), and the latency of another user's sends into
// another room while it runs (one send at a time, back to back), which
// shows whether a big room creation stalls other rooms' writers.
//
// Cases: initial_state and invite lists of 1,000 entries (the cap), 8,000
// entries, and as many initial_state entries as the request body limit
// allows (the last two are refused with M_INVALID_PARAM). Invitees are real
// local accounts. The cost of building rooms beyond the cap is measured by
// BenchmarkCreateRoomLarge in server/rooms.
//
// Run it with `go run ./cmd/createroom-bench`.
package main

import (
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
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server"
	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/config"
)

func main() {
	sizes := flag.String("sizes", "1000,8000", "list lengths to try, besides the most the body limit allows")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the run to this file")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "createroom-bench:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	if err := run(*sizes); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "createroom-bench:", err)
		os.Exit(1)
	}
}

type user struct {
	id    id.UserID
	token string
}

type bench struct {
	srv     *server.Server
	url     string
	client  *http.Client
	maxBody int64
}

func run(sizeList string) error {
	var sizes []int
	for _, f := range strings.Split(sizeList, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return fmt.Errorf("-sizes: %q is not a positive number", f)
		}
		sizes = append(sizes, n)
	}
	dir, err := os.MkdirTemp("", "createroom-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cfg := config.Default()
	cfg.Listen = []string{"127.0.0.1:0"}
	lifted := config.RateLimit{PerSecond: 1e6, Burst: 1e6}
	cfg.RateLimits = config.RateLimits{LoginPerAddress: lifted, LoginPerAccount: lifted, RegisterPerAddress: lifted}
	srv, err := server.New(context.Background(), cfg, dir, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		return err
	}
	defer srv.Shutdown(context.Background())
	b := &bench{srv: srv, url: "http://" + srv.Addrs()[0].String(), client: &http.Client{}, maxBody: cfg.HTTP.MaxRequestBytes}
	fmt.Printf("createroom-bench: %s/%s, %d CPUs, %s, body limit %d bytes\n\n", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version(), b.maxBody)

	alice, err := b.newUser("alice", true)
	if err != nil {
		return err
	}
	bob, err := b.newUser("bob", true)
	if err != nil {
		return err
	}
	var bobRoom struct {
		RoomID id.RoomID `json:"room_id"`
	}
	if _, err := b.call("POST", "/_matrix/client/v3/createRoom", bob.token, []byte(`{}`), &bobRoom); err != nil {
		return err
	}
	invitees := make([]id.UserID, slices.Max(sizes))
	fmt.Printf("creating %d accounts to invite...\n", len(invitees))
	for i := range invitees {
		u, err := b.newUser(fmt.Sprintf("guest%d", i), false)
		if err != nil {
			return err
		}
		invitees[i] = u.id
	}
	fmt.Printf("\n%-28s %9s %9s %-22s %s\n", "case", "bytes", "time", "answer", "peak RSS; bob's sends meanwhile")
	type testCase struct {
		name string
		body []byte
	}
	var cases []testCase
	for _, n := range sizes {
		cases = append(cases, testCase{fmt.Sprintf("initial_state %d", n), initialStateBody(n)})
		inv, _ := json.Marshal(map[string]any{"invite": invitees[:n]})
		cases = append(cases, testCase{fmt.Sprintf("invite %d", n), inv})
	}
	n := b.mostInitialState()
	cases = append(cases, testCase{fmt.Sprintf("initial_state %d (limit)", n), initialStateBody(n)})
	for _, c := range cases {
		if err := b.measure(c.name, c.body, alice, bob, bobRoom.RoomID); err != nil {
			return err
		}
	}
	return nil
}

// initialStateBody is a createRoom body with n custom state events, the
// shape the hardening probe used (about 53 bytes an entry).
func initialStateBody(n int) []byte {
	var buf bytes.Buffer
	buf.WriteString(`{"initial_state":[`)
	for i := range n {
		if i > 0 {
			buf.WriteByte(',')
		}
		fmt.Fprintf(&buf, `{"type":"m.x","state_key":"%d","content":{"a":1}}`, i)
	}
	buf.WriteString(`]}`)
	return buf.Bytes()
}

// mostInitialState is the longest initial_state list that fits the body limit.
func (b *bench) mostInitialState() int {
	lo, hi := 1, int(b.maxBody)
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if int64(len(initialStateBody(mid))) <= b.maxBody {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return lo
}

func (b *bench) measure(name string, body []byte, alice, bob *user, bobRoom id.RoomID) error {
	runtime.GC()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		return fmt.Errorf("reset peak RSS: %w", err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var lat []time.Duration
	var sendErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			start := time.Now()
			path := fmt.Sprintf("/_matrix/client/v3/rooms/%s/send/m.room.message/%s-%d", url.PathEscape(string(bobRoom)), strings.ReplaceAll(name, " ", "-"), i)
			if _, err := b.call("PUT", path, bob.token, []byte(`{"msgtype":"m.text","body":"still here"}`), nil); err != nil {
				sendErr = err
				return
			}
			lat = append(lat, time.Since(start))
		}
	}()
	start := time.Now()
	status, err := b.call("POST", "/_matrix/client/v3/createRoom", alice.token, body, nil)
	took := time.Since(start)
	close(stop)
	wg.Wait()
	answer := strconv.Itoa(status)
	var he *httpError
	if errors.As(err, &he) {
		answer = fmt.Sprintf("%d %s", he.status, he.code)
	} else if err != nil {
		return err
	}
	if sendErr != nil {
		return fmt.Errorf("bob's sends: %w", sendErr)
	}
	slices.Sort(lat)
	sends := "none finished"
	if len(lat) > 0 {
		sends = fmt.Sprintf("%d sends, p50 %s, p99 %s, max %s", len(lat), round(lat[len(lat)/2]), round(lat[len(lat)*99/100]), round(lat[len(lat)-1]))
	}
	fmt.Printf("%-28s %9d %9s %-22s %s; %s\n", name, len(body), round(took), answer, peakRSS(), sends)
	return nil
}

func round(d time.Duration) time.Duration {
	if d > 10*time.Millisecond {
		return d.Round(time.Millisecond)
	}
	return d.Round(10 * time.Microsecond)
}

// peakRSS reads VmHWM, the peak resident set since the last reset.
func peakRSS() string {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "?"
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return fmt.Sprintf("%.1f MB", float64(kb)/1024)
		}
	}
	return "?"
}

func (b *bench) newUser(localpart string, login bool) (*user, error) {
	a := accounts.NewAccount{Localpart: localpart, ByAdmin: true}
	if login {
		a.Login = &accounts.SessionParams{DisplayName: "createroom-bench"}
	}
	res, err := b.srv.Accounts().CreateAccount(context.Background(), a)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", localpart, err)
	}
	return &user{id: res.UserID, token: res.AccessToken}, nil
}

type httpError struct {
	status int
	code   string
}

func (e *httpError) Error() string { return fmt.Sprintf("HTTP %d %s", e.status, e.code) }

func (b *bench) call(method, path, token string, body []byte, out any) (int, error) {
	req, err := http.NewRequest(method, b.url+path, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Code string `json:"errcode"`
		}
		_ = json.Unmarshal(raw, &e)
		return resp.StatusCode, &httpError{resp.StatusCode, e.Code}
	}
	if out != nil {
		return resp.StatusCode, json.Unmarshal(raw, out)
	}
	return resp.StatusCode, nil
}
