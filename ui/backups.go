package ui

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/layout"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/palpo-im/palpo-desktop/app/backup"
	"github.com/palpo-im/palpo-desktop/server/config"
)

// Schedule choices and how many backups to keep.
var (
	scheduleChoices = []struct{ value, label string }{
		{config.BackupOff, "Off"},
		{config.BackupDaily, "Every day"},
		{config.BackupWeekly, "Every week"},
	}
	keepChoices = []int{3, 7, 14, 30}
)

// backupsTab makes, lists, checks and restores backups, and sets the
// schedule.
type backupsTab struct {
	d       *Desktop
	content fyne.CanvasObject

	folder     *widget.Label
	changeDir  *widget.Button
	openDir    *widget.Button
	empty      *widget.Label // says what to do while there are no backups
	backupNowB *widget.Button
	step       *widget.Label
	bar        *widget.ProgressBar
	barInf     *widget.ProgressBarInfinite

	schedule    *widget.Select
	keep        *widget.Select
	encrypt     *widget.Check
	next        *widget.Label
	settingForm bool

	entries []backup.Entry
	list    *widget.List
	sel     int
	verify  *widget.Button
	restore *widget.Button

	busy bool
}

func newBackupsTab(d *Desktop) *backupsTab {
	b := &backupsTab{d: d, sel: -1}
	b.folder = widget.NewLabel("")
	b.folder.Selectable = true
	b.folder.Wrapping = fyne.TextWrapBreak
	b.changeDir = widget.NewButtonWithIcon("Change…", theme.FolderIcon(), b.chooseFolder)
	b.openDir = widget.NewButtonWithIcon("Open", theme.FolderOpenIcon(), func() { d.openURL(folderURL(d.app.BackupDir())) })
	b.backupNowB = widget.NewButtonWithIcon("Back up now", theme.UploadIcon(), b.backupNow)
	b.backupNowB.Importance = widget.HighImportance
	b.step = wrapped("") // may name a long path
	b.step.Hide()
	b.bar = widget.NewProgressBar()
	b.bar.Hide()
	b.barInf = widget.NewProgressBarInfinite()
	b.barInf.Stop()
	b.barInf.Hide()

	labels := make([]string, len(scheduleChoices))
	for i, c := range scheduleChoices {
		labels[i] = c.label
	}
	b.schedule = widget.NewSelect(labels, func(string) { b.saveSchedule() })
	keepLabels := make([]string, len(keepChoices))
	for i, n := range keepChoices {
		keepLabels[i] = fmt.Sprintf("the last %d", n)
	}
	b.keep = widget.NewSelect(keepLabels, func(string) { b.saveSchedule() })
	b.encrypt = widget.NewCheck("Encrypt backups with a passphrase (recommended for a USB stick or a cloud folder)", b.encryptChanged)
	b.next = wrapped("")

	b.list = widget.NewList(
		func() int { return len(b.entries) },
		func() fyne.CanvasObject {
			return container.NewHBox(widget.NewIcon(theme.StorageIcon()), widget.NewLabel("time"), layout.NewSpacer(),
				widget.NewLabel("size"), widget.NewLabel("verified"))
		},
		func(i widget.ListItemID, o fyne.CanvasObject) {
			if i >= len(b.entries) {
				return
			}
			e := b.entries[i]
			row := o.(*fyne.Container)
			row.Objects[1].(*widget.Label).SetText(backupTitle(e))
			row.Objects[3].(*widget.Label).SetText(sizeText(e.Size))
			mark := row.Objects[4].(*widget.Label)
			if e.Verified.IsZero() {
				mark.SetText("not checked")
				mark.Importance = widget.LowImportance
			} else {
				mark.SetText("✓ verified")
				mark.Importance = widget.SuccessImportance
			}
			mark.Refresh()
		},
	)
	b.list.OnSelected = func(i widget.ListItemID) { b.sel = i; b.updateButtons() }
	b.list.OnUnselected = func(widget.ListItemID) { b.sel = -1; b.updateButtons() }
	b.verify = widget.NewButtonWithIcon("Check", theme.ConfirmIcon(), b.verifySelected)
	b.restore = widget.NewButtonWithIcon("Restore…", theme.HistoryIcon(), b.restoreSelected)
	b.restore.Importance = widget.DangerImportance

	top := container.NewVBox(
		heading("Back up"),
		wrapped("A backup is one file with everything: accounts, rooms and messages, media files, the signing key and settings. "+
			"Keep backups on another disk or a USB stick: a backup on the same disk does not survive that disk."),
		container.NewBorder(nil, nil, widget.NewLabel("Folder"), container.NewHBox(b.changeDir, b.openDir), b.folder),
		container.NewHBox(b.backupNowB),
		b.step, b.bar, b.barInf,
		widget.NewSeparator(),
		heading("Schedule"),
		container.New(layout.NewFormLayout(),
			widget.NewLabel("Back up by itself"), b.schedule,
			widget.NewLabel("Keep"), b.keep),
		b.encrypt, b.next,
		widget.NewSeparator(),
		heading("Your backups"),
		container.NewHBox(b.verify, b.restore),
	)
	b.empty = wrapped("No backups in this folder yet. Press \"Back up now\", or choose a schedule above so Palpo backs up by itself.")
	b.empty.Hide()
	b.content = container.NewPadded(container.NewBorder(top, nil, nil, nil, container.NewStack(b.list, b.empty)))
	b.showSettings()
	b.updateButtons()
	return b
}

