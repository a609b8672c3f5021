package ui

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/layout"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/app"
	"github.com/palpo-im/palpo-desktop/assets"
	"github.com/palpo-im/palpo-desktop/server/config"
)

// The first-run wizard: the server's name, the owner's account, whether
// the home network may connect, then the work (with progress) and the
// address to type into Element, with a QR code for phones.

// Server name choices.
const (
	nameLocal  = "Just this computer and my home network"
	nameLAN    = "A name my home network knows this computer by"
	namePublic = "An internet domain I own"
)

// Wizard pages.
const (
	pageName = iota
	pageOwner
	pageNetwork
	pageFederation
	pageWork
	pageDone
)

type wizard struct {
	d       *Desktop
	st      app.SetupState
	content *fyne.Container

	page  int
	pages []fyne.CanvasObject
	body  *fyne.Container
	back  *widget.Button
	next  *widget.Button
	steps *widget.Label

	// Server name.
	nameChoice *widget.RadioGroup
	nameEntry  *widget.Entry
	nameHelp   *widget.Label
	nameErr    *widget.Label

	// Owner account.
	ownName   *widget.Entry // the owner's display name
	ownerSet  bool          // the user name is being set by code
	ownerEdit bool          // the person typed a user name of their own
	owner     *widget.Entry
	password  *widget.Entry
	password2 *widget.Entry
	ownerErr  *widget.Label

	// Network.
	lan     *widget.Check
	lanAddr string

	// Other Matrix servers: the choice, and on the last page the live
	// progress and check once it is saved.
	fedChoice *federationChoice
	fedLive   *federationLive
	fedBox    *fyne.Container
	peers     *peerPanel // peer to peer: share my address, add another

	// lanName is this computer's name.local when it resolves (checked in
	// the background when the wizard opens), else "".
	lanName    string
	lanChecked bool

	// Work and result.
	workStep *widget.Label
	workBar  *widget.ProgressBarInfinite
	workErr  *errorView
	retry    *widget.Button
	userID   id.UserID
	done     *fyne.Container
	finish   *widget.Button

	// Automatic backups, suggested on the last page.
	autoBackup *widget.Check
	backupDir  string // "" for the default folder
	backupDirL *widget.Label
	chooseDir  *widget.Button
}

func newWizard(d *Desktop, st app.SetupState) *wizard {
	w := &wizard{d: d, st: st, lanAddr: app.LANAddress()}
	w.pages = []fyne.CanvasObject{w.namePage(), w.ownerPage(), w.networkPage(), w.federationPage(), w.workPage(), w.donePage()}
	w.back = widget.NewButtonWithIcon("Back", theme.NavigateBackIcon(), w.goBack)
	w.next = widget.NewButtonWithIcon("Next", theme.NavigateNextIcon(), w.goNext)
	w.next.IconPlacement = widget.ButtonIconTrailingText
	w.next.Importance = widget.HighImportance
	w.steps = widget.NewLabel("")
	w.body = container.NewStack()

	icon := canvas.NewImageFromResource(assets.SmallIconResource())
	icon.FillMode = canvas.ImageFillContain
	icon.SetMinSize(fyne.NewSquareSize(40))
	title := heading("Welcome to Palpo")
	header := container.NewHBox(icon, container.NewCenter(title), layout.NewSpacer(), container.NewCenter(w.steps))
	w.content = container.NewPadded(container.NewBorder(
		container.NewVBox(header, widget.NewSeparator()),
		container.NewVBox(widget.NewSeparator(), container.NewHBox(w.back, layout.NewSpacer(), w.next)),
		nil, nil, container.NewVScroll(container.NewPadded(w.body))))
	w.show(pageName)
	w.checkLANName()
	return w
}

