package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"

	"github.com/palpo-im/palpo-desktop/server"
	"github.com/palpo-im/palpo-desktop/server/config"
)

// Version is Palpo's version, set at build time with
// -ldflags "-X github.com/palpo-im/palpo-desktop/app.Version=…".
var Version = "0.1.0-dev"

// GUI is the desktop app as the command line sees it; package main fills it
// in, because only a cgo build carries Fyne.
type GUI struct {
	// Available is false in builds without the desktop app (CGO_ENABLED=0).
	Available bool
	// Run runs the window on the calling (main) goroutine until the user
	// quits, starting and stopping the server through a.
	Run func(a *App) error
}

// Env is the outside world the command line runs in, injectable for tests.
type Env struct {
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	GOOS           string
	// Signals, when non-nil, replaces SIGINT/SIGTERM as the stop request.
	Signals context.Context
	// Ready, when non-nil, is called once the server is serving.
	Ready func(a *App)
	// Stdin is where `palpo user` reads passwords; nil means none.
	Stdin io.Reader
	// Command is the program as it was started ("palpo", "./bin/palpo"),
	// for hints that tell people which command to type; "" means palpo.
	Command string
}

// DefaultEnv is the real process environment.
func DefaultEnv() Env {
	return Env{Stdout: os.Stdout, Stderr: os.Stderr, Stdin: os.Stdin, Getenv: os.Getenv, GOOS: runtime.GOOS, Command: os.Args[0]}
}

const usage = `Palpo: a personal Matrix homeserver.

Usage:
  palpo [--headless] [--data-dir DIR]   open the desktop app, or serve headless
                                        when there is no display
  palpo serve [--data-dir DIR]          run the server without a window
  palpo user COMMAND [--data-dir DIR]   manage accounts: add, list, passwd,
                                        deactivate, reactivate ("palpo user
                                        help" explains them)
  palpo invite COMMAND [--data-dir DIR] manage invite codes: create, list,
                                        revoke ("palpo invite help"; "palpo
                                        token" is the old name)
  palpo backup COMMAND [--data-dir DIR] back up and restore: create, list,
                                        verify, restore ("palpo backup help")
  palpo federation check [--data-dir DIR]
                                        tell whether other Matrix servers
                                        can reach this one, with the fixes
                                        ("palpo federation help")
  palpo version                         print the version
  palpo config example                  print a fully commented example config
  palpo help                            show this help

Options:
  --data-dir DIR   where Palpo keeps its config, database and keys
                   (also: the PALPO_DATA_DIR environment variable)
  --headless       never open a window; same as "palpo serve"
  --hidden         start the desktop app in the tray without showing its
                   window (what "start on login" uses)

Without --data-dir, data lives in $XDG_DATA_HOME/palpo on Linux,
%AppData%\Palpo on Windows and ~/Library/Application Support/Palpo on macOS.
`

