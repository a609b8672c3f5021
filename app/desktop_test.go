package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/config"
)

func TestLogBuffer(t *testing.T) {
	b := NewLogBuffer(3)
	ch, cancel := b.Subscribe()
	defer cancel()
	log := slog.New(b.Handler(slog.LevelInfo))
	log.Debug("hidden")
	log.Info("one", "user", "@a:b")
	select {
	case <-ch:
	default:
		t.Fatal("no notification for a new entry")
	}
	log.With("room", "!r:b").WithGroup("req").Warn("two", "status", 500)
	log.Error("three")
	log.Info("four")
	got := b.Entries()
	if len(got) != 3 {
		t.Fatalf("%d entries, want the last 3", len(got))
	}
	if got[0].Message != "two" || got[0].Attrs != "room=!r:b req.status=500" || got[0].Level != slog.LevelWarn {
		t.Errorf("entry = %+v", got[0])
	}
	if got[2].Message != "four" || got[2].Seq != 4 || got[1].Seq != 3 {
		t.Errorf("order/seq: %+v", got)
	}
	if s := got[0].String(); !strings.Contains(s, " WARN two room=!r:b") {
		t.Errorf("String() = %q", s)
	}
}

// Open tees the log: standard error gets it as before and the buffer too.
func TestOpenLogsToBoth(t *testing.T) {
	dir := t.TempDir()
	var out syncBuffer
	a, err := Open(dir, &out)
	if err != nil {
		t.Fatal(err)
	}
	a.Logger().Info("hello desktop", "k", "v")
	if !strings.Contains(out.String(), "hello desktop") {
		t.Fatalf("stderr log: %q", out.String())
	}
	e := a.Logs().Entries()
	if len(e) != 1 || e[0].Message != "hello desktop" || e[0].Attrs != "k=v" {
		t.Fatalf("buffer: %+v", e)
	}
}

func TestSingleInstance(t *testing.T) {
	dir := t.TempDir()
	first, err := ClaimInstance(dir)
	if err != nil {
		t.Fatal(err)
	}
	var shown atomic.Int32
	first.OnShow(func() { shown.Add(1) })

	if _, err := ClaimInstance(dir); !errors.Is(err, ErrInstanceRunning) {
		t.Fatalf("second claim: %v", err)
	}
	var out bytes.Buffer
	second, err := ClaimOrShow(context.Background(), dir, &out)
	if err != nil || second != nil {
		t.Fatalf("ClaimOrShow = %v, %v", second, err)
	}
	if shown.Load() != 1 || strings.TrimSpace(out.String()) != AlreadyRunningMessage {
		t.Fatalf("shown %d times, printed %q", shown.Load(), out.String())
	}

	// The file is private, and without its secret the call is refused.
	fi, err := os.Stat(filepath.Join(dir, instanceFileName))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("instance file: %v %v", fi, err)
	}
	f := readInstanceFile(t, dir)
	for _, auth := range []string{"", "Bearer wrong", "Bearer " + f.Secret + "x"} {
		req, _ := http.NewRequest(http.MethodPost, f.URL+showPath, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("auth %q: %d", auth, resp.StatusCode)
		}
	}
	if resp, err := http.Get(f.URL + showPath); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("GET: %d", resp.StatusCode)
		}
	}
	if shown.Load() != 1 {
		t.Fatal("a refused call showed the window")
	}

	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, instanceFileName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("instance file left behind")
	}
	again, err := ClaimInstance(dir)
	if err != nil {
		t.Fatalf("claim after close: %v", err)
	}
	again.Close()
}

func readInstanceFile(t *testing.T, dir string) instanceFile {
	t.Helper()
	var f instanceFile
	data, err := os.ReadFile(filepath.Join(dir, instanceFileName))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	return f
}

