// Package ui holds Palpo's desktop window and tray menu: the first-run
// wizard and the Status, Users, Backups, Settings and Logs tabs. It talks to
// the application through package app (lifecycle, config, accounts, logs)
// and never to the server's storage.
//
// The package builds with CGO_ENABLED=0: it uses only Fyne's widget API, so
// its tests run on Fyne's test driver without a display. Only package main
// picks the real (cgo/OpenGL) driver and the tray.
//
// Threading: Fyne's event loop owns the widgets. Anything slow (starting
// the server, database queries, a backup) runs in a goroutine started by
// Desktop.async, whose result comes back to the event loop through fyne.Do.
package ui

import (
	"context"
	"errors"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/palpo-im/palpo-desktop/app"
	"github.com/palpo-im/palpo-desktop/assets"
	"github.com/palpo-im/palpo-desktop/server/federation/selfcheck"
)

// Autostart is the start-on-login switch (app.Autostart).
type Autostart interface {
	Enabled() (bool, error)
	Enable() error
	Disable() error
}

// Options are the parts of the desktop app that depend on the platform or
// on other packages; nil ones leave their feature out.
type Options struct {
	// Autostart is the start-on-login entry; nil hides the switch.
	Autostart Autostart
	// SetTrayTooltip shows the server's state on the tray icon where the
	// platform can (package main wires it to the system tray).
	SetTrayTooltip func(string)
	// Quit ends the app; nil calls the Fyne app's Quit.
	Quit func()
}

// Desktop is the desktop app's window and tray menu for one app.App.
type Desktop struct {
	fa   fyne.App
	app  *app.App
	opts Options
	win  fyne.Window

	tabs     *container.AppTabs
	status   *statusTab
	users    *usersTab
	backups  *backupsTab
	settings *settingsTab
	logs     *logsTab
	wizard   *wizard

	tray     *trayMenu
	hasTray  bool
	busyText string // what the server is doing right now ("Starting…"), or ""

	// form is the form dialog shown last (tests fill it in).
	form *formDialog
	// inviteDlg is the invite dialog shown last (tests look at it).
	inviteDlg *inviteDialog
	// lookupHost resolves a host name (the wizard checks a LAN name with
	// it; tests replace it).
	lookupHost func(ctx context.Context, host string) ([]string, error)
	// checkFederation runs the federation self-check and certStatus reads
	// the federation certificate (the app's; tests replace them, the
	// check to keep off real DNS). certWait bounds the wait for a first
	// certificate after "Connect to other Matrix servers" is saved (0:
	// defaultCertWait). certAlert is the certificate problem announced
	// last (watchCertificate).
	checkFederation func(ctx context.Context) ([]selfcheck.Result, error)
	certStatus      func() app.CertificateStatus
	certWait        time.Duration
	certAlert       string

	// Background work (async): pending counts the goroutines running,
	// wake hears when one ends. post runs a function on Fyne's event loop
	// (fyne.Do); tests replace it with queue, which Wait runs on the test's
	// goroutine, as the event loop would.
	pending atomic.Int64
	wake    chan struct{}
	post    func(func())
	queue   chan func()

	stopMu   sync.Mutex
	stopping bool
	stopCh   chan struct{}
}

// New builds the window (not shown yet) and the tray menu. Call Begin to
// decide between the first-run wizard and the tabs.
func New(fa fyne.App, a *app.App, opts Options) *Desktop {
	d := &Desktop{fa: fa, app: a, opts: opts, stopCh: make(chan struct{}), wake: make(chan struct{}, 1), post: fyne.Do,
		lookupHost: net.DefaultResolver.LookupHost, checkFederation: a.FederationCheck, certStatus: a.CertificateStatus}
	d.win = fa.NewWindow("Palpo")
	d.win.SetIcon(assets.IconResource())
	d.win.Resize(fyne.NewSize(820, 680))

	d.status = newStatusTab(d)
	d.users = newUsersTab(d)
	d.backups = newBackupsTab(d)
	d.settings = newSettingsTab(d)
	d.logs = newLogsTab(d)
	d.tabs = container.NewAppTabs(
		container.NewTabItemWithIcon("Status", theme.InfoIcon(), d.status.content),
		container.NewTabItemWithIcon("Users", theme.AccountIcon(), d.users.content),
		container.NewTabItemWithIcon("Backups", theme.StorageIcon(), d.backups.content),
		container.NewTabItemWithIcon("Settings", theme.SettingsIcon(), d.settings.content),
		container.NewTabItemWithIcon("Logs", theme.ListIcon(), d.logs.content),
	)
	d.tabs.OnSelected = func(*container.TabItem) { d.refreshSelected() }
	d.tray = newTrayMenu(d)

	d.win.SetContent(loadingScreen("Opening Palpo…"))
	return d
}

// Window is the main window.
func (d *Desktop) Window() fyne.Window { return d.win }

// App is the application the window drives.
func (d *Desktop) App() *app.App { return d.app }

