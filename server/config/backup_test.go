package config

import (
	"strings"
	"testing"
)

func TestBackupSection(t *testing.T) {
	cfg, err := Parse("[backup]\ndir = \"/mnt/usb/palpo\"\nschedule = \"weekly\"\nkeep = 4\npassphrase_file = \"backup-passphrase\"\n")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Backup != (Backup{Dir: "/mnt/usb/palpo", Schedule: BackupWeekly, Keep: 4, PassphraseFile: "backup-passphrase"}) {
		t.Fatalf("backup section: %+v", cfg.Backup)
	}
	if d := Default().Backup; d.Schedule != BackupOff || d.Keep != 7 || d.Dir != "" || d.PassphraseFile != "" {
		t.Fatalf("backup defaults: %+v", d)
	}
	for text, want := range map[string]string{
		"[backup]\nschedule = \"hourly\"":    `backup.schedule "hourly": must be "off", "daily" or "weekly"`,
		"[backup]\nkeep = 0":                 "backup.keep 0: must be between 1 and 1000",
		"[backup]\npassphrase_file = \"  \"": "backup.passphrase_file",
		"[backup]\nkeeep = 3":                "unknown key backup.keeep",
	} {
		if _, err := Parse(text); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) = %v; want %q", text, err, want)
		}
	}
}