// backupTitle is a backup's time, with a lock for an encrypted one.
func backupTitle(e backup.Entry) string {
	s := timeText(e.Created)
	if t := e.Created.Local(); t.Second() != 0 {
		s += t.Format(":05") // two backups a minute apart look alike otherwise
	}
	if e.Encrypted {
		s += "  🔒 encrypted"
	}
	return s
}

func (b *backupsTab) selected() *backup.Entry {
	if b.sel < 0 || b.sel >= len(b.entries) {
		return nil
	}
	return &b.entries[b.sel]
}

func (b *backupsTab) updateButtons() {
	setEnabled(b.backupNowB, !b.busy)
	setEnabled(b.changeDir, !b.busy)
	setEnabled(b.verify, !b.busy && b.selected() != nil)
	setEnabled(b.restore, !b.busy && b.selected() != nil)
}

// showSettings shows the saved [backup] options.
func (b *backupsTab) showSettings() {
	s := b.d.app.BackupSettings()
	b.folder.SetText(b.d.app.BackupDir())
	b.settingForm = true
	defer func() { b.settingForm = false }()
	for i, c := range scheduleChoices {
		if c.value == s.Schedule {
			b.schedule.SetSelectedIndex(i)
		}
	}
	idx := -1
	for i, n := range keepChoices {
		if n == s.Keep {
			idx = i
		}
	}
	if idx < 0 {
		// A number set by hand: offer it too.
		keepChoices = append(keepChoices, s.Keep)
		b.keep.Options = append(b.keep.Options, fmt.Sprintf("the last %d", s.Keep))
		idx = len(keepChoices) - 1
	}
	b.keep.SetSelectedIndex(idx)
	b.encrypt.SetChecked(s.Encrypted)
	b.showNext()
}

func (b *backupsTab) showNext() {
	s := b.d.app.BackupSettings()
	st, running := b.d.app.BackupSchedule()
	switch {
	case s.Schedule == config.BackupOff:
		b.next.SetText("Backups are only made when you press \"Back up now\".")
	case !running:
		b.next.SetText("Backups are made while the server runs.")
	case st.Running:
		b.next.SetText("A scheduled backup is being made now.")
	case st.LastErr != nil:
		b.next.SetText("The last scheduled backup failed: " + plainError(st.LastErr) + " Next try: " + timeText(st.Next) + ".")
	case !st.Next.IsZero():
		b.next.SetText("Next backup: " + timeText(st.Next) + ".")
	}
}

// load lists the backup folder (and checks the schedule's state).
func (b *backupsTab) load() {
	b.showNext()
	var entries []backup.Entry
	b.d.async(func() error {
		var err error
		entries, err = b.d.app.Backups()
		return err
	}, func(err error) {
		if err != nil {
			b.d.app.Logger().Warn("cannot list the backup folder", "error", err)
		}
		var selPath string
		if s := b.selected(); s != nil {
			selPath = s.Path
		}
		b.entries = entries
		b.empty.Hidden = len(entries) > 0
		b.empty.Refresh()
		b.sel = -1
		b.list.UnselectAll()
		b.list.Refresh()
		for i := range entries {
			if entries[i].Path == selPath {
				b.list.Select(i)
			}
		}
		b.updateButtons()
	})
}

func (b *backupsTab) saveSchedule() {
	if b.settingForm {
		return
	}
	s := b.d.app.BackupSettings()
	if i := b.schedule.SelectedIndex(); i >= 0 {
		s.Schedule = scheduleChoices[i].value
	}
	if i := b.keep.SelectedIndex(); i >= 0 {
		s.Keep = keepChoices[i]
	}
	if err := b.d.app.SaveBackupSettings(s, ""); err != nil {
		b.d.showError("Could not change the backup schedule", err)
	}
	b.showSettings()
}