// Main runs the palpo command line and returns the process exit code.
func Main(args []string, gui GUI, env Env) int {
	fs := flag.NewFlagSet("palpo", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() { fmt.Fprint(env.Stderr, usage) }
	dataDir := fs.String("data-dir", "", "data directory")
	headless := fs.Bool("headless", false, "run without a window")
	hidden := fs.Bool("hidden", false, "start in the tray without showing the window")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	rest := fs.Args()
	cmd := ""
	if len(rest) > 0 {
		cmd, rest = rest[0], rest[1:]
	}
	switch cmd {
	case "":
		if *headless || !gui.Available || !hasDisplay(env) {
			return serve(*dataDir, env)
		}
		return runDesktop(*dataDir, *hidden, gui, env)
	case "serve":
		sub := flag.NewFlagSet("palpo serve", flag.ContinueOnError)
		sub.SetOutput(env.Stderr)
		sub.Usage = fs.Usage
		subDir := sub.String("data-dir", *dataDir, "data directory")
		if err := sub.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			return 2
		}
		if sub.NArg() > 0 {
			fmt.Fprintf(env.Stderr, "palpo serve: unexpected argument %q\n", sub.Arg(0))
			return 2
		}
		return serve(*subDir, env)
	case "version":
		fmt.Fprintf(env.Stdout, "palpo %s (%s, %s/%s, desktop app: %v)\n", Version, runtime.Version(), runtime.GOOS, runtime.GOARCH, gui.Available)
		return 0
	case "config":
		if len(rest) == 1 && rest[0] == "example" {
			fmt.Fprint(env.Stdout, config.Example)
			return 0
		}
		fmt.Fprintln(env.Stderr, "usage: palpo config example")
		return 2
	case "user":
		return userCommand(*dataDir, rest, env)
	case "invite", "token":
		return inviteCommand(cmd, *dataDir, rest, env)
	case "backup":
		return backupCommand(*dataDir, rest, env)
	case "federation":
		return federationCommand(*dataDir, rest, env)
	case "help":
		fmt.Fprint(env.Stdout, usage)
		return 0
	default:
		fmt.Fprintf(env.Stderr, "palpo: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
}

// hasDisplay tells whether a window can be shown: on Linux and the BSDs
// only with an X11 or Wayland display; Windows and macOS always have one.
func hasDisplay(env Env) bool {
	switch env.GOOS {
	case "windows", "darwin":
		return true
	}
	return env.Getenv("DISPLAY") != "" || env.Getenv("WAYLAND_DISPLAY") != ""
}

func openApp(dataDirFlag string, env Env) (*App, error) {
	if dataDirFlag == "" && env.Getenv(EnvDataDir) != "" {
		dataDirFlag = env.Getenv(EnvDataDir)
	}
	dir, err := ResolveDataDir(dataDirFlag)
	if err != nil {
		return nil, err
	}
	return Open(dir, env.Stderr)
}

// serve runs the server headless until SIGINT or SIGTERM.
func serve(dataDirFlag string, env Env) int {
	a, err := openApp(dataDirFlag, env)
	if err != nil {
		fmt.Fprintf(env.Stderr, "palpo: %v\n", err)
		return 1
	}
	stop := env.Signals
	if stop == nil {
		var cancel context.CancelFunc
		stop, cancel = signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer cancel()
	}
	a.Logger().Info("starting Palpo", "version", Version, "data_dir", a.DataDir())
	a.noAccountsHint = cliNoAccountsHint(env.Command)
	memCtx, stopMem := context.WithCancel(context.Background())
	defer stopMem()
	go ManageMemory(memCtx)
	if err := a.Start(); err != nil {
		a.Logger().Error("Palpo could not start", "error", err)
		return 1
	}
	ReleaseMemory()
	if env.Ready != nil {
		env.Ready(a)
	}
	code := 0
	select {
	case <-stop.Done():
		a.Logger().Info("shutting down")
	case err := <-a.Failed():
		a.Logger().Error("server failed", "error", err)
		code = 1
	}
	if err := a.Stop(); err != nil {
		a.Logger().Error("unclean shutdown", "error", err)
		return 1
	}
	return code
}

func runDesktop(dataDirFlag string, hidden bool, gui GUI, env Env) int {
	a, err := openApp(dataDirFlag, env)
	if err != nil {
		fmt.Fprintf(env.Stderr, "palpo: %v\n", err)
		return 1
	}
	a.StartHidden = hidden
	a.noAccountsHint = "No accounts yet: create them on the Users tab of the Palpo window " +
		"(or with `" + commandName(env.Command) + " user add NAME --admin`)"
	if err := gui.Run(a); err != nil {
		a.Logger().Error("desktop app failed", "error", err)
		return 1
	}
	return 0
}

// commandName is how to type the program in a hint: as it was started when
// that was by a path (./bin/palpo after `make run`), else palpo.
func commandName(cmd string) string {
	if cmd == "" || !strings.ContainsAny(cmd, `/\`) {
		return "palpo"
	}
	return cmd
}

// cliNoAccountsHint is what a new headless server logs: the commands that
// make the first account and an invite code, with the program's name as
// it was started, so they work when pasted.
func cliNoAccountsHint(cmd string) string {
	return server.NoAccountsHint(commandName(cmd))
}
