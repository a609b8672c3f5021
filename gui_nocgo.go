//go:build !cgo

package main

import (
	"errors"

	"github.com/palpo-im/palpo-desktop/app"
)

// guiAvailable reports whether this binary includes the desktop app. Fyne's
// desktop driver needs cgo (OpenGL and GLFW), so CGO_ENABLED=0 builds are
// server-only.
const guiAvailable = false

// runDesktop explains that this build has no desktop app; app.Main only
// calls it when asked for a window explicitly.
func runDesktop(*app.App) error {
	return errors.New("this palpo binary was built without the desktop app (CGO_ENABLED=0); run `palpo serve` or rebuild with cgo")
}
