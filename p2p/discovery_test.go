package p2p

import (
	"context"
	"crypto/ed25519"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/network"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/palpo-im/palpo-desktop/p2p/servername"
)

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, cond func() bool) bool {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return cond()
}

// TestMDNSFindsPeer: two nodes with mDNS on and no other way to know of
// each other connect, and a request goes through. mDNS needs a network
// interface that carries multicast; where there is none (some
// containers), the test says so and skips.
func TestMDNSFindsPeer(t *testing.T) {
	cfg := loopback()
	cfg.MDNS = true
	// The announcements travel over the multicast interfaces and carry
	// the loopback addresses, which the other node dials.
	cfg.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	a := startNode(t, cfg)
	b := startNode(t, cfg)
	if !waitFor(t, 10*time.Second, func() bool {
		return a.basic.Network().Connectedness(b.id) == network.Connected
	}) {
		t.Skip("mDNS found no peer within 10 s: no multicast-capable interface here; discovery falls back to static peers and the DHT")
	}
	if body, err := get(t, a, b.ServerName()); err != nil || !strings.HasPrefix(body, b.ServerName()) {
		t.Fatalf("request to a peer found by mDNS: %q, %v", body, err)
	}
	if st := a.Status(); !st.MDNS || st.Peers < 1 {
		t.Fatalf("status %+v", st)
	}
}

// TestDHTFindsPeer: two nodes that know only a DHT bootstrap node (a
// plain libp2p host running the DHT in server mode) find each other's
// addresses through it, by peer ID, from the server name alone.
func TestDHTFindsPeer(t *testing.T) {
	boot, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { boot.Close() })
	bootDHT, err := dht.New(boot, dht.Mode(dht.ModeServer))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bootDHT.Close() })
	var bootAddrs []string
	for _, a := range boot.Addrs() {
		bootAddrs = append(bootAddrs, a.String()+"/p2p/"+boot.ID().String())
	}
	cfg := loopback()
	cfg.BootstrapPeers = bootAddrs
	a := startNode(t, cfg)
	b := startNode(t, cfg)
	if !waitFor(t, 10*time.Second, func() bool {
		return len(boot.Network().ConnsToPeer(a.id)) > 0 && len(boot.Network().ConnsToPeer(b.id)) > 0
	}) {
		t.Fatal("the nodes did not join the DHT through the bootstrap node")
	}
	if a.basic.Network().Connectedness(b.id) == network.Connected {
		t.Fatal("a and b are connected before any lookup")
	}
	body, err := get(t, a, b.ServerName())
	if err != nil || !strings.HasPrefix(body, b.ServerName()) {
		t.Fatalf("request to a peer found through the DHT: %q, %v", body, err)
	}
	if st := a.Status(); !st.DHT {
		t.Fatalf("status %+v", st)
	}
}

// TestThroughRelay: a node that AutoNAT would find unreachable (forced
// here: on loopback every address answers) reserves a slot on its
// configured relay, and a node that knows only its relayed address
// reaches it. (Auto-relay advertises relayed addresses only through a
// relay's public addresses, so on loopback the node's status cannot say
// "relay"; the NAT test checks that.)
func TestThroughRelay(t *testing.T) {
	// A relay gives its reservations only its public addresses; this one
	// has loopback ones alone, so it is told to give those.
	anyAddr := relayv2.WithReservationAddressFilter(func(ma.Multiaddr) bool { return true })
	relay, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.EnableRelayService(anyAddr), libp2p.ForceReachabilityPublic())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { relay.Close() })
	var relayAddrs []string
	for _, a := range relay.Addrs() {
		relayAddrs = append(relayAddrs, a.String()+"/p2p/"+relay.ID().String())
	}
	cfg := loopback()
	cfg.Relays = relayAddrs
	home, err := New(cfg, newKey(t), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	home.Options = []libp2p.Option{libp2p.ForceReachabilityPrivate()}
	if err := home.Start(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "home") })); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { home.Stop(context.Background()) })
	if !waitFor(t, 5*time.Second, func() bool { return home.Status().Reachability == ReachabilityUnreachable }) {
		t.Fatalf("a node forced private without relayed addresses: %+v", home.Status())
	}
	circuit := relayAddrs[0] + "/p2p-circuit/p2p/" + home.PeerID().String()
	visitor := loopback()
	visitor.StaticPeers = []string{circuit}
	v := startNode(t, visitor)
	var body string
	// The reservation is made in the background after start.
	if !waitFor(t, 10*time.Second, func() bool {
		body, err = get(t, v, home.ServerName())
		return err == nil
	}) || body != "home" {
		t.Fatalf("request through the relay: %q, %v", body, err)
	}
	if c := v.Connection(home.ServerName()); c != ConnectionRelay && c != ConnectionDirect {
		t.Fatalf("visitor's connection to home: %q", c)
	}
	if c := v.Connection(servername.FromKey(newKey(t).Public().(ed25519.PublicKey))); c != ConnectionNone {
		t.Fatalf("connection to a stranger: %q", c)
	}
}
