package ui

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"

	"github.com/palpo-im/palpo-desktop/app"
	"github.com/palpo-im/palpo-desktop/server/config"
)

// needLAN skips a test on a machine with no home-network address to turn
// home-network access on with.
func needLAN(t *testing.T) string {
	t.Helper()
	lan := app.LANAddress()
	if lan == "" {
		t.Skip("this machine has no non-loopback IPv4 address")
	}
	return lan
}

// images counts the visible QR codes under o.
func images(o fyne.CanvasObject) int {
	n := 0
	for _, c := range objects(o) {
		if img, ok := c.(*canvas.Image); ok && img.Resource != nil && img.Resource.Name() == qrResourceName {
			n++
		}
	}
	return n
}

// createInvite makes an invite with the Users tab's dialog and returns the
// dialog that shows it.
func createInvite(t *testing.T, d *Desktop) (string, fyne.CanvasObject) {
	t.Helper()
	d.tabs.Select(d.tabs.Items[1])
	d.Wait()
	tap(t, d.users.newInvite)
	tap(t, findButton(t, dialogOnTop(t, d), "Create"))
	d.Wait()
	if len(d.users.invites) != 1 {
		t.Fatalf("invites %+v", d.users.invites)
	}
	return d.users.invites[0].Token, dialogOnTop(t, d)
}

// An invite made while only this computer can connect says so, offers
// home-network access in one click, and after that click carries the
// home-network address, a link that opens on another device, and its QR
// code.
func TestInviteDialogOffersHomeNetwork(t *testing.T) {
	lan := needLAN(t)
	d, fa := runningDesktop(t, Options{})
	code, dlg := createInvite(t, d)
	if len(code) != 14 || strings.Count(code, "-") != 2 || strings.ContainsAny(code, "01OILZ2S5B8") {
		t.Fatalf("invite code %q is not easy to read out", code)
	}
	if !hasLabel(dlg, code) || !hasLabel(dlg, "Only this computer can connect") {
		t.Fatalf("local-only invite: %q", labels(dlg))
	}
	if hasLabel(dlg, "http://"+lan) || images(dlg) != 0 {
		t.Fatalf("a home-network address or QR code is offered before it works: %q", labels(dlg))
	}
	tap(t, findButton(t, dlg, enableLANText))
	d.Wait()
	if st := d.app.Status(); st.State != app.StateRunning {
		t.Fatalf("server after turning on home-network access: %s %v", st.State, st.Err)
	}
	if !d.app.Settings().LAN || !strings.Contains(configText(t, d.app), lan) {
		t.Fatalf("home-network access not saved: %s %q", configText(t, d.app), labels(dialogOnTop(t, d)))
	}
	dlg = dialogOnTop(t, d)
	address, reach := d.app.ShareAddress()
	if reach != app.ReachHomeNetwork || !strings.HasPrefix(address, "http://"+lan+":") {
		t.Fatalf("share address %s (%d)", address, reach)
	}
	link := app.InviteLink(address, code)
	if !hasLabel(dlg, address) || !hasLabel(dlg, link) || !hasLabel(dlg, "home network") || hasLabel(dlg, "Only this computer") {
		t.Fatalf("invite after turning on home-network access: %q", labels(dlg))
	}
	if images(dlg) != 1 {
		t.Fatalf("%d images in the invite dialog, want the QR code", images(dlg))
	}
	tap(t, findButton(t, dlg, "Copy link"))
	if fa.Clipboard().Content() != link {
		t.Fatalf("clipboard %q, want the link", fa.Clipboard().Content())
	}
	tap(t, findButton(t, dlg, "Copy message to send"))
	if msg := fa.Clipboard().Content(); !strings.Contains(msg, link) || !strings.Contains(msg, code) || !strings.Contains(msg, address) {
		t.Fatalf("message %q", msg)
	}
	// The link opens, from the home-network address, a page with the code.
	resp, err := http.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), code) || !strings.Contains(string(page), address) {
		t.Fatalf("invite page: %d\n%s", resp.StatusCode, page)
	}
	// The dialog is wide enough for an address on one line.
	if w := d.inviteDlg.dlg.MinSize().Width; w < 600 {
		t.Fatalf("invite dialog %v wide", w)
	}
}

// With a public address configured, invites carry it.
func TestInviteDialogPublicAddress(t *testing.T) {
	dir := t.TempDir()
	cfg := "listen = [\"127.0.0.1:0\"]\npublic_baseurl = \"https://matrix.example.org\"\n"
	if err := os.WriteFile(filepath.Join(dir, config.FileName), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := app.Open(dir, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.ApplySetup(context.Background(), app.SetupRequest{ServerName: "localhost", Owner: "owner", Password: ownerPassword}, nil); err != nil {
		t.Fatal(err)
	}
	d, _ := newTestDesktop(t, a, Options{})
	d.Begin()
	d.Wait()
	code, dlg := createInvite(t, d)
	if !hasLabel(dlg, "https://matrix.example.org") || !hasLabel(dlg, "https://matrix.example.org/invite/"+code) ||
		!hasLabel(dlg, "anywhere on the internet") || images(dlg) != 1 {
		t.Fatalf("public invite: %q", labels(dlg))
	}
}

// The Status tab's connect panel shows no address another device cannot
// use; with home-network access on it shows that address, its QR code and
// the steps for Element, FluffyChat and Element X.
func TestConnectPhonePanel(t *testing.T) {
	lan := needLAN(t)
	d, _ := runningDesktop(t, Options{})
	d.Refresh()
	p := d.status.connect.content
	if !hasLabel(p, "Only this computer can connect") || hasLabel(p, "http://") || images(p) != 0 {
		t.Fatalf("connect panel with home-network access off: %q", labels(p))
	}
	tap(t, findButton(t, p, enableLANText))
	d.Wait()
	d.Refresh()
	address, _ := d.app.ShareAddress()
	if !strings.HasPrefix(address, "http://"+lan+":") || !hasLabel(p, address) || images(p) != 1 {
		t.Fatalf("connect panel with home-network access on (%s): %q", address, labels(p))
	}
	for _, want := range []string{"1. Element:", "\"Edit\"", "2. FluffyChat:", "3. Element X:", "home-network address"} {
		if !hasLabel(p, want) {
			t.Errorf("steps lack %q: %q", want, labels(p))
		}
	}
}
