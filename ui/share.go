package ui

import (
	"image/color"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/layout"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/palpo-im/palpo-desktop/app"
)

// Sharing the server with other devices: the invite dialog (Users tab) and
// the "Connect a phone or another computer" panel (Status tab). Both give
// the address the other device can reach (app.ShareAddress), never
// http://localhost, which on a phone is the phone itself.

const enableLANText = "Let devices on my home network connect"

// reachText says in a sentence who can use an address.
func reachText(r app.Reach) string {
	switch r {
	case app.ReachInternet:
		return "This address works from anywhere on the internet."
	case app.ReachHomeNetwork:
		return "This address works on phones and computers on your home network (the same Wi-Fi or router as this computer)."
	}
	return "Only this computer can connect to Palpo right now: on a phone, this address would point at the phone itself."
}

// valueRow is a selectable monospace value with a Copy button.
func (d *Desktop) valueRow(value, copyLabel string) fyne.CanvasObject {
	l := widget.NewLabelWithStyle(value, fyne.TextAlignLeading, fyne.TextStyle{Monospace: true})
	l.Selectable = true
	l.Wrapping = fyne.TextWrapBreak
	return container.NewBorder(nil, nil, nil,
		widget.NewButtonWithIcon(copyLabel, theme.ContentCopyIcon(), func() { d.copyText(value) }), l)
}

// enableHomeNetwork turns on home-network access and restarts a running
// server to listen there too; then runs after (on the event loop), whether
// it worked or not (errors are shown).
func (d *Desktop) enableHomeNetwork(after func()) {
	if err := d.app.EnableHomeNetwork(); err != nil {
		d.showError("Could not let devices on your home network connect", err)
		after()
		return
	}
	d.settings.load()
	if d.app.Server() == nil {
		d.Refresh()
		after()
		return
	}
	d.serverTask("Restarting the server…", func() error {
		if err := d.app.Stop(); err != nil {
			return err
		}
		return d.app.Start()
	}, "Could not restart the server", after)
}

// inviteDialog shows an invite code ready to share: who can use it, the
// code, the address, a link and its QR code, and a message to send.
type inviteDialog struct {
	d    *Desktop
	code string
	body *fyne.Container
	dlg  *dialog.CustomDialog
}

func (u *usersTab) showInvite(code string) {
	v := &inviteDialog{d: u.d, code: code, body: container.NewVBox()}
	v.fill()
	// Wide enough for an address and a link on one line each.
	width := canvas.NewRectangle(color.Transparent)
	width.SetMinSize(fyne.NewSize(640, 0))
	scroll := container.NewVScroll(container.NewStack(width, v.body))
	scroll.SetMinSize(fyne.NewSize(640, 420))
	v.dlg = dialog.NewCustom("Share this invite code", "Close", scroll, u.d.win)
	u.d.inviteDlg = v
	v.dlg.Show()
}

