package app

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/palpo-im/palpo-desktop/p2p/servername"
)

// p2pTestConfig is palpo.toml for a peer-to-peer server that reaches
// nobody by itself: loopback only, no mDNS, DHT or port mapping.
const p2pTestConfig = `listen = ["127.0.0.1:0"]

[p2p]
# libp2p on loopback (a comment that must survive)
listen = ["/ip4/127.0.0.1/tcp/0"]
mdns = false
dht = false
port_mapping = false
`

// A link is the server name and its addresses; it reads back to the
// same peer, as do libp2p's own multiaddrs, and bad input is refused in
// a sentence.
func TestPeerAddressLinkAndParse(t *testing.T) {
	a := openTestApp(t, p2pTestConfig)
	name, err := a.PeerToPeerName()
	if err != nil || !servername.IsP2P(name) {
		t.Fatalf("name %q: %v", name, err)
	}
	if again, _ := a.PeerToPeerName(); again != name {
		t.Fatalf("the name changed: %q then %q", name, again)
	}
	p, err := ParsePeerAddress(PeerLink(name, []string{"/ip4/192.0.2.7/tcp/8449", "/ip6/2001:db8::7/udp/8449/quic-v1"}))
	if err != nil {
		t.Fatal(err)
	}
	if p.ServerName != name || len(p.Addrs) != 2 || !strings.HasSuffix(p.Addrs[1], "/p2p/"+p.PeerID) {
		t.Fatalf("parsed %+v", p)
	}
	link := PeerLink(name, p.Addrs)
	if !strings.HasPrefix(link, "palpo-p2p:"+name+"?addr=/ip4/192.0.2.7/tcp/8449&addr=/ip6/2001:db8::7/udp/8449/quic-v1") {
		t.Fatalf("link %s", link)
	}
	raw, err := ParsePeerAddress(p.Addrs[0] + ",\n " + p.Addrs[1])
	if err != nil || raw.ServerName != name || len(raw.Addrs) != 2 {
		t.Fatalf("multiaddrs: %+v %v", raw, err)
	}
	other := openTestApp(t, p2pTestConfig)
	otherName, _ := other.PeerToPeerName()
	otherAddr := strings.Replace(p.Addrs[0], p.PeerID, mustParse(t, PeerLink(otherName, []string{"/ip4/192.0.2.8/tcp/1"})).PeerID, 1)
	for text, want := range map[string]string{
		"":                        "paste the address",
		"https://example.org":     "not a peer-to-peer address",
		"/ip4/192.0.2.7/tcp/8449": "does not end in /p2p/",
		"/ip4/999.0.2.7/tcp/8449": "not a valid address",
		"palpo-p2p:example.org?addr=/ip4/1.2.3.4/tcp/1": "must be a name ending in .p2p.alt",
		"palpo-p2p:" + name:                             "no address",
		"palpo-p2p:" + name + "?addr=/nope":             "not valid",
		p.Addrs[0] + " " + otherAddr:                    "different servers",
	} {
		if _, err := ParsePeerAddress(text); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", text, err, want)
		}
	}
	x := "/tcp/1/p2p/" + p.PeerID
	if got := ShareableAddrs([]string{"/ip4/127.0.0.1" + x, "/ip4/192.0.2.1" + x, "/ip6/fe80::1" + x}); len(got) != 1 || got[0] != "/ip4/192.0.2.1"+x {
		t.Errorf("shareable: %q", got)
	}
	if got := ShareableAddrs([]string{"/ip4/127.0.0.1" + x}); len(got) != 1 {
		t.Errorf("loopback only: %q", got)
	}
}

