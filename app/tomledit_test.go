package app

import (
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/palpo-im/palpo-desktop/server/config"
)

func TestSetTOMLValue(t *testing.T) {
	for _, tc := range []struct {
		name, in, key, value, want string
	}{
		{"top-level replaced, comment kept",
			"# name\nserver_name = \"localhost\" # keep me\n[log]\nlevel = \"info\"\n",
			"server_name", `"example.org"`,
			"# name\nserver_name = \"example.org\" # keep me\n[log]\nlevel = \"info\"\n"},
		{"key in a table",
			"[registration]\n# who\nmode = \"token\"\nmin_password_length = 8\n",
			"registration.mode", `"closed"`,
			"[registration]\n# who\nmode = \"closed\"\nmin_password_length = 8\n"},
		{"same key name in another table untouched",
			"[a]\nmode = 1\n[registration]\nmode = \"token\"\n",
			"registration.mode", `"open"`,
			"[a]\nmode = 1\n[registration]\nmode = \"open\"\n"},
		{"multi-line array with a bracket in a comment",
			"listen = [\n  \"127.0.0.1:8008\", # [not a table]\n  \"[::1]:8008\",\n]\n[log]\nlevel = \"info\"\n",
			"listen", `["0.0.0.0:8008"]`,
			"listen = [\"0.0.0.0:8008\"]\n[log]\nlevel = \"info\"\n"},
		{"a [header] inside a multi-line string is not a table",
			"x = \"\"\"\n[registration]\nmode = \"no\"\n\"\"\"\n[registration]\nmode = \"token\"\n",
			"registration.mode", `"open"`,
			"x = \"\"\"\n[registration]\nmode = \"no\"\n\"\"\"\n[registration]\nmode = \"open\"\n"},
		{"missing key added at the end of its table",
			"[media]\n# limit\nmax_bytes_per_user = 0\n\n[log]\nlevel = \"info\"\n",
			"media.max_upload_bytes", "5",
			"[media]\n# limit\nmax_bytes_per_user = 0\nmax_upload_bytes = 5\n\n[log]\nlevel = \"info\"\n"},
		{"missing table appended",
			"server_name = \"localhost\"",
			"backup.keep", "3",
			"server_name = \"localhost\"\n\n[backup]\nkeep = 3\n"},
		{"missing top-level key goes before the first table",
			"# Palpo\n\n[log]\nlevel = \"info\"\n",
			"listen", `["127.0.0.1:1"]`,
			"# Palpo\n\nlisten = [\"127.0.0.1:1\"]\n\n[log]\nlevel = \"info\"\n"},
		{"dotted key at top level",
			"registration.mode = \"token\"\n",
			"registration.mode", `"closed"`,
			"registration.mode = \"closed\"\n"},
		{"quoted and spaced key",
			"[ registration ]\n\"mode\"   =   'token'   # why\n",
			"registration.mode", `"open"`,
			"[ registration ]\n\"mode\"   =   \"open\"   # why\n"},
		{"CRLF line endings",
			"[registration]\r\nmode = \"token\"\r\nx = 1\r\n",
			"registration.mode", `"open"`,
			"[registration]\r\nmode = \"open\"\r\nx = 1\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := setTOMLValue(tc.in, tc.key, tc.value)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
}

func TestSetTOMLValueRefusesWhatItCannotFollow(t *testing.T) {
	for _, in := range []string{
		"listen = [\"a\"\n",           // unclosed array
		"server_name = \"localhost\n", // unclosed string
		"[log\nlevel = 1\n",           // unclosed header
		"x = 1 y\n",                   // junk after a value
	} {
		if _, err := setTOMLValue(in, "server_name", `"x"`); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
}

// Every key of the example config can be set in place, and the example's
// comments survive.
func TestSetTOMLValueOnExample(t *testing.T) {
	got, err := setTOMLValue(config.Example, "media.max_upload_bytes", "1234")
	if err != nil {
		t.Fatal(err)
	}
	got, err = setTOMLValue(got, "listen", tomlStrings([]string{"127.0.0.1:9", "192.0.2.7:9"}))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(got)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Media.MaxUploadBytes != 1234 || !reflect.DeepEqual(cfg.Listen, []string{"127.0.0.1:9", "192.0.2.7:9"}) {
		t.Fatalf("max_upload_bytes %d, listen %v", cfg.Media.MaxUploadBytes, cfg.Listen)
	}
	// Only the two values changed: every other line is as it was.
	oldLines, newLines := strings.Split(config.Example, "\n"), strings.Split(got, "\n")
	if len(oldLines) != len(newLines) {
		t.Fatalf("line count %d -> %d", len(oldLines), len(newLines))
	}
	changed := 0
	for i := range oldLines {
		if oldLines[i] != newLines[i] {
			changed++
		}
	}
	if changed != 2 {
		t.Fatalf("%d lines changed, want 2", changed)
	}
}

func TestTOMLString(t *testing.T) {
	for _, s := range []string{"plain", `quo"te`, `back\slash`, "new\nline", "tab\t", "ünïcode ☃"} {
		cfg, err := config.Parse("[backup]\ndir = " + tomlString(s) + "\n")
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		if cfg.Backup.Dir != s {
			t.Errorf("round trip %q -> %q", s, cfg.Backup.Dir)
		}
	}
}

func openTestApp(t *testing.T, toml string) *App {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, config.FileName), []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := Open(dir, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Stop() })
	return a
}

func readConfigText(t *testing.T, a *App) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(a.DataDir(), config.FileName))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestSaveSettingsKeepsCommentsAndReloads(t *testing.T) {
	a := openTestApp(t, config.Example)
	s := a.Settings()
	if s.Port != 8008 || s.LAN || s.CustomListen || s.MaxUploadBytes != 104857600 {
		t.Fatalf("settings of the example: %+v", s)
	}
	s.Port, s.LAN, s.LANAddress, s.MaxUploadBytes = 8118, true, "192.0.2.7", 50<<20
	if err := a.SaveSettings(s); err != nil {
		t.Fatal(err)
	}
	text := readConfigText(t, a)
	for _, want := range []string{
		`listen = ["127.0.0.1:8118", "192.0.2.7:8118"]`,
		"max_upload_bytes = 52428800",
		"# The largest file anyone may upload, in bytes (100 MiB).",
		"# It can NEVER change once accounts or rooms exist",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("palpo.toml lacks %q", want)
		}
	}
	if got := a.Settings(); got.Port != 8118 || !got.LAN || got.LANAddress != "192.0.2.7" || got.MaxUploadBytes != 50<<20 {
		t.Fatalf("reloaded settings: %+v", got)
	}
	if a.Config().Media.MaxUploadBytes != 50<<20 {
		t.Fatal("config not reloaded")
	}

	// Turning the LAN off keeps only this computer.
	s = a.Settings()
	s.LAN = false
	if err := a.SaveSettings(s); err != nil {
		t.Fatal(err)
	}
	if got := a.Config().Listen; !reflect.DeepEqual(got, []string{"127.0.0.1:8118"}) {
		t.Fatalf("listen = %v", got)
	}

	// Bad values change nothing.
	before := readConfigText(t, a)
	for _, bad := range []Settings{{Port: 0, MaxUploadBytes: s.MaxUploadBytes}, {Port: 70000, MaxUploadBytes: s.MaxUploadBytes},
		{Port: 8118, MaxUploadBytes: 0}, {Port: 8118, LAN: true, MaxUploadBytes: s.MaxUploadBytes}} {
		if err := a.SaveSettings(bad); err == nil {
			t.Errorf("SaveSettings(%+v) accepted", bad)
		}
	}
	if readConfigText(t, a) != before {
		t.Fatal("a refused change altered palpo.toml")
	}
}