// checkLANName looks this computer's name.local up in the background: it
// is offered only if it resolves, since a name nobody can look up would
// make every address with it fail.
func (w *wizard) checkLANName() {
	name := localHostName()
	ok := false
	w.d.async(func() error {
		if name == "" {
			return nil
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		addrs, err := w.d.lookupHost(ctx, name)
		ok = err == nil && len(addrs) > 0
		return nil
	}, func(error) {
		w.lanChecked = true
		if ok {
			w.lanName = name
		}
		if w.nameChoice != nil && w.nameChoice.Selected == nameLAN {
			w.nameChosen(nameLAN)
		}
	})
}

func (w *wizard) show(page int) {
	w.page = page
	w.body.Objects = []fyne.CanvasObject{w.pages[page]}
	w.body.Refresh()
	if page < pageWork {
		w.steps.SetText("Step " + string(rune('1'+page)) + " of 4")
	} else {
		w.steps.SetText("")
	}
	switch page {
	case pageName:
		w.back.Hide()
	case pageWork, pageDone:
		w.back.Hide()
		w.next.Hide()
		return
	default:
		w.back.Show()
	}
	w.next.Show()
	if page == pageFederation {
		w.fedChoice.setServerName(w.serverName())
		w.next.SetText("Set up Palpo")
	} else {
		w.next.SetText("Next")
	}
}

func (w *wizard) goBack() {
	if w.page > pageName {
		w.show(w.page - 1)
	}
}

func (w *wizard) goNext() {
	switch w.page {
	case pageName:
		if err := w.checkName(); err != nil {
			w.nameErr.SetText(plainError(err))
			w.nameErr.Show()
			return
		}
		w.nameErr.Hide()
	case pageOwner:
		if err := w.checkOwner(); err != nil {
			w.ownerErr.SetText(plainError(err))
			w.ownerErr.Show()
			return
		}
		w.ownerErr.Hide()
	case pageFederation:
		if err := w.fedChoice.check(); err != nil {
			// check's errors are sentences written for people already.
			w.fedChoice.problem.SetText(sentence(err.Error()))
			w.fedChoice.problem.Show()
			return
		}
		w.apply()
		return
	}
	w.show(w.page + 1)
}

// --- Step 1: the server's name.

func (w *wizard) namePage() fyne.CanvasObject {
	w.nameErr = wrapped("")
	w.nameErr.Importance = widget.DangerImportance
	w.nameErr.Hide()
	warning := wrapped("The server name becomes the end of every user ID (@you:name). " +
		"It can never be changed once accounts or rooms exist.")
	warning.Importance = widget.WarningImportance
	warning.TextStyle = fyne.TextStyle{Bold: true}

	if w.st.ServerNameFixed {
		name := widget.NewLabelWithStyle(w.st.ServerName, fyne.TextAlignLeading, fyne.TextStyle{Monospace: true})
		return container.NewVBox(
			heading("Your server's name"),
			wrapped("This server was started before, so its name is already chosen:"),
			name,
			wrapped("A server name can never change once the server has been started. "+
				"Next, create the account you will use to sign in."),
			w.nameErr)
	}

	w.nameEntry = widget.NewEntry()
	w.nameHelp = wrapped("")
	w.nameChoice = widget.NewRadioGroup([]string{nameLocal, nameLAN, namePublic}, w.nameChosen)
	w.nameChoice.Required = true
	w.nameChoice.SetSelected(nameLocal)
	return container.NewVBox(
		heading("Choose your server's name"),
		wrapped("Palpo is your own Matrix server. People you add sign in to it from Element or another Matrix app."),
		w.nameChoice,
		w.nameEntry,
		w.nameHelp,
		warning,
		w.nameErr,
	)
}

// nameChosen explains the choice in one sentence and offers a name.
func (w *wizard) nameChosen(choice string) {
	switch choice {
	case nameLocal:
		w.nameEntry.SetText("localhost")
		w.nameEntry.Disable()
		w.nameHelp.SetText("The simplest choice: user IDs end in :localhost. It works for everyone on this computer " +
			"and your home network, but this server can never talk to other Matrix servers " +
			"(unless you choose \"Peer to peer\" in step 4, which names it after its key instead).")
	case nameLAN:
		w.nameEntry.Enable()
		w.nameEntry.SetPlaceHolder("mycomputer.local")
		switch {
		case w.lanName != "":
			w.nameEntry.SetText(w.lanName)
			w.nameHelp.SetText("A name such as " + w.lanName + " that the devices in your home already use to reach this computer.")
		case !w.lanChecked:
			w.nameEntry.SetText("")
			w.nameHelp.SetText("Checking whether your home network knows this computer by a name…")
		default:
			w.nameEntry.SetText("")
			msg := "Your home network does not seem to know this computer by a name"
			if n := localHostName(); n != "" {
				msg += " (" + n + " does not resolve here)"
			}
			w.nameHelp.SetText(msg + ". Type a name your router gives it, or choose the first option.")
		}
	case namePublic:
		w.nameEntry.Enable()
		w.nameEntry.SetText("")
		w.nameEntry.SetPlaceHolder("example.org")
		w.nameHelp.SetText("A domain you own, such as example.org, pointing at this computer: " +
			"needed to talk to people on other Matrix servers later (federation).")
	}
}

// localHostName is this computer's name on the local network (name.local).
func localHostName() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return ""
	}
	h = strings.ToLower(h)
	if i := strings.IndexByte(h, '.'); i >= 0 {
		h = h[:i]
	}
	return h + ".local"
}

