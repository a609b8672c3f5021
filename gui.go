//go:build cgo

package main

import (
	"context"
	"os"
	"runtime/debug"
	"time"

	"fyne.io/fyne/v2/app"
	"fyne.io/systray"

	palpoapp "github.com/palpo-im/palpo-desktop/app"
	"github.com/palpo-im/palpo-desktop/assets"
	"github.com/palpo-im/palpo-desktop/ui"
	// Before Fyne's lang package reads the locale (see its doc).
	_ "github.com/palpo-im/palpo-desktop/ui/quietlocale"
)

// guiAvailable reports whether this binary includes the desktop app.
const guiAvailable = true

// refreshInterval is how often the window shows the server's state and
// figures anew.
const refreshInterval = 2 * time.Second

// desktopGCPercent is the desktop app's GOGC (see runDesktop).
const desktopGCPercent = 25

// processStart is (nearly) when the process started, for the start-to-window
// time in the log.
var processStart = time.Now()

// runDesktop runs the desktop app for a until the user quits, on the
// calling goroutine, which must be the main one (Fyne's event loop owns
// it). The server runs in goroutines; the window starts it (after the
// first-run wizard on a new data directory) and it is stopped on the way
// out.
func runDesktop(a *palpoapp.App) error {
	// One window per data directory: a second launch shows the first
	// one's window and exits.
	inst, err := palpoapp.ClaimOrShow(context.Background(), a.DataDir(), os.Stdout)
	if err != nil || inst == nil {
		return err
	}
	defer inst.Close()

	fa := app.NewWithID("im.palpo.desktop")
	fa.SetIcon(assets.IconResource())
	opts := ui.Options{SetTrayTooltip: systray.SetTooltip}
	if as, err := palpoapp.DefaultAutostart(a.DataDir()); err == nil {
		opts.Autostart = as
	} else {
		a.Logger().Warn("start on login is not available", "error", err)
	}
	d := ui.New(fa, a, opts)
	// Fyne closes its call queue when it stops, and posting to it then can
	// panic: stop posting as soon as it says it is stopping.
	fa.Lifecycle().SetOnStopped(d.Stop)
	fa.Lifecycle().SetOnStarted(func() {
		a.Logger().Info("desktop app ready", "since_process_start", time.Since(processStart).Round(time.Millisecond).String())
	})
	inst.OnShow(d.RequestShow)

	tray := d.SetupTray()
	d.Begin()
	d.StartLiveUpdates(refreshInterval)
	// Started at login with a tray, the window waits for a click on the
	// icon; without a tray there would be no way to reach it.
	if !a.StartHidden || !tray {
		d.Window().Show()
	}
	// Memory: the window's live heap is mostly Fyne's parsed fonts (about
	// 25 MB) and an idle server allocates little, so a tighter GC target
	// costs next to no CPU and keeps tens of MB of garbage from piling up
	// between the runtime's two-minute forced collections. Start-up
	// (migrations, font parsing, the first layout) leaves much garbage:
	// hand it back to the system once the window has settled.
	debug.SetGCPercent(desktopGCPercent)
	time.AfterFunc(10*time.Second, debug.FreeOSMemory)
	fa.Run()
	d.Shutdown()
	return nil
}
