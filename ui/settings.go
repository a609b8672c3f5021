package ui

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/layout"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/palpo-im/palpo-desktop/app"
)

// settingsTab edits the few options a person needs: the port, home-network
// access, the upload limit, start on login; and shows the data folder.
type settingsTab struct {
	d       *Desktop
	content fyne.CanvasObject

	port       *widget.Entry
	lan        *widget.Check
	lanNote    *widget.Label
	maxUpload  *widget.Entry
	autostart  *widget.Check
	olderApps  *widget.Check
	dataDir    *widget.Label
	openFolder *widget.Button
	save       *widget.Button
	result     *widget.Label
	custom     *widget.Label

	// Connect to other Matrix servers: the choice, its Save button and
	// the live progress and check after saving.
	fedChoice *federationChoice
	fedSave   *widget.Button
	fedErr    *widget.Label
	fedLive   *federationLive
	// peers shares this server's P2P address and adds others' (shown
	// while peer to peer is the saved choice).
	peers *peerPanel
	// fedSection is the whole section (screenshots scroll to it).
	fedSection *fyne.Container

	settingAutostart bool
	settingOlderApps bool
	lanAddr          string // the address LAN access uses when turned on
}

func newSettingsTab(d *Desktop) *settingsTab {
	s := &settingsTab{d: d}
	s.port = widget.NewEntry()
	s.port.Validator = func(text string) error {
		if n, err := strconv.Atoi(strings.TrimSpace(text)); err != nil || n < 1 || n > 65535 {
			return errors.New("a number from 1 to 65535")
		}
		return nil
	}
	s.lan = widget.NewCheck("Let phones and other computers on my home network connect", nil)
	s.lanNote = wrapped("")
	s.maxUpload = widget.NewEntry()
	s.maxUpload.Validator = func(text string) error {
		if n, err := strconv.ParseFloat(strings.TrimSpace(text), 64); err != nil || n <= 0 {
			return errors.New("a size in megabytes, such as 100")
		}
		return nil
	}
	s.custom = wrapped("")
	s.custom.Importance = widget.WarningImportance
	s.custom.Hide()
	s.result = wrapped("")
	s.result.Hide()
	s.save = widget.NewButtonWithIcon("Save", theme.DocumentSaveIcon(), s.apply)
	s.save.Importance = widget.HighImportance

	s.autostart = widget.NewCheck("Start Palpo when I log in to this computer", s.autostartChanged)
	s.olderApps = widget.NewCheck("Let older Matrix apps show pictures and create rooms", s.olderAppsChanged)
	if d.opts.Autostart == nil {
		s.autostart.Hide()
	}

	s.dataDir = widget.NewLabel(d.app.DataDir())
	s.dataDir.Selectable = true
	s.dataDir.Wrapping = fyne.TextWrapBreak
	s.openFolder = widget.NewButtonWithIcon("Open folder", theme.FolderOpenIcon(), func() {
		d.openURL(folderURL(d.app.DataDir()))
	})

	// Save covers the two sections above it; the switch below and the
	// Backups tab apply each change at once.
	saveNote := wrapped("Save applies the port, home-network access and largest upload above; " +
		"a running server restarts to use them. The switches below apply at once.")
	network := container.NewVBox(
		heading("Network"),
		container.New(layout.NewFormLayout(), widget.NewLabel("Port"), container.NewGridWrap(fyne.NewSize(120, s.port.MinSize().Height), s.port)),
		s.lan, s.lanNote, s.custom,
	)
	uploads := container.NewVBox(
		heading("Files"),
		container.New(layout.NewFormLayout(), widget.NewLabel("Largest upload (MB)"), container.NewGridWrap(fyne.NewSize(120, s.maxUpload.MinSize().Height), s.maxUpload)),
	)
	s.fedChoice = newFederationChoice(d, "A server's name cannot change once it has accounts, so this needs a new server named after your domain.")
	s.fedErr = wrapped("")
	s.fedErr.Importance = widget.DangerImportance
	s.fedErr.Hide()
	s.fedLive = newFederationLive(d)
	s.fedSave = widget.NewButtonWithIcon("Save and check", theme.DocumentSaveIcon(), s.applyFederation)
	s.peers = newPeerPanel(d)
	s.peers.content.Hide()
	s.fedSection = container.NewVBox(heading("Connect to other Matrix servers"),
		s.fedChoice.content,
		container.NewHBox(s.fedSave), s.fedErr,
		wrapped("Saving restarts a running server to use the choice, then checks what other servers see."),
		s.fedLive.content, s.peers.content)
	startup := container.NewVBox(heading("Starting"), s.autostart)
	older := container.NewVBox(heading("Older Matrix apps"), s.olderApps,
		wrapped("Apps made before 2024, such as Nheko on Debian 12, fetch pictures without signing in and do not understand "+
			"the newest rooms: this lets them show this server's pictures and files and makes new rooms they understand "+
			"(room version 10). Anyone given a file's link can then open it without an account. The server restarts."))
	data := container.NewVBox(heading("Data folder"),
		wrapped("Palpo keeps its settings (palpo.toml), database, media files and signing key here."),
		container.NewBorder(nil, nil, nil, s.openFolder, s.dataDir))
	s.content = container.NewVScroll(container.NewPadded(container.NewVBox(
		network, widget.NewSeparator(), uploads, widget.NewSeparator(),
		container.NewHBox(s.save), saveNote, s.result, widget.NewSeparator(),
		s.fedSection, widget.NewSeparator(),
		startup, widget.NewSeparator(), older, widget.NewSeparator(), data,
	)))
	s.load()
	return s
}