func (b *backupsTab) encryptChanged(on bool) {
	if b.settingForm {
		return
	}
	s := b.d.app.BackupSettings()
	if !on {
		s.Encrypted = false
		if err := b.d.app.SaveBackupSettings(s, ""); err != nil {
			b.d.showError("Could not stop encrypting backups", err)
		}
		b.showSettings()
		return
	}
	b.askPassphrase("Encrypt backups", "Choose a passphrase. Every backup from now on is encrypted with it. "+
		"Without it a backup cannot be restored: write it down and keep it apart from the backups.", true,
		func(pass string) error {
			s.Encrypted = true
			return b.d.app.SaveBackupSettings(s, pass)
		}, b.showSettings)
}

func (b *backupsTab) chooseFolder() {
	dialog.ShowFolderOpen(func(dir fyne.ListableURI, err error) {
		if err != nil {
			b.d.showError("Could not choose the folder", err)
			return
		}
		if dir == nil {
			return
		}
		b.setFolder(dir.Path())
	}, b.d.win)
}

// setFolder makes dir the backup folder.
func (b *backupsTab) setFolder(dir string) {
	s := b.d.app.BackupSettings()
	s.Dir = dir
	if err := b.d.app.SaveBackupSettings(s, ""); err != nil {
		b.d.showError("Could not change the backup folder", err)
	}
	b.showSettings()
	b.load()
}

// progressStep says what a backup step does, in words.
func progressStep(step string) string {
	switch step {
	case "snapshot":
		return "Copying the database…"
	case "archive":
		return "Writing the backup file…"
	case "verify":
		return "Checking the backup…"
	case "extract":
		return "Unpacking the backup…"
	case "swap":
		return "Putting the data in place…"
	}
	return step + "…"
}

// begin shows progress for long work; end hides it.
func (b *backupsTab) begin(text string) {
	b.busy = true
	b.updateButtons()
	b.step.SetText(text)
	b.step.Show()
	b.bar.Hide()
	b.barInf.Show()
	b.barInf.Start()
}

func (b *backupsTab) progress(p backup.Progress) {
	b.d.do(func() {
		if !b.busy {
			return
		}
		b.step.SetText(progressStep(p.Step))
		if p.Total > 0 {
			b.barInf.Stop()
			b.barInf.Hide()
			b.bar.Show()
			b.bar.SetValue(float64(p.Done) / float64(p.Total))
		} else {
			b.bar.Hide()
			b.barInf.Show()
			b.barInf.Start()
		}
	})
}

func (b *backupsTab) end(text string) {
	b.busy = false
	b.barInf.Stop()
	b.barInf.Hide()
	b.bar.Hide()
	if text == "" {
		b.step.Hide()
	} else {
		b.step.SetText(text)
	}
	b.updateButtons()
}

// backupNow makes a backup in the folder, encrypted if the settings say so.
func (b *backupsTab) backupNow() {
	if b.busy {
		return
	}
	b.d.tabs.Select(b.d.tabs.Items[2])
	b.begin("Preparing the backup…")
	var res *backup.Result
	b.d.async(func() error {
		pass, err := b.d.app.BackupPassphrase()
		if err != nil {
			return err
		}
		res, err = b.d.app.CreateBackup(context.Background(), backup.CreateOptions{
			Passphrase: pass, Verify: true, Progress: b.progress,
		})
		return err
	}, func(err error) {
		if err != nil {
			b.end("")
			b.d.showError("The backup was not made", err)
			return
		}
		b.end(fmt.Sprintf("Backup made and checked: %s (%s).", res.Path, sizeText(res.Size)))
		b.load()
		b.d.status.loadStats()
	})
}

// withPassphrase asks for the passphrase of an encrypted backup, then
// runs fn; an unencrypted one runs fn at once.
func (b *backupsTab) withPassphrase(e backup.Entry, title string, fn func(pass string)) {
	if !e.Encrypted {
		fn("")
		return
	}
	if pass, err := b.d.app.BackupPassphrase(); err == nil && pass != "" {
		// The saved passphrase most likely opens it; if not, the
		// error says the passphrase is wrong.
		fn(pass)
		return
	}
	b.askPassphrase(title, "This backup is encrypted. Type its passphrase.", false, func(pass string) error {
		fn(pass)
		return nil
	}, nil)
}

