package ui

import (
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/driver/desktop"
	"fyne.io/fyne/v2/theme"

	"github.com/palpo-im/palpo-desktop/app"
)

// trayMenu is the tray icon's menu: the state, Open Palpo, Start/Stop,
// Copy homeserver address, Back up now, Quit. It is built without a
// desktop.App, so tests can call its items.
type trayMenu struct {
	d    *Desktop
	menu *fyne.Menu

	state, open, startStop, copyAddr, backup, quit *fyne.MenuItem
	// cert is a certificate problem (a failed renewal, an expiry within
	// two weeks), listed under the state while it lasts; it opens the
	// Status tab, which says more.
	cert     *fyne.MenuItem
	items    []*fyne.MenuItem // every item but cert, in order
	certText string

	desk       desktop.App // set once installed
	lastState  app.State
	lastBusy   string
	lastWizard bool
	shown      bool // the menu has shown a state at least once
}

func newTrayMenu(d *Desktop) *trayMenu {
	t := &trayMenu{d: d}
	t.state = fyne.NewMenuItem("Palpo", nil)
	t.state.Disabled = true
	t.open = fyne.NewMenuItem("Open Palpo", d.ShowWindow)
	t.startStop = fyne.NewMenuItem("Start server", t.toggleServer)
	t.copyAddr = fyne.NewMenuItem("Copy homeserver address", func() {
		local, _ := d.app.Addresses()
		d.copyText(local)
	})
	items := []*fyne.MenuItem{t.state, fyne.NewMenuItemSeparator(), t.open, t.startStop, t.copyAddr}
	t.backup = fyne.NewMenuItem("Back up now", func() {
		d.ShowWindow()
		d.backups.backupNow()
	})
	items = append(items, t.backup)
	t.quit = fyne.NewMenuItem("Quit Palpo", d.Quit)
	t.quit.IsQuit = true // stops Fyne appending a second Quit item
	items = append(items, fyne.NewMenuItemSeparator(), t.quit)
	t.items = items
	t.cert = fyne.NewMenuItem("", func() {
		d.ShowWindow()
		if d.wizard == nil {
			d.tabs.Select(d.tabs.Items[0])
		}
	})
	t.cert.Icon = theme.NewWarningThemedResource(theme.WarningIcon())
	t.menu = fyne.NewMenu("Palpo", items...)
	return t
}

// setCertificate shows a certificate problem in the menu ("" for none);
// refresh redraws it.
func (t *trayMenu) setCertificate(problem string) {
	if problem != "" {
		problem = strings.ToUpper(problem[:1]) + problem[1:]
	}
	if problem == t.certText {
		return
	}
	t.certText = problem
	t.cert.Label = problem
	items := t.items
	if problem != "" {
		items = append([]*fyne.MenuItem{t.items[0], t.cert}, t.items[1:]...)
	}
	t.menu.Items = items
	t.shown = false // redraw on the next refresh
}

func (t *trayMenu) toggleServer() {
	if t.d.app.Server() != nil {
		t.d.StopServer()
	} else {
		t.d.StartServer()
	}
}

// refresh shows st in the menu and the icon; the tray is only redrawn when
// something changed (Fyne rebuilds the whole menu each time).
func (t *trayMenu) refresh(st app.Status) {
	busy := t.d.busyText
	inWizard := t.d.wizard != nil
	if t.shown && st.State == t.lastState && busy == t.lastBusy && inWizard == t.lastWizard {
		return
	}
	t.shown, t.lastState, t.lastBusy, t.lastWizard = true, st.State, busy, inWizard
	text := "Palpo: " + stateText(st, busy)
	t.state.Label = text
	running := st.State == app.StateRunning
	if running {
		t.startStop.Label = "Stop server"
	} else {
		t.startStop.Label = "Start server"
	}
	idle := busy == "" && st.State != app.StateStarting
	// During the first-run wizard the wizard starts the server, once it
	// knows the name and the addresses.
	t.startStop.Disabled = !idle || t.d.wizard != nil
	t.copyAddr.Disabled = !running
	t.backup.Disabled = busy != ""
	if t.desk == nil {
		return
	}
	t.menu.Refresh()
	t.desk.SetSystemTrayIcon(trayIcon(st.State, busy != ""))
	if t.d.opts.SetTrayTooltip != nil {
		t.d.opts.SetTrayTooltip(text)
	}
}

// TrayMenu is the tray menu (for tests and package main).
func (d *Desktop) TrayMenu() *fyne.Menu { return d.tray.menu }

// SetupTray installs the tray icon and menu when the app has a system tray
// that is safe to use, and reports whether it did. With a tray, closing the
// window hides it and the server keeps running; Quit is in the menu.
//
// On Linux and the BSDs Fyne's tray (fyne.io/systray) speaks
// StatusNotifierItem over the D-Bus session bus, and with no session bus it
// panics when the app quits; so there it is only installed when the session
// bus is reachable. Without a tray, closing the window quits the app.
func (d *Desktop) SetupTray() bool {
	desk, ok := d.fa.(desktop.App)
	if !ok || !trayUsable() {
		return false
	}
	d.tray.desk = desk
	d.hasTray = true
	desk.SetSystemTrayMenu(d.tray.menu)
	// A left click on the tray icon shows the window, where the platform
	// supports it; this also makes closing the window hide it.
	desk.SetSystemTrayWindow(d.win)
	d.win.SetCloseIntercept(d.win.Hide)
	d.tray.shown = false
	d.tray.refresh(d.app.Status())
	return true
}

// HasTray tells whether the tray is installed.
func (d *Desktop) HasTray() bool { return d.hasTray }
