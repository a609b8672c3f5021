package server_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/p2p"
	"github.com/palpo-im/palpo-desktop/p2p/servername"
	"github.com/palpo-im/palpo-desktop/server"
	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/config"
	"github.com/palpo-im/palpo-desktop/server/identity"
)

// The NAT test's helper processes are this test binary, told their part
// by these variables.
const (
	natEnv     = "PALPO_NAT"      // set to run TestNATRelayThenHolePunch (make test-nat)
	natRoleEnv = "PALPO_NAT_ROLE" // "relay", "a" or "b" in a helper
	natDirEnv  = "PALPO_NAT_DIR"  // where the helpers leave what the others need
	natModeEnv = "PALPO_NAT_MODE" // "relay" (hole punching off) or "punch"
	// natIdleEnv, a duration, makes the test keep the homes idle that long
	// after the messages and report home a's upkeep: bytes on its LAN link
	// (relay reservation, DHT, identify, AutoNAT, keep-alives), CPU and RSS.
	natIdleEnv = "PALPO_NAT_IDLE"
)

// natNet is the test's network: an "internet" namespace with the relay,
// and two homes, each a router namespace doing NAT (iptables MASQUERADE)
// in front of a LAN namespace where a Palpo runs. The WAN addresses are
// in 11.0.0.0/8, which libp2p counts as public (the namespaces are
// isolated: nothing leaves this machine).
type natNet struct {
	t      *testing.T
	prefix string
}

func (n *natNet) ns(name string) string { return n.prefix + "-" + name }

