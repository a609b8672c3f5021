//go:build cgo

package main

import (
	"sync"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/app"

	palpoapp "github.com/palpo-im/palpo-desktop/app"
	"github.com/palpo-im/palpo-desktop/assets"
	"github.com/palpo-im/palpo-desktop/ui"
)

// guiAvailable reports whether this binary includes the desktop app.
const guiAvailable = true

// statusInterval is how often the window asks the controller for its status.
const statusInterval = 2 * time.Second

// runDesktop runs the desktop app for a until the user quits.
func runDesktop(a *palpoapp.App) error { return runGUI(desktopController{a}) }

// desktopController lets the window drive the app. It adapts app.Status to
// ui.Status here, so that package app stays free of GUI imports.
type desktopController struct{ a *palpoapp.App }

func (c desktopController) Start() error { return c.a.Start() }

func (c desktopController) Stop() {
	if err := c.a.Stop(); err != nil {
		c.a.Logger().Error("unclean shutdown", "error", err)
	}
}

func (c desktopController) Status() ui.Status {
	st := c.a.Status()
	return ui.Status{State: string(st.State), Err: st.Err, ClientURL: st.ClientURL, ServerName: st.ServerName}
}

// guiController is what the desktop window needs from the running application.
// Start returns once the server is serving or has failed to start; Status is
// called from other goroutines while Start runs, so all three must be safe
// for concurrent use.
type guiController interface {
	ui.Controller
	Start() error
	Stop()
}

// runGUI runs the desktop app on the calling goroutine, which must be the main
// one (Fyne's event loop owns it), until the user quits. It starts the server
// through ctl once the window is up and stops it on the way out.
func runGUI(ctl guiController) error {
	a := app.NewWithID("im.palpo.desktop")
	a.SetIcon(assets.IconResource())

	status := &startTracker{guiController: ctl}
	w, refresh := ui.NewMainWindow(a, status)
	if ui.SetupTray(a, w) {
		// With a tray, closing the window leaves the server running; Quit is in
		// the tray menu and the window. (SetSystemTrayWindow does this too in
		// Fyne 2.7; set it here so it does not hinge on that.)
		w.SetCloseIntercept(w.Hide)
	}

	// Fyne closes its call queue when it stops, and fyne.Do racing with that
	// can panic, so stop posting updates as soon as the app says it is stopping.
	stopping := make(chan struct{})
	var stopOnce sync.Once
	stop := func() { stopOnce.Do(func() { close(stopping) }) }
	a.Lifecycle().SetOnStopped(stop)
	post := func(st ui.Status) {
		select {
		case <-stopping:
		default:
			fyne.Do(func() { refresh(st) })
		}
	}

	// Start in the background so the window shows "starting" at once rather
	// than appearing only after the database is opened and the port bound.
	started := make(chan struct{})
	go func() {
		defer close(started)
		status.startDone(ctl.Start())
		post(status.Status())
	}()

	go func() {
		t := time.NewTicker(statusInterval)
		defer t.Stop()
		for {
			select {
			case <-stopping:
				return
			case <-t.C:
				post(status.Status())
			}
		}
	}()

	w.ShowAndRun()
	stop()
	<-started // never Stop a server that is still starting
	ctl.Stop()
	return nil
}

// startTracker adjusts the controller's status around Start: "starting" until
// Start returns, and Start's error when the controller's own status does not
// carry one (for instance it reports "stopped" after a failed start), so a
// failed start shows in the window instead of ending the app.
type startTracker struct {
	guiController

	mu       sync.Mutex
	returned bool
	err      error
}

func (s *startTracker) startDone(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.returned, s.err = true, err
}

func (s *startTracker) Status() ui.Status {
	st := s.guiController.Status()
	s.mu.Lock()
	returned, err := s.returned, s.err
	s.mu.Unlock()
	switch {
	case !returned && st.State == ui.StateStopped:
		st.State = ui.StateStarting
	case err != nil && st.State != ui.StateRunning && st.Err == nil:
		st.State, st.Err = ui.StateError, err
	}
	return st
}
