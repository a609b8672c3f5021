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

// smallIcon is the 128×128 icon, for the window's own pictures (shown at
// 40 to 48 points): decoded, the 512×512 one takes 1 MB of memory for
// each picture; this one 64 KB.
//
//go:embed icons/palpo-128.png
var smallIcon []byte

// SmallIconResource is the icon for pictures inside the window.
func SmallIconResource() fyne.Resource {
	return fyne.NewStaticResource("palpo-128.png", smallIcon)
}
