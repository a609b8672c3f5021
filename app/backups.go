package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/palpo-im/palpo-desktop/app/backup"
	"github.com/palpo-im/palpo-desktop/server/config"
)

// Backups as the app offers them (the desktop app's Backups tab and the
// `palpo backup` commands): where they go, making one whether the server
// runs here, in another process or not at all, restoring one into a
// stopped data directory, and the schedule while the server runs.

// backupState is the app's part in backups.
type backupState struct {
	// mu makes one backup at a time (the schedule and "Back up now").
	mu        sync.Mutex
	scheduler *backup.Scheduler
}

// BackupDirFor is the folder backups of a data directory go to: [backup]
// dir (relative to the data directory), by default <data dir>/backups.
func BackupDirFor(dataDir string, cfg *config.Config) string {
	dir := cfg.Backup.Dir
	if dir == "" {
		return filepath.Join(dataDir, "backups")
	}
	if !filepath.IsAbs(dir) {
		return filepath.Join(dataDir, dir)
	}
	return dir
}

// BackupDir is this app's backup folder.
func (a *App) BackupDir() string { return BackupDirFor(a.dataDir, a.Config()) }

// ConfiguredPassphrase reads the passphrase named by [backup]
// passphrase_file; "" when backups are not to be encrypted.
func ConfiguredPassphrase(dataDir string, cfg *config.Config) (string, error) {
	p := cfg.Backup.PassphraseFile
	if p == "" {
		return "", nil
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(dataDir, p)
	}
	return readPassphraseFile(p)
}

// readPassphraseFile reads a passphrase: the file's first line.
func readPassphraseFile(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read passphrase file: %w", err)
	}
	line, _, _ := strings.Cut(string(data), "\n")
	pass := strings.TrimRight(line, "\r")
	if pass == "" {
		return "", fmt.Errorf("passphrase file %s is empty", path)
	}
	return pass, nil
}

// CreateBackup makes a backup of this app's data directory. While the
// server runs in this app, its database is copied through the server's
// own database; otherwise through a connection of this process, holding
// the data directory's lock if it is free (so no restore or server start
// happens meanwhile) and without it if a server in another process holds
// it (its database is copied consistently all the same, see
// storage.SnapshotFile).
//
// Every backup made this way is logged (the Logs tab shows it); scheduled
// ones are logged by the scheduler instead.
func (a *App) CreateBackup(ctx context.Context, opts backup.CreateOptions) (*backup.Result, error) {
	res, err := a.createBackup(ctx, opts)
	if err != nil {
		a.log.Error("backup failed", "error", err)
		return nil, err
	}
	a.log.Info("backup made", "file", res.Path, "bytes", res.Size, "encrypted", opts.Passphrase != "")
	return res, nil
}

func (a *App) createBackup(ctx context.Context, opts backup.CreateOptions) (*backup.Result, error) {
	a.bk.mu.Lock()
	defer a.bk.mu.Unlock()
	if opts.Dir == "" {
		opts.Dir = a.BackupDir()
	}
	src := backup.Source{DataDir: a.dataDir, Config: a.Config(), Version: Version}
	if srv := a.Server(); srv != nil {
		src.DB = srv.DB()
	} else {
		lock, locked, err := tryLockDataDir(a.dataDir)
		if err != nil {
			return nil, err
		}
		if locked {
			defer lock.Unlock()
		}
	}
	return backup.Create(ctx, src, opts)
}