// A window that holds the lock but does not answer (hung, or its file is
// stale) makes a second launch fail with a message, not hang.
func TestShowRunningInstanceGivesUp(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nobody listens there now
	if err := writeFileAtomic(filepath.Join(dir, instanceFileName), []byte(`{"url":"http://`+addr+`","secret":"s"}`)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	if err := ShowRunningInstance(ctx, dir); err == nil || !strings.Contains(err.Error(), "does not answer") {
		t.Fatalf("err = %v", err)
	}
	if time.Since(start) > 20*time.Second {
		t.Fatal("took too long to give up")
	}
}

func TestPickLANAddress(t *testing.T) {
	c := func(name, ip string) lanCandidate { return lanCandidate{name, net.ParseIP(ip).To4()} }
	for _, tc := range []struct {
		cands []lanCandidate
		want  string
	}{
		{nil, ""},
		{[]lanCandidate{c("docker0", "172.17.0.1"), c("eth0", "192.168.1.20")}, "192.168.1.20"},
		{[]lanCandidate{c("eth0", "203.0.113.5"), c("wlan0", "10.0.0.7")}, "10.0.0.7"},
		{[]lanCandidate{c("wlan0", "10.0.0.7"), c("eth0", "192.168.0.3")}, "192.168.0.3"},
		{[]lanCandidate{c("virbr0", "192.168.122.1"), c("eth0", "172.20.1.4")}, "172.20.1.4"},
	} {
		if got := pickLANAddress(tc.cands); got != tc.want {
			t.Errorf("%v: got %q want %q", tc.cands, got, tc.want)
		}
	}
}

func TestSetupFlow(t *testing.T) {
	dir := t.TempDir()
	writeTestConfig(t, dir)
	a, err := Open(dir, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Stop() })
	ctx := context.Background()
	st, err := a.SetupState(ctx)
	if err != nil || !st.Needed || st.ServerNameFixed {
		t.Fatalf("new data directory: %+v %v", st, err)
	}
	// Bad answers are refused before anything is written.
	before := readConfigText(t, a)
	for _, req := range []SetupRequest{
		{ServerName: "bad name", Owner: "alice", Password: "long enough"},
		{ServerName: "example.org", Owner: "_alice", Password: "long enough"},
		{ServerName: "example.org", Owner: "alice", Password: "short"},
	} {
		if _, err := a.ApplySetup(ctx, req, nil); err == nil {
			t.Errorf("ApplySetup(%+v) accepted", req)
		}
	}
	if readConfigText(t, a) != before || a.Server() != nil {
		t.Fatal("a refused setup changed something")
	}

	var steps []string
	userID, err := a.ApplySetup(ctx, SetupRequest{ServerName: "example.org", Owner: "Alice", Password: "long enough",
		LANAddress: "127.0.0.2"}, func(s string) { steps = append(steps, s) })
	if err != nil {
		t.Fatal(err)
	}
	if userID != "@alice:example.org" || len(steps) < 3 {
		t.Fatalf("user %s, steps %q", userID, steps)
	}
	if a.Server() == nil || a.Config().ServerName != "example.org" {
		t.Fatal("server not running under the new name")
	}
	if l := a.Config().Listen; len(l) != 2 || !strings.HasPrefix(l[1], "127.0.0.2:") {
		t.Fatalf("listen = %v", l)
	}
	users, err := a.Users(ctx)
	if err != nil || len(users) != 1 || !users[0].Admin || users[0].UserID != userID {
		t.Fatalf("users = %+v, %v", users, err)
	}
	text := readConfigText(t, a)
	if !strings.Contains(text, `server_name = "example.org"`) {
		t.Fatalf("palpo.toml:\n%s", text)
	}
	if st, err := a.SetupState(ctx); err != nil || st.Needed {
		t.Fatalf("after setup: %+v %v", st, err)
	}
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	if st, err := a.SetupState(ctx); err != nil || st.Needed {
		t.Fatalf("after setup, stopped: %+v %v", st, err)
	}
}

