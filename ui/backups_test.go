package ui

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/palpo-im/palpo-desktop/app"
	"github.com/palpo-im/palpo-desktop/app/backup"
	"github.com/palpo-im/palpo-desktop/server/config"
)

func TestBackupsTabBackUpCheckRestore(t *testing.T) {
	d, _ := runningDesktop(t, Options{})
	a := d.app
	b := d.backups
	d.tabs.Select(d.tabs.Items[2])
	d.Wait()
	if len(b.entries) != 0 || !b.verify.Disabled() || !b.restore.Disabled() {
		t.Fatalf("entries %d, buttons verify %v restore %v", len(b.entries), b.verify.Disabled(), b.restore.Disabled())
	}
	if !hasLabel(b.content, "No backups in this folder yet") {
		t.Fatalf("the empty list does not say what to do: %q", labels(b.content))
	}
	if b.folder.Text != filepath.Join(a.DataDir(), "backups") {
		t.Fatalf("folder %q", b.folder.Text)
	}

	tap(t, b.backupNowB)
	if !b.step.Visible() || !b.backupNowB.Disabled() {
		t.Fatal("no progress while backing up")
	}
	d.Wait()
	if len(b.entries) != 1 || b.entries[0].Verified.IsZero() || !strings.Contains(b.step.Text, "Backup made and checked") {
		t.Fatalf("after Back up now: %+v, step %q", b.entries, b.step.Text)
	}
	if hasLabel(b.content, "No backups in this folder yet") {
		t.Fatal("the empty-list note stays with a backup listed")
	}
	if b.backupNowB.Disabled() || b.barInf.Visible() {
		t.Fatal("progress still shown")
	}
	d.status.loadStats()
	d.Wait()
	if d.status.lastBackup.Text == "Never" {
		t.Fatal("the Status tab does not show the last backup")
	}

	// Made after the backup: gone after the restore.
	if _, err := a.CreateUser(context.Background(), "late", "late password", false); err != nil {
		t.Fatal(err)
	}

	b.list.Select(0)
	tap(t, b.verify)
	d.Wait()
	if !strings.Contains(b.step.Text, "The backup is whole: 1 user, 0 rooms") {
		t.Fatalf("check: %q", b.step.Text)
	}

	tap(t, b.restore)
	dlg := dialogOnTop(t, d)
	if !hasLabel(dlg, "replace the server's current data") {
		t.Fatalf("confirmation %q", labels(dlg))
	}
	tap(t, findButton(t, dlg, "Restore"))
	d.Wait()
	if a.Status().State != app.StateRunning {
		t.Fatalf("server after restore: %+v", a.Status())
	}
	if !hasLabel(dialogOnTop(t, d), "Restored the backup") {
		t.Fatalf("result: %q", labels(dialogOnTop(t, d)))
	}
	users, err := a.Users(context.Background())
	if err != nil || len(users) != 1 || users[0].UserID != "@owner:localhost" {
		t.Fatalf("users after restore: %+v %v", users, err)
	}
	mustLogin(t, a, "owner", ownerPassword)
	// The Logs tab has a line for the backup and one for the restore.
	d.logs.refresh()
	if !d.logs.has("backup made") || !d.logs.has("backup restored") {
		t.Fatalf("logs lack the backup or the restore: %q", d.logs.text())
	}
}

// A damaged backup is refused with a clear message, and nothing changes.
func TestBackupsTabRefusesDamagedBackup(t *testing.T) {
	d, _ := runningDesktop(t, Options{})
	a := d.app
	b := d.backups
	tap(t, b.backupNowB)
	d.Wait()
	if len(b.entries) != 1 {
		t.Fatalf("entries %+v", b.entries)
	}
	path := b.entries[0].Path
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Sixteen bytes, not one: in the deflate stream of a run of zeros, a
	// changed byte may only change the distance a run of zeros is copied
	// from, which decompresses to the very same data (a harmless change
	// that no check can, or need, see).
	for i := range 16 {
		data[len(data)/2+i] ^= 0xff
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := a.CreateUser(context.Background(), "kept", "kept password", false); err != nil {
		t.Fatal(err)
	}
	b.load()
	d.Wait()
	b.list.Select(0)
	tap(t, b.restore)
	tap(t, findButton(t, dialogOnTop(t, d), "Restore"))
	d.Wait()
	if !hasLabel(dialogOnTop(t, d), "nothing was changed") || !hasLabel(dialogOnTop(t, d), "This backup file is damaged") {
		t.Fatalf("dialog %q", labels(dialogOnTop(t, d)))
	}
	if a.Status().State != app.StateRunning {
		t.Fatal("the server did not come back after a refused restore")
	}
	mustLogin(t, a, "kept", "kept password")
}

func TestBackupsTabScheduleAndEncryption(t *testing.T) {
	old := backup.ScryptWorkFactor
	backup.ScryptWorkFactor = 10
	t.Cleanup(func() { backup.ScryptWorkFactor = old })
	d, _ := runningDesktop(t, Options{})
	a := d.app
	b := d.backups

	b.schedule.SetSelected("Every week")
	b.keep.SetSelected("the last 3")
	if s := a.BackupSettings(); s.Schedule != config.BackupWeekly || s.Keep != 3 {
		t.Fatalf("saved %+v", s)
	}
	text := configText(t, a)
	if !strings.Contains(text, `schedule = "weekly"`) || !strings.Contains(text, "keep = 3") {
		t.Fatalf("palpo.toml:\n%s", text)
	}
	if st, ok := a.BackupSchedule(); !ok || st.Next.IsZero() {
		t.Fatalf("schedule not running: %+v %v", st, ok)
	}
	b.showNext()
	if !strings.HasPrefix(b.next.Text, "Next backup:") {
		t.Fatalf("next %q", b.next.Text)
	}

	// Encryption asks for a passphrase twice; cancelling leaves it off.
	b.encrypt.SetChecked(true)
	dlg := dialogOnTop(t, d)
	tap(t, findButton(t, dlg, "Cancel"))
	if b.encrypt.Checked || a.BackupSettings().Encrypted {
		t.Fatal("cancelled encryption turned on")
	}
	b.encrypt.SetChecked(true)
	dlg = dialogOnTop(t, d)
	es := entries(dlg)
	es[0].SetText("a good passphrase")
	es[1].SetText("a different one!")
	tap(t, findButton(t, dlg, "OK"))
	if !hasLabel(dlg, "not the same") {
		t.Fatalf("mismatch: %q", labels(dlg))
	}
	es[1].SetText("a good passphrase")
	tap(t, findButton(t, dlg, "OK"))
	noDialog(t, d)
	if !a.BackupSettings().Encrypted || !b.encrypt.Checked {
		t.Fatal("encryption not on")
	}
	tap(t, b.backupNowB)
	d.Wait()
	if len(b.entries) != 1 || !b.entries[0].Encrypted || !strings.HasSuffix(b.entries[0].Name, ".age") {
		t.Fatalf("entries %+v, step %q", b.entries, b.step.Text)
	}
	// Checking an encrypted backup uses the saved passphrase.
	b.list.Select(0)
	tap(t, b.verify)
	d.Wait()
	if !strings.Contains(b.step.Text, "The backup is whole") {
		t.Fatalf("check: %q", b.step.Text)
	}

	// Choosing another folder.
	other := t.TempDir()
	b.setFolder(other)
	d.Wait()
	if a.BackupDir() != other || b.folder.Text != other || len(b.entries) != 0 {
		t.Fatalf("folder %q shown %q entries %d", a.BackupDir(), b.folder.Text, len(b.entries))
	}
}
