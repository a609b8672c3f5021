package ui

import (
	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/driver/desktop"
)

// SetupTray installs the tray menu (Open Palpo, Quit) when the app has a
// system tray and it is safe to use, and reports whether it did. The tray
// icon is the app icon.
//
// On Linux and the BSDs Fyne's tray (fyne.io/systray) speaks
// StatusNotifierItem over the D-Bus session bus, and with no session bus it
// panics when the app quits; so there we only install it when the session bus
// is reachable. Without a tray, closing the window quits the app.
func SetupTray(a fyne.App, w fyne.Window) bool {
	desk, ok := a.(desktop.App)
	if !ok || !trayUsable() {
		return false
	}
	open := fyne.NewMenuItem("Open Palpo", func() {
		w.Show()
		w.RequestFocus()
	})
	quit := fyne.NewMenuItem("Quit", a.Quit)
	quit.IsQuit = true // stops Fyne appending a second Quit item
	desk.SetSystemTrayMenu(fyne.NewMenu("Palpo", open, fyne.NewMenuItemSeparator(), quit))
	// A left click on the tray icon shows the window, where the platform supports it.
	desk.SetSystemTrayWindow(w)
	return true
}
