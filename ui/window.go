// Package ui holds Palpo's desktop windows and tray menu. It talks to the
// application lifecycle through Controller and never to the server or storage.
//
// The package builds with CGO_ENABLED=0: it uses only Fyne's widget API, so its
// tests run on Fyne's test driver without a display. Only package main picks
// the real (cgo/OpenGL) driver.
package ui

import (
	"fmt"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/layout"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/palpo-im/palpo-desktop/assets"
)

// Values of Status.State.
const (
	StateStarting = "starting"
	StateRunning  = "running"
	StateStopped  = "stopped"
	StateError    = "error"
)

// Status is what the window shows about the running server.
type Status struct {
	State      string // StateStarting, StateRunning, StateStopped or StateError
	Err        error  // why the server is in StateError
	ClientURL  string // base URL Matrix clients log in at, e.g. http://localhost:8008
	ServerName string // the server_name in user IDs (@alice:ServerName)
}

// Controller is what the UI needs from the app lifecycle (implemented by
// package app). Status is called from goroutines other than Fyne's, so it
// must be safe for concurrent use.
type Controller interface {
	Status() Status
}

// NewMainWindow builds the main window: the address to give a Matrix client,
// a button to copy it, the server's state and a Quit button. It returns the
// window and a refresh function that shows a new Status; refresh touches
// widgets, so callers on other goroutines must wrap it in fyne.Do.
//
// This is the placeholder window of the first release; accounts, backups and
// federation settings come later.
func NewMainWindow(a fyne.App, c Controller) (fyne.Window, func(Status)) {
	w := a.NewWindow("Palpo")
	w.SetIcon(assets.IconResource())

	icon := canvas.NewImageFromResource(assets.IconResource())
	icon.FillMode = canvas.ImageFillContain
	icon.SetMinSize(fyne.NewSquareSize(64))

	name := widget.NewLabelWithStyle(appName(a), fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	name.SizeName = theme.SizeNameHeadingText

	// Selectable so the address can also be copied by hand, e.g. a part of it.
	address := widget.NewLabelWithStyle("", fyne.TextAlignLeading, fyne.TextStyle{Monospace: true})
	address.Selectable = true

	serverName := widget.NewLabel("")
	state := widget.NewLabel("")
	state.Wrapping = fyne.TextWrapWord

	var clientURL string
	copyButton := widget.NewButtonWithIcon("Copy address", theme.ContentCopyIcon(), func() {
		// App.Clipboard, not the deprecated Window.Clipboard: same system clipboard.
		a.Clipboard().SetContent(clientURL)
	})
	quit := widget.NewButtonWithIcon("Quit", theme.LogoutIcon(), a.Quit)

	refresh := func(s Status) {
		clientURL = s.ClientURL
		address.SetText(s.ClientURL)
		if s.ClientURL == "" {
			copyButton.Disable()
		} else {
			copyButton.Enable()
		}
		if s.ServerName == "" {
			serverName.Hide()
		} else {
			serverName.SetText("Your user IDs end in :" + s.ServerName)
			serverName.Show()
		}
		state.SetText(stateText(s))
		if s.State == StateError {
			state.Importance = widget.DangerImportance
		} else {
			state.Importance = widget.MediumImportance
		}
		state.Refresh()
	}

	w.SetContent(container.NewPadded(container.NewVBox(
		container.NewHBox(icon, container.NewCenter(name)),
		widget.NewLabel("Connect Element, FluffyChat or Nheko to:"),
		container.NewBorder(nil, nil, nil, copyButton, address),
		serverName,
		widget.NewSeparator(),
		state,
		container.NewHBox(layout.NewSpacer(), quit),
	)))
	w.Resize(fyne.NewSize(480, 0))

	initial := Status{State: StateStarting}
	if c != nil {
		initial = c.Status()
	}
	refresh(initial)
	return w, refresh
}

// stateText is the one line saying what the server is doing.
func stateText(s Status) string {
	switch s.State {
	case StateStarting:
		return "Server starting…"
	case StateRunning:
		return "Server running"
	case StateStopped:
		return "Server stopped"
	case StateError:
		if s.Err == nil {
			return "Server error"
		}
		return "Server error: " + s.Err.Error()
	default:
		return fmt.Sprintf("Server state: %s", s.State)
	}
}

// appName prefers the name from FyneApp.toml metadata (set by `fyne build` and
// `fyne package`), falling back to "Palpo" for plain `go build` and tests.
func appName(a fyne.App) string {
	if n := a.Metadata().Name; n != "" {
		return n
	}
	return "Palpo"
}