func (v *inviteDialog) fill() {
	d := v.d
	address, reach := d.app.ShareAddress()
	note := wrapped(reachText(reach))
	objs := []fyne.CanvasObject{note}
	if reach == app.ReachThisComputer {
		note.Importance = widget.WarningImportance
		note.SetText(reachText(reach) + " So this invite would not work on anyone else's device yet.")
		enable := widget.NewButtonWithIcon(enableLANText, theme.ComputerIcon(), nil)
		enable.Importance = widget.HighImportance
		enable.OnTapped = func() {
			enable.Disable()
			d.enableHomeNetwork(v.fill)
		}
		if app.LANAddress() == "" {
			enable.Disable()
			objs = append(objs, wrapped("This computer is not on a home network right now."))
		}
		objs = append(objs, container.NewHBox(enable))
	}
	codeLabel := widget.NewLabelWithStyle(v.code, fyne.TextAlignLeading, fyne.TextStyle{Monospace: true})
	codeLabel.SizeName = theme.SizeNameHeadingText
	codeLabel.Selectable = true
	rows := container.NewVBox(
		widget.NewLabel("Invite code"),
		container.NewBorder(nil, nil, nil,
			widget.NewButtonWithIcon("Copy code", theme.ContentCopyIcon(), func() { d.copyText(v.code) }), codeLabel),
		wrapped("Server address (Element: Create account, then Edit next to the server name)"),
		d.valueRow(address, "Copy address"),
	)
	if reach == app.ReachThisComputer {
		objs = append(objs, rows)
	} else {
		link := app.InviteLink(address, v.code)
		rows.Add(wrapped("Link (opens the code and the steps on their device)"))
		rows.Add(d.valueRow(link, "Copy link"))
		// The QR code beside the rows, so the dialog needs no scrolling.
		if qr := qrImage(link, 180); qr != nil {
			scan := widget.NewLabelWithStyle("Or scan it with\ntheir phone's camera", fyne.TextAlignCenter, fyne.TextStyle{})
			objs = append(objs, container.NewBorder(nil, nil, nil, container.NewVBox(qr, scan), rows))
		} else {
			objs = append(objs, rows)
		}
		msg := app.InviteMessage(d.app.Status().ServerName, address, v.code)
		objs = append(objs, container.NewHBox(layout.NewSpacer(),
			widget.NewButtonWithIcon("Copy message to send", theme.MailSendIcon(), func() { d.copyText(msg) }), layout.NewSpacer()))
	}
	v.body.Objects = objs
	v.body.Refresh()
}

// connectPanel is the Status tab's "Connect a phone or another computer":
// the address another device can use, a QR code of it, and the steps in
// the usual apps.
type connectPanel struct {
	d       *Desktop
	content *fyne.Container
	body    *fyne.Container
	shown   string // address and reach last shown, to rebuild only on change
}

func newConnectPanel(d *Desktop) *connectPanel {
	p := &connectPanel{d: d, body: container.NewVBox()}
	p.content = container.NewVBox(heading("Connect a phone or another computer"), p.body)
	return p
}

// refresh shows the current address; cheap when nothing changed.
func (p *connectPanel) refresh() {
	address, reach := p.d.app.ShareAddress()
	lan := ""
	if reach == app.ReachThisComputer {
		lan = app.LANAddress()
	}
	key := address + "|" + string(rune('0'+reach)) + "|" + lan
	if key == p.shown {
		return
	}
	p.shown = key
	d := p.d
	var objs []fyne.CanvasObject
	if reach == app.ReachThisComputer {
		note := wrapped(reachText(reach) + " To use Palpo from your phone or another computer, let them connect:")
		note.Importance = widget.WarningImportance
		enable := widget.NewButtonWithIcon(enableLANText, theme.ComputerIcon(), nil)
		enable.OnTapped = func() {
			enable.Disable()
			d.enableHomeNetwork(func() { p.shown = ""; p.refresh() })
		}
		objs = append(objs, note, container.NewHBox(enable))
		if lan == "" {
			enable.Disable()
			objs = append(objs, wrapped("This computer is not on a home network right now."))
		}
		p.body.Objects = objs
		p.body.Refresh()
		return
	}
	elementX := "3. Element X: choose \"Change account provider\" and enter the address " +
		"(it needs this home-network address, never localhost). Create the account in Element or FluffyChat first."
	if reach == app.ReachInternet {
		elementX = "3. Element X: choose \"Change account provider\" and enter the address. " +
			"Create the account in Element or FluffyChat first."
	}
	steps := container.NewVBox(
		wrapped("1. Element: choose \"Sign in\" (or \"Create account\"), press \"Edit\" next to the server name, and enter the address."),
		wrapped("2. FluffyChat: type the address where it asks for your homeserver."),
		wrapped(elementX))
	text := container.NewVBox(
		wrapped(reachText(reach)),
		d.valueRow(address, "Copy"),
		steps,
	)
	if qr := qrImage(address, 160); qr != nil {
		objs = append(objs, container.NewBorder(nil, nil, nil, container.NewVBox(qr), text))
	} else {
		objs = append(objs, text)
	}
	p.body.Objects = objs
	p.body.Refresh()
}
