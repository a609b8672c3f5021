package ui

import (
	"context"
	"fmt"
	"image/color"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/layout"
	"fyne.io/fyne/v2/storage"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/palpo-im/palpo-desktop/app"
	"github.com/palpo-im/palpo-desktop/p2p"
)

// Peer to peer in Settings (and on the wizard's last page): "Share my
// address", a dialog with this server's palpo-p2p: link, a Copy button
// and its QR code; and "Add another server", a field for the other
// owner's link (or libp2p multiaddrs), or a picture of their QR code,
// which connects now and is kept in p2p.static_peers.

// peerPanel is the share button and the add-a-server field.
type peerPanel struct {
	d         *Desktop
	share     *widget.Button
	entry     *widget.Entry
	add       *widget.Button
	openImage *widget.Button
	result    *widget.Label
	content   *fyne.Container
	// shareDlg is the open share dialog (tests look at it).
	shareDlg *dialog.CustomDialog
}

func newPeerPanel(d *Desktop) *peerPanel {
	p := &peerPanel{d: d}
	p.share = widget.NewButtonWithIcon("Share my address…", theme.ContentCopyIcon(), p.showShare)
	p.share.Importance = widget.HighImportance
	p.entry = widget.NewMultiLineEntry()
	p.entry.Wrapping = fyne.TextWrapBreak
	p.entry.SetMinRowsVisible(2)
	p.entry.SetPlaceHolder(app.PeerLinkScheme + ":….p2p.alt?addr=…   or   /ip4/…/tcp/8449/p2p/12D3KooW…")
	p.entry.OnChanged = func(string) { p.result.Hide() }
	p.add = widget.NewButtonWithIcon("Add", theme.ContentAddIcon(), func() { p.addPeer(p.entry.Text) })
	p.openImage = widget.NewButtonWithIcon("Open a picture of a QR code…", theme.FileImageIcon(), p.chooseImage)
	p.result = wrapped("")
	p.result.Hide()
	p.content = container.NewVBox(
		widget.NewLabelWithStyle("Peer to peer", fyne.TextAlignLeading, fyne.TextStyle{Bold: true}),
		wrapped("To reach a Palpo outside your home network, you and its owner each share your address and add the other's."),
		container.NewHBox(p.share),
		widget.NewLabel("Add another server: paste the address its owner shared with you"),
		p.entry,
		container.NewHBox(p.add, p.openImage),
		p.result,
	)
	return p
}

// say shows how adding went.
func (p *peerPanel) say(text string, imp widget.Importance) {
	showText(p.result, text, imp)
}

// addPeer checks the address, saves it and connects, off the event loop.
func (p *peerPanel) addPeer(text string) {
	peer, err := app.ParsePeerAddress(text)
	if err != nil {
		p.say(sentence(err.Error()), widget.DangerImportance)
		return
	}
	p.add.Disable()
	p.say("Connecting to "+peer.ServerName+"…", widget.MediumImportance)
	var added app.PeerAdded
	p.d.async(func() error {
		var err error
		added, err = p.d.app.AddPeer(context.Background(), peer)
		return err
	}, func(err error) {
		p.add.Enable()
		switch {
		case err != nil:
			p.say("Not added: "+plainError(err), widget.DangerImportance)
		case !added.Running:
			p.say("Saved: this server connects to "+peer.ServerName+" when peer to peer runs.", widget.MediumImportance)
		case added.ConnectErr != nil:
			p.say("Saved, but not connected now: "+peerErrorText(added.ConnectErr)+
				". Palpo tries again at every start; check that the other server runs, or ask for a fresh address.", widget.WarningImportance)
		default:
			p.say("Connected to "+peer.ServerName+". It is kept in palpo.toml, so Palpo connects again after a restart. "+
				"You can now invite people there (@name:"+peer.ServerName+") to rooms.", widget.MediumImportance)
			p.entry.SetText("")
			p.result.Show() // SetText hid it
			p.d.status.loadStats()
		}
	})
}

