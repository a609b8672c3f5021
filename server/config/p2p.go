package config

import (
	"errors"
	"fmt"
	"strings"

	"github.com/palpo-im/palpo-desktop/p2p/servername"
)

// P2P configures peer-to-peer federation over libp2p: servers with no
// domain name and no open port reach each other through NATs. Off by
// default: with it off, no libp2p socket is opened and no peer, DHT node
// or relay is contacted.
type P2P struct {
	// Enabled turns peer-to-peer federation on. server_name must then be
	// this server's P2P name (derived from its signing key), or a DNS name
	// with federation.enabled as well (a gateway that also reaches P2P
	// servers).
	Enabled bool `toml:"enabled"`
	// Listen are the libp2p multiaddrs to listen on (TCP and QUIC).
	Listen []string `toml:"listen"`
	// MDNS finds other Palpos on the home network by multicast DNS.
	MDNS bool `toml:"mdns"`
	// DHT joins the Kademlia DHT through BootstrapPeers to find peers
	// that are not on the home network (off when BootstrapPeers is
	// empty).
	DHT bool `toml:"dht"`
	// BootstrapPeers are multiaddrs with /p2p/<peer ID> of DHT nodes to
	// join the DHT through. Empty: no DHT node is contacted.
	BootstrapPeers []string `toml:"bootstrap_peers"`
	// Relays are circuit relay v2 servers (multiaddrs with /p2p/<peer ID>)
	// through which this server is reachable when behind a NAT.
	Relays []string `toml:"relays"`
	// StaticPeers are other servers' multiaddrs with /p2p/<peer ID>,
	// connected to at start and kept in the address book.
	StaticPeers []string `toml:"static_peers"`
	// RelayService lets this server relay for others (circuit relay v2,
	// with libp2p's resource limits): for a server with a public address.
	RelayService bool `toml:"relay_service"`
	// PortMapping asks the router (UPnP, NAT-PMP) to forward the listen
	// ports.
	PortMapping bool `toml:"port_mapping"`
}

func defaultP2P() P2P {
	return P2P{
		Listen: []string{
			"/ip4/0.0.0.0/tcp/8449", "/ip4/0.0.0.0/udp/8449/quic-v1",
			"/ip6/::/tcp/8449", "/ip6/::/udp/8449/quic-v1",
		},
		MDNS:           true,
		DHT:            true,
		BootstrapPeers: []string{},
		Relays:         []string{},
		StaticPeers:    []string{},
		PortMapping:    true,
	}
}

// validate checks the shape of each value. The multiaddrs are parsed by
// the p2p package when the host starts (this package does not import
// libp2p), and the server checks server_name against the signing key,
// which it alone can read.
func (p P2P) validate(serverName string) error {
	if servername.IsP2P(serverName) {
		if _, err := servername.Parse(serverName); err != nil {
			return fmt.Errorf("server_name: %w; a peer-to-peer server name is made from the server's signing key, copy it exactly", err)
		}
	}
	if p.Enabled {
		if len(p.Listen) == 0 {
			return errors.New("p2p.listen: must name at least one multiaddr, such as [\"/ip4/0.0.0.0/tcp/8449\", \"/ip4/0.0.0.0/udp/8449/quic-v1\"]")
		}
	}
	for _, a := range p.Listen {
		if !strings.HasPrefix(a, "/") {
			return fmt.Errorf("p2p.listen %q: not a multiaddr; write it as \"/ip4/0.0.0.0/tcp/8449\"", a)
		}
	}
	// In the order of the example config, so the first bad value is the
	// one reported, every time.
	for _, l := range []struct {
		key  string
		list []string
	}{{"bootstrap_peers", p.BootstrapPeers}, {"relays", p.Relays}, {"static_peers", p.StaticPeers}} {
		for _, a := range l.list {
			if !strings.HasPrefix(a, "/") || !strings.Contains(a, "/p2p/") {
				return fmt.Errorf("p2p.%s %q: not a multiaddr with a peer ID; write it as \"/ip4/203.0.113.7/tcp/8449/p2p/12D3KooW...\"", l.key, a)
			}
		}
	}
	return nil
}
