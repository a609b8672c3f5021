package ui

import (
	"context"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/theme"

	"github.com/palpo-im/palpo-desktop/app"
	"github.com/palpo-im/palpo-desktop/server/federation/selfcheck"
)

// Screenshots of "Connect to other Matrix servers" for reviews and the
// closing note, drawn by Fyne's test driver (no display needed):
//
//	PALPO_SCREENSHOT_DIR=/tmp/shots go test -tags goolm ./ui/ -run TestScreenshots
//
// writes wizard-federation.png, wizard-done-federation.png,
// settings-federation.png, status-certificate.png,
// status-certificate-warning.png, and for peer to peer wizard-p2p.png,
// wizard-done-p2p.png, p2p-share.png, p2p-add-peer.png, status-p2p.png
// and settings-p2p-localhost.png there.
// Skipped when the variable is unset.

// lightTheme is Fyne's default theme in its light variant (the test
// driver otherwise draws with its own test colours).
type lightTheme struct{ fyne.Theme }

func (l lightTheme) Color(n fyne.ThemeColorName, _ fyne.ThemeVariant) color.Color {
	return l.Theme.Color(n, theme.VariantLight)
}

// healthyCheck is what the self-check says of a server that works.
var healthyCheck = []selfcheck.Result{
	{Check: selfcheck.CheckDNS, Status: selfcheck.OK, Message: "palpo.example.org has the address 203.0.113.5."},
	{Check: selfcheck.CheckWellKnown, Status: selfcheck.OK, Message: "No delegation: other servers connect to palpo.example.org itself."},
	{Check: selfcheck.CheckRoute, Status: selfcheck.OK, Message: "Other servers connect to palpo.example.org:8448."},
	{Check: selfcheck.CheckConnect, Status: selfcheck.OK, Message: "Port 8448 answers at 203.0.113.5."},
	{Check: selfcheck.CheckCertificate, Status: selfcheck.OK, Message: "The certificate is valid for palpo.example.org until 17 February 2027."},
	{Check: selfcheck.CheckKey, Status: selfcheck.OK, Message: "This server's signing key answers through its public name."},
	{Check: selfcheck.CheckSRV, Status: selfcheck.Warn, Message: "There is an SRV record for _matrix-fed._tcp.palpo.example.org pointing elsewhere.",
		Fix: "Remove the SRV record, or point it at palpo.example.org port 8448."},
}

// relayout lays out every container and widget under o, top down.
func relayout(o fyne.CanvasObject) {
	switch x := o.(type) {
	case *fyne.Container:
		if x.Layout != nil {
			x.Layout.Layout(x.Objects, x.Size())
		}
		for _, c := range x.Objects {
			relayout(c)
		}
	case fyne.Widget:
		r := test.WidgetRenderer(x)
		r.Layout(x.Size())
		for _, c := range r.Objects() {
			relayout(c)
		}
	}
}