// folderURL is a file:// URL for a local folder, on every system.
func folderURL(dir string) *url.URL {
	p := filepath.ToSlash(dir)
	if !strings.HasPrefix(p, "/") {
		p = "/" + p // C:/Users/… becomes /C:/Users/…
	}
	return &url.URL{Scheme: "file", Path: p}
}

// load shows the saved settings.
func (s *settingsTab) load() {
	st := s.d.app.Settings()
	s.port.SetText(strconv.Itoa(st.Port))
	s.lan.SetChecked(st.LAN)
	s.lanAddr = st.LANAddress
	if !st.LAN || s.lanAddr == "" {
		s.lanAddr = app.LANAddress()
	}
	switch {
	case st.LAN && s.lanAddr == "0.0.0.0":
		s.lanNote.SetText("Palpo accepts connections on every network this computer is on.")
	case s.lanAddr != "":
		s.lanNote.SetText("On your home network this computer is " + s.lanAddr + ". Other devices connect to http://" + s.lanAddr + ":" + strconv.Itoa(st.Port) + ".")
	default:
		s.lanNote.SetText("This computer is not on a home network right now.")
	}
	if s.lanAddr == "" && !st.LAN {
		s.lan.Disable()
	} else {
		s.lan.Enable()
	}
	if st.CustomListen {
		s.custom.SetText("The addresses Palpo listens on were set by hand in palpo.toml (" + strings.Join(st.Listen, ", ") + "); change them there.")
		s.custom.Show()
		s.port.Disable()
		s.lan.Disable()
	} else {
		s.custom.Hide()
		s.port.Enable()
	}
	s.maxUpload.SetText(megabytes(st.MaxUploadBytes))
	s.loadFederation()
	s.settingOlderApps = true
	s.olderApps.SetChecked(s.d.app.OlderApps())
	s.settingOlderApps = false
	if s.d.opts.Autostart != nil {
		on, err := s.d.opts.Autostart.Enabled()
		s.settingAutostart = true
		s.autostart.SetChecked(err == nil && on)
		s.settingAutostart = false
	}
}

// A megabyte here is 2^20 bytes, as file managers on most systems count
// it, so the default 104857600 shows as 100.
const megabyte = 1 << 20

// megabytes shows a byte count in MB without needless decimals.
func megabytes(n int64) string {
	return strconv.FormatFloat(float64(n)/megabyte, 'f', -1, 64)
}