// serverName is the name chosen.
func (w *wizard) serverName() string {
	if w.st.ServerNameFixed {
		return w.st.ServerName
	}
	return strings.TrimSpace(strings.ToLower(w.nameEntry.Text))
}

func (w *wizard) checkName() error {
	if w.st.ServerNameFixed {
		return nil
	}
	name := w.serverName()
	if name == "" {
		return errors.New("type a server name, or choose \"" + nameLocal + "\"")
	}
	if err := app.CheckServerName(name); err != nil {
		return err
	}
	if w.nameChoice.Selected != nameLocal && name == "localhost" {
		return errors.New("that is the first choice; pick it, or type your computer's or domain's name")
	}
	return nil
}

// --- Step 2: the owner's account.

func (w *wizard) ownerPage() fyne.CanvasObject {
	w.ownName = widget.NewEntry()
	w.ownName.SetPlaceHolder("for example: Alice Smith")
	w.owner = widget.NewEntry()
	w.owner.SetPlaceHolder("for example: alice")
	// The user name follows the name typed above until the person types
	// one of their own.
	w.ownName.OnChanged = func(name string) {
		if w.ownerEdit {
			return
		}
		w.ownerSet = true
		w.owner.SetText(app.SuggestUserName(name))
		w.ownerSet = false
	}
	w.owner.OnChanged = func(string) {
		if !w.ownerSet {
			w.ownerEdit = w.owner.Text != ""
		}
	}
	rule := wrapped(fmt.Sprintf("User names use small letters, digits and . _ = - / + only. "+
		"Passwords need at least %d characters.", w.d.app.Config().Registration.MinPasswordLength))
	w.password = widget.NewPasswordEntry()
	w.password2 = widget.NewPasswordEntry()
	w.ownerErr = wrapped("")
	w.ownerErr.Importance = widget.DangerImportance
	w.ownerErr.Hide()
	return container.NewVBox(
		heading("Create your account"),
		wrapped("This is the account you sign in with. It is also the server's admin: it can add people and change settings from Element."),
		widget.NewForm(
			widget.NewFormItem("Your name", w.ownName),
			widget.NewFormItem("User name", w.owner),
			widget.NewFormItem("Password", w.password),
			widget.NewFormItem("Repeat password", w.password2),
		),
		rule,
		w.ownerErr,
	)
}

func (w *wizard) checkOwner() error {
	if w.password.Text != w.password2.Text {
		return errors.New("the two passwords are not the same")
	}
	_, err := w.d.app.CheckOwner(w.serverName(), strings.TrimSpace(w.owner.Text), w.password.Text)
	return err
}

// --- Step 3: the home network.

func (w *wizard) networkPage() fyne.CanvasObject {
	w.lan = widget.NewCheck("Let phones and other computers on my home network connect", nil)
	note := wrapped("")
	if w.lanAddr == "" {
		w.lan.Disable()
		note.SetText("This computer is not on a home network right now. You can turn this on later in Settings.")
	} else {
		note.SetText("Other devices will connect to this computer at " + w.lanAddr + ". " +
			"Anyone on your network can then reach the sign-in page, so keep invites for people you trust. You can change this later in Settings.")
	}
	return container.NewVBox(
		heading("Other devices"),
		wrapped("Palpo always works on this computer. To use it from your phone, or from other computers at home, let them connect:"),
		w.lan, note,
	)
}

