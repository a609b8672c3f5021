package p2p

import (
	"slices"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	ma "github.com/multiformats/go-multiaddr"
)

// Reachability says how other peers can reach this node.
type Reachability string

const (
	// ReachabilityUnknown: AutoNAT has not decided yet (or the node is
	// not running).
	ReachabilityUnknown Reachability = "unknown"
	// ReachabilityDirect: peers on the internet can dial one of this
	// node's public addresses (confirmed by AutoNAT).
	ReachabilityDirect Reachability = "direct"
	// ReachabilityRelay: behind a NAT, reachable through a circuit relay
	// (then, after hole punching, often directly).
	ReachabilityRelay Reachability = "relay"
	// ReachabilityUnreachable: behind a NAT with no relay; only peers on
	// the home network (mDNS) or that this node dials first reach it.
	ReachabilityUnreachable Reachability = "unreachable"
)

// Status is the node as the admin API and the desktop app show it.
type Status struct {
	// Running is whether the host is up.
	Running bool
	// PeerID is this node's peer ID; ServerName the P2P name of its key.
	PeerID     string
	ServerName string
	// Reachability from the internet.
	Reachability Reachability
	// Peers is how many peers are connected now; DHTPeers how many the
	// DHT's routing table holds (0 without a DHT).
	Peers    int
	DHTPeers int
	// ListenAddrs are the bound addresses (ports resolved); Addrs the
	// addresses advertised to peers (interface, observed, port-mapped and
	// relay addresses), each without /p2p/.
	ListenAddrs []string
	Addrs       []string
	// ReachableAddrs are the public addresses AutoNAT v2 confirmed.
	ReachableAddrs []string
	// HolePunching is whether hole punching (DCUtR) is ready: the node
	// knows a public address of its own (seen by a peer through the NAT)
	// to punch with. A relayed connection that arrives before that stays
	// relayed.
	HolePunching bool
	// MDNS and DHT say which discovery runs.
	MDNS bool
	DHT  bool
}

// confirmer is the part of go-libp2p's basic host that reports AutoNAT
// v2's verdicts and the overall reachability (not in the host interface).
type confirmer interface {
	ConfirmedAddrs() (reachable, unreachable, unknown []ma.Multiaddr)
	Reachability() network.Reachability
}

// Status reports the node's addresses, peers and reachability.
func (n *Node) Status() Status {
	n.mu.Lock()
	h, d, md := n.basic, n.dht, n.mdns
	n.mu.Unlock()
	st := Status{PeerID: n.id.String(), ServerName: n.name, Reachability: ReachabilityUnknown,
		ListenAddrs: []string{}, Addrs: []string{}, ReachableAddrs: []string{}}
	if h == nil {
		return st
	}
	st.Running, st.MDNS, st.DHT = true, md != nil, d != nil
	st.HolePunching = slices.Contains(h.Mux().Protocols(), holepunch.Protocol)
	st.Peers = len(h.Network().Peers())
	if d != nil {
		st.DHTPeers = d.RoutingTable().Size()
	}
	// The relay transport "listens" on /p2p-circuit: not an address.
	st.ListenAddrs = strs(slices.DeleteFunc(slices.Clone(h.Network().ListenAddresses()), isCircuit))
	addrs := h.Addrs()
	st.Addrs = strs(addrs)
	relayed := slices.ContainsFunc(addrs, isCircuit)
	reach := network.ReachabilityUnknown
	if c, ok := h.(confirmer); ok {
		reachable, _, _ := c.ConfirmedAddrs()
		st.ReachableAddrs = strs(reachable)
		reach = c.Reachability()
		if len(reachable) > 0 {
			reach = network.ReachabilityPublic
		}
	}
	switch {
	case reach == network.ReachabilityPublic:
		st.Reachability = ReachabilityDirect
	case relayed:
		st.Reachability = ReachabilityRelay
	case reach == network.ReachabilityPrivate:
		st.Reachability = ReachabilityUnreachable
	}
	return st
}

func isCircuit(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_CIRCUIT)
	return err == nil
}

func strs(addrs []ma.Multiaddr) []string {
	out := make([]string, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, a.String())
	}
	slices.Sort(out)
	return out
}

// Connection kinds, as Connection reports them.
const (
	ConnectionNone   = ""
	ConnectionDirect = "direct"
	ConnectionRelay  = "relay"
)

// Connection says how this node is connected to the P2P server
// serverName now: directly (including after hole punching), only
// through a relay, or not at all.
func (n *Node) Connection(serverName string) string {
	h := n.hostOrNil()
	pid, err := PeerIDOf(serverName)
	if h == nil || err != nil {
		return ConnectionNone
	}
	kind := ConnectionNone
	for _, c := range h.Network().ConnsToPeer(pid) {
		if !c.Stat().Limited {
			return ConnectionDirect
		}
		kind = ConnectionRelay
	}
	return kind
}
