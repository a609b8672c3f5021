package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/rooms"
)

// startApp opens dir and starts its server; the test stops it at the end
// unless it did so itself.
func startApp(t *testing.T, dir string) *App {
	t.Helper()
	a, err := Open(dir, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Stop() })
	return a
}

// call sends a JSON request and returns the status and the decoded answer
// (success or Matrix error).
func call(t *testing.T, method, url, token string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("%s %s: %d with a body that is not JSON: %v", method, url, resp.StatusCode, err)
	}
	return resp.StatusCode, out
}

// login logs a user in over HTTP and returns the access token.
func login(t *testing.T, base, user, password string) string {
	t.Helper()
	status, out := call(t, http.MethodPost, base+"/_matrix/client/v3/login", "", map[string]any{
		"type": "m.login.password", "identifier": map[string]string{"type": "m.id.user", "user": user}, "password": password,
	})
	tok, _ := out["access_token"].(string)
	if status != http.StatusOK || tok == "" {
		t.Fatalf("login %s: %d %v", user, status, out)
	}
	return tok
}

func mustReadControl(t *testing.T, dir string) *controlFile {
	t.Helper()
	c, err := readControlFile(dir)
	if err != nil {
		t.Fatalf("control file: %v", err)
	}
	return c
}

func TestSecondServerOnOneDataDirectoryFails(t *testing.T) {
	dir := testDataDir(t)
	first := startApp(t, dir)

	second, err := Open(dir, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	err = second.Start()
	var running *AlreadyRunningError
	if !errors.As(err, &running) || !strings.Contains(err.Error(), "Palpo is already running with this data directory ("+dir+"); stop it first") {
		t.Fatalf("second Start: %v", err)
	}
	if st := second.Status(); st.State != StateError || st.Err == nil {
		t.Fatalf("second app after the refused start: %+v", st)
	}
	// `palpo serve` on the same directory fails at once, saying why.
	env, _, errOut := testEnv(nil)
	env.Signals = context.Background() // never asks to stop: only the failure may end it
	if code := Main([]string{"serve", "--data-dir", dir}, noGUI, env); code != 1 || !strings.Contains(errOut.String(), "stop it first") {
		t.Fatalf("palpo serve beside a running one: exit %d, %q", code, errOut)
	}
	// The refused starts left the first server alone.
	if status := getJSON(t, first.Status().ClientURL+"/_matrix/client/versions", "", nil); status != http.StatusOK {
		t.Fatalf("first server after the refused starts: %d", status)
	}

	if err := first.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := second.Start(); err != nil {
		t.Fatalf("Start after the first stopped: %v", err)
	}
	// The lock follows Stop and Start of one app too.
	if err := second.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := first.Start(); err != nil {
		t.Fatalf("restart of the first app: %v", err)
	}
	if err := first.Stop(); err != nil {
		t.Fatal(err)
	}
}

func TestControlFile(t *testing.T) {
	dir := testDataDir(t)
	a := startApp(t, dir)
	c := mustReadControl(t, dir)
	if want := "http://" + a.Server().Addrs()[0].String(); c.URL != want || !strings.HasPrefix(c.URL, "http://127.0.0.1:") {
		t.Fatalf("control url %q, want %q", c.URL, want)
	}
	if !strings.HasPrefix(c.Token, "pct_") || len(c.Token) < 40 {
		t.Fatalf("control token %q is not a fresh 256-bit secret", c.Token)
	}
	if runtime.GOOS != "windows" {
		fi, err := os.Stat(filepath.Join(dir, controlFileName))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("control file mode %v (%v), want 0600", fi.Mode(), err)
		}
	}
	// No temporary file is left beside it.
	if tmps, _ := filepath.Glob(filepath.Join(dir, ".control-*")); len(tmps) != 0 {
		t.Fatalf("temporary files left: %v", tmps)
	}

	// The secret is a server admin on the admin API…
	status, out := call(t, http.MethodGet, c.URL+"/_synapse/admin/v2/users", c.Token, nil)
	if status != http.StatusOK || out["total"] != float64(0) {
		t.Fatalf("admin list with the control token: %d %v", status, out)
	}
	status, out = call(t, http.MethodPut, c.URL+"/_synapse/admin/v2/users/@frank:localhost", c.Token,
		map[string]any{"password": goodPassword, "admin": false})
	if status != http.StatusCreated || out["name"] != "@frank:localhost" {
		t.Fatalf("create user with the control token: %d %v", status, out)
	}
	// …and nothing on the client API.
	for _, path := range []string{"/_matrix/client/v3/account/whoami", "/_matrix/client/v3/joined_rooms"} {
		status, out = call(t, http.MethodGet, c.URL+path, c.Token, nil)
		if status != http.StatusUnauthorized || out["errcode"] != "M_UNKNOWN_TOKEN" {
			t.Fatalf("%s with the control token: %d %v, want 401 M_UNKNOWN_TOKEN", path, status, out)
		}
	}
	// A wrong secret, one character off, is an unknown token; an ordinary
	// user's token is still no admin.
	status, out = call(t, http.MethodGet, c.URL+"/_synapse/admin/v2/users", c.Token[:len(c.Token)-1]+"x", nil)
	if status != http.StatusUnauthorized || out["errcode"] != "M_UNKNOWN_TOKEN" {
		t.Fatalf("admin API with a wrong secret: %d %v", status, out)
	}
	frank := login(t, c.URL, "frank", goodPassword)
	status, out = call(t, http.MethodGet, c.URL+"/_synapse/admin/v2/users", frank, nil)
	if status != http.StatusForbidden || out["errcode"] != "M_FORBIDDEN" {
		t.Fatalf("admin API with a user's token: %d %v", status, out)
	}

	// A clean stop removes the file; the next start writes a new secret,
	// and the old one is worthless.
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, controlFileName)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("control file after Stop: %v", err)
	}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	c2 := mustReadControl(t, dir)
	if c2.Token == c.Token {
		t.Fatal("the restarted server reuses the old secret")
	}
	status, out = call(t, http.MethodGet, c2.URL+"/_synapse/admin/v2/users", c.Token, nil)
	if status != http.StatusUnauthorized || out["errcode"] != "M_UNKNOWN_TOKEN" {
		t.Fatalf("old secret after a restart: %d %v", status, out)
	}
	if status, _ = call(t, http.MethodGet, c2.URL+"/_synapse/admin/v2/users", c2.Token, nil); status != http.StatusOK {
		t.Fatalf("new secret: %d", status)
	}
}

