package ui

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/test"
	qrcode "github.com/skip2/go-qrcode"

	"github.com/palpo-im/palpo-desktop/app"
	"github.com/palpo-im/palpo-desktop/p2p"
	"github.com/palpo-im/palpo-desktop/p2p/servername"
	"github.com/palpo-im/palpo-desktop/server/config"
)

// p2pTestConfig is palpo.toml for a peer-to-peer server that reaches
// nobody by itself: loopback only, no mDNS, DHT or port mapping.
const p2pTestConfig = `listen = ["127.0.0.1:0"]

[p2p]
listen = ["/ip4/127.0.0.1/tcp/0"]
mdns = false
dht = false
port_mapping = false
`

func newP2PTestApp(t *testing.T) *app.App {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, config.FileName), []byte(p2pTestConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := app.Open(dir, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Stop() })
	return a
}

// p2pDesktop is a desktop past the wizard for a server set up peer to
// peer, running.
func p2pDesktop(t *testing.T) (*Desktop, *app.App) {
	t.Helper()
	a := newP2PTestApp(t)
	if _, err := a.ApplySetup(context.Background(), app.SetupRequest{ServerName: "localhost", Owner: "owner", Password: ownerPassword, PeerToPeer: true}, nil); err != nil {
		t.Fatal(err)
	}
	d, _ := newTestDesktop(t, a, Options{})
	d.Begin()
	d.Wait()
	if st := a.Status(); st.State != app.StateRunning {
		t.Fatalf("server state %s: %v", st.State, st.Err)
	}
	return d, a
}

// qrIn finds the QR code image under o.
func qrIn(o fyne.CanvasObject) *canvas.Image {
	for _, c := range objects(o) {
		if img, ok := c.(*canvas.Image); ok && img.Resource != nil && img.Resource.Name() == qrResourceName {
			return img
		}
	}
	return nil
}

// In the wizard, "Peer to peer" names the new server after its key (said
// on step 4), turns p2p on before the first start, and the last page
// offers sharing the address: a link with Copy and its QR code.
func TestWizardPeerToPeer(t *testing.T) {
	a := newP2PTestApp(t)
	d, fa := newTestDesktop(t, a, Options{})
	d.Begin()
	d.Wait()
	w := d.wizard
	content := d.win.Content()
	tap(t, findButton(t, content, "Next")) // localhost
	test.Type(w.owner, "alice")
	test.Type(w.password, "long enough")
	test.Type(w.password2, "long enough")
	tap(t, findButton(t, content, "Next"))
	tap(t, findButton(t, content, "Next"))
	c := w.fedChoice
	c.mode.SetSelected(fedChoiceP2P)
	own, err := a.PeerToPeerName()
	if err != nil || !hasLabel(content, "user IDs end in :"+own) || c.problem.Visible() || c.internet.Visible() {
		t.Fatalf("step 4 (name %q, %v): %q", own, err, labels(content))
	}
	if _, err := os.Stat(filepath.Join(a.DataDir(), "signing.key")); err != nil {
		t.Fatalf("the key the name comes from is not kept: %v", err)
	}
	tap(t, findButton(t, content, "Set up Palpo"))
	d.Wait()
	if w.page != pageDone || string(w.userID) != "@alice:"+own {
		t.Fatalf("page %d, user %q: %q", w.page, w.userID, labels(content))
	}
	cfg := a.Config()
	if cfg.ServerName != own || !cfg.P2P.Enabled || !strings.Contains(configText(t, a), "enabled = true") {
		t.Fatalf("palpo.toml:\n%s", configText(t, a))
	}
	if !w.fedBox.Visible() || !w.peers.content.Visible() || !hasLabel(content, "Peer to peer is on") {
		t.Fatalf("last page: %q", labels(content))
	}
	tap(t, findButton(t, content, "Share my address…"))
	top := dialogOnTop(t, d)
	share, err := a.PeerToPeerShare()
	if err != nil || !hasLabel(top, share.Link) || !hasLabel(top, own) || qrIn(top) == nil {
		t.Fatalf("share (%v): %q", err, labels(top))
	}
	tap(t, findButton(t, top, "Copy"))
	if got := fa.Clipboard().Content(); got != share.Link {
		t.Fatalf("copied %q", got)
	}
	tap(t, findButton(t, top, "Close"))
	noDialog(t, d)
}