func TestScreenshots(t *testing.T) {
	dir := os.Getenv("PALPO_SCREENSHOT_DIR")
	if dir == "" {
		t.Skip("set PALPO_SCREENSHOT_DIR to a folder to write the screenshots to")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	validCert := app.CertificateStatus{Enabled: true, Auto: true, Domain: "palpo.example.org", Running: true,
		NotBefore: now.Add(-18 * 24 * time.Hour), NotAfter: now.Add(72 * 24 * time.Hour)}
	validCert.RenewAt = validCert.NotAfter.Add(-30 * 24 * time.Hour)

	shoot := func(d *Desktop, name string, size fyne.Size) {
		t.Helper()
		d.win.Resize(size)
		// The real driver lays out again whatever changed size on each
		// frame; the test canvas does not, so it is done here, twice for
		// the wrapped labels whose height follows their new width.
		relayout(d.win.Content())
		relayout(d.win.Content())
		img := d.win.Canvas().Capture()
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := png.Encode(f, img); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", f.Name())
	}
	newDesktop := func(a *app.App) *Desktop {
		d, fa := newTestDesktop(t, a, Options{})
		fa.Settings().SetTheme(lightTheme{theme.DefaultTheme()})
		d.checkFederation = func(context.Context) ([]selfcheck.Result, error) { return healthyCheck, nil }
		d.certWait = 10 * time.Second
		return d
	}

	t.Run("wizard", func(t *testing.T) {
		a := newFedTestApp(t, "")
		d := newDesktop(a)
		d.Begin()
		d.Wait()
		w := d.wizard
		w.nameChoice.SetSelected(namePublic)
		w.nameEntry.SetText("palpo.example.org")
		w.goNext()
		w.ownName.SetText("Alice Smith")
		w.password.SetText("long enough")
		w.password2.SetText("long enough")
		w.goNext()
		w.goNext()
		w.fedChoice.mode.SetSelected(fedChoiceInternet)
		w.fedChoice.email.SetText("alice@example.org")
		shoot(d, "wizard-federation.png", fyne.NewSize(820, 680))

		// Then the last page, once the account exists: the restart, the
		// certificate (its order fails here: nothing is reachable) and the
		// self-check, as they happened.
		d.checkFederation = func(context.Context) ([]selfcheck.Result, error) { return cannedCheck, nil }
		w.goNext()
		d.Wait()
		shoot(d, "wizard-done-federation.png", fyne.NewSize(820, 1000))
	})

	// A running server with federation on over loopback; its certificate
	// as a healthy automatic one would be.
	running := func(t *testing.T, on bool, cert app.CertificateStatus) *Desktop {
		a := newFedTestApp(t, "palpo.example.org")
		if _, err := a.ApplySetup(context.Background(), app.SetupRequest{ServerName: "palpo.example.org", Owner: "owner", Password: ownerPassword}, nil); err != nil {
			t.Fatal(err)
		}
		if on {
			if _, err := a.SaveFederationSettings(app.FederationSettings{Mode: app.FederationInternet, Domain: "palpo.example.org", Email: "alice@example.org"}); err != nil {
				t.Fatal(err)
			}
		}
		if err := a.Stop(); err != nil { // Begin starts it with the choice
			t.Fatal(err)
		}
		d := newDesktop(a)
		d.certStatus = func() app.CertificateStatus { return cert }
		d.Begin()
		d.Wait()
		return d
	}

	t.Run("settings", func(t *testing.T) {
		d := running(t, false, validCert)
		s := d.settings
		d.tabs.Select(d.tabs.Items[3])
		s.fedChoice.mode.SetSelected(fedChoiceInternet)
		s.fedChoice.email.SetText("alice@example.org")
		tap(t, s.fedSave)
		d.Wait()
		size := fyne.NewSize(820, 900)
		d.win.Resize(size)
		scroll := s.content.(*container.Scroll)
		scroll.Offset.Y = s.fedSection.Position().Y
		scroll.Refresh()
		shoot(d, "settings-federation.png", size)
	})

	t.Run("status", func(t *testing.T) {
		d := running(t, true, validCert)
		d.status.loadStats()
		d.Wait()
		shoot(d, "status-certificate.png", fyne.NewSize(820, 780))
	})

	t.Run("status-warning", func(t *testing.T) {
		failing := validCert
		failing.NotBefore, failing.NotAfter = now.Add(-80*24*time.Hour), now.Add(9*24*time.Hour+time.Hour)
		failing.LastError = "[palpo.example.org] Obtain: [palpo.example.org] solving challenge: palpo.example.org: " +
			"[palpo.example.org] authorization failed: HTTP 400 urn:ietf:params:acme:error:connection - 203.0.113.5: Timeout during connect (likely firewall problem)"
		failing.LastErrorAt = now.Add(-2 * time.Hour)
		d := running(t, true, failing)
		d.status.loadStats()
		d.Wait()
		shoot(d, "status-certificate-warning.png", fyne.NewSize(820, 780))
	})

	t.Run("p2p", func(t *testing.T) {
		// The wizard's step 4 with peer to peer chosen, then its last page.
		a := newP2PTestApp(t)
		d := newDesktop(a)
		d.Begin()
		d.Wait()
		w := d.wizard
		w.goNext()
		w.ownName.SetText("Alice Smith")
		w.password.SetText("long enough")
		w.password2.SetText("long enough")
		w.goNext()
		w.goNext()
		w.fedChoice.mode.SetSelected(fedChoiceP2P)
		shoot(d, "wizard-p2p.png", fyne.NewSize(820, 680))
		w.goNext()
		d.Wait()
		shoot(d, "wizard-done-p2p.png", fyne.NewSize(820, 900))

		// Share my address, with its QR code.
		w.peers.showShare()
		shoot(d, "p2p-share.png", fyne.NewSize(820, 820))
		w.peers.shareDlg.Hide()
		w.finishSetup()

		// Another server added in Settings, then the Status tab.
		other := newP2PTestApp(t)
		if _, err := other.ApplySetup(context.Background(), app.SetupRequest{ServerName: "localhost", Owner: "bob", Password: ownerPassword, PeerToPeer: true}, nil); err != nil {
			t.Fatal(err)
		}
		share, err := other.PeerToPeerShare()
		if err != nil {
			t.Fatal(err)
		}
		s := d.settings
		d.tabs.Select(d.tabs.Items[3])
		s.peers.addPeer(share.Link)
		d.Wait()
		size := fyne.NewSize(820, 900)
		d.win.Resize(size)
		scroll := s.content.(*container.Scroll)
		scroll.Offset.Y = s.fedSection.Position().Y
		scroll.Refresh()
		shoot(d, "p2p-add-peer.png", size)

		d.tabs.Select(d.tabs.Items[0])
		d.status.loadStats()
		d.Wait()
		shoot(d, "status-p2p.png", fyne.NewSize(820, 780))
	})

	t.Run("p2p-localhost", func(t *testing.T) {
		// A server named localhost at its first start cannot switch:
		// Settings says why, in a sentence.
		a := newTestApp(t)
		if _, err := a.ApplySetup(context.Background(), app.SetupRequest{ServerName: "localhost", Owner: "owner", Password: ownerPassword}, nil); err != nil {
			t.Fatal(err)
		}
		d := newDesktop(a)
		d.Begin()
		d.Wait()
		s := d.settings
		d.tabs.Select(d.tabs.Items[3])
		s.fedChoice.mode.SetSelected(fedChoiceP2P)
		size := fyne.NewSize(820, 700)
		d.win.Resize(size)
		scroll := s.content.(*container.Scroll)
		scroll.Offset.Y = s.fedSection.Position().Y
		scroll.Refresh()
		shoot(d, "settings-p2p-localhost.png", size)
	})
}