// A start after a crash replaces the dead server's control file.
func TestStaleControlFileReplacedOnStart(t *testing.T) {
	dir := testDataDir(t)
	stale := controlFile{URL: "http://127.0.0.1:1", Token: "pct_stale"}
	if err := writeControlFile(dir, stale); err != nil {
		t.Fatal(err)
	}
	startApp(t, dir)
	if c := mustReadControl(t, dir); c.Token == stale.Token || c.URL == stale.URL {
		t.Fatalf("stale control file kept: %+v", c)
	}
}

func TestControlURL(t *testing.T) {
	tcp := func(ip string, port int) net.Addr { return &net.TCPAddr{IP: net.ParseIP(ip), Port: port} }
	for _, tc := range []struct {
		addrs []net.Addr
		want  string
	}{
		{[]net.Addr{tcp("127.0.0.1", 8008)}, "http://127.0.0.1:8008"},
		{[]net.Addr{tcp("0.0.0.0", 8008)}, "http://127.0.0.1:8008"},
		{[]net.Addr{tcp("::", 8008)}, "http://127.0.0.1:8008"},
		{[]net.Addr{tcp("::1", 8008)}, "http://[::1]:8008"},
		{[]net.Addr{tcp("192.168.1.5", 8008)}, "http://192.168.1.5:8008"},
		// A loopback listener wins over a LAN one.
		{[]net.Addr{tcp("192.168.1.5", 8008), tcp("127.0.0.1", 9000)}, "http://127.0.0.1:9000"},
	} {
		if got := controlURL(tc.addrs); got != tc.want {
			t.Errorf("controlURL(%v) = %q, want %q", tc.addrs, got, tc.want)
		}
	}
}

