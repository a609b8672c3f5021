package ui

import (
	"context"
	"fmt"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/layout"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/palpo-im/palpo-desktop/app"
	"github.com/palpo-im/palpo-desktop/assets"
)

// statusTab shows whether the server runs, where to connect, and a few
// figures, with Start, Stop and Restart.
type statusTab struct {
	d       *Desktop
	content fyne.CanvasObject

	state    *widget.Label
	dot      *canvas.Circle
	progress *widget.ProgressBarInfinite
	errView  *errorView

	serverName *widget.Label
	localURL   *widget.Label
	lanURL     *widget.Label
	copyLocal  *widget.Button
	copyLAN    *widget.Button
	uptime     *widget.Label
	users      *widget.Label
	rooms      *widget.Label
	dbSize     *widget.Label
	mediaSize  *widget.Label
	federation *widget.Label
	fedCheck   *federationCheck
	certLabel  *widget.Label // "Certificate", hidden with federation off
	cert       *widget.Label
	lastBackup *widget.Label

	start, stop, restart *widget.Button

	connect *connectPanel

	lan string // the first home-network address, for Copy
}

func newStatusTab(d *Desktop) *statusTab {
	t := &statusTab{d: d}
	icon := canvas.NewImageFromResource(assets.SmallIconResource())
	icon.FillMode = canvas.ImageFillContain
	icon.SetMinSize(fyne.NewSquareSize(48))

	t.dot = canvas.NewCircle(theme.Color(stateColor(app.StateStopped)))
	dotBox := container.NewGridWrap(fyne.NewSquareSize(14), t.dot)
	t.state = widget.NewLabelWithStyle("", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	t.state.SizeName = theme.SizeNameSubHeadingText
	t.progress = widget.NewProgressBarInfinite()
	t.progress.Hide()
	t.errView = newErrorView(d)

	value := func() *widget.Label {
		l := widget.NewLabel("")
		l.Selectable = true
		return l
	}
	t.serverName = value()
	// A peer-to-peer name is 60 characters, twice over with the example
	// user ID: wrapped, or it widens the whole tab.
	t.serverName.Wrapping = fyne.TextWrapBreak
	t.localURL = value()
	t.localURL.TextStyle = fyne.TextStyle{Monospace: true}
	t.lanURL = value()
	t.lanURL.TextStyle = fyne.TextStyle{Monospace: true}
	t.lanURL.Wrapping = fyne.TextWrapWord
	t.copyLocal = widget.NewButtonWithIcon("Copy", theme.ContentCopyIcon(), func() { d.copyText(t.localURL.Text) })
	t.copyLAN = widget.NewButtonWithIcon("Copy", theme.ContentCopyIcon(), func() { d.copyText(t.lan) })
	t.uptime = value()
	t.users = value()
	t.rooms = value()
	t.dbSize = value()
	t.mediaSize = value()
	t.federation = value()
	t.federation.Wrapping = fyne.TextWrapWord
	t.federation.SetText(federationOffText)
	t.fedCheck = newFederationCheck(d, t.federation)
	t.certLabel = widget.NewLabel("Certificate")
	t.cert = value()
	t.cert.Wrapping = fyne.TextWrapWord
	t.certLabel.Hide()
	t.cert.Hide()
	t.lastBackup = value()
	t.lastBackup.SetText("Never")

	t.start = widget.NewButtonWithIcon("Start", theme.MediaPlayIcon(), d.StartServer)
	t.start.Importance = widget.HighImportance
	t.stop = widget.NewButtonWithIcon("Stop", theme.MediaStopIcon(), d.StopServer)
	t.restart = widget.NewButtonWithIcon("Restart", theme.ViewRefreshIcon(), d.RestartServer)
	t.connect = newConnectPanel(d)

	form := container.New(layout.NewFormLayout(),
		widget.NewLabel("Server name"), t.serverName,
		widget.NewLabel("On this computer"), container.NewBorder(nil, nil, nil, t.copyLocal, t.localURL),
		widget.NewLabel("On your home network"), container.NewBorder(nil, nil, nil, t.copyLAN, t.lanURL),
		widget.NewLabel("Running for"), t.uptime,
		widget.NewLabel("Users"), t.users,
		widget.NewLabel("Rooms"), t.rooms,
		widget.NewLabel("Database"), t.dbSize,
		widget.NewLabel("Media files"), t.mediaSize,
		widget.NewLabel("Other servers"), t.fedCheck.content,
		t.certLabel, t.cert,
		widget.NewLabel("Last backup"), t.lastBackup,
	)
	// Connecting the family's devices comes first; the figures after.
	t.content = container.NewVScroll(container.NewPadded(container.NewVBox(
		container.NewHBox(icon, container.NewCenter(dotBox), container.NewCenter(t.state),
			layout.NewSpacer(), t.start, t.stop, t.restart),
		t.progress,
		t.errView.content,
		widget.NewSeparator(),
		t.connect.content,
		widget.NewSeparator(),
		form,
	)))
	return t
}

// stateColor is the state as a colour: green running, amber busy, red
// error, grey stopped.
func stateColor(s app.State) fyne.ThemeColorName {
	switch s {
	case app.StateRunning:
		return theme.ColorNameSuccess
	case app.StateStarting:
		return theme.ColorNameWarning
	case app.StateError:
		return theme.ColorNameError
	}
	return theme.ColorNameDisabled
}

// stateText is the state in a few words.
func stateText(st app.Status, busy string) string {
	if busy != "" {
		return busy
	}
	switch st.State {
	case app.StateStarting:
		return "Starting…"
	case app.StateRunning:
		return "Running"
	case app.StateStopped:
		return "Stopped"
	case app.StateError:
		return "Not running: there is a problem"
	}
	return string(st.State)
}

func (t *statusTab) refresh(st app.Status) {
	busy := t.d.busyText
	t.state.SetText(stateText(st, busy))
	color := stateColor(st.State)
	if busy != "" {
		color = stateColor(app.StateStarting)
	}
	t.dot.FillColor = theme.Color(color)
	t.dot.Refresh()
	if busy != "" || st.State == app.StateStarting {
		t.progress.Show()
		t.progress.Start()
	} else {
		t.progress.Stop()
		t.progress.Hide()
	}
	if st.State == app.StateError && busy == "" {
		t.errView.set(st.Err)
	} else {
		t.errView.set(nil)
	}

	t.serverName.SetText(st.ServerName + "   (user IDs look like @name:" + st.ServerName + ")")
	local, lans := t.d.app.Addresses()
	t.localURL.SetText(local)
	t.lan = ""
	if len(lans) > 0 {
		t.lan = lans[0]
		t.lanURL.SetText(joinLines(lans))
		t.copyLAN.Enable()
	} else {
		t.lanURL.SetText("Off (turn it on in Settings)")
		t.copyLAN.Disable()
	}
	t.showUptime(st)
	t.connect.refresh()

	running := st.State == app.StateRunning
	idle := busy == "" && st.State != app.StateStarting
	setEnabled(t.start, idle && !running)
	setEnabled(t.stop, idle && running)
	setEnabled(t.restart, idle && running)
	if !running {
		t.users.SetText("–")
		t.rooms.SetText("–")
	}
}

func (t *statusTab) showUptime(st app.Status) {
	if st.State != app.StateRunning || st.Started.IsZero() {
		t.uptime.SetText("–")
		return
	}
	t.uptime.SetText(durationText(time.Since(st.Started)))
}

// loadStats counts users and rooms and measures the files, off the event
// loop.
func (t *statusTab) loadStats() {
	var stats app.Stats
	var statsErr, fedErr error
	var fed app.FederationStatus
	var last time.Time
	var cert app.CertificateStatus
	t.d.async(func() error {
		stats, statsErr = t.d.app.Stats(context.Background())
		fed, fedErr = t.d.app.FederationStatus(context.Background())
		cert = t.d.certStatus()
		last, _ = t.d.app.LastBackup()
		return nil
	}, func(error) {
		if fedErr == nil {
			t.federation.SetText(federationText(fed, t.d.app.Status().State == app.StateRunning))
		} else {
			t.federation.SetText("Could not read the state of the connections to other servers: " + fedErr.Error())
		}
		t.showCertificate(cert)
		t.dbSize.SetText(sizeText(stats.DBBytes))
		if statsErr == nil {
			t.users.SetText(fmt.Sprint(stats.Users))
			t.rooms.SetText(fmt.Sprint(stats.Rooms))
			t.mediaSize.SetText(sizeText(stats.MediaBytes))
		} else {
			// Counted by the running server only.
			t.users.SetText("–")
			t.rooms.SetText("–")
			t.mediaSize.SetText("–")
		}
		t.lastBackup.SetText(lastBackupText(last))
	})
}

// showCertificate shows the federation certificate's row: its expiry and
// renewal, or its trouble; hidden while federation is off.
func (t *statusTab) showCertificate(cert app.CertificateStatus) {
	text, imp := certificateText(cert, time.Now())
	showText(t.cert, text, imp)
	if text == "" {
		t.certLabel.Hide()
	} else {
		t.certLabel.Show()
	}
}

func setEnabled(b *widget.Button, on bool) {
	if on {
		b.Enable()
	} else {
		b.Disable()
	}
}

func joinLines(lines []string) string {
	s := ""
	for i, l := range lines {
		if i > 0 {
			s += "\n"
		}
		s += l
	}
	return s
}

// durationText is an uptime such as "3 days 2 h", "2 h 5 min" or "42 s".
func durationText(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%d days %d h", d/(24*time.Hour), (d%(24*time.Hour))/time.Hour)
	case d >= time.Hour:
		return fmt.Sprintf("%d h %d min", d/time.Hour, (d%time.Hour)/time.Minute)
	case d >= time.Minute:
		return fmt.Sprintf("%d min %d s", d/time.Minute, (d%time.Minute)/time.Second)
	}
	return fmt.Sprintf("%d s", d/time.Second)
}

// sizeText is a byte count for people: "0 bytes", "12.3 MB".
func sizeText(n int64) string {
	const unit = 1000
	if n < unit {
		if n == 1 {
			return "1 byte"
		}
		return fmt.Sprintf("%d bytes", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", float64(n)/float64(div), "kMGTPE"[exp])
}

// timeText is a moment in local time, with the date unless it is today.
func timeText(t time.Time) string {
	t = t.Local()
	if y, m, d := t.Date(); y == time.Now().Year() && m == time.Now().Month() && d == time.Now().Day() {
		return "Today at " + t.Format("15:04")
	}
	return t.Format("2 Jan 2006 at 15:04")
}