// RestoreBackup replaces this app's data with a backup. The server must
// be stopped (Stop first); the data directory's lock is held throughout,
// so no other Palpo can start on it meanwhile. The config is reloaded
// from the restored palpo.toml; Start runs the restored server.
func (a *App) RestoreBackup(ctx context.Context, path string, opts backup.RestoreOptions) (*backup.RestoreResult, error) {
	if a.Server() != nil {
		return nil, errors.New("stop the server before restoring a backup")
	}
	a.bk.mu.Lock()
	defer a.bk.mu.Unlock()
	res, err := restoreLocked(ctx, path, a.dataDir, opts)
	if err != nil {
		a.log.Error("restore failed", "file", path, "error", err)
		return nil, err
	}
	a.log.Info("backup restored", "file", path, "previous_data", res.Previous)
	cfg, err := config.Load(filepath.Join(a.dataDir, config.FileName))
	if err != nil {
		a.log.Error("the restored config does not load", "error", err)
		return res, fmt.Errorf("the backup was restored, but its config does not load: %w", err)
	}
	a.mu.Lock()
	a.cfg = cfg
	a.mu.Unlock()
	return res, nil
}

// restoreLocked restores under the data directory's lock, refusing when
// a server (or another palpo command) holds it.
func restoreLocked(ctx context.Context, path, dataDir string, opts backup.RestoreOptions) (*backup.RestoreResult, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory %s: %w", dataDir, err)
	}
	lock, locked, err := tryLockDataDir(dataDir)
	if err != nil {
		return nil, err
	}
	if !locked {
		return nil, fmt.Errorf("cannot restore while Palpo is running with the data directory %s (or another palpo command is using it): "+
			"stop it first (quit the desktop app or stop \"palpo serve\"), then restore. Nothing was changed", dataDir)
	}
	defer lock.Unlock()
	return backup.Restore(ctx, path, dataDir, opts)
}

// recoverInterruptedRestore undoes a restore that was cut short, before
// the server opens anything; the caller (Start) holds the data
// directory's lock. It returns the config to start with: cfg, or the one
// put back.
func (a *App) recoverInterruptedRestore(cfg *config.Config) (*config.Config, error) {
	undone, err := backup.RecoverInterruptedRestore(a.dataDir)
	if err != nil || !undone {
		return cfg, err
	}
	a.log.Warn("a restore was interrupted; the data from before it was put back. Restore the backup again if you still want it")
	cfg, err = config.Load(filepath.Join(a.dataDir, config.FileName))
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	a.cfg = cfg
	a.mu.Unlock()
	return cfg, nil
}

// startBackupSchedule starts the [backup] schedule for the server now
// running; a schedule that cannot start is logged, not fatal. The caller
// (Start) holds a.mu; the scheduler calls back only later, from its own
// goroutine.
func (a *App) startBackupSchedule() {
	cfg := a.cfg
	if _, on := backup.Interval(cfg.Backup.Schedule); !on {
		return
	}
	s := backup.NewScheduler(backup.SchedulerConfig{
		Schedule:   cfg.Backup.Schedule,
		Dir:        BackupDirFor(a.dataDir, cfg),
		ServerName: cfg.ServerName,
		Keep:       cfg.Backup.Keep,
		Log:        a.log,
		Backup: func(ctx context.Context) (*backup.Result, error) {
			pass, err := ConfiguredPassphrase(a.dataDir, cfg)
			if err != nil {
				return nil, err
			}
			return a.createBackup(ctx, backup.CreateOptions{Dir: BackupDirFor(a.dataDir, cfg), Passphrase: pass, Verify: true})
		},
	})
	if err := s.Start(); err != nil {
		a.log.Error("backup schedule not started", "error", err)
		return
	}
	a.bk.scheduler = s
}

// stopBackupSchedule stops the schedule, cancelling a backup in progress.
func (a *App) stopBackupSchedule() {
	a.mu.Lock()
	s := a.bk.scheduler
	a.bk.scheduler = nil
	a.mu.Unlock()
	if s != nil {
		s.Stop()
	}
}

// BackupSchedule reports the schedule's state; ok is false when no
// schedule runs.
func (a *App) BackupSchedule() (st backup.ScheduleStatus, ok bool) {
	a.mu.Lock()
	s := a.bk.scheduler
	a.mu.Unlock()
	if s == nil {
		return backup.ScheduleStatus{}, false
	}
	return s.Status(), true
}