// inRooms puts alice in two rooms of the running server: one she created
// (joined) and one bob created and invited her to.
func inRooms(t *testing.T, a *App, alice id.UserID) []id.RoomID {
	t.Helper()
	ctx := context.Background()
	if _, err := a.Server().Accounts().CreateAccount(ctx, accounts.NewAccount{Localpart: "bob", Password: goodPassword}); err != nil {
		t.Fatal(err)
	}
	own, err := a.Server().Rooms().CreateRoom(ctx, alice, &rooms.CreateRoomRequest{})
	if err != nil {
		t.Fatal(err)
	}
	invited, err := a.Server().Rooms().CreateRoom(ctx, "@bob:localhost", &rooms.CreateRoomRequest{Invite: []id.UserID{alice}})
	if err != nil {
		t.Fatal(err)
	}
	for room, want := range map[id.RoomID]event.Membership{own: event.MembershipJoin, invited: event.MembershipInvite} {
		if m, err := a.Server().Rooms().MembershipOf(ctx, room, alice); err != nil || m != want {
			t.Fatalf("alice in %s: %q %v, want %q", room, m, err, want)
		}
	}
	return []id.RoomID{own, invited}
}

func checkLeft(t *testing.T, a *App, user id.UserID, roomIDs []id.RoomID) {
	t.Helper()
	for _, room := range roomIDs {
		if m, err := a.Server().Rooms().MembershipOf(context.Background(), room, user); err != nil || m != event.MembershipLeave {
			t.Errorf("%s in %s after deactivation: %q %v, want leave", user, room, m, err)
		}
	}
	// bob is untouched.
	if m, _ := a.Server().Rooms().MembershipOf(context.Background(), roomIDs[1], "@bob:localhost"); m != event.MembershipJoin {
		t.Errorf("bob in his room: %q", m)
	}
}

func whoamiStatus(t *testing.T, base, token string) (int, any) {
	t.Helper()
	status, out := call(t, http.MethodGet, base+"/_matrix/client/v3/account/whoami", token, nil)
	return status, out["errcode"]
}

// With the server running, the commands ask it to make their changes, so
// deactivation leaves rooms through the server's own rooms service.
func TestDeactivateWhileServerRuns(t *testing.T) {
	dir := testDataDir(t)
	a := startApp(t, dir)
	base := a.Status().ClientURL
	mustCLI(t, goodPassword+"\n", "user", "add", "alice", "--data-dir", dir)
	roomIDs := inRooms(t, a, "@alice:localhost")
	tok := login(t, base, "alice", goodPassword)

	out := mustCLI(t, "", "user", "deactivate", "alice", "--data-dir", dir)
	if !strings.Contains(out, "Deactivated @alice:localhost") {
		t.Fatalf("deactivate: %q", out)
	}
	checkLeft(t, a, "@alice:localhost", roomIDs)
	if status, code := whoamiStatus(t, base, tok); status != http.StatusUnauthorized || code != "M_UNKNOWN_TOKEN" {
		t.Fatalf("alice's token after deactivation: %d %v", status, code)
	}
	// Deactivating again changes nothing and still succeeds, as the admin
	// API does.
	mustCLI(t, "", "user", "deactivate", "alice", "--data-dir", dir)
}

// With the server stopped, the command builds the server's services itself
// and the user leaves their rooms all the same.
func TestDeactivateWhileServerStopped(t *testing.T) {
	dir := testDataDir(t)
	a := startApp(t, dir)
	mustCLI(t, goodPassword+"\n", "user", "add", "alice", "--data-dir", dir)
	roomIDs := inRooms(t, a, "@alice:localhost")
	tok := login(t, a.Status().ClientURL, "alice", goodPassword)
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}

	out := mustCLI(t, "", "user", "deactivate", "alice", "--data-dir", dir)
	if !strings.Contains(out, "Deactivated @alice:localhost") {
		t.Fatalf("deactivate: %q", out)
	}
	// The command released the directory: the server starts again.
	if err := a.Start(); err != nil {
		t.Fatalf("start after the command: %v", err)
	}
	checkLeft(t, a, "@alice:localhost", roomIDs)
	if status, code := whoamiStatus(t, a.Status().ClientURL, tok); status != http.StatusUnauthorized || code != "M_UNKNOWN_TOKEN" {
		t.Fatalf("alice's token after deactivation: %d %v", status, code)
	}
}

