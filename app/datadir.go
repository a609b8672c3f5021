// Package app is Palpo's lifecycle without any GUI: where the data lives,
// creating and loading the config, starting and stopping the server, and the
// command line. The desktop app (ui/) and `palpo serve` both drive it.
package app

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
)

// EnvDataDir names the environment variable that overrides the data
// directory (the --data-dir flag wins over it).
const EnvDataDir = "PALPO_DATA_DIR"

// ResolveDataDir picks the data directory: the flag, else PALPO_DATA_DIR,
// else the operating system's usual place for application data.
func ResolveDataDir(flagValue string) (string, error) {
	if flagValue != "" {
		return filepath.Abs(flagValue)
	}
	if env := os.Getenv(EnvDataDir); env != "" {
		return filepath.Abs(env)
	}
	home, _ := os.UserHomeDir()
	dir := defaultDataDir(runtime.GOOS, os.Getenv, home)
	if dir == "" {
		return "", errors.New("cannot find a home directory for Palpo's data; pass --data-dir or set " + EnvDataDir)
	}
	return dir, nil
}

// defaultDataDir is the per-OS default: $XDG_DATA_HOME/palpo (falling back to
// ~/.local/share/palpo) on Linux and other Unixes, %AppData%\Palpo on
// Windows, ~/Library/Application Support/Palpo on macOS.
func defaultDataDir(goos string, getenv func(string) string, home string) string {
	switch goos {
	case "windows":
		if appData := getenv("AppData"); appData != "" {
			return filepath.Join(appData, "Palpo")
		}
		if home == "" {
			return ""
		}
		return filepath.Join(home, "AppData", "Roaming", "Palpo")
	case "darwin", "ios":
		if home == "" {
			return ""
		}
		return filepath.Join(home, "Library", "Application Support", "Palpo")
	default:
		// The XDG spec says a relative XDG_DATA_HOME is invalid and must be ignored.
		if xdg := getenv("XDG_DATA_HOME"); xdg != "" && filepath.IsAbs(xdg) {
			return filepath.Join(xdg, "palpo")
		}
		if home == "" {
			return ""
		}
		return filepath.Join(home, ".local", "share", "palpo")
	}
}