// peerErrorText says a libp2p dial error in a few words.
func peerErrorText(err error) string {
	msg := strings.ToLower(err.Error())
	switch {
	case strings.Contains(msg, "connection refused"):
		return "nothing answered at its addresses"
	case strings.Contains(msg, "deadline") || strings.Contains(msg, "timeout"):
		return "it did not answer in time"
	case strings.Contains(msg, "peer id mismatch"):
		return "another server answered at that address"
	case strings.Contains(msg, "no route") || strings.Contains(msg, "unreachable"):
		return "its addresses cannot be reached from this network"
	}
	return sendErrorText(err.Error())
}

// chooseImage lets the person open a photo or screenshot of a QR code.
func (p *peerPanel) chooseImage() {
	dlg := dialog.NewFileOpen(func(r fyne.URIReadCloser, err error) {
		if err != nil || r == nil {
			return
		}
		path := r.URI().Path()
		r.Close()
		p.readImage(path)
	}, p.d.win)
	dlg.SetFilter(storage.NewExtensionFileFilter([]string{".png", ".jpg", ".jpeg", ".gif", ".PNG", ".JPG", ".JPEG"}))
	dlg.Show()
}

// readImage reads the QR code in the picture at path into the field and
// adds the server.
func (p *peerPanel) readImage(path string) {
	var text string
	p.d.async(func() error {
		var err error
		text, err = app.ReadQRImage(path)
		return err
	}, func(err error) {
		if err != nil {
			p.say(sentence(err.Error()), widget.DangerImportance)
			return
		}
		p.entry.SetText(text)
		p.addPeer(text)
	})
}

// showShare opens "Share my address".
func (p *peerPanel) showShare() {
	body := container.NewVBox()
	share, err := p.d.app.PeerToPeerShare()
	if err != nil {
		l := wrapped(sentence(err.Error()))
		l.Importance = widget.WarningImportance
		body.Add(l)
	} else {
		body.Add(wrapped("Give this address to the owner of the other Palpo: they paste it under \"Add another server\", " +
			"or scan the code. It holds this server's name and where it can be reached now, nothing about your rooms."))
		body.Add(widget.NewLabel("This server's name"))
		name := widget.NewLabelWithStyle(share.ServerName, fyne.TextAlignLeading, fyne.TextStyle{Monospace: true})
		name.Selectable = true
		name.Wrapping = fyne.TextWrapBreak
		body.Add(name)
		body.Add(widget.NewLabel("Address"))
		body.Add(p.d.valueRow(share.Link, "Copy"))
		if qr := qrImage(share.Link, 220); qr != nil {
			body.Add(container.NewHBox(layout.NewSpacer(), qr, layout.NewSpacer()))
		}
		note := wrapped("The address changes when this computer moves to another network; share it again then.")
		note.SizeName = theme.SizeNameCaptionText
		body.Add(note)
	}
	width := canvas.NewRectangle(color.Transparent)
	width.SetMinSize(fyne.NewSize(600, 0))
	scroll := container.NewVScroll(container.NewStack(width, body))
	scroll.SetMinSize(fyne.NewSize(600, 580))
	p.shareDlg = dialog.NewCustom("Share my address", "Close", scroll, p.d.win)
	p.shareDlg.Show()
}

// p2pText is peer to peer's state in words for the Status tab: whether
// other Palpos can reach this one (directly, through a relay, or only
// from the home network), how many peers are connected, and whether
// direct connections through home routers (hole punching) can be made.
func p2pText(st *p2p.Status, running bool) string {
	if !running || !st.Running {
		return "Peer to peer: on, once the server runs"
	}
	var reach string
	switch st.Reachability {
	case p2p.ReachabilityDirect:
		reach = "other Palpos on the internet reach this one directly"
	case p2p.ReachabilityRelay:
		reach = "other Palpos on the internet reach this one through a relay"
	case p2p.ReachabilityUnreachable:
		reach = "only Palpos on your home network, or ones this server contacts first, can reach it (no relay)"
	default:
		reach = "finding out whether Palpos on the internet can reach this one…"
	}
	s := "Peer to peer: " + reach + "\n" + connectedText(st.Peers)
	if st.HolePunching {
		s += "\nDirect connections through home routers: ready"
	} else {
		s += "\nDirect connections through home routers: not ready yet"
	}
	return s
}

func connectedText(n int) string {
	switch n {
	case 0:
		return "No peer connected yet"
	case 1:
		return "Connected to 1 peer"
	}
	return fmt.Sprintf("Connected to %d peers", n)
}