// --- Step 4: other Matrix servers.

func (w *wizard) federationPage() fyne.CanvasObject {
	hint := "To connect over the internet, go back to step 1 and choose \"" + namePublic + "\"."
	if w.st.ServerNameFixed {
		hint = "A server's name cannot change once it has been started, so this needs a new server named after your domain."
	}
	w.fedChoice = newFederationChoice(w.d, hint)
	w.fedChoice.newServer = !w.st.ServerNameFixed
	return container.NewVBox(
		heading("Connect to other Matrix servers"),
		wrapped("Matrix servers can talk to each other, so people here can chat with people on other servers. "+
			"You can change this later in Settings."),
		w.fedChoice.content,
	)
}

// --- Work: save, start, create the account.

func (w *wizard) workPage() fyne.CanvasObject {
	w.workStep = widget.NewLabel("")
	w.workBar = widget.NewProgressBarInfinite()
	w.workErr = newErrorView(w.d)
	w.retry = widget.NewButtonWithIcon("Try again", theme.ViewRefreshIcon(), w.apply)
	backToStart := widget.NewButtonWithIcon("Change my answers", theme.NavigateBackIcon(), func() { w.show(pageName) })
	actions := container.NewHBox(backToStart, w.retry)
	w.workErr.content.Add(actions)
	return container.NewVBox(heading("Setting up Palpo"), w.workStep, w.workBar, w.workErr.content)
}

func (w *wizard) apply() {
	w.show(pageWork)
	w.workErr.set(nil)
	w.workBar.Show()
	w.workBar.Start()
	w.workStep.SetText("Saving your choices…")
	req := app.SetupRequest{
		ServerName:  w.serverName(),
		Owner:       strings.TrimSpace(w.owner.Text),
		Password:    w.password.Text,
		DisplayName: w.ownName.Text,
	}
	if w.lan.Checked {
		req.LANAddress = w.lanAddr
	}
	if w.fedChoice.newServer && w.fedChoice.settings().Mode == app.FederationPeerToPeer {
		// Named after its key, with p2p on, before the first start.
		req.PeerToPeer = true
	}
	var userID id.UserID
	w.d.async(func() error {
		var err error
		userID, err = w.d.app.ApplySetup(context.Background(), req, func(step string) {
			w.d.do(func() { w.workStep.SetText(step) })
		})
		return err
	}, func(err error) {
		w.workBar.Stop()
		w.workBar.Hide()
		w.d.Refresh()
		if err != nil {
			w.workStep.SetText("Palpo could not be set up.")
			w.workErr.set(err)
			return
		}
		w.userID = userID
		w.fillDone()
		w.show(pageDone)
		w.connectOtherServers()
	})
}

// --- Done: the address for Element, Copy, and a QR code for phones.

func (w *wizard) donePage() fyne.CanvasObject {
	w.done = container.NewVBox()
	w.finish = widget.NewButtonWithIcon("Open Palpo", theme.ConfirmIcon(), w.finishSetup)
	w.finish.Importance = widget.HighImportance

	// Backups suggested: on, weekly, to a folder the person picks (the
	// default is inside the data folder, which does not survive its disk).
	w.autoBackup = widget.NewCheck("Back up everything automatically once a week", nil)
	w.autoBackup.SetChecked(true)
	w.backupDirL = widget.NewLabel("")
	w.backupDirL.Wrapping = fyne.TextWrapBreak
	w.chooseDir = widget.NewButtonWithIcon("Choose folder…", theme.FolderOpenIcon(), func() {
		dialog.ShowFolderOpen(func(u fyne.ListableURI, err error) {
			if err == nil && u != nil {
				w.setBackupDir(u.Path())
			}
		}, w.d.win)
	})
	w.setBackupDir("")
	backups := container.NewVBox(
		widget.NewSeparator(),
		heading("Backups"),
		w.autoBackup,
		container.NewBorder(nil, nil, widget.NewLabel("To"), w.chooseDir, w.backupDirL),
		wrapped("Best on another disk or a USB stick: a backup on the same disk does not survive that disk. "+
			"You can change this later on the Backups tab."),
	)
	w.fedLive = newFederationLive(w.d)
	w.peers = newPeerPanel(w.d)
	w.peers.content.Hide()
	w.fedBox = container.NewVBox(widget.NewSeparator(), heading("Other Matrix servers"), w.fedLive.content, w.peers.content)
	w.fedBox.Hide()
	return container.NewVBox(w.done, w.fedBox, backups, container.NewHBox(layout.NewSpacer(), w.finish))
}