// Every change goes through the running server, with its errors shown as
// their Matrix messages.
func TestChangesGoThroughRunningServer(t *testing.T) {
	dir := testDataDir(t)
	a := startApp(t, dir)
	base := a.Status().ClientURL
	ctx := context.Background()

	// The server's password policy answers, without the error code.
	code, _, errOut := cli(t, "short\n", nil, "user", "add", "bob", "--data-dir", dir)
	if code != 1 || !strings.Contains(errOut, "at least 8 characters") || strings.Contains(errOut, "M_WEAK_PASSWORD") {
		t.Fatalf("weak password: exit %d, %q", code, errOut)
	}
	mustCLI(t, goodPassword+"\n", "user", "add", "bob", "--admin", "--display-name", "Bob B", "--data-dir", dir)
	d, err := a.Server().Accounts().GetUserDetails(ctx, "@bob:localhost")
	if err != nil || !d.Admin || d.DisplayName != "Bob B" {
		t.Fatalf("bob: %+v %v", d, err)
	}
	mustCLI(t, "a changed password\n", "user", "passwd", "bob", "--data-dir", dir)
	login(t, base, "bob", "a changed password")
	mustCLI(t, "", "user", "deactivate", "bob", "--data-dir", dir)
	failsCLI(t, "short\n", 1, "at least 8 characters", "user", "reactivate", "bob", "--data-dir", dir)
	mustCLI(t, "back again password\n", "user", "reactivate", "bob", "--data-dir", dir)
	login(t, base, "bob", "back again password")

	tok := lastLine(mustCLI(t, "", "token", "create", "--token", "family", "--uses", "2", "--data-dir", dir))
	info, err := a.Server().Accounts().GetRegistrationToken(ctx, "family")
	if tok != "family" || err != nil || info.UsesAllowed == nil || *info.UsesAllowed != 2 {
		t.Fatalf("token: %q %+v %v", tok, info, err)
	}
	failsCLI(t, "", 1, "already exists", "token", "create", "--token", "family", "--data-dir", dir)

	// They really go through the server: with a wrong secret in the
	// control file they fail, saying the file is stale…
	c := mustReadControl(t, dir)
	if err := writeControlFile(dir, controlFile{URL: c.URL, Token: "pct_wrong"}); err != nil {
		t.Fatal(err)
	}
	failsCLI(t, "", 1, "the file is stale: restart Palpo", "token", "create", "--data-dir", dir)
	failsCLI(t, "", 1, "the file is stale", "user", "deactivate", "bob", "--data-dir", dir)
	// …while reading works from the database.
	if out := mustCLI(t, "", "user", "list", "--data-dir", dir); !strings.Contains(out, "@bob:localhost") {
		t.Fatalf("list: %q", out)
	}
	if err := writeControlFile(dir, *c); err != nil {
		t.Fatal(err)
	}
}

// When the directory is locked but the control file is missing or names
// no server, the commands say so.
func TestCommandsWithoutControlFile(t *testing.T) {
	dir := testDataDir(t)
	mustCLI(t, goodPassword+"\n", "user", "add", "alice", "--data-dir", dir)
	// A server that is starting holds the lock and has no control file yet.
	lock, ok, err := tryLockDataDir(dir)
	if err != nil || !ok {
		t.Fatalf("lock: %v %v", ok, err)
	}
	defer lock.Unlock()
	failsCLI(t, "", 1, "control file "+filepath.Join(dir, controlFileName)+" is missing", "user", "deactivate", "alice", "--data-dir", dir)
	failsCLI(t, goodPassword+"\n", 1, "is missing", "user", "add", "bob", "--data-dir", dir)
	// Reads and refusals that need no change still work.
	if out := mustCLI(t, "", "user", "list", "--data-dir", dir); !strings.Contains(out, "@alice:localhost") {
		t.Fatalf("list: %q", out)
	}
	failsCLI(t, "", 1, "no user @ghost:localhost", "user", "deactivate", "ghost", "--data-dir", dir)

	// A control file naming an address nobody listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + ln.Addr().String()
	ln.Close()
	if err := writeControlFile(dir, controlFile{URL: deadURL, Token: "pct_whatever"}); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := cli(t, "", nil, "user", "deactivate", "alice", "--data-dir", dir)
	if code != 1 || !strings.Contains(errOut, "does not answer") || strings.Contains(errOut, "pct_whatever") {
		t.Fatalf("dead control address: exit %d, %q", code, errOut)
	}
	if err := os.WriteFile(filepath.Join(dir, controlFileName), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	failsCLI(t, "", 1, "is damaged", "token", "create", "--data-dir", dir)
	// Nothing changed.
	withTool(t, dir, func(ctx context.Context, s *accounts.Service) {
		if u, err := s.GetUser(ctx, "@alice:localhost"); err != nil || u.Deactivated {
			t.Fatalf("alice: %+v %v", u, err)
		}
	})
}
