//go:build !((linux || freebsd || openbsd || netbsd) && !android)

package ui

// trayUsable is always true here: Windows and macOS trays need no session bus.
func trayUsable() bool { return true }
