package app

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/palpo-im/palpo-desktop/app/backup"
	"github.com/palpo-im/palpo-desktop/server/config"
)

// The desktop app's Backups tab edits [backup] in palpo.toml (the folder,
// the schedule, how many to keep, encryption) the same way the Settings tab
// edits its keys: in place, comments kept (tomledit.go).

// desktopPassphraseFile is where the Backups tab keeps the passphrase of
// encrypted scheduled backups: in the data directory, readable by its owner
// only, and never inside a backup (a backup holds the config, key, database
// and media only), so a stolen backup does not carry its own key.
const desktopPassphraseFile = "backup-passphrase.txt"

// BackupSettings are the [backup] options the Backups tab shows.
type BackupSettings struct {
	Dir      string // the folder as configured ("" for the default)
	Schedule string // config.BackupOff, BackupDaily or BackupWeekly
	Keep     int
	// Encrypted is set when a passphrase file is configured: every backup
	// made by the schedule or "Back up now" is then encrypted with it.
	Encrypted bool
}

// BackupSettings reads the [backup] options.
func (a *App) BackupSettings() BackupSettings {
	b := a.Config().Backup
	return BackupSettings{Dir: b.Dir, Schedule: b.Schedule, Keep: b.Keep, Encrypted: b.PassphraseFile != ""}
}

// SaveBackupSettings writes changed [backup] options and restarts the
// schedule of a running server with them. passphrase, when not empty (and
// s.Encrypted), becomes the passphrase of every backup from now on; turning
// Encrypted off stops encrypting (the old passphrase file is removed if the
// app made it).
func (a *App) SaveBackupSettings(s BackupSettings, passphrase string) error {
	old := a.BackupSettings()
	var edits []tomlEdit
	if s.Dir != old.Dir {
		dir := s.Dir
		edits = append(edits, tomlEdit{"backup.dir", tomlString(dir), func(c *config.Config) bool { return c.Backup.Dir == dir }})
	}
	if s.Schedule != old.Schedule {
		sched := s.Schedule
		edits = append(edits, tomlEdit{"backup.schedule", tomlString(sched), func(c *config.Config) bool { return c.Backup.Schedule == sched }})
	}
	if s.Keep != old.Keep {
		keep := s.Keep
		edits = append(edits, tomlEdit{"backup.keep", tomlInt(int64(keep)), func(c *config.Config) bool { return c.Backup.Keep == keep }})
	}
	passPath := filepath.Join(a.dataDir, desktopPassphraseFile)
	removeOldPass := false
	switch {
	case s.Encrypted && passphrase != "":
		if err := writeFileAtomic(passPath, []byte(passphrase+"\n")); err != nil {
			return fmt.Errorf("save the backup passphrase: %w", err)
		}
		edits = append(edits, tomlEdit{"backup.passphrase_file", tomlString(desktopPassphraseFile),
			func(c *config.Config) bool { return c.Backup.PassphraseFile == desktopPassphraseFile }})
	case s.Encrypted && !old.Encrypted:
		return errors.New("choose a passphrase to encrypt backups with")
	case !s.Encrypted && old.Encrypted:
		removeOldPass = a.Config().Backup.PassphraseFile == desktopPassphraseFile
		edits = append(edits, tomlEdit{"backup.passphrase_file", `""`, func(c *config.Config) bool { return c.Backup.PassphraseFile == "" }})
	}
	if len(edits) == 0 {
		return nil
	}
	if err := a.editConfig(edits...); err != nil {
		return err
	}
	if removeOldPass {
		_ = os.Remove(passPath)
	}
	a.restartBackupSchedule()
	return nil
}

// restartBackupSchedule makes a running server's schedule follow the
// config just saved.
func (a *App) restartBackupSchedule() {
	a.stopBackupSchedule()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.srv != nil {
		a.startBackupSchedule()
	}
}

// BackupPassphrase is the configured passphrase ("" when backups are not
// encrypted).
func (a *App) BackupPassphrase() (string, error) {
	return ConfiguredPassphrase(a.dataDir, a.Config())
}

// Backups lists the backups in the backup folder, newest first.
func (a *App) Backups() ([]backup.Entry, error) { return backup.List(a.BackupDir()) }

// LastBackup is when the newest backup of this server in the backup
// folder was made (zero when there is none).
func (a *App) LastBackup() (time.Time, error) {
	e, err := backup.Latest(a.BackupDir(), a.Config().ServerName)
	if err != nil || e == nil {
		return time.Time{}, err
	}
	return e.Created, nil
}