func (n *natNet) run(args ...string) {
	n.t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		n.t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func (n *natNet) in(ns string, args ...string) {
	n.t.Helper()
	n.run(append([]string{"ip", "netns", "exec", n.ns(ns)}, args...)...)
}

// link joins two namespaces with a veth pair and addresses each end.
func (n *natNet) link(nsA, ifA, addrA, nsB, ifB, addrB string) {
	n.t.Helper()
	n.run("ip", "link", "add", ifA, "netns", n.ns(nsA), "type", "veth", "peer", "name", ifB, "netns", n.ns(nsB))
	for _, e := range [][3]string{{nsA, ifA, addrA}, {nsB, ifB, addrB}} {
		n.in(e[0], "ip", "addr", "add", e[2], "dev", e[1])
		n.in(e[0], "ip", "link", "set", e[1], "up")
	}
}

func newNATNet(t *testing.T) *natNet {
	n := &natNet{t: t, prefix: "palpo-nat-" + strconv.Itoa(os.Getpid())}
	for _, ns := range []string{"inet", "ra", "la", "rb", "lb"} {
		n.run("ip", "netns", "add", n.ns(ns))
		t.Cleanup(func() { exec.Command("ip", "netns", "del", n.ns(ns)).Run() })
		n.in(ns, "ip", "link", "set", "lo", "up")
	}
	// Interface names are per namespace, so they need not be unique.
	n.link("inet", "wa", "11.0.1.1/24", "ra", "wan", "11.0.1.2/24")
	n.link("inet", "wb", "11.0.2.1/24", "rb", "wan", "11.0.2.2/24")
	n.link("ra", "lan", "192.168.1.1/24", "la", "eth0", "192.168.1.2/24")
	n.link("rb", "lan", "192.168.2.1/24", "lb", "eth0", "192.168.2.2/24")
	n.in("inet", "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
	for _, r := range []string{"ra", "rb"} {
		n.in(r, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
		n.in(r, "ip", "route", "add", "default", "via", map[string]string{"ra": "11.0.1.1", "rb": "11.0.2.1"}[r])
		n.in(r, "iptables", "-t", "nat", "-A", "POSTROUTING", "-o", "wan", "-j", "MASQUERADE")
		// A home router's firewall: nothing unsolicited comes in from
		// the internet. (Dropped before conntrack confirms it, so an early
		// punch packet from the other home leaves no entry behind that
		// would make the NAT pick another port for this home's punch.)
		n.in(r, "iptables", "-A", "INPUT", "-i", "wan", "-m", "conntrack", "--ctstate", "NEW,INVALID", "-j", "DROP")
		n.in(r, "iptables", "-A", "FORWARD", "-i", "wan", "-m", "conntrack", "--ctstate", "NEW,INVALID", "-j", "DROP")
	}
	n.in("la", "ip", "route", "add", "default", "via", "192.168.1.1")
	n.in("lb", "ip", "route", "add", "default", "via", "192.168.2.1")
	return n
}

// natReady is what a home helper leaves for the other: its name and
// relayed addresses.
type natReady struct {
	Name  string   `json:"name"`
	Addrs []string `json:"addrs"`
	// ReadyAfter is how long the home took from start to a relay
	// reservation (its status saying "relay").
	ReadyAfter time.Duration `json:"ready_after"`
}

// natResult is what home a measured (b only sends and answers).
type natResult struct {
	// FirstMessage is from the homes' introduction (both ready, each
	// given the other's relayed addresses) to the arrival of b's first
	// message, b's join of a's room included; FirstLatency is that
	// message's own send-to-arrival time, and FirstKind the connection
	// between the homes when it arrived.
	FirstMessage time.Duration `json:"first_message"`
	FirstLatency time.Duration `json:"first_latency"`
	FirstKind    string        `json:"first_kind"`
	// DirectAfter is from the first message to a direct connection
	// (with hole punching).
	DirectAfter time.Duration `json:"direct_after"`
	// Latency is the send-to-arrival time of later messages (the median
	// of natRounds), over Kind.
	Latency time.Duration `json:"latency"`
	Kind    string        `json:"kind"`
}

// natRounds is how many messages after the first are timed.
const natRounds = 9

// TestNATRelayThenHolePunch: two homes behind NATs reach each other
// through a relay in a third namespace, then directly after hole
// punching (DCUtR). Each Palpo runs in its home's LAN namespace as a
// child process; the test logs the measured times. Needs root, ip and
// iptables; run it with `make test-nat`.
func TestNATRelayThenHolePunch(t *testing.T) {
	if os.Getenv(natEnv) == "" {
		t.Skip("the NAT test runs with make test-nat (" + natEnv + "=1): it needs root, ip and iptables")
	}
	if os.Geteuid() != 0 {
		t.Skip("the NAT test needs root to create network namespaces")
	}
	for _, tool := range []string{"ip", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the NAT test needs %s (apt install iproute2 iptables)", tool)
		}
	}
	for _, mode := range []string{"relay", "punch"} {
		t.Run(mode, func(t *testing.T) { natRun(t, mode) })
	}
}

// natRun runs one scenario in a fresh network: "relay" with hole
// punching off in the homes (every message through the relay), "punch"
// with it on (the connection must become direct).
func natRun(t *testing.T, mode string) {
	n := newNATNet(t)
	dir := t.TempDir()
	start := func(ns, role string) *exec.Cmd {
		cmd := exec.Command("ip", "netns", "exec", n.ns(ns), os.Args[0], "-test.run=^TestNATHelper$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), natRoleEnv+"="+role, natDirEnv+"="+dir, natModeEnv+"="+mode)
		logFile, err := os.Create(filepath.Join(dir, role+".log"))
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout, cmd.Stderr = logFile, logFile
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cmd.Process.Kill()
			cmd.Wait()
			logFile.Close()
			if t.Failed() {
				out, _ := os.ReadFile(logFile.Name())
				t.Logf("%s helper:\n%s", role, out)
			}
		})
		return cmd
	}
	start("inet", "relay")
	a := start("la", "a")
	b := start("lb", "b")
	if idle := os.Getenv(natIdleEnv); idle != "" {
		d, err := time.ParseDuration(idle)
		if err != nil {
			t.Fatalf("%s=%q: %v", natIdleEnv, idle, err)
		}
		waitFile(t, filepath.Join(dir, "a.result"), &natResult{}, 3*time.Minute)
		natMeasureIdle(t, n, a.Process.Pid, d)
		writeJSON(t, filepath.Join(dir, "stop"), true)
	}
	for _, c := range []*exec.Cmd{a, b} {
		if err := c.Wait(); err != nil {
			t.Fatalf("home helper: %v", err)
		}
	}
	var readyA, readyB natReady
	var res natResult
	readJSON(t, filepath.Join(dir, "a.ready"), &readyA)
	readJSON(t, filepath.Join(dir, "b.ready"), &readyB)
	readJSON(t, filepath.Join(dir, "a.result"), &res)
	want := map[string]string{"relay": p2p.ConnectionRelay, "punch": p2p.ConnectionDirect}[mode]
	if res.Kind != want {
		t.Fatalf("later messages went over %q, want %q", res.Kind, want)
	}
	ms := func(d time.Duration) string { return d.Round(100 * time.Microsecond).String() }
	t.Logf("%s: relay reservations after %s (a) and %s (b); first message (join included) %s after the introduction, "+
		"itself %s over %s; direct connection %s after it; later messages %s each over %s (median of %d)",
		mode, ms(readyA.ReadyAfter), ms(readyB.ReadyAfter), ms(res.FirstMessage), ms(res.FirstLatency), res.FirstKind,
		ms(res.DirectAfter), ms(res.Latency), res.Kind, natRounds)
}

// natMeasureIdle samples home a's link counters and process for d.
func natMeasureIdle(t *testing.T, n *natNet, pid int, d time.Duration) {
	t.Helper()
	bytes := func() (rx, tx int64) {
		for i, f := range []string{"rx_bytes", "tx_bytes"} {
			out, err := exec.Command("ip", "netns", "exec", n.ns("la"), "cat", "/sys/class/net/eth0/statistics/"+f).Output()
			if err != nil {
				t.Fatal(err)
			}
			v, _ := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
			if i == 0 {
				rx = v
			} else {
				tx = v
			}
		}
		return rx, tx
	}
	cpu := func() time.Duration {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			t.Fatal(err)
		}
		f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
		utime, _ := strconv.ParseInt(f[11], 10, 64)
		stime, _ := strconv.ParseInt(f[12], 10, 64)
		return time.Duration(utime+stime) * time.Second / 100 // USER_HZ
	}
	rss := func() string {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(l, "VmRSS:") {
				return strings.TrimSpace(strings.TrimPrefix(l, "VmRSS:"))
			}
		}
		return "?"
	}
	rx0, tx0 := bytes()
	cpu0 := cpu()
	time.Sleep(d) // the measurement itself: the homes do nothing meanwhile
	rx1, tx1 := bytes()
	cpu1 := cpu()
	perMin := func(b int64) int64 { return b * int64(time.Minute) / int64(d) }
	t.Logf("idle home a over %v: %d bytes/min in, %d bytes/min out; CPU %.2f%% of one core; RSS %s (the test binary, race detector included if on)",
		d, perMin(rx1-rx0), perMin(tx1-tx0), 100*float64(cpu1-cpu0)/float64(d), rss())
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".tmp", data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}

