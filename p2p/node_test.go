package p2p

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/palpo-im/palpo-desktop/p2p/servername"
	"github.com/palpo-im/palpo-desktop/server/config"
)

// loopback is a P2P config for a test: TCP and QUIC on 127.0.0.1 random
// ports, no port mapping, no mDNS unless asked.
func loopback() config.P2P {
	c := config.Default().P2P
	c.Enabled = true
	c.Listen = []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}
	c.MDNS = false
	c.PortMapping = false
	return c
}

func newKey(t *testing.T) ed25519.PrivateKey {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

// startNode starts a node serving a handler that echoes who asked.
func startNode(t *testing.T, cfg config.P2P) *Node {
	t.Helper()
	n, err := New(cfg, newKey(t), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, n.ServerName()+" "+r.Method+" "+r.URL.Path+" host="+r.Host)
	})
	if err := n.Start(h); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := n.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return n
}

func get(t *testing.T, from *Node, dest string) (string, error) {
	t.Helper()
	rt := from.Transport(dest)
	if rt == nil {
		t.Fatalf("no transport for %s", dest)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "matrix-federation://"+dest+"/_matrix/federation/v1/version", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return string(body), err
}

func TestIdentityIsTheSigningKey(t *testing.T) {
	priv := newKey(t)
	n, err := New(loopback(), priv, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	name := servername.FromKey(priv.Public().(ed25519.PublicKey))
	if n.ServerName() != name {
		t.Fatalf("name %s, want %s", n.ServerName(), name)
	}
	pid, err := PeerIDOf(name)
	if err != nil || pid != n.PeerID() {
		t.Fatalf("PeerIDOf = %s, %v; want %s", pid, err, n.PeerID())
	}
	back, err := ServerNameOf(pid)
	if err != nil || back != name {
		t.Fatalf("ServerNameOf = %s, %v", back, err)
	}
	if n.Transport("example.org") != nil || n.Transport("127.0.0.1:8448") != nil {
		t.Fatal("a DNS name got the libp2p transport")
	}
	st := n.Status()
	if st.Running || st.Reachability != ReachabilityUnknown || st.PeerID != pid.String() {
		t.Fatalf("status of a node not started: %+v", st)
	}
}

func TestBadConfigRefused(t *testing.T) {
	for _, c := range []func(*config.P2P){
		func(c *config.P2P) { c.Listen = []string{"/ip4/nonsense"} },
		func(c *config.P2P) { c.StaticPeers = []string{"/ip4/127.0.0.1/tcp/1"} },
		func(c *config.P2P) { c.Relays = []string{"/ip4/127.0.0.1/tcp/1/p2p/notapeerid"} },
	} {
		cfg := loopback()
		c(&cfg)
		if _, err := New(cfg, newKey(t), slog.New(slog.DiscardHandler)); err == nil {
			t.Errorf("config %+v accepted", cfg)
		}
	}
}

func TestRequestOverStaticPeer(t *testing.T) {
	b := startNode(t, loopback())
	cfg := loopback()
	cfg.StaticPeers = b.Addrs()
	a := startNode(t, cfg)
	body, err := get(t, a, b.ServerName())
	if err != nil {
		t.Fatal(err)
	}
	want := b.ServerName() + " GET /_matrix/federation/v1/version host=" + b.ServerName()
	if body != want {
		t.Fatalf("got %q, want %q", body, want)
	}
	// Back the other way: b learnt a's addresses when a connected.
	if body, err := get(t, b, a.ServerName()); err != nil || !strings.HasPrefix(body, a.ServerName()) {
		t.Fatalf("b to a: %q, %v", body, err)
	}
	st := a.Status()
	if !st.Running || st.Peers < 1 || len(st.ListenAddrs) != 2 || st.MDNS || st.DHT {
		t.Fatalf("status %+v", st)
	}
}

func TestUnknownPeerFails(t *testing.T) {
	a := startNode(t, loopback())
	other := servername.FromKey(newKey(t).Public().(ed25519.PublicKey))
	if _, err := get(t, a, other); err == nil {
		t.Fatal("a peer nobody knows the address of was reached")
	}
	if _, err := get(t, a, "abc"+servername.Suffix); err == nil {
		t.Fatal("a malformed P2P name was accepted")
	}
}
