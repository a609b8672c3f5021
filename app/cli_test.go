package app

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/palpo-im/palpo-desktop/server/config"
)

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func testEnv(vars map[string]string) (Env, *syncBuffer, *syncBuffer) {
	out, errOut := &syncBuffer{}, &syncBuffer{}
	return Env{
		Stdout: out, Stderr: errOut, GOOS: "linux",
		Getenv: func(k string) string { return vars[k] },
	}, out, errOut
}

var noGUI = GUI{}

func TestVersionAndHelp(t *testing.T) {
	env, out, _ := testEnv(nil)
	if code := Main([]string{"version"}, noGUI, env); code != 0 || !strings.Contains(out.String(), Version) {
		t.Fatalf("version: %d %q", code, out)
	}
	env, out, _ = testEnv(nil)
	if code := Main([]string{"help"}, noGUI, env); code != 0 || !strings.Contains(out.String(), "palpo serve") {
		t.Fatalf("help: %d %q", code, out)
	}
	env, _, errOut := testEnv(nil)
	if code := Main([]string{"frobnicate"}, noGUI, env); code != 2 || !strings.Contains(errOut.String(), "frobnicate") {
		t.Fatalf("unknown command: %d %q", code, errOut)
	}
	env, _, _ = testEnv(nil)
	if code := Main([]string{"--no-such-flag"}, noGUI, env); code != 2 {
		t.Fatalf("bad flag: %d", code)
	}
}

func TestConfigExample(t *testing.T) {
	env, out, _ := testEnv(nil)
	if code := Main([]string{"config", "example"}, noGUI, env); code != 0 {
		t.Fatal(code)
	}
	if _, err := config.Parse(out.String()); err != nil || !strings.Contains(out.String(), "# ") {
		t.Fatalf("printed example does not parse or lacks comments: %v", err)
	}
	env, _, _ = testEnv(nil)
	if code := Main([]string{"config"}, noGUI, env); code != 2 {
		t.Fatalf("bare config: %d", code)
	}
}

// writeTestConfig makes dir a data directory whose server listens on a
// random loopback port, so tests never collide with a real Palpo.
func writeTestConfig(t *testing.T, dir string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, config.FileName), []byte(`listen = ["127.0.0.1:0"]`), 0o600); err != nil {
		t.Fatal(err)
	}
}

// runServe runs `palpo serve` until it is ready, checks it answers, then
// asks it to stop the way SIGTERM would, and returns the exit code.
func runServe(t *testing.T, args []string, vars map[string]string, check func(a *App)) (int, string) {
	t.Helper()
	env, _, errOut := testEnv(vars)
	stop, cancel := context.WithCancel(context.Background())
	defer cancel()
	env.Signals = stop
	env.Ready = func(a *App) {
		check(a)
		cancel()
	}
	done := make(chan int, 1)
	go func() { done <- Main(args, noGUI, env) }()
	select {
	case code := <-done:
		return code, errOut.String()
	case <-time.After(30 * time.Second):
		t.Fatal("palpo serve did not finish")
		return 0, ""
	}
}

func TestServeAnswersAndStopsCleanly(t *testing.T) {
	dir := t.TempDir()
	writeTestConfig(t, dir)
	var answered bool
	code, logs := runServe(t, []string{"serve", "--data-dir", dir}, nil, func(a *App) {
		resp, err := http.Get(a.Status().ClientURL + "/_matrix/client/versions")
		if err == nil {
			answered = resp.StatusCode == 200
			resp.Body.Close()
		}
	})
	if code != 0 || !answered {
		t.Fatalf("exit %d, answered %v\n%s", code, answered, logs)
	}
	if !strings.Contains(logs, "connect your Matrix client to http://localhost:") {
		t.Fatalf("no line telling the URL: %s", logs)
	}
	if !strings.Contains(logs, "stopped cleanly") {
		t.Fatalf("no clean stop: %s", logs)
	}
	// A new server says how to make the first account, with commands
	// that work as typed.
	if !strings.Contains(logs, "`palpo user add NAME --admin`") || !strings.Contains(logs, "`palpo invite create`") {
		t.Fatalf("no first-run hint naming palpo: %s", logs)
	}
	// A clean stop checkpoints the WAL, leaving the database self-contained.
	if st, err := os.Stat(filepath.Join(dir, "palpo.db-wal")); err == nil && st.Size() > 0 {
		t.Fatalf("WAL left with %d bytes after clean shutdown", st.Size())
	}
	for _, f := range []string{"palpo.toml", "palpo.db", "signing.key"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("data directory lacks %s: %v", f, err)
		}
	}
}

func TestDataDirFromEnvironmentAndDefaultConfig(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "palpo")
	env, _, errOut := testEnv(map[string]string{EnvDataDir: dir})
	// Only open the app: the default config listens on 8008, which a test
	// must not take; this checks what a first start lays down.
	a, err := openApp("", env)
	if err != nil {
		t.Fatalf("%v %s", err, errOut)
	}
	if a.DataDir() != dir {
		t.Fatalf("data dir %s, want %s", a.DataDir(), dir)
	}
	text, err := os.ReadFile(filepath.Join(dir, config.FileName))
	if err != nil || string(text) != config.Example {
		t.Fatalf("default config not written: %v", err)
	}
	if a.Config().ServerName != "localhost" || a.Config().Listen[0] != "127.0.0.1:8008" {
		t.Fatalf("defaults: %+v", a.Config())
	}
	if st, _ := os.Stat(dir); st.Mode().Perm() != 0o700 {
		t.Errorf("data dir mode %v, want 0700", st.Mode().Perm())
	}
}

