//go:build (linux || freebsd || openbsd || netbsd) && !android

package ui

import "testing"

// With no session bus, systray would panic on Quit, so the tray must be skipped.
func TestTrayUnusableWithoutSessionBus(t *testing.T) {
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path="+t.TempDir()+"/no-bus")
	if trayUsable() {
		t.Fatal("trayUsable() = true with an unreachable session bus")
	}
}