func mustParse(t *testing.T, text string) PeerAddress {
	t.Helper()
	p, err := ParsePeerAddress(text)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// The wizard's "Peer to peer" names a new server after its key and turns
// p2p on before the first start; two such servers connect by a shared
// link, which is kept in p2p.static_peers. Nothing is shared while p2p is
// off.
func TestPeerToPeerSetupShareAndAdd(t *testing.T) {
	ctx := context.Background()
	setup := func() *App {
		a := openTestApp(t, p2pTestConfig)
		if _, err := a.PeerToPeerShare(); !errors.Is(err, ErrPeerToPeerOff) {
			t.Fatalf("share before setup: %v", err)
		}
		if _, err := a.ApplySetup(ctx, SetupRequest{ServerName: "localhost", Owner: "owner", Password: "long enough", PeerToPeer: true}, nil); err != nil {
			t.Fatal(err)
		}
		own, _ := a.PeerToPeerName()
		if a.Config().ServerName != own || !a.Config().P2P.Enabled {
			t.Fatalf("server_name %q (want %q), p2p %v", a.Config().ServerName, own, a.Config().P2P.Enabled)
		}
		if s := a.FederationSettings(); s.Mode != FederationPeerToPeer || s.Gateway {
			t.Fatalf("settings %+v", s)
		}
		return a
	}
	a, b := setup(), setup()
	if c := a.CertificateStatus(); c.Enabled {
		t.Errorf("a peer-to-peer server has no certificate to show: %+v", c)
	}
	share, err := a.PeerToPeerShare()
	if err != nil || share.ServerName != a.Config().ServerName || !strings.HasPrefix(share.Link, "palpo-p2p:"+share.ServerName+"?addr=/ip4/127.0.0.1/tcp/") {
		t.Fatalf("share %+v: %v", share, err)
	}
	if _, err := a.AddPeer(ctx, mustParse(t, share.Link)); err == nil || !strings.Contains(err.Error(), "own address") {
		t.Errorf("own address: %v", err)
	}
	added, err := b.AddPeer(ctx, mustParse(t, share.Link))
	if err != nil || !added.Saved || !added.Running || added.ConnectErr != nil {
		t.Fatalf("add: %+v %v", added, err)
	}
	if st, _ := b.FederationStatus(ctx); st.P2P == nil || st.P2P.Peers < 1 {
		t.Errorf("status after adding: %+v", st.P2P)
	}
	text := readConfigText(t, b)
	if !strings.Contains(text, "static_peers = [\""+share.Addrs[0]+"\"]") || !strings.Contains(text, "# libp2p on loopback") {
		t.Errorf("palpo.toml:\n%s", text)
	}
	if again, err := b.AddPeer(ctx, mustParse(t, share.Link)); err != nil || again.Saved {
		t.Errorf("added twice: %+v %v", again, err)
	}

	// Off again: both sections off, and nothing to share.
	if _, err := b.SaveFederationSettings(FederationSettings{Mode: FederationOff}); err != nil || b.Config().P2P.Enabled {
		t.Fatalf("off: %v", err)
	}
}

// Which servers may turn peer to peer on, and what the others are told.
func TestPeerToPeerProblem(t *testing.T) {
	own := servername.FromKey(make([]byte, 32))
	other := servername.FromKey(append(make([]byte, 31), 1))
	for name, want := range map[string]string{
		own:                 "",
		"palpo.example.org": "",
		other:               "another signing key",
		"localhost":         "was fixed when it first started",
		"box.local":         "new data folder",
	} {
		got := PeerToPeerProblem(name, own)
		if want == "" && got != "" || want != "" && !strings.Contains(got, want) {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}

	// A server with a domain: peer to peer is a gateway, both on.
	a := openTestApp(t, "server_name = \"palpo.example.org\"\nlisten = [\"127.0.0.1:0\"]\n\n[federation]\nlisten = \"127.0.0.1:0\"\n\n[federation.acme]\nchallenges = [\"tls-alpn-01\"]\n")
	if _, err := a.SaveFederationSettings(FederationSettings{Mode: FederationPeerToPeer, Domain: "palpo.example.org"}); err != nil {
		t.Fatal(err)
	}
	if s := a.FederationSettings(); s.Mode != FederationPeerToPeer || !s.Gateway || !a.Config().Federation.Enabled {
		t.Fatalf("gateway: %+v", s)
	}
	if _, err := a.SaveFederationSettings(FederationSettings{Mode: FederationInternet, Domain: "palpo.example.org"}); err != nil || a.Config().P2P.Enabled {
		t.Fatalf("back to internet only: %v", err)
	}

	// localhost: refused, saying why.
	l := openTestApp(t, p2pTestConfig)
	if _, err := l.SaveFederationSettings(FederationSettings{Mode: FederationPeerToPeer}); err == nil || !strings.Contains(err.Error(), "localhost") {
		t.Errorf("localhost: %v", err)
	}
}
