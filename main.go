// Command palpo is a personal Matrix homeserver that ships as a desktop app.
// With a display it opens the desktop app; without one (or with --headless,
// or `palpo serve`) it runs the server alone. See `palpo help`.
package main

import (
	"os"

	"github.com/palpo-im/palpo-desktop/app"
)

func main() {
	os.Exit(app.Main(os.Args[1:], app.GUI{Available: guiAvailable, Run: runDesktop}, app.DefaultEnv()))
}
