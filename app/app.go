package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/gofrs/flock"

	"github.com/palpo-im/palpo-desktop/server"
	"github.com/palpo-im/palpo-desktop/server/config"
)

// State is where the server is in its life.
type State string

// The server's states, as the desktop app shows them.
const (
	StateStopped  State = "stopped"
	StateStarting State = "starting"
	StateRunning  State = "running"
	StateError    State = "error"
)

// Status is a snapshot of the application for display.
type Status struct {
	State      State
	Err        error
	ServerName string
	ClientURL  string
	Started    time.Time
}

// App owns one data directory and the server running on it.
type App struct {
	dataDir string
	cfg     *config.Config
	log     *slog.Logger
	logs    *LogBuffer // what the desktop app's Logs tab shows (logs.go)

	// StartHidden asks the desktop app to start in the tray without
	// showing its window (--hidden, which start-on-login uses).
	StartHidden bool

	// noAccountsHint replaces the server's own first-run hint (cli.go).
	noAccountsHint string

	mu     sync.Mutex
	srv    *server.Server
	lock   *flock.Flock // the data directory's lock, held while srv runs (control.go)
	state  State
	err    error
	failed chan error
	done   chan struct{} // closed by Stop, ends watch
	bk     backupState   // backups.go
}

// Open prepares the data directory (creating it and a default palpo.toml on
// first start) and loads the config. logOut receives the log, formatted as
// the config says.
func Open(dataDir string, logOut io.Writer) (*App, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory %s: %w", dataDir, err)
	}
	cfgPath := filepath.Join(dataDir, config.FileName)
	if _, err := os.Stat(cfgPath); errors.Is(err, fs.ErrNotExist) {
		if err := os.WriteFile(cfgPath, []byte(config.Example), 0o600); err != nil {
			return nil, fmt.Errorf("write default config: %w", err)
		}
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return nil, err
	}
	// The log goes to logOut as before and also into memory, for the
	// desktop app's Logs tab.
	logs := NewLogBuffer(logBufferSize)
	log := slog.New(slog.NewMultiHandler(NewLogger(logOut, cfg.Log).Handler(), logs.Handler(logLevel(cfg.Log))))
	return &App{dataDir: dataDir, cfg: cfg, log: log, logs: logs, state: StateStopped}, nil
}

// logLevel is the level the config asks for.
func logLevel(c config.Log) slog.Level {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level)) // validated by config
	return level
}

// NewLogger builds the slog logger the config asks for.
func NewLogger(w io.Writer, c config.Log) *slog.Logger {
	opts := &slog.HandlerOptions{Level: logLevel(c)}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// DataDir is the data directory.
func (a *App) DataDir() string { return a.dataDir }

// Config is the loaded config. The desktop app may reload it (settings.go),
// so callers keep the pointer for one task at most and never change it.
func (a *App) Config() *config.Config {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cfg
}

// Logs is the in-memory log the desktop app shows.
func (a *App) Logs() *LogBuffer { return a.logs }

// Logger is the application's logger.
func (a *App) Logger() *slog.Logger { return a.log }

// Start opens the server and starts listening. On failure the app is in the
// error state with the reason, and the error is returned. While the server
// runs the app holds the data directory's lock (a second server on the same
// directory fails with *AlreadyRunningError) and publishes control.json for
// the admin commands.
func (a *App) Start() error {
	a.mu.Lock()
	if a.srv != nil {
		a.mu.Unlock()
		return errors.New("already running")
	}
	a.state, a.err = StateStarting, nil
	cfg := a.cfg
	a.mu.Unlock()

	lock, err := lockDataDir(a.dataDir)
	var srv *server.Server
	if err == nil {
		// A restore cut short is undone before anything opens the data.
		if cfg, err = a.recoverInterruptedRestore(cfg); err == nil {
			srv, err = a.startServer(cfg)
		}
		if err != nil {
			_ = lock.Unlock()
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err != nil {
		a.state, a.err = StateError, err
		return err
	}
	a.srv, a.lock, a.state = srv, lock, StateRunning
	a.failed = make(chan error, 1)
	a.done = make(chan struct{})
	go a.watch(srv, a.done)
	a.startBackupSchedule()
	return nil
}

// startServer builds and starts the server and publishes the local control
// file; the caller holds the data directory's lock. The file is written
// here rather than in server.Start because it belongs with the lock: only
// the process that owns the directory may say where its server is (tests
// and the offline admin commands build servers that publish nothing).
func (a *App) startServer(cfg *config.Config) (*server.Server, error) {
	// A file left by a server that crashed names a dead address and
	// secret; remove it so no command tries them while this one starts.
	if err := removeControlFile(a.dataDir); err != nil {
		return nil, err
	}
	srv, err := server.New(context.Background(), cfg, a.dataDir, a.log)
	if err != nil {
		return nil, err
	}
	token := srv.Accounts().NewControlToken()
	if a.noAccountsHint != "" {
		srv.SetNoAccountsHint(a.noAccountsHint)
	}
	err = srv.Start()
	if err == nil {
		err = writeControlFile(a.dataDir, controlFile{URL: controlURL(srv.Addrs()), Token: token})
	}
	if err != nil {
		_ = srv.Shutdown(context.Background())
		return nil, err
	}
	return srv, nil
}

// watch moves the app to the error state if a listener dies while serving.
func (a *App) watch(srv *server.Server, done <-chan struct{}) {
	var err error
	select {
	case <-done:
		return
	case err = <-srv.Err():
	}
	a.mu.Lock()
	if a.srv == srv {
		a.state, a.err = StateError, err
		select {
		case a.failed <- err:
		default:
		}
	}
	a.mu.Unlock()
}

// Failed yields an error when the running server fails on its own.
func (a *App) Failed() <-chan error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.failed
}

// Stop shuts the server down gracefully: no new requests, in-flight ones get
// the configured time to finish, and the database is closed cleanly.
func (a *App) Stop() error {
	// A scheduled backup in progress ends before the database closes.
	a.stopBackupSchedule()
	a.mu.Lock()
	srv, lock := a.srv, a.lock
	timeout := time.Duration(a.cfg.HTTP.ShutdownTimeoutSeconds) * time.Second
	a.srv, a.lock = nil, nil
	if srv != nil {
		close(a.done)
	}
	a.mu.Unlock()
	if srv == nil {
		return nil
	}
	// First withdraw the control file, so commands run from now on hear
	// that Palpo is stopping instead of calling a server that is going away.
	if err := removeControlFile(a.dataDir); err != nil {
		a.log.Warn("could not remove the control file", "error", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := srv.Shutdown(ctx)
	// Only now, with the database closed, may another process have it.
	if uerr := lock.Unlock(); uerr != nil {
		err = errors.Join(err, fmt.Errorf("unlock data directory: %w", uerr))
	}
	a.mu.Lock()
	if err != nil {
		a.state, a.err = StateError, err
	} else {
		a.state, a.err = StateStopped, nil
	}
	a.mu.Unlock()
	if err == nil {
		a.log.Info("Palpo stopped cleanly")
	}
	return err
}

// Status reports the current state for display.
func (a *App) Status() Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := Status{State: a.state, Err: a.err, ServerName: a.cfg.ServerName}
	if a.srv != nil {
		st.ClientURL = a.srv.ClientURL()
		st.Started = a.srv.Started()
	} else if a.cfg.PublicBaseURL != "" {
		st.ClientURL = a.cfg.PublicBaseURL
	} else {
		st.ClientURL = server.BaseURLForListenAddr(a.cfg.Listen[0])
	}
	return st
}

// Server returns the running server, or nil.
func (a *App) Server() *server.Server {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.srv
}