func TestSettingsLeaveCustomListenAlone(t *testing.T) {
	a := openTestApp(t, `listen = ["127.0.0.1:8008", "[::1]:8008", "192.0.2.1:9000"]`)
	s := a.Settings()
	if !s.CustomListen {
		t.Fatalf("settings %+v: not custom", s)
	}
	s.Port = 9999
	if err := a.SaveSettings(s); err != ErrCustomListen {
		t.Fatalf("SaveSettings = %v, want ErrCustomListen", err)
	}
	// Other settings still save.
	s = a.Settings()
	s.MaxUploadBytes = 1 << 20
	if err := a.SaveSettings(s); err != nil {
		t.Fatal(err)
	}
}

func TestParseListen(t *testing.T) {
	for _, tc := range []struct {
		listen []string
		port   int
		lan    bool
		addr   string
		custom bool
	}{
		{[]string{"127.0.0.1:8008"}, 8008, false, "", false},
		{[]string{"localhost:8008"}, 8008, false, "", false},
		{[]string{"127.0.0.1:8008", "192.168.1.5:8008"}, 8008, true, "192.168.1.5", false},
		{[]string{"0.0.0.0:8008"}, 8008, true, "0.0.0.0", false},
		{[]string{":8008"}, 8008, true, "0.0.0.0", false},
		{[]string{"192.168.1.5:8008"}, 8008, true, "192.168.1.5", true},
		{[]string{"127.0.0.1:8008", "192.168.1.5:9000"}, 8008, true, "", true},
		{[]string{"[::1]:8008"}, 8008, false, "", true},
	} {
		port, lan, addr, custom := parseListen(tc.listen)
		if port != tc.port || lan != tc.lan || addr != tc.addr || custom != tc.custom {
			t.Errorf("%v: got %d %v %q %v", tc.listen, port, lan, addr, custom)
		}
	}
	if got := listenFor(8008, "0.0.0.0"); !reflect.DeepEqual(got, []string{"0.0.0.0:8008"}) {
		t.Errorf("listenFor wildcard = %v", got)
	}
}

func TestSetRegistrationMode(t *testing.T) {
	a := openTestApp(t, config.Example)
	if err := a.SetRegistrationMode(config.RegistrationClosed); err != nil {
		t.Fatal(err)
	}
	if a.Config().Registration.Mode != config.RegistrationClosed || !strings.Contains(readConfigText(t, a), "mode = \"closed\"\n") {
		t.Fatal("mode not saved")
	}
	if err := a.SetRegistrationMode("sometimes"); err == nil {
		t.Fatal("unknown mode accepted")
	}
}

// A file in a shape the editor cannot change in place is refused, not
// damaged.
func TestEditConfigRefusesInlineTable(t *testing.T) {
	in := "registration = { mode = \"token\" }\n"
	a := openTestApp(t, in)
	if err := a.SetRegistrationMode(config.RegistrationOpen); err == nil {
		t.Fatal("edit of an inline table accepted")
	}
	if readConfigText(t, a) != in {
		t.Fatal("palpo.toml changed")
	}
}
