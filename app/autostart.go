package app

import (
	"fmt"
	"os"
	"path/filepath"
)

// Start on login: the Settings tab's switch. Each system has its own place
// (no library for it is available here):
//   - Linux and the BSDs: a .desktop file in $XDG_CONFIG_HOME/autostart
//     (~/.config/autostart), the freedesktop.org autostart spec that GNOME,
//     KDE, Xfce and the rest follow;
//   - Windows: a value in HKCU\Software\Microsoft\Windows\CurrentVersion\Run;
//   - macOS: a LaunchAgent plist in ~/Library/LaunchAgents.
//
// Each entry runs this executable with --data-dir (so a person with a data
// directory of their own gets it back) and --hidden (the window stays in
// the tray, if there is one, rather than jumping up at every login).

// Autostart is the start-on-login entry for one executable and data
// directory.
type Autostart struct {
	Exe     string // absolute path of the palpo executable
	DataDir string
	// Home and ConfigHome (XDG_CONFIG_HOME; "" for ~/.config) locate the
	// entry on Linux and macOS; tests point them at a temporary directory.
	Home, ConfigHome string
}

// DefaultAutostart is the entry for this process.
func DefaultAutostart(dataDir string) (*Autostart, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find the palpo program: %w", err)
	}
	if resolved, err := filepath.EvalSymlinks(exe); err == nil {
		exe = resolved
	}
	home, _ := os.UserHomeDir()
	return &Autostart{Exe: exe, DataDir: dataDir, Home: home, ConfigHome: os.Getenv("XDG_CONFIG_HOME")}, nil
}

// args are the command line the entry runs, after the executable.
func (s *Autostart) args() []string {
	return []string{"--hidden", "--data-dir", s.DataDir}
}

// Enabled tells whether the entry exists (Enable/Disable in the per-OS files).
func (s *Autostart) Enabled() (bool, error) { return s.enabled() }

// Enable adds (or updates) the entry.
func (s *Autostart) Enable() error { return s.enable() }

// Disable removes the entry; a missing one is fine.
func (s *Autostart) Disable() error { return s.disable() }