func (b *backupsTab) verifySelected() {
	e := b.selected()
	if e == nil || b.busy {
		return
	}
	entry := *e
	b.withPassphrase(entry, "Check backup", func(pass string) {
		b.begin("Checking the backup…")
		var rep *backup.Report
		b.d.async(func() error {
			var err error
			rep, err = backup.Verify(context.Background(), entry.Path, backup.VerifyOptions{Passphrase: pass, Progress: b.progress})
			return err
		}, func(err error) {
			if err != nil {
				b.end("")
				b.d.showError("This backup cannot be restored", err)
				b.load()
				return
			}
			m := rep.Manifest
			b.end(fmt.Sprintf("The backup is whole: %s, %s, %s.", plural(m.Users, "user"), plural(m.Rooms, "room"), plural(m.MediaFiles(), "media file")))
			b.load()
		})
	})
}

func (b *backupsTab) restoreSelected() {
	e := b.selected()
	if e == nil || b.busy {
		return
	}
	entry := *e
	c := dialog.NewConfirm("Restore this backup?",
		"Palpo will stop the server, check the whole backup, replace the server's current data with the backup from "+
			timeText(entry.Created)+", and start again.\n"+
			"Messages and accounts made since then will be gone from the server. "+
			"The current data is kept in a folder inside the data folder, in case you need it.", func(yes bool) {
			if yes {
				b.withPassphrase(entry, "Restore backup", func(pass string) { b.runRestore(entry, pass) })
			}
		}, b.d.win)
	c.SetConfirmText("Restore")
	c.SetDismissText("Cancel")
	c.SetConfirmImportance(widget.DangerImportance)
	c.Show()
}

func (b *backupsTab) runRestore(e backup.Entry, pass string) {
	b.begin("Stopping the server…")
	d := b.d
	d.busyText = "Restoring a backup…"
	d.Refresh()
	wasRunning := d.app.Server() != nil
	var res *backup.RestoreResult
	var startErr error
	d.async(func() error {
		if err := d.app.Stop(); err != nil {
			return err
		}
		var err error
		res, err = d.app.RestoreBackup(context.Background(), e.Path, backup.RestoreOptions{Passphrase: pass, Progress: b.progress})
		// Start again whatever happened: a refused restore changed
		// nothing, and the server should come back either way.
		if wasRunning || err == nil {
			d.do(func() { b.step.SetText("Starting the server…") })
			startErr = d.app.Start()
		}
		return err
	}, func(err error) {
		d.busyText = ""
		d.Refresh()
		d.refreshSelected()
		if err != nil {
			b.end("Nothing was restored.")
			d.showError("The backup was not restored; nothing was changed", err)
			return
		}
		m := res.Manifest
		text := fmt.Sprintf("Restored the backup from %s: %s, %s.", timeText(e.Created), plural(m.Users, "user"), plural(m.Rooms, "room"))
		if res.Previous != "" {
			text += " The data it replaced is in " + res.Previous + "."
		}
		b.end(text)
		if startErr != nil {
			d.showError("The backup was restored, but the server did not start", startErr)
		} else {
			dialog.ShowInformation("Backup restored", text, d.win)
		}
	})
}

// passphraseDialog asks for a passphrase (twice when choosing one).
type passphraseDialog struct {
	pass, pass2 *widget.Entry
	form        *formDialog
}

func (b *backupsTab) askPassphrase(title, text string, choose bool, submit func(string) error, cancelled func()) {
	p := &passphraseDialog{pass: widget.NewPasswordEntry(), pass2: widget.NewPasswordEntry()}
	items := []*widget.FormItem{widget.NewFormItem("Passphrase", p.pass)}
	if choose {
		items = append(items, widget.NewFormItem("Repeat it", p.pass2))
	}
	body := container.NewVBox(wrapped(text), widget.NewForm(items...))
	ok := false
	p.form = b.d.newFormDialog(title, "OK", body, func(done func(error)) error {
		if p.pass.Text == "" {
			return errors.New("type a passphrase")
		}
		if choose && p.pass.Text != p.pass2.Text {
			return errors.New("the two passphrases are not the same")
		}
		if choose && len([]rune(p.pass.Text)) < 8 {
			return errors.New("use a passphrase of at least " + strconv.Itoa(8) + " characters")
		}
		err := submit(p.pass.Text)
		ok = err == nil
		return err
	})
	p.form.dlg.SetOnClosed(func() {
		if !ok && cancelled != nil {
			cancelled()
		}
	})
	p.form.dlg.Show()
}

// lastBackupText is the newest backup's time for the Status tab.
func lastBackupText(t time.Time) string {
	if t.IsZero() {
		return "Never"
	}
	return timeText(t)
}
