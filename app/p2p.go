package app

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/palpo-im/palpo-desktop/p2p"
	"github.com/palpo-im/palpo-desktop/p2p/servername"
	"github.com/palpo-im/palpo-desktop/server/config"
	"github.com/palpo-im/palpo-desktop/server/identity"
)

// Peer-to-peer federation in the app: this data directory's P2P name,
// sharing this server's address, and adding another server's.
//
// An address is shared as a link (PeerLink):
//
//	palpo-p2p:<server name>?addr=<multiaddr>&addr=<multiaddr>
//
// where each multiaddr is one of the node's addresses without the
// /p2p/<peer ID> at its end (the server name says which peer it is), for
// example
//
//	palpo-p2p:duafvfkasysx6g3mesqxlgct7bhkun6bhff5bjyjebmlut7uhcva.p2p.alt?addr=/ip4/192.168.1.20/tcp/8449&addr=/ip4/192.168.1.20/udp/8449/quic-v1
//
// Slashes and colons are left as they are (a query may hold them), so the
// link stays readable; anything else outside letters, digits and "-._~"
// is percent-encoded. ParsePeerAddress reads the link or libp2p's own
// form, multiaddrs ending in /p2p/<peer ID>, one or more separated by
// spaces, commas or new lines.

// PeerLinkScheme starts a shared peer-to-peer address.
const PeerLinkScheme = "palpo-p2p"

// peerConnectTimeout bounds dialling a peer that was added by hand.
const peerConnectTimeout = 30 * time.Second

// ErrPeerToPeerOff is the answer to sharing or connecting while this
// server's peer-to-peer federation is not running.
var ErrPeerToPeerOff = errors.New("peer to peer is off: choose \"Peer to peer\" under Connect to other Matrix servers in Settings, and start the server")

// PeerToPeerName is the peer-to-peer server name of this data directory's
// signing key. The key is made when there is none yet, as the server's
// first start would make it: the name must be known before that start,
// which stamps it into the database.
func (a *App) PeerToPeerName() (string, error) {
	key, err := identity.LoadOrCreate(a.dataDir)
	if err != nil {
		return "", err
	}
	return servername.FromKey(key.Priv.Public().(ed25519.PublicKey)), nil
}

// PeerToPeerProblem says in a sentence why a server named serverName
// cannot turn peer to peer on ("" when it can): ownName is the P2P name
// of its signing key. A server under its own P2P name can; so can one
// with an internet domain, as a gateway that keeps its name. Any other
// name (localhost, a home-network name) was fixed at the first start.
func PeerToPeerProblem(serverName, ownName string) string {
	switch {
	case serverName == ownName:
		return ""
	case servername.IsP2P(serverName):
		return "This server is named after another signing key than the one in its data folder, so peer to peer cannot start: put back the signing key its name was made from."
	case FederationNameProblem(serverName) == "":
		return ""
	}
	return "This server's name, " + serverName + ", was fixed when it first started, and a peer-to-peer server is named after its key instead, " +
		"so peer to peer needs a new server (a new data folder) with \"Peer to peer\" chosen when it is set up."
}

// PeerLink is the link form of a server's address: its server name and
// its multiaddrs (with or without /p2p/<peer ID>; it is dropped).
func PeerLink(serverName string, addrs []string) string {
	var b strings.Builder
	b.WriteString(PeerLinkScheme + ":" + serverName)
	for i, a := range addrs {
		if j := strings.LastIndex(a, "/p2p/"); j >= 0 && !strings.Contains(a[j+5:], "/") {
			a = a[:j]
		}
		if i == 0 {
			b.WriteString("?addr=")
		} else {
			b.WriteString("&addr=")
		}
		b.WriteString(linkEscape(a))
	}
	return b.String()
}

// linkEscape percent-encodes a query value but keeps "/" and ":", which
// every multiaddr is full of and a query may hold as they are.
func linkEscape(s string) string {
	s = url.QueryEscape(s)
	return strings.NewReplacer("%2F", "/", "%3A", ":").Replace(s)
}

// PeerAddress is another server's address as typed or pasted.
type PeerAddress struct {
	// ServerName is the server's P2P name; PeerID its libp2p peer ID.
	ServerName string
	PeerID     string
	// Addrs are its multiaddrs, each ending in /p2p/<peer ID>.
	Addrs []string
}

// ParsePeerAddress reads a shared address: a palpo-p2p: link or one or
// more multiaddrs of one server, each ending in /p2p/<peer ID>. Its
// errors are sentences for the person who pasted it.
func ParsePeerAddress(text string) (PeerAddress, error) {
	text = strings.TrimSpace(text)
	if text == "" {
		return PeerAddress{}, errors.New("paste the address the other server's owner shared with you")
	}
	if rest, ok := strings.CutPrefix(text, PeerLinkScheme+":"); ok {
		return parsePeerLink(rest)
	}
	if !strings.HasPrefix(text, "/") {
		return PeerAddress{}, errors.New("this is not a peer-to-peer address: it starts with " + PeerLinkScheme + ": or with /ip4/, /ip6/ or /dns/")
	}
	var p PeerAddress
	for _, f := range strings.FieldsFunc(text, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' || r == '\t' }) {
		m, err := ma.NewMultiaddr(f)
		if err != nil {
			return PeerAddress{}, fmt.Errorf("%s is not a valid address (%v)", f, err)
		}
		info, err := peer.AddrInfoFromP2pAddr(m)
		if err != nil {
			return PeerAddress{}, fmt.Errorf("%s does not end in /p2p/ and the server's peer ID, so it does not say which server it is", f)
		}
		if p.PeerID != "" && p.PeerID != info.ID.String() {
			return PeerAddress{}, errors.New("these addresses belong to different servers: add them one server at a time")
		}
		if p.PeerID == "" {
			name, err := p2p.ServerNameOf(info.ID)
			if err != nil {
				return PeerAddress{}, errors.New("this address is not a Palpo server's (its peer ID holds no ed25519 key)")
			}
			p.PeerID, p.ServerName = info.ID.String(), name
		}
		if len(info.Addrs) == 0 {
			return PeerAddress{}, fmt.Errorf("%s has a peer ID but no address to reach it at", f)
		}
		p.Addrs = append(p.Addrs, m.String())
	}
	return p, nil
}

