package server_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
)

// privacyHelperEnv makes TestPrivacyHelper run (in a child process).
const privacyHelperEnv = "PALPO_PRIVACY_HELPER"

// TestPrivacyNoSocketsWhenOff: with federation and P2P off (the
// defaults), a server asked to reach other servers in every way a user
// can ask (join a remote room by alias, by ID and through a P2P name, a
// remote profile, remote keys, remote media, a message to a remote
// user's device) opens no socket but its client listener: the only
// network system calls of the whole process are binding that listener
// and the test's own client connecting to it. The server runs in a child
// process (this test binary) under strace, which sees every socket,
// short-lived ones (a DNS lookup) included.
func TestPrivacyNoSocketsWhenOff(t *testing.T) {
	strace, err := exec.LookPath("strace")
	if err != nil {
		t.Skip("strace is not installed: the privacy test traces the server's system calls with it (apt install strace)")
	}
	out := filepath.Join(t.TempDir(), "trace")
	cmd := exec.Command(strace, "-f", "-qq", "-e", "trace=%network", "-o", out,
		os.Args[0], "-test.run=^TestPrivacyHelper$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), privacyHelperEnv+"=1")
	output, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, output)
	}
	m := regexp.MustCompile(`PRIVACY-LISTEN 127\.0\.0\.1:(\d+)`).FindSubmatch(output)
	if m == nil {
		t.Fatalf("the helper did not say where it listened:\n%s", output)
	}
	if !strings.Contains(string(output), "--- PASS: TestPrivacyHelper") {
		t.Fatalf("the helper did not run its requests:\n%s", output)
	}
	port, _ := strconv.Atoi(string(m[1]))
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var bad []string
	calls := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if problem := privacyProblem(line, port); problem != "" {
			bad = append(bad, problem+": "+line)
		}
		calls++
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if calls == 0 {
		t.Fatal("strace saw no network system call at all (not even the listener)")
	}
	if len(bad) > 0 {
		t.Fatalf("the server used the network beyond its listener on 127.0.0.1:%d:\n%s", port, strings.Join(bad, "\n"))
	}
}

var (
	straceAddr = regexp.MustCompile(`sin6?_port=htons\((\d+)\),.*?(?:sin_addr=inet_addr\("([^"]+)"\)|inet_pton\(AF_INET6, "([^"]+)")`)
	straceCall = regexp.MustCompile(`^\d+ +(\w+)\(`)
)

// privacyProblem says what is wrong with one strace line, or "".
func privacyProblem(line string, port int) string {
	call := straceCall.FindStringSubmatch(line)
	if call == nil {
		return "" // signals, exits, resumed calls
	}
	switch call[1] {
	case "socket":
		// Local kinds (AF_UNIX, netlink for interface lists) never leave
		// the machine; internet sockets are judged by what they bind,
		// connect or send to.
		if strings.Contains(line, "SOCK_DGRAM") && (strings.Contains(line, "AF_INET,") || strings.Contains(line, "AF_INET6,")) {
			return "a UDP socket"
		}
		return ""
	case "bind", "connect", "sendto", "sendmsg":
		if !strings.Contains(line, "sa_family=AF_INET") {
			return ""
		}
		a := straceAddr.FindStringSubmatch(line)
		if a == nil {
			return "an address strace did not print as expected"
		}
		p, _ := strconv.Atoi(a[1])
		ip := net.ParseIP(a[2] + a[3])
		switch {
		case call[1] == "bind" && ip != nil && ip.IsLoopback():
			// The listener (configured as 127.0.0.1:0), and Go's probe
			// of IPv6 support, which binds loopback sockets once.
			return ""
		case call[1] == "connect" && p == port && ip != nil && ip.IsLoopback():
			return "" // the test's client reaching the listener
		}
		return fmt.Sprintf("%s to %s port %d", call[1], ip, p)
	}
	return ""
}

// TestPrivacyHelper is the server TestPrivacyNoSocketsWhenOff traces.
func TestPrivacyHelper(t *testing.T) {
	if os.Getenv(privacyHelperEnv) == "" {
		t.Skip("run by TestPrivacyNoSocketsWhenOff")
	}
	s := testserver.New(t)
	fmt.Printf("PRIVACY-LISTEN %s\n", s.Addrs()[0])
	ctx := context.Background()
	alice := s.RegisterUser("alice")
	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SendText(ctx, room.RoomID, "hello"); err != nil {
		t.Fatal(err)
	}
	const p2pName = "duafvfkasysx6g3mesqxlgct7bhkun6bhff5bjyjebmlut7uhcva.p2p.alt"
	remote := id.UserID("@bob:example.org")
	attempts := map[string]func() error{
		"join by alias": func() error {
			_, err := alice.JoinRoom(ctx, "#family:example.org", nil)
			return err
		},
		"join by ID": func() error {
			_, err := alice.JoinRoom(ctx, "!abc:example.org", &mautrix.ReqJoinRoom{Via: []string{"example.org", p2pName}})
			return err
		},
		"invite": func() error {
			_, err := alice.InviteUser(ctx, room.RoomID, &mautrix.ReqInviteUser{UserID: remote})
			return err
		},
		"profile": func() error {
			_, err := alice.GetProfile(ctx, remote)
			return err
		},
		"P2P profile": func() error {
			_, err := alice.GetProfile(ctx, id.UserID("@carol:"+p2pName))
			return err
		},
		"keys": func() error {
			_, err := alice.QueryKeys(ctx, &mautrix.ReqQueryKeys{DeviceKeys: mautrix.DeviceKeysRequest{remote: {}}})
			return err
		},
		"to-device": func() error {
			_, err := alice.SendToDevice(ctx, event.ToDeviceDummy, &mautrix.ReqSendToDevice{Messages: map[id.UserID]map[id.DeviceID]*event.Content{remote: {"*": {Raw: map[string]any{}}}}})
			return err
		},
		"media": func() error {
			_, err := alice.DownloadBytes(ctx, id.ContentURI{Homeserver: "example.org", FileID: "abc"})
			return err
		},
	}
	for what, try := range attempts {
		// Failing is right; succeeding is fine too (a profile or keys
		// answered as unknown). Only sockets matter, and the parent
		// judges those.
		if err := try(); err != nil {
			t.Logf("%s: %v", what, err)
		}
	}
	if _, err := alice.SyncRequest(ctx, 0, "", "", false, event.PresenceOnline); err != nil {
		t.Fatal(err)
	}
}
