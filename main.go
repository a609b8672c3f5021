// Command palpo is a personal Matrix homeserver that ships as a desktop app.
// With a display it opens the desktop app; without one (or with --headless,
// or `palpo serve`) it runs the server alone. See `palpo help`.
package main

import (
	"os"
	"runtime"

	"github.com/palpo-im/palpo-desktop/app"
)

func main() {
	// No heap profiles are ever taken from the running app; sampling for
	// them kept a 1.4 MB table of allocation sites resident after a day's
	// work. (Benchmarks in cmd/ profile with their own binaries.)
	runtime.MemProfileRate = 0
	os.Exit(app.Main(os.Args[1:], app.GUI{Available: guiAvailable, Run: runDesktop}, app.DefaultEnv()))
}