// loadingScreen is shown while Palpo looks at its data directory.
func loadingScreen(text string) fyne.CanvasObject {
	bar := widget.NewProgressBarInfinite()
	return container.NewCenter(container.NewVBox(widget.NewLabelWithStyle(text, fyne.TextAlignCenter, fyne.TextStyle{}), bar))
}

// Begin looks at the data directory in the background, then shows the
// first-run wizard (no accounts yet) or the tabs, starting the server.
func (d *Desktop) Begin() {
	var st app.SetupState
	d.async(func() error {
		var err error
		st, err = d.app.SetupState(context.Background())
		return err
	}, func(err error) {
		if err == nil && st.Needed {
			d.showWizard(st)
			// Started hidden (at login) or not, the wizard needs a person.
			d.ShowWindow()
			return
		}
		d.showTabs()
		if err != nil {
			// The start will meet the same problem and show it.
			d.app.Logger().Warn("could not check whether this is the first start", "error", err)
		}
		d.StartServer()
	})
}

func (d *Desktop) showWizard(st app.SetupState) {
	d.wizard = newWizard(d, st)
	d.win.SetContent(d.wizard.content)
	d.Refresh()
}

// showTabs replaces the wizard (or the loading screen) with the tabs.
func (d *Desktop) showTabs() {
	d.wizard = nil
	d.win.SetContent(d.tabs)
	d.Refresh()
	d.refreshSelected()
}

// ShowWindow brings the window forward (tray "Open Palpo", a second launch).
func (d *Desktop) ShowWindow() {
	d.win.Show()
	d.win.RequestFocus()
}

// RequestShow shows the window from any goroutine (a second launch asks).
func (d *Desktop) RequestShow() { d.do(d.ShowWindow) }

// async runs work off the event loop and then done (on the event loop)
// with its error. Wait waits for every such task.
func (d *Desktop) async(work func() error, done func(error)) {
	d.pending.Add(1)
	go func() {
		err := work()
		d.do(func() { done(err) })
		// After the post: when pending reaches 0, every result is queued.
		d.pending.Add(-1)
		select {
		case d.wake <- struct{}{}:
		default:
		}
	}()
}

// do runs fn on the event loop, unless the app is shutting down (Fyne's
// call queue is closed then, and posting to it could panic).
func (d *Desktop) do(fn func()) {
	d.stopMu.Lock()
	stopping := d.stopping
	d.stopMu.Unlock()
	if !stopping {
		d.post(fn)
	}
}

// Wait waits until every background task has finished and (in tests) its
// result has been shown.
func (d *Desktop) Wait() {
	for {
		select {
		case fn := <-d.queue: // a nil queue (no tests) never delivers
			fn()
			continue
		default:
		}
		if d.pending.Load() == 0 {
			select {
			case fn := <-d.queue:
				fn() // it may start more work: look again
				continue
			default:
				return
			}
		}
		select {
		case fn := <-d.queue:
			fn()
		case <-d.wake:
		}
	}
}

// Stop ends the live updates and posts nothing more to the event loop;
// package main calls it as soon as Fyne says it is stopping.
func (d *Desktop) Stop() {
	d.stopMu.Lock()
	defer d.stopMu.Unlock()
	if !d.stopping {
		d.stopping = true
		close(d.stopCh)
	}
}

// StartLiveUpdates refreshes the window every interval and the Logs tab as
// lines arrive, until Shutdown. (Tests call Refresh themselves instead.)
func (d *Desktop) StartLiveUpdates(interval time.Duration) {
	logCh, unsubscribe := d.app.Logs().Subscribe()
	go func() {
		defer unsubscribe()
		t := time.NewTicker(interval)
		defer t.Stop()
		// New log lines are shown at most a few times a second, however
		// fast they come.
		logTick := time.NewTicker(250 * time.Millisecond)
		defer logTick.Stop()
		pendingLogs := false
		for tick := 0; ; {
			select {
			case <-d.stopCh:
				return
			case <-t.C:
				d.do(d.Refresh)
				// The figures on the Status tab follow every tick; the
				// lists on the others every fifth, which is plenty for
				// changes made elsewhere (a client, the command line).
				tick++
				d.do(func() {
					if tick%5 == 0 || d.tabs.Selected().Content == d.status.content {
						d.refreshSelected()
					}
				})
			case <-logCh:
				pendingLogs = true
			case <-logTick.C:
				if pendingLogs {
					pendingLogs = false
					d.do(d.logs.refresh)
				}
			}
		}
	}()
}

// Shutdown stops the updates and the server; the caller has left Fyne's
// event loop (or is a test). It waits for background work first, so a
// server that is still starting is stopped once it has.
func (d *Desktop) Shutdown() {
	d.Stop()
	d.Wait()
	if err := d.app.Stop(); err != nil {
		d.app.Logger().Error("unclean shutdown", "error", err)
	}
}

// Quit ends the app (the tray's and the window's Quit).
func (d *Desktop) Quit() {
	if d.opts.Quit != nil {
		d.opts.Quit()
		return
	}
	d.fa.Quit()
}

