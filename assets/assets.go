// Package assets holds resources bundled into the palpo binary.
package assets

import (
	_ "embed"

	"fyne.io/fyne/v2"
)

// Icon is the 512×512 PNG app icon (also referenced by FyneApp.toml for `fyne package`).
//
//go:embed icon.png
var Icon []byte

// IconResource returns Icon as a Fyne resource for the app, window and tray icon.
func IconResource() fyne.Resource {
	return fyne.NewStaticResource("icon.png", Icon)
}