func TestInvalidConfigStopsStartup(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, config.FileName), []byte(`server_name = "bad name!"`), 0o600); err != nil {
		t.Fatal(err)
	}
	env, _, errOut := testEnv(nil)
	if code := Main([]string{"serve", "--data-dir", dir}, noGUI, env); code != 1 {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(errOut.String(), "server_name") || !strings.Contains(errOut.String(), config.FileName) {
		t.Fatalf("message should name the key and file: %s", errOut)
	}
}

func TestDesktopOrHeadless(t *testing.T) {
	dir := t.TempDir()
	writeTestConfig(t, dir)
	var ran bool
	gui := GUI{Available: true, Run: func(a *App) error {
		ran = true
		if a.DataDir() != dir {
			t.Errorf("GUI got data dir %s", a.DataDir())
		}
		return nil
	}}
	env, _, _ := testEnv(map[string]string{"DISPLAY": ":0"})
	if code := Main([]string{"--data-dir", dir}, gui, env); code != 0 || !ran {
		t.Fatalf("with a display the GUI should run: %d %v", code, ran)
	}

	// No display: serve headless even though the GUI is built in.
	ran = false
	env, _, errOut := testEnv(nil)
	stop, cancel := context.WithCancel(context.Background())
	env.Signals = stop
	env.Ready = func(*App) { cancel() }
	if code := Main([]string{"--data-dir", dir}, gui, env); code != 0 || ran {
		t.Fatalf("without a display: exit %d, GUI ran %v\n%s", code, ran, errOut)
	}

	// --headless wins over a display.
	env, _, _ = testEnv(map[string]string{"WAYLAND_DISPLAY": "wayland-0"})
	stop, cancel = context.WithCancel(context.Background())
	env.Signals = stop
	env.Ready = func(*App) { cancel() }
	if code := Main([]string{"--headless", "--data-dir", dir}, gui, env); code != 0 || ran {
		t.Fatalf("--headless: exit %d, GUI ran %v", code, ran)
	}
}

func TestDefaultDataDir(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	cases := []struct {
		goos string
		vars map[string]string
		home string
		want string
	}{
		{"linux", map[string]string{"XDG_DATA_HOME": "/x/data"}, "/home/a", filepath.Join("/x/data", "palpo")},
		{"linux", map[string]string{"XDG_DATA_HOME": "relative"}, "/home/a", filepath.Join("/home/a", ".local", "share", "palpo")},
		{"linux", nil, "/home/a", filepath.Join("/home/a", ".local", "share", "palpo")},
		{"freebsd", nil, "/home/a", filepath.Join("/home/a", ".local", "share", "palpo")},
		{"windows", map[string]string{"AppData": `C:\Users\a\AppData\Roaming`}, `C:\Users\a`, filepath.Join(`C:\Users\a\AppData\Roaming`, "Palpo")},
		{"darwin", nil, "/Users/a", filepath.Join("/Users/a", "Library", "Application Support", "Palpo")},
		{"linux", nil, "", ""},
	}
	for _, c := range cases {
		if got := defaultDataDir(c.goos, env(c.vars), c.home); got != c.want {
			t.Errorf("%s %v: %q, want %q", c.goos, c.vars, got, c.want)
		}
	}
}

func TestStatusAndRestart(t *testing.T) {
	dir := t.TempDir()
	writeTestConfig(t, dir)
	a, err := Open(dir, &syncBuffer{})
	if err != nil {
		t.Fatal(err)
	}
	if st := a.Status(); st.State != StateStopped || st.ServerName != "localhost" {
		t.Fatalf("before start: %+v", st)
	}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	if err := a.Start(); err == nil {
		t.Fatal("second Start accepted")
	}
	st := a.Status()
	if st.State != StateRunning || !strings.HasPrefix(st.ClientURL, "http://localhost:") || st.Started.IsZero() {
		t.Fatalf("running: %+v", st)
	}
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := a.Start(); err != nil {
		t.Fatalf("start after stop: %v", err)
	}
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	if st := a.Status(); st.State != StateStopped {
		t.Fatalf("after stop: %+v", st)
	}
}

// Started by a path (./bin/palpo after `make run`), the first-run hint
// names that path; the desktop app's names its Users tab.
func TestNoAccountsHintNamesTheProgram(t *testing.T) {
	dir := t.TempDir()
	writeTestConfig(t, dir)
	env, _, errOut := testEnv(nil)
	env.Command = "./bin/palpo"
	stop, cancel := context.WithCancel(context.Background())
	env.Signals = stop
	env.Ready = func(*App) { cancel() }
	if code := Main([]string{"serve", "--data-dir", dir}, noGUI, env); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(errOut.String(), "`./bin/palpo user add NAME --admin`") || !strings.Contains(errOut.String(), "`./bin/palpo invite create`") {
		t.Fatalf("hint does not name ./bin/palpo: %s", errOut)
	}

	env, _, errOut = testEnv(map[string]string{"DISPLAY": ":0"})
	gui := GUI{Available: true, Run: func(a *App) error {
		if err := a.Start(); err != nil {
			return err
		}
		return a.Stop()
	}}
	if code := Main([]string{"--data-dir", dir}, gui, env); code != 0 {
		t.Fatalf("desktop exit %d: %s", code, errOut)
	}
	if !strings.Contains(errOut.String(), "Users tab") || strings.Contains(errOut.String(), "invite create") {
		t.Fatalf("desktop hint: %s", errOut)
	}
}
