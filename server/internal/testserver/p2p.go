package testserver

import (
	"crypto/ed25519"
	"testing"

	"github.com/palpo-im/palpo-desktop/p2p/servername"
	"github.com/palpo-im/palpo-desktop/server/config"
	"github.com/palpo-im/palpo-desktop/server/identity"
)

// NewP2P starts a peer-to-peer server: its signing key is made first and
// server_name is that key's P2P name; libp2p listens on 127.0.0.1 (TCP
// and QUIC, random ports) with mDNS, the DHT and port mapping off, and
// federation over TCP+TLS off. Options apply after that (Peers, say).
func NewP2P(t testing.TB, opts ...Option) *Server {
	t.Helper()
	dir := t.TempDir()
	key, err := identity.LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := defaultConfig()
	cfg.ServerName = servername.FromKey(key.Priv.Public().(ed25519.PublicKey))
	LoopbackP2P(cfg)
	return newIn(t, dir, cfg, opts, nil)
}

// LoopbackP2P turns p2p on for a test: libp2p on 127.0.0.1 random ports,
// no mDNS, DHT or port mapping (nothing leaves the machine).
func LoopbackP2P(cfg *config.Config) {
	cfg.P2P.Enabled = true
	cfg.P2P.Listen = []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}
	cfg.P2P.MDNS = false
	cfg.P2P.DHT = false
	cfg.P2P.PortMapping = false
}

// Peers makes the P2P nodes of servers static peers of the new server
// (their addresses, dialled at start): how tests introduce servers
// without mDNS.
func Peers(servers ...*Server) Option {
	return func(cfg *config.Config) {
		for _, s := range servers {
			cfg.P2P.StaticPeers = append(cfg.P2P.StaticPeers, s.P2P().Addrs()...)
		}
	}
}

// OutboundFederation turns federation over TCP+TLS on for a server with a
// P2P name: it starts no listener (nobody can look its name up) but
// reaches DNS-named servers, trusting ca, private addresses allowed.
func OutboundFederation(ca *CA) Option {
	return func(cfg *config.Config) {
		cfg.Federation.Enabled = true
		cfg.Federation.TrustedCAFiles = []string{ca.CertFile}
		cfg.Federation.AllowPrivateAddresses = true
	}
}