// apply saves the settings and restarts a running server to use them.
func (s *settingsTab) apply() {
	s.result.Hide()
	// The saved port is always fine (tests and hand-edited files may use
	// 0, "any free port").
	if err := s.port.Validate(); err != nil && strings.TrimSpace(s.port.Text) != strconv.Itoa(s.d.app.Settings().Port) {
		s.d.showError("The port is not valid", fmt.Errorf("port: %w", err))
		return
	}
	if err := s.maxUpload.Validate(); err != nil {
		s.d.showError("The upload size is not valid", fmt.Errorf("largest upload: %w", err))
		return
	}
	port, _ := strconv.Atoi(strings.TrimSpace(s.port.Text))
	mb, _ := strconv.ParseFloat(strings.TrimSpace(s.maxUpload.Text), 64)
	old := s.d.app.Settings()
	next := old
	next.Port, next.LAN = port, s.lan.Checked
	if next.LAN && !old.LAN {
		next.LANAddress = s.lanAddr
	}
	next.MaxUploadBytes = int64(mb * megabyte)
	if megabytes(old.MaxUploadBytes) == strings.TrimSpace(s.maxUpload.Text) {
		next.MaxUploadBytes = old.MaxUploadBytes // unchanged, whatever rounding did
	}
	if next.Port == old.Port && next.LAN == old.LAN && next.MaxUploadBytes == old.MaxUploadBytes {
		s.showResult("Nothing to save: the settings are unchanged.")
		return
	}
	if err := s.d.app.SaveSettings(next); err != nil {
		s.d.showError("Could not save the settings", err)
		s.load()
		return
	}
	s.load()
	if s.d.app.Server() != nil {
		s.showResult("Saved. The server is restarting to use the new settings.")
		s.d.RestartServer()
	} else {
		s.showResult("Saved. The new settings apply when the server starts.")
	}
}

// loadFederation shows the saved "Connect to other Matrix servers" choice
// and, when it is on, the certificate.
func (s *settingsTab) loadFederation() {
	if s.fedLive.running {
		return // the flow shows its own progress; it reloads at the end
	}
	fs := s.d.app.FederationSettings()
	s.fedChoice.set(fs)
	s.fedLive.showCertificate(s.d.certStatus())
	if fs.Mode == app.FederationPeerToPeer {
		s.peers.content.Show()
	} else {
		s.peers.content.Hide()
	}
}

// applyFederation saves the choice and, with the server running, restarts
// it and runs the live checks.
func (s *settingsTab) applyFederation() {
	s.fedErr.Hide()
	if err := s.fedChoice.check(); err != nil {
		// check's errors are sentences written for people already.
		s.fedErr.SetText(sentence(err.Error()))
		s.fedErr.Show()
		return
	}
	choice := s.fedChoice.settings()
	if choice.Mode == app.FederationOff && sameFederation(s.d.app.FederationSettings(), choice) {
		s.fedErr.SetText("Nothing to save: connections to other servers are already off.")
		s.fedErr.Show()
		return
	}
	s.fedSave.Disable()
	s.fedLive.run(choice, func() {
		s.fedSave.Enable()
		s.loadFederation()
	})
	if choice.Mode != app.FederationPeerToPeer {
		s.peers.content.Hide()
	}
}

func (s *settingsTab) showResult(text string) {
	s.result.SetText(text)
	s.result.Show()
}

func (s *settingsTab) autostartChanged(on bool) {
	if s.settingAutostart || s.d.opts.Autostart == nil {
		return
	}
	var err error
	if on {
		err = s.d.opts.Autostart.Enable()
	} else {
		err = s.d.opts.Autostart.Disable()
	}
	if err != nil {
		s.d.showError("Could not change whether Palpo starts on login", err)
		s.load()
	}
}

func (s *settingsTab) olderAppsChanged(on bool) {
	if s.settingOlderApps {
		return
	}
	if err := s.d.app.SetOlderApps(on); err != nil {
		s.d.showError("Could not change the setting for older Matrix apps", err)
		s.load()
		return
	}
	if s.d.app.Server() != nil {
		s.d.RestartServer()
	}
}
