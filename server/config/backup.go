package config

import (
	"fmt"
	"strings"
)

// Backup schedules.
const (
	BackupOff    = "off"
	BackupDaily  = "daily"
	BackupWeekly = "weekly"
)

// Backup configures backups: where they go, and the schedule on which the
// running app makes them by itself.
type Backup struct {
	// Dir is the folder backups are written to and listed from; relative
	// paths are inside the data directory, empty means <data dir>/backups.
	Dir string `toml:"dir"`
	// Schedule is "off", "daily" or "weekly": how often the running app
	// makes a backup by itself, counted from the newest one in Dir.
	Schedule string `toml:"schedule"`
	// Keep is how many scheduled backups to keep; older ones are deleted.
	Keep int `toml:"keep"`
	// PassphraseFile, when set, names a file whose first line is the
	// passphrase that encrypts every backup (relative paths are inside the
	// data directory).
	PassphraseFile string `toml:"passphrase_file"`
}

// defaultBackup is the backup part of Default().
func defaultBackup() Backup {
	return Backup{Schedule: BackupOff, Keep: 7}
}

func (b Backup) validate() error {
	switch b.Schedule {
	case BackupOff, BackupDaily, BackupWeekly:
	default:
		return fmt.Errorf("backup.schedule %q: must be \"off\", \"daily\" or \"weekly\"", b.Schedule)
	}
	if b.Keep < 1 || b.Keep > 1000 {
		return fmt.Errorf("backup.keep %d: must be between 1 and 1000; the default is 7", b.Keep)
	}
	if b.PassphraseFile != "" && strings.TrimSpace(b.PassphraseFile) == "" {
		return fmt.Errorf("backup.passphrase_file %q: must name a file, or be empty for unencrypted backups", b.PassphraseFile)
	}
	return nil
}