// connectOtherServers saves the step-4 choice once the server runs with
// its account, showing the restart, the certificate and the self-check
// on the last page as they happen. Nothing is shown when the choice is
// what palpo.toml already says.
func (w *wizard) connectOtherServers() {
	s := w.fedChoice.settings()
	p2pOn := func() {
		if w.d.app.FederationSettings().Mode == app.FederationPeerToPeer {
			w.fedBox.Show()
			w.peers.content.Show()
		}
	}
	if sameFederation(w.d.app.FederationSettings(), s) && !needsDomain(s) {
		if s.Mode == app.FederationPeerToPeer {
			w.fedLive.sayDone(s)
		}
		// Saved with the setup: Settings shows it from now on.
		w.d.settings.loadFederation()
		p2pOn()
		return
	}
	w.fedBox.Show()
	w.fedLive.run(s, p2pOn)
}

// setBackupDir shows the folder automatic backups go to.
func (w *wizard) setBackupDir(dir string) {
	w.backupDir = dir
	if dir == "" {
		dir = w.d.app.BackupDir()
	}
	w.backupDirL.SetText(dir)
}

// finishSetup saves the backup choice and shows the tabs.
func (w *wizard) finishSetup() {
	if w.autoBackup.Checked {
		s := w.d.app.BackupSettings()
		s.Schedule = config.BackupWeekly
		if w.backupDir != "" {
			s.Dir = w.backupDir
		}
		if err := w.d.app.SaveBackupSettings(s, ""); err != nil {
			w.d.showError("Could not turn on automatic backups", err)
			return
		}
	}
	w.d.showTabs()
}

func (w *wizard) fillDone() {
	local, lans := w.d.app.Addresses()
	address := func(u string) fyne.CanvasObject {
		l := widget.NewLabelWithStyle(u, fyne.TextAlignLeading, fyne.TextStyle{Monospace: true})
		l.Selectable = true
		return container.NewHBox(l, widget.NewButtonWithIcon("Copy", theme.ContentCopyIcon(), func() { w.d.copyText(u) }))
	}
	objs := []fyne.CanvasObject{
		heading("Palpo is ready"),
		wrapped("In Element (or another Matrix app) choose \"Sign in\", change the homeserver to this address, " +
			"and sign in as " + string(w.userID) + " with the password you chose:"),
		address(local),
	}
	if len(lans) > 0 {
		lan := container.NewVBox(
			wrapped("On a phone or another computer at home, use this address instead, or scan the code with the phone:"),
			address(lans[0]))
		if qr := qrImage(lans[0], 150); qr != nil {
			// Beside the address, so "Open Palpo" stays in sight.
			objs = append(objs, container.NewBorder(nil, nil, nil, qr, lan))
		} else {
			objs = append(objs, lan)
		}
	} else {
		objs = append(objs, wrapped("Only this computer can connect for now. To use Palpo from your phone "+
			"or another computer at home, let them connect (you can change this later in Settings):"))
		enable := widget.NewButtonWithIcon(enableLANText, theme.ComputerIcon(), nil)
		enable.OnTapped = func() {
			enable.Disable()
			w.d.enableHomeNetwork(w.fillDone)
		}
		if app.LANAddress() == "" {
			enable.Disable()
		}
		objs = append(objs, container.NewHBox(enable))
	}
	w.done.Objects = objs
	w.done.Refresh()
}