// waitFile waits for another helper's file and reads it.
func waitFile(t *testing.T, path string, v any, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if _, err := os.Stat(path); err == nil {
			readJSON(t, path, v)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear within %v", path, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestNATHelper is one part of TestNATRelayThenHolePunch, in its own
// network namespace.
func TestNATHelper(t *testing.T) {
	role, dir := os.Getenv(natRoleEnv), os.Getenv(natDirEnv)
	if role == "" {
		t.Skip("run by TestNATRelayThenHolePunch")
	}
	if role == "relay" {
		natRelay(t, dir)
		return
	}
	natHome(t, dir, role)
}

// natRelay runs a circuit relay v2 (with AutoNAT service) until killed.
func natRelay(t *testing.T, dir string) {
	h, err := libp2p.New(
		libp2p.ListenAddrStrings("/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/udp/4001/quic-v1"),
		libp2p.EnableRelayService(), libp2p.EnableNATService(), libp2p.ForceReachabilityPublic())
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	// It is the homes' DHT bootstrap node as well.
	d, err := dht.New(h, dht.Mode(dht.ModeServer))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var addrs []string
	for _, a := range h.Addrs() {
		addrs = append(addrs, a.String()+"/p2p/"+h.ID().String())
	}
	writeJSON(t, filepath.Join(dir, "relay.ready"), addrs)
	select {} // until the test kills it
}

func natHome(t *testing.T, dir, me string) {
	mode := os.Getenv(natModeEnv)
	other := map[string]string{"a": "b", "b": "a"}[me]
	var relays []string
	waitFile(t, filepath.Join(dir, "relay.ready"), &relays, 30*time.Second)

	data := t.TempDir()
	key, err := identity.LoadOrCreate(data)
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.ServerName = servername.FromKey(key.Priv.Public().(ed25519.PublicKey))
	cfg.Listen = []string{"127.0.0.1:0"}
	cfg.P2P.Enabled = true
	cfg.P2P.Listen = []string{"/ip4/0.0.0.0/tcp/8449", "/ip4/0.0.0.0/udp/8449/quic-v1"}
	cfg.P2P.MDNS, cfg.P2P.PortMapping = false, false
	cfg.P2P.Relays, cfg.P2P.BootstrapPeers = relays, relays
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	srv, err := server.New(context.Background(), cfg, data, log)
	if err != nil {
		t.Fatal(err)
	}
	node := srv.P2P()
	// On its own AutoNAT would find the home unreachable after a few
	// probes through the relay's AutoNAT service; forcing it makes the
	// measured times about the relay and hole punching, not AutoNAT's
	// schedule.
	if os.Getenv("PALPO_NAT_AUTONAT") == "" {
		node.Options = append(node.Options, libp2p.ForceReachabilityPrivate())
	}
	if mode == "relay" {
		node.Options = append(node.Options, func(c *libp2p.Config) error {
			c.EnableHolePunching = false
			return nil
		})
	}
	started := time.Now()
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	if !pollUntil(3*time.Minute, func() bool { return node.Status().Reachability == p2p.ReachabilityRelay }) {
		t.Fatalf("no relay reservation: %+v", node.Status())
	}
	reserved := time.Since(started)
	// Hole punching starts once the relay has told the home its public
	// address; a relayed connection made before would stay relayed.
	if mode == "punch" && !pollUntil(time.Minute, func() bool { return node.Status().HolePunching }) {
		t.Fatalf("hole punching never ready: %+v", node.Status())
	}
	var circuit []string
	for _, a := range node.Addrs() {
		if strings.Contains(a, "/p2p-circuit/") {
			circuit = append(circuit, a)
		}
	}
	writeJSON(t, filepath.Join(dir, me+".ready"), natReady{Name: srv.ServerName(), Addrs: circuit, ReadyAfter: reserved})
	var peer natReady
	waitFile(t, filepath.Join(dir, other+".ready"), &peer, 3*time.Minute)
	introduced := time.Now()
	// The other home's relayed addresses, as a person would paste them.
	if err := node.Connect(context.Background(), peer.Addrs...); err != nil {
		t.Logf("first connection to %s: %v (retried by the requests)", peer.Name, err)
	}
	if c := node.Connection(peer.Name); c == p2p.ConnectionDirect {
		t.Fatalf("the homes are connected directly before hole punching: %s", c)
	}

	ctx := context.Background()
	cli, err := mautrix.NewClient("http://"+srv.Addrs()[0].String(), "", "")
	if err != nil {
		t.Fatal(err)
	}
	reg, err := srv.Accounts().CreateAccount(ctx, natAccount(me))
	if err != nil {
		t.Fatal(err)
	}
	cli.UserID, cli.AccessToken = reg.UserID, reg.AccessToken
	var res natResult
	var room id.RoomID
	if me == "a" {
		created, err := cli.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		if err != nil {
			t.Fatal(err)
		}
		room = created.RoomID
		writeJSON(t, filepath.Join(dir, "room"), room)
	} else {
		waitFile(t, filepath.Join(dir, "room"), &room, time.Minute)
		if _, err := cli.JoinRoom(ctx, room.String(), &mautrix.ReqJoinRoom{Via: []string{peer.Name}}); err != nil {
			t.Fatalf("join over the relay: %v", err)
		}
	}
	// Each message carries its send time; the receiver measures.
	send := func(body string) {
		if _, err := cli.SendText(ctx, room, body+" "+strconv.FormatInt(time.Now().UnixNano(), 10)); err != nil {
			t.Fatal(err)
		}
	}
	receive := func(prefix string) (sent time.Time, at time.Time) {
		t.Helper()
		since := ""
		deadline := time.Now().Add(2 * time.Minute)
		for time.Now().Before(deadline) {
			resp, err := cli.SyncRequest(ctx, 5000, since, "", false, event.PresenceOnline)
			if err != nil {
				t.Fatal(err)
			}
			since = resp.NextBatch
			jr := resp.Rooms.Join[room]
			if jr == nil {
				continue
			}
			for _, ev := range jr.Timeline.Events {
				body, _ := ev.Content.Raw["body"].(string)
				if rest, ok := strings.CutPrefix(body, prefix+" "); ok && ev.Sender != cli.UserID {
					ns, _ := strconv.ParseInt(rest, 10, 64)
					return time.Unix(0, ns), time.Now()
				}
			}
		}
		t.Fatalf("%q never arrived", prefix)
		return
	}
	if me == "b" {
		send("first")
		receive("first-reply")
		for i := range natRounds {
			send("round" + strconv.Itoa(i))
			receive("round-reply" + strconv.Itoa(i))
		}
		send("done")
		waitFile(t, filepath.Join(dir, "a.result"), &natResult{}, time.Minute)
		return
	}
	sent, at := receive("first")
	res.FirstKind = node.Connection(peer.Name)
	res.FirstMessage, res.FirstLatency = at.Sub(introduced), at.Sub(sent)
	send("first-reply")
	if mode == "punch" {
		if !pollUntil(natDirectWait, func() bool { return node.Connection(peer.Name) == p2p.ConnectionDirect }) {
			t.Fatalf("no direct connection after hole punching within %v (still %q)", natDirectWait, node.Connection(peer.Name))
		}
		res.DirectAfter = time.Since(at)
	}
	var lat []time.Duration
	for i := range natRounds {
		sent, at := receive("round" + strconv.Itoa(i))
		lat = append(lat, at.Sub(sent))
		send("round-reply" + strconv.Itoa(i))
	}
	slices.Sort(lat)
	res.Latency, res.Kind = lat[len(lat)/2], node.Connection(peer.Name)
	receive("done")
	writeJSON(t, filepath.Join(dir, "a.result"), res)
	if os.Getenv(natIdleEnv) != "" {
		// Idle, for the parent to measure upkeep.
		waitFile(t, filepath.Join(dir, "stop"), new(bool), time.Hour)
	}
}

func pollUntil(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return cond()
}

func natAccount(localpart string) accounts.NewAccount {
	return accounts.NewAccount{Localpart: "user" + localpart, Password: "correct horse battery staple", ByAdmin: true,
		Login: &accounts.SessionParams{DisplayName: "nat test"}}
}

// natDirectWait bounds the wait for hole punching.
var natDirectWait = 20 * time.Second