// A server started once without accounts (by `palpo serve`) still needs
// its owner; its name is fixed by then.
func TestSetupAfterHeadlessStart(t *testing.T) {
	dir := t.TempDir()
	writeTestConfig(t, dir)
	a, err := Open(dir, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Stop() })
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := a.SetupState(ctx)
	if err != nil || !st.Needed || !st.ServerNameFixed || st.ServerName != "localhost" {
		t.Fatalf("state: %+v %v", st, err)
	}
	if _, err := a.ApplySetup(ctx, SetupRequest{ServerName: "other.example", Owner: "bob", Password: "long enough"}, nil); err == nil {
		t.Fatal("renaming a started server accepted")
	}
	if _, err := a.ApplySetup(ctx, SetupRequest{ServerName: "localhost", Owner: "bob", Password: "long enough"}, nil); err != nil {
		t.Fatal(err)
	}
}

func TestAdminOperations(t *testing.T) {
	dir := t.TempDir()
	writeTestConfig(t, dir)
	a, err := Open(dir, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Stop() })
	ctx := context.Background()
	if _, err := a.Users(ctx); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Users while stopped: %v", err)
	}
	if _, err := a.CreateUser(ctx, "x", "long enough", false); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("CreateUser while stopped: %v", err)
	}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	owner, err := a.CreateUser(ctx, "owner", "long enough", true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.CreateUser(ctx, "owner", "long enough", false); err == nil || !strings.Contains(err.Error(), "taken") {
		t.Fatalf("duplicate: %v", err)
	}
	// The only admin keeps their rights and account.
	if err := a.SetAdmin(ctx, owner, false); err == nil || !strings.Contains(err.Error(), "only admin") {
		t.Fatalf("demote last admin: %v", err)
	}
	if err := a.Deactivate(ctx, owner); err == nil {
		t.Fatal("deactivated the last admin")
	}
	bob, err := a.CreateUser(ctx, "bob", "long enough", false)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.SetAdmin(ctx, bob, true); err != nil {
		t.Fatal(err)
	}
	if err := a.SetAdmin(ctx, owner, false); err != nil {
		t.Fatalf("demote with another admin left: %v", err)
	}
	if err := a.ResetPassword(ctx, bob, "another password", true); err != nil {
		t.Fatal(err)
	}
	if err := a.ResetPassword(ctx, "@nobody:localhost", "another password", true); err == nil {
		t.Fatal("reset of an unknown user accepted")
	}
	if err := a.Deactivate(ctx, owner); err != nil {
		t.Fatal(err)
	}
	if err := a.ResetPassword(ctx, owner, "another password", true); err == nil {
		t.Fatal("reset of a deactivated user accepted")
	}

	inv, err := a.CreateInvite(ctx, 2, time.Hour)
	if err != nil || inv.UsesAllowed == nil || *inv.UsesAllowed != 2 || inv.ExpiryTime == nil {
		t.Fatalf("invite %+v %v", inv, err)
	}
	if _, err := a.CreateInvite(ctx, -1, 0); err == nil {
		t.Fatal("negative uses accepted")
	}
	list, err := a.Invites(ctx)
	if err != nil || len(list) != 1 || list[0].Token != inv.Token {
		t.Fatalf("invites %+v %v", list, err)
	}
	if err := a.RevokeInvite(ctx, inv.Token); err != nil {
		t.Fatal(err)
	}
	if err := a.RevokeInvite(ctx, inv.Token); err == nil {
		t.Fatal("revoked twice")
	}

	st, err := a.Stats(ctx)
	if err != nil || st.Users != 1 || st.Rooms != 0 || st.DBBytes == 0 || st.MediaBytes != 0 {
		t.Fatalf("stats %+v %v", st, err)
	}
	// A room and an upload show in the figures.
	base := "http://" + a.Server().Addrs()[0].String()
	tok := login(t, base, "bob", "another password")
	if status, out := call(t, http.MethodPost, base+"/_matrix/client/v3/createRoom", tok, map[string]any{}); status != http.StatusOK {
		t.Fatalf("createRoom: %d %v", status, out)
	}
	req, _ := http.NewRequest(http.MethodPost, base+"/_matrix/media/v3/upload", strings.NewReader("twelve bytes"))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("upload: %d", resp.StatusCode)
	}
	if st, err = a.Stats(ctx); err != nil || st.Rooms != 1 || st.MediaBytes != 12 {
		t.Fatalf("stats after a room and an upload: %+v %v", st, err)
	}
	users, _ := a.Users(ctx)
	flags := map[id.UserID]string{}
	for _, u := range users {
		flags[u.UserID] = map[bool]string{true: "admin", false: "user"}[u.Admin] + map[bool]string{true: ",deactivated", false: ""}[u.Deactivated]
	}
	if flags[owner] != "user,deactivated" || flags[bob] != "admin" {
		t.Fatalf("flags %v", flags)
	}
}

