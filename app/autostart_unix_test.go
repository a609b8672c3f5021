//go:build !windows && !darwin

package app

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAutostartLinux(t *testing.T) {
	home := t.TempDir()
	s := &Autostart{Exe: "/opt/My Apps/palpo", DataDir: "/home/a b/.local/share/palpo 100%", Home: home}
	if on, err := s.Enabled(); err != nil || on {
		t.Fatalf("enabled before: %v %v", on, err)
	}
	if err := s.Enable(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(home, ".config", "autostart", "palpo.desktop")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	for _, want := range []string{"[Desktop Entry]\n", "Type=Application\n",
		`Exec="/opt/My Apps/palpo" --hidden --data-dir "/home/a b/.local/share/palpo 100%%"` + "\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("entry lacks %q:\n%s", want, text)
		}
	}
	if on, err := s.Enabled(); err != nil || !on {
		t.Fatalf("enabled after: %v %v", on, err)
	}
	// A desktop's own settings may switch the entry off.
	if err := os.WriteFile(path, append(data, []byte("Hidden=true\n")...), 0o600); err != nil {
		t.Fatal(err)
	}
	if on, _ := s.Enabled(); on {
		t.Fatal("Hidden=true entry counted as enabled")
	}
	if err := s.Disable(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("entry not removed")
	}
	if err := s.Disable(); err != nil {
		t.Fatalf("second Disable: %v", err)
	}

	// XDG_CONFIG_HOME is honoured when absolute, ignored when relative.
	cfgHome := t.TempDir()
	s2 := &Autostart{Exe: "/usr/bin/palpo", DataDir: "/d", Home: home, ConfigHome: cfgHome}
	if err := s2.Enable(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(cfgHome, "autostart", "palpo.desktop")); err != nil {
		t.Fatal(err)
	}
	s3 := &Autostart{Exe: "/usr/bin/palpo", DataDir: "/d", Home: home, ConfigHome: "relative"}
	if p, _ := s3.desktopFile(); p != path {
		t.Fatalf("relative XDG_CONFIG_HOME used: %s", p)
	}
}

func TestDesktopExecQuote(t *testing.T) {
	for in, want := range map[string]string{
		"/usr/bin/palpo": "/usr/bin/palpo",
		"a b":            `"a b"`,
		`q"u$o` + "`":    `"q\\"u\\$o\\` + "`\"",
		`back\slash`:     `"back\\\\slash"`,
		"50%":            `"50%%"`,
	} {
		if got := desktopExecQuote(in); got != want {
			t.Errorf("desktopExecQuote(%q) = %s, want %s", in, got, want)
		}
	}
}
