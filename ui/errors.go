package ui

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"
	"maunium.net/go/mautrix"

	"github.com/palpo-im/palpo-desktop/app"
	"github.com/palpo-im/palpo-desktop/app/backup"
)

// Errors are shown in two layers: a sentence anyone can act on, and the
// technical text (what the log says) behind a "Details" button, for a bug
// report or a helpful friend.

// plainError says what went wrong in everyday words, and what to do.
func plainError(err error) string {
	if err == nil {
		return ""
	}
	var running *app.AlreadyRunningError
	var re mautrix.RespError
	var opErr *net.OpError
	switch {
	case errors.As(err, &running):
		return "Palpo is already running with this data folder, in another window or as a background service. Close the other one, then press Start."
	case errors.Is(err, app.ErrNotRunning):
		return "The server is stopped. Press Start on the Status tab first."
	case errors.Is(err, backup.ErrDamaged):
		return "This backup file is damaged (changed, cut short or corrupted), so it cannot be used."
	case errors.Is(err, backup.ErrWrongPassphrase):
		return "The passphrase is wrong for this backup."
	case errors.Is(err, backup.ErrEncrypted):
		return "This backup is encrypted: its passphrase is needed."
	case errors.Is(err, backup.ErrNotBackup):
		return "This file is not a Palpo backup."
	case errors.Is(err, app.ErrCustomListen):
		return "The network addresses were set by hand in palpo.toml, so they can only be changed there."
	case errors.Is(err, syscall.EADDRINUSE) || containsAny(err.Error(), "address already in use", "Only one usage of each socket address"):
		addr := ""
		if errors.As(err, &opErr) && opErr.Addr != nil {
			addr = " " + portText(opErr.Addr.String())
		}
		return "Another program is already using port" + addr + ". Choose another port in Settings, or close the other program."
	case errors.Is(err, syscall.EADDRNOTAVAIL) || containsAny(err.Error(), "cannot assign requested address", "requested address is not valid in its context"):
		return "This computer no longer has the home-network address Palpo was set to use (the network may have changed). In Settings, turn \"Let other devices connect\" off and on again."
	case errors.Is(err, syscall.EACCES) && errors.As(err, &opErr) && opErr.Op == "listen":
		return "This computer does not allow Palpo to use that port. Choose a port above 1024 in Settings."
	case errors.As(err, &re) && re.Err != "":
		return sentence(re.Err)
	}
	msg := err.Error()
	if len(msg) > 200 {
		return "Something unexpected went wrong. The details below say what."
	}
	return sentence(msg)
}

// containsAny also catches Windows, whose socket errors are not the
// syscall constants above.
func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

func portText(addr string) string {
	if _, port, err := net.SplitHostPort(addr); err == nil {
		return port
	}
	return addr
}

// sentence starts with a capital letter and ends with a full stop.
func sentence(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return s
	}
	s = strings.ToUpper(s[:1]) + s[1:]
	if !strings.HasSuffix(s, ".") && !strings.HasSuffix(s, "!") && !strings.HasSuffix(s, "?") {
		s += "."
	}
	return s
}

// errorView shows an error: the plain sentence, and a Details button that
// reveals the technical text with a Copy button.
type errorView struct {
	content *fyne.Container
	summary *widget.Label
	details *widget.Label
	toggle  *widget.Button
	copyBtn *widget.Button
	box     *fyne.Container
	err     error
}

func newErrorView(d *Desktop) *errorView {
	v := &errorView{}
	v.summary = wrapped("")
	v.summary.Importance = widget.DangerImportance
	v.details = wrapped("")
	v.details.TextStyle = fyne.TextStyle{Monospace: true}
	v.details.Selectable = true
	v.copyBtn = widget.NewButtonWithIcon("Copy details", theme.ContentCopyIcon(), func() {
		if v.err != nil {
			d.copyText(v.details.Text)
		}
	})
	v.box = container.NewVBox(v.details, container.NewHBox(v.copyBtn))
	v.box.Hide()
	v.toggle = widget.NewButton("Details", func() {
		if v.box.Visible() {
			v.box.Hide()
			v.toggle.SetText("Details")
		} else {
			v.box.Show()
			v.toggle.SetText("Hide details")
		}
	})
	v.content = container.NewVBox(v.summary, container.NewHBox(v.toggle), v.box)
	v.content.Hide()
	return v
}

// set shows err (nil hides the view).
func (v *errorView) set(err error) {
	v.err = err
	if err == nil {
		v.content.Hide()
		return
	}
	v.summary.SetText(plainError(err))
	v.details.SetText(technical(err))
	v.content.Show()
}

// technical is the full error text with its Go type, for bug reports.
func technical(err error) string {
	return fmt.Sprintf("%v\n(%T)", err, err)
}

// showError shows a dialog saying what failed (title) and why, with the
// details one click away.
func (d *Desktop) showError(title string, err error) {
	v := newErrorView(d)
	v.set(err)
	dlg := dialog.NewCustom(title, "Close", container.NewPadded(v.content), d.win)
	dlg.Resize(fyne.NewSize(480, 0))
	dlg.Show()
}