// Refresh shows the app's current state everywhere it appears.
func (d *Desktop) Refresh() {
	st := d.app.Status()
	d.status.refresh(st)
	d.users.setRunning(st.State == app.StateRunning)
	d.watchCertificate()
	d.tray.refresh(st)
}

// refreshSelected reloads the data of the tab on screen (users, stats…).
func (d *Desktop) refreshSelected() {
	if d.wizard != nil {
		return
	}
	switch d.tabs.Selected().Content {
	case d.status.content:
		d.status.loadStats()
	case d.users.content:
		d.users.load()
	case d.backups.content:
		d.backups.load()
	case d.logs.content:
		d.logs.refresh()
	}
}

// StartServer starts the server in the background, showing progress.
func (d *Desktop) StartServer() {
	d.serverTask("Starting the server…", d.app.Start, "Could not start the server")
}

// StopServer stops the server in the background.
func (d *Desktop) StopServer() {
	d.serverTask("Stopping the server…", d.app.Stop, "The server did not stop cleanly")
}

// RestartServer stops and starts the server (to apply changed settings).
func (d *Desktop) RestartServer() {
	d.serverTask("Restarting the server…", func() error {
		if err := d.app.Stop(); err != nil {
			return err
		}
		return d.app.Start()
	}, "Could not restart the server")
}

// serverTask runs work (a start, stop or restart) in the background with
// busy shown; after, if given, runs on the event loop once it is done (or
// at once when another task is running).
func (d *Desktop) serverTask(busy string, work func() error, failed string, after ...func()) {
	if d.busyText != "" {
		for _, f := range after {
			f()
		}
		return // one at a time; the buttons are disabled meanwhile
	}
	d.busyText = busy
	d.Refresh()
	d.async(work, func(err error) {
		d.busyText = ""
		d.Refresh()
		d.refreshSelected()
		if err != nil {
			// The Status tab shows the error with its details; bring it up.
			d.tabs.Select(d.tabs.Items[0])
			d.app.Logger().Error(failed, "error", err)
		}
		for _, f := range after {
			f()
		}
	})
}

// openURL opens a link or folder with the system's handler.
func (d *Desktop) openURL(u *url.URL) {
	if err := d.fa.OpenURL(u); err != nil {
		d.showError("Could not open "+u.String(), err)
	}
}

// copyText puts text on the clipboard.
func (d *Desktop) copyText(text string) { d.fa.Clipboard().SetContent(text) }

// formDialog is a dialog with a form, an error line, and a confirm button
// that checks the form before closing.
type formDialog struct {
	dlg     *dialog.CustomDialog
	errLine *widget.Label
	confirm *widget.Button
	cancel  *widget.Button
	busy    bool
}

// newFormDialog builds a dialog; submit runs on confirm and returns an
// error to show in the dialog (nil closes it). submit may run work in the
// background: it receives done to call with the outcome instead, and
// returns errPending.
func (d *Desktop) newFormDialog(title, confirm string, body fyne.CanvasObject, submit func(done func(error)) error) *formDialog {
	f := &formDialog{errLine: wrapped("")}
	f.errLine.Importance = widget.DangerImportance
	f.errLine.Hide()
	f.confirm = widget.NewButton(confirm, nil)
	f.confirm.Importance = widget.HighImportance
	f.cancel = widget.NewButton("Cancel", nil)
	f.dlg = dialog.NewCustomWithoutButtons(title, container.NewVBox(body, f.errLine), d.win)
	f.dlg.SetButtons([]fyne.CanvasObject{f.cancel, f.confirm})
	f.cancel.OnTapped = f.dlg.Hide
	done := func(err error) {
		f.busy = false
		f.confirm.Enable()
		if err != nil {
			f.errLine.SetText(plainError(err))
			f.errLine.Show()
			return
		}
		f.dlg.Hide()
	}
	f.confirm.OnTapped = func() {
		if f.busy {
			return
		}
		f.errLine.Hide()
		f.busy = true
		f.confirm.Disable()
		if err := submit(done); !errors.Is(err, errPending) {
			done(err)
		}
	}
	f.dlg.Resize(fyne.NewSize(440, 0))
	d.form = f
	return f
}

// heading is a bold, larger label.
func heading(text string) *widget.Label {
	l := widget.NewLabelWithStyle(text, fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	l.SizeName = theme.SizeNameSubHeadingText
	return l
}

// wrapped is a label that wraps to the available width.
func wrapped(text string) *widget.Label {
	l := widget.NewLabel(text)
	l.Wrapping = fyne.TextWrapWord
	return l
}

// showText puts text on l with the given importance, and shows l, or
// hides it when text is "".
func showText(l *widget.Label, text string, imp widget.Importance) {
	l.SetText(text)
	l.Importance = imp
	l.Refresh()
	if text == "" {
		l.Hide()
	} else {
		l.Show()
	}
}