// Adding another server: bad text is refused in a sentence; its link
// connects and is kept in palpo.toml; a picture of its QR code works
// too; and the Status tab then counts the peer.
func TestAddPeer(t *testing.T) {
	_, other := p2pDesktop(t)
	share, err := other.PeerToPeerShare()
	if err != nil {
		t.Fatal(err)
	}
	d, a := p2pDesktop(t)
	s := d.settings
	d.tabs.Select(d.tabs.Items[3])
	p := s.peers
	if !p.content.Visible() || s.fedChoice.mode.Selected != fedChoiceP2P {
		t.Fatalf("settings: %q", labels(s.fedSection))
	}
	for text, want := range map[string]string{
		"":                      "Paste the address",
		"matrix.org":            "not a peer-to-peer address",
		"/ip4/192.0.2.1/tcp/1":  "does not end in /p2p/",
		"palpo-p2p:example.org": "ending in .p2p.alt",
	} {
		p.entry.SetText(text)
		tap(t, p.add)
		d.Wait()
		if !p.result.Visible() || !strings.Contains(p.result.Text, want) {
			t.Errorf("%q: %q, want %q", text, p.result.Text, want)
		}
	}
	p.entry.SetText(share.Link)
	tap(t, p.add)
	d.Wait()
	if !strings.Contains(p.result.Text, "Connected to "+share.ServerName) || p.entry.Text != "" {
		t.Fatalf("add: %q", p.result.Text)
	}
	if !strings.Contains(configText(t, a), share.Addrs[0]) {
		t.Fatalf("not kept:\n%s", configText(t, a))
	}
	d.status.loadStats()
	d.Wait()
	if txt := d.status.federation.Text; !strings.Contains(txt, "Peer to peer: ") || !strings.Contains(txt, "Connected to 1 peer") {
		t.Fatalf("status: %q", txt)
	}

	// The same server from a picture of its QR code.
	png, err := qrcode.Encode(share.Link, qrcode.Medium, -qrPixelsPerModule) // as the app draws it
	if err != nil {
		t.Fatal(err)
	}
	pic := filepath.Join(t.TempDir(), "code.png")
	if err := os.WriteFile(pic, png, 0o600); err != nil {
		t.Fatal(err)
	}
	p.readImage(pic)
	d.Wait()
	if !strings.Contains(p.result.Text, "Connected to "+share.ServerName) {
		t.Fatalf("from a picture: %q", p.result.Text)
	}
	p.readImage(filepath.Join(a.DataDir(), config.FileName))
	d.Wait()
	if !strings.Contains(p.result.Text, "not a picture") {
		t.Fatalf("a file that is no picture: %q", p.result.Text)
	}
}

// In Settings: a server named after its key turns peer to peer off and
// on (restarting); a server with a domain is offered it as a gateway
// (the domain asked); one named localhost is told why it cannot, and
// nothing is saved.
func TestSettingsPeerToPeer(t *testing.T) {
	d, a := p2pDesktop(t)
	s := d.settings
	s.fedChoice.mode.SetSelected(fedChoiceOff)
	tap(t, s.fedSave)
	d.Wait()
	if a.Config().P2P.Enabled || s.peers.content.Visible() || a.Server() == nil || a.Server().P2P() != nil {
		t.Fatalf("off: %q", labels(s.fedSection))
	}
	s.fedChoice.mode.SetSelected(fedChoiceP2P)
	tap(t, s.fedSave)
	d.Wait()
	if !a.Config().P2P.Enabled || !s.peers.content.Visible() || a.Server() == nil || a.Server().P2P() == nil ||
		!hasLabel(s.fedSection, "Peer to peer is on") {
		t.Fatalf("on again: %q", labels(s.fedSection))
	}

	gw := newFedTestApp(t, "palpo.example.org")
	dg, _ := newTestDesktop(t, gw, Options{})
	c := newFederationChoice(dg, "")
	c.set(gw.FederationSettings())
	c.mode.SetSelected(fedChoiceP2P)
	if !c.internet.Visible() || !strings.Contains(c.help.Text, "keeps its name, palpo.example.org") || c.problem.Visible() {
		t.Fatalf("gateway: %q / %q", c.help.Text, c.problem.Text)
	}
	if st := c.settings(); !st.Gateway || c.check() != nil {
		t.Fatalf("gateway settings %+v: %v", st, c.check())
	}

	dl, _ := runningDesktop(t, Options{})
	al := dl.app
	before := configText(t, al)
	sl := dl.settings
	sl.fedChoice.mode.SetSelected(fedChoiceP2P)
	if !sl.fedChoice.problem.Visible() || !strings.Contains(sl.fedChoice.problem.Text, "localhost, was fixed when it first started") {
		t.Fatalf("localhost: %q", sl.fedChoice.problem.Text)
	}
	tap(t, sl.fedSave)
	dl.Wait()
	if !sl.fedErr.Visible() || !strings.Contains(sl.fedErr.Text, "new data folder") || configText(t, al) != before {
		t.Fatalf("localhost saved: %q", sl.fedErr.Text)
	}
}

// The Status tab's words for peer to peer's states.
func TestP2PText(t *testing.T) {
	for _, c := range []struct {
		st      p2p.Status
		running bool
		want    []string
	}{
		{p2p.Status{}, false, []string{"on, once the server runs"}},
		{p2p.Status{Running: true, Reachability: p2p.ReachabilityDirect, Peers: 3, HolePunching: true}, true,
			[]string{"reach this one directly", "Connected to 3 peers", "home routers: ready"}},
		{p2p.Status{Running: true, Reachability: p2p.ReachabilityRelay, Peers: 1}, true,
			[]string{"through a relay", "Connected to 1 peer", "home routers: not ready yet"}},
		{p2p.Status{Running: true, Reachability: p2p.ReachabilityUnreachable}, true, []string{"only Palpos on your home network", "No peer connected yet"}},
		{p2p.Status{Running: true, Reachability: p2p.ReachabilityUnknown}, true, []string{"finding out"}},
	} {
		got := p2pText(&c.st, c.running)
		for _, w := range c.want {
			if !strings.Contains(got, w) {
				t.Errorf("%+v: %q lacks %q", c.st, got, w)
			}
		}
	}
	// A P2P-named server with federation.enabled (outbound to DNS names)
	// claims no listener.
	name := servername.FromKey(make([]byte, 32))
	txt := federationText(app.FederationStatus{Enabled: true, ServerName: name, P2P: &p2p.Status{Running: true}}, true)
	if strings.Contains(txt, "not listening") || !strings.HasPrefix(txt, "Peer to peer: ") {
		t.Errorf("P2P name with federation on: %q", txt)
	}
	if txt := federationText(app.FederationStatus{}, true); txt != federationOffText {
		t.Errorf("off: %q", txt)
	}
}
