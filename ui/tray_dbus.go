//go:build (linux || freebsd || openbsd || netbsd) && !android

package ui

import "github.com/godbus/dbus/v5"

// trayUsable reports whether the D-Bus session bus that fyne.io/systray
// needs on these systems is reachable (same build constraint as systray's
// D-Bus implementation). dbus.SessionBus is the shared connection, so it is
// not closed here: the tray reuses it.
func trayUsable() bool {
	_, err := dbus.SessionBus()
	return err == nil
}