func parsePeerLink(rest string) (PeerAddress, error) {
	name, query, _ := strings.Cut(rest, "?")
	name = strings.TrimSpace(name)
	id, err := p2p.PeerIDOf(name)
	if err != nil {
		return PeerAddress{}, errors.New("the link does not name a peer-to-peer server: the part after " + PeerLinkScheme + ": must be a name ending in " + servername.Suffix + ", copied exactly")
	}
	values, err := url.ParseQuery(query)
	if err != nil {
		return PeerAddress{}, fmt.Errorf("the link is damaged (%v): copy it again", err)
	}
	p := PeerAddress{ServerName: name, PeerID: id.String()}
	for _, a := range values["addr"] {
		m, err := ma.NewMultiaddr(a)
		if err != nil {
			return PeerAddress{}, fmt.Errorf("the link's address %s is not valid (%v)", a, err)
		}
		if pid, err := m.ValueForProtocol(ma.P_P2P); err == nil && pid != id.String() {
			return PeerAddress{}, fmt.Errorf("the link's address %s belongs to another server than %s", a, name)
		}
		if _, err := m.ValueForProtocol(ma.P_P2P); err != nil {
			m = m.Encapsulate(ma.StringCast("/p2p/" + id.String()))
		}
		p.Addrs = append(p.Addrs, m.String())
	}
	if len(p.Addrs) == 0 {
		return PeerAddress{}, errors.New("the link has no address to reach the server at: ask for the link again while that server runs")
	}
	return p, nil
}

// ShareableAddrs drops the addresses nobody else could use (loopback and
// IPv6 link-local), unless nothing else is left: then this computer is
// all there is (two Palpos on one computer, tests).
func ShareableAddrs(addrs []string) []string {
	var out []string
	for _, a := range addrs {
		m, err := ma.NewMultiaddr(a)
		if err != nil || manet.IsIPLoopback(m) || manet.IsIP6LinkLocal(m) {
			continue
		}
		out = append(out, a)
	}
	if len(out) == 0 {
		return slices.Clone(addrs)
	}
	return out
}

// PeerShare is this server's address to give another server's owner.
type PeerShare struct {
	ServerName string
	// Addrs are the multiaddrs worth sharing, each ending in /p2p/<peer ID>.
	Addrs []string
	// Link is PeerLink of them.
	Link string
}

// PeerToPeerShare is this server's peer-to-peer address, or
// ErrPeerToPeerOff when its node is not running.
func (a *App) PeerToPeerShare() (PeerShare, error) {
	srv := a.Server()
	if srv == nil || srv.P2P() == nil {
		return PeerShare{}, ErrPeerToPeerOff
	}
	n := srv.P2P()
	addrs := ShareableAddrs(n.Addrs())
	if len(addrs) == 0 {
		return PeerShare{}, errors.New("peer to peer has no address yet: it is still starting, try again in a moment")
	}
	return PeerShare{ServerName: n.ServerName(), Addrs: addrs, Link: PeerLink(n.ServerName(), addrs)}, nil
}

// PeerAdded is how adding a peer went.
type PeerAdded struct {
	// Saved is set when the addresses were new to p2p.static_peers.
	Saved bool
	// Running is whether peer to peer runs (else only saved).
	Running bool
	// ConnectErr is why connecting failed (nil: connected, or not
	// running).
	ConnectErr error
}

// AddPeer keeps p's addresses in p2p.static_peers (so the server
// connects at every start) and, with peer to peer running, connects to
// it now. err is for what stopped the saving.
func (a *App) AddPeer(ctx context.Context, p PeerAddress) (PeerAdded, error) {
	var out PeerAdded
	if own, err := a.PeerToPeerName(); err == nil && p.ServerName == own {
		return out, errors.New("this is this server's own address: paste the other server's")
	}
	cur := a.Config().P2P.StaticPeers
	peers := slices.Clone(cur)
	for _, m := range p.Addrs {
		if !slices.Contains(peers, m) {
			peers = append(peers, m)
		}
	}
	if len(peers) != len(cur) {
		if err := a.editConfig(tomlEdit{"p2p.static_peers", tomlStrings(peers), func(c *config.Config) bool { return slices.Equal(c.P2P.StaticPeers, peers) }}); err != nil {
			return out, err
		}
		out.Saved = true
		a.log.Info("peer-to-peer server added", "server", p.ServerName)
	}
	srv := a.Server()
	if srv == nil || srv.P2P() == nil {
		return out, nil
	}
	out.Running = true
	ctx, cancel := context.WithTimeout(ctx, peerConnectTimeout)
	defer cancel()
	out.ConnectErr = srv.P2P().Connect(ctx, p.Addrs...)
	return out, nil
}

// The edits that switch peer to peer on and off.
var (
	p2pOn  = tomlEdit{"p2p.enabled", "true", func(c *config.Config) bool { return c.P2P.Enabled }}
	p2pOff = tomlEdit{"p2p.enabled", "false", func(c *config.Config) bool { return !c.P2P.Enabled }}
)