// CheckNewUser explains a bad name or password as the server would.
func TestCheckNewUser(t *testing.T) {
	a := openTestApp(t, `listen = ["127.0.0.1:0"]`)
	var re mautrix.RespError
	if _, err := a.CheckNewUser("bad name", "long enough"); !errors.As(err, &re) || re.ErrCode != mautrix.MInvalidUsername.ErrCode {
		t.Errorf("bad name: %v", err)
	}
	if _, err := a.CheckNewUser("alice", "short"); !errors.As(err, &re) || re.ErrCode != "M_WEAK_PASSWORD" {
		t.Errorf("short password: %v", err)
	}
	if id, err := a.CheckNewUser("Alice", "long enough"); err != nil || id != "@alice:localhost" {
		t.Errorf("good: %s %v", id, err)
	}
}

func TestBackupSettings(t *testing.T) {
	a := openTestApp(t, config.Example)
	s := a.BackupSettings()
	if s.Schedule != config.BackupOff || s.Keep != 7 || s.Encrypted || s.Dir != "" {
		t.Fatalf("defaults: %+v", s)
	}
	s.Schedule, s.Keep, s.Dir = config.BackupDaily, 3, "/media/usb/palpo"
	if err := a.SaveBackupSettings(s, ""); err != nil {
		t.Fatal(err)
	}
	if got := a.BackupSettings(); got != s {
		t.Fatalf("saved %+v, read %+v", s, got)
	}
	if a.BackupDir() != "/media/usb/palpo" {
		t.Fatalf("BackupDir = %s", a.BackupDir())
	}
	s.Encrypted = true
	if err := a.SaveBackupSettings(s, ""); err == nil {
		t.Fatal("encryption without a passphrase accepted")
	}
	if err := a.SaveBackupSettings(s, "correct horse battery"); err != nil {
		t.Fatal(err)
	}
	if pass, err := a.BackupPassphrase(); err != nil || pass != "correct horse battery" {
		t.Fatalf("passphrase %q %v", pass, err)
	}
	passFile := filepath.Join(a.DataDir(), desktopPassphraseFile)
	if fi, err := os.Stat(passFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("passphrase file: %v %v", fi, err)
	}
	s.Encrypted = false
	if err := a.SaveBackupSettings(s, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(passFile); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("passphrase file kept after turning encryption off")
	}
	if pass, err := a.BackupPassphrase(); err != nil || pass != "" {
		t.Fatalf("passphrase after off: %q %v", pass, err)
	}
	text := readConfigText(t, a)
	for _, want := range []string{`schedule = "daily"`, "keep = 3", `dir = "/media/usb/palpo"`, `passphrase_file = ""`, "# How many of this server's backups to keep"} {
		if !strings.Contains(text, want) {
			t.Errorf("palpo.toml lacks %q", want)
		}
	}
}
