package p2p

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	routedhost "github.com/libp2p/go-libp2p/p2p/host/routed"
	libp2phttp "github.com/libp2p/go-libp2p/p2p/http"
	gostream "github.com/libp2p/go-libp2p/p2p/net/gostream"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/palpo-im/palpo-desktop/p2p/servername"
	"github.com/palpo-im/palpo-desktop/server/config"
)

// HTTPProtocol is the libp2p protocol federation requests travel on:
// HTTP/1.1 over a stream, as go-libp2p's p2p/http speaks it, so the peer
// on the other end is authenticated by the connection's security
// handshake (its peer ID is its key).
const HTTPProtocol = libp2phttp.ProtocolIDForMultistreamSelect

// MDNSService is the multicast DNS service name Palpos announce on the
// home network; only Palpos answer it.
const MDNSService = "_palpo-matrix._udp"

// staticRetry is how often a configured static peer that is not
// connected is dialled again.
const staticRetry = 30 * time.Second

// Node is this server's libp2p side: built by New, started by Start.
type Node struct {
	// HeaderTimeout and IdleTimeout bound inbound HTTP requests as on the
	// TCP listeners (the server sets them from the http config).
	HeaderTimeout time.Duration
	IdleTimeout   time.Duration
	// Options are extra libp2p options appended to Palpo's (tests use
	// them to force reachability or to restrict addresses).
	Options []libp2p.Option

	cfg  config.P2P
	key  crypto.PrivKey
	id   peer.ID
	name string
	log  *slog.Logger

	mu      sync.Mutex
	basic   host.Host // the libp2p host
	host    host.Host // basic, or basic routed through the DHT
	dht     *dht.IpfsDHT
	mdns    mdns.Service
	http    *http.Server
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	started bool

	// The configured peers, parsed once by New.
	relays, bootstrap, static []peer.AddrInfo
}

// New builds the node for the server whose signing key is priv; it starts
// nothing. The multiaddrs of cfg are parsed here, so a bad one is reported
// before anything runs.
func New(cfg config.P2P, priv ed25519.PrivateKey, log *slog.Logger) (*Node, error) {
	key, err := crypto.UnmarshalEd25519PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("p2p identity from the signing key: %w", err)
	}
	pid, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("p2p identity from the signing key: %w", err)
	}
	for _, a := range cfg.Listen {
		if _, err := ma.NewMultiaddr(a); err != nil {
			return nil, fmt.Errorf("p2p.listen %q: %w", a, err)
		}
	}
	n := &Node{
		HeaderTimeout: 30 * time.Second,
		IdleTimeout:   2 * time.Minute,
		cfg:           cfg,
		key:           key,
		id:            pid,
		name:          servername.FromKey(priv.Public().(ed25519.PublicKey)),
		log:           log.With("component", "p2p"),
	}
	for _, l := range []struct {
		key  string
		list []string
		into *[]peer.AddrInfo
	}{{"bootstrap_peers", cfg.BootstrapPeers, &n.bootstrap}, {"relays", cfg.Relays, &n.relays}, {"static_peers", cfg.StaticPeers, &n.static}} {
		if *l.into, err = addrInfos(l.list); err != nil {
			return nil, fmt.Errorf("p2p.%s: %w", l.key, err)
		}
	}
	return n, nil
}

// addrInfos parses multiaddrs with /p2p/<peer ID>, merging addresses of
// the same peer.
func addrInfos(list []string) ([]peer.AddrInfo, error) {
	var mas []ma.Multiaddr
	for _, s := range list {
		m, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", s, err)
		}
		mas = append(mas, m)
	}
	infos, err := peer.AddrInfosFromP2pAddrs(mas...)
	if err != nil {
		return nil, fmt.Errorf("%w (each address needs /p2p/<peer ID> at the end)", err)
	}
	return infos, nil
}

// PeerID is this node's libp2p peer ID (the signing key).
func (n *Node) PeerID() peer.ID { return n.id }

// ServerName is the P2P server name of this node's key. It is the
// server's name only when the server runs under a P2P name (a server with
// a domain that also speaks P2P keeps its domain).
func (n *Node) ServerName() string { return n.name }

// PeerIDOf is the peer ID a P2P server name stands for.
func PeerIDOf(serverName string) (peer.ID, error) {
	pub, err := servername.Parse(serverName)
	if err != nil {
		return "", err
	}
	key, err := crypto.UnmarshalEd25519PublicKey(pub)
	if err != nil {
		return "", err
	}
	return peer.IDFromPublicKey(key)
}

// ServerNameOf is the P2P server name of a peer ID, or an error when the
// peer's key is not ed25519 (no Palpo's).
func ServerNameOf(id peer.ID) (string, error) {
	key, err := id.ExtractPublicKey()
	if err != nil {
		return "", fmt.Errorf("peer %s: %w", id, err)
	}
	if key.Type() != crypto.Ed25519 {
		return "", fmt.Errorf("peer %s has no ed25519 key", id)
	}
	raw, err := key.Raw()
	if err != nil {
		return "", err
	}
	return servername.FromKey(ed25519.PublicKey(raw)), nil
}

// Start opens the libp2p host on the configured addresses and serves
// handler (the federation router) over HTTPProtocol, then starts
// discovery: mDNS, the DHT through the bootstrap peers, the static peers,
// and auto-relay through the configured relays.
func (n *Node) Start(handler http.Handler) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.started {
		return errors.New("p2p node already started")
	}
	relays, bootstrap := n.relays, n.bootstrap
	opts := []libp2p.Option{
		libp2p.Identity(n.key),
		libp2p.ListenAddrStrings(n.cfg.Listen...),
		libp2p.UserAgent("palpo"),
		// Nothing reads libp2p's Prometheus metrics in Palpo.
		libp2p.DisableMetrics(),
		libp2p.EnableHolePunching(),
		libp2p.EnableAutoNATv2(),
	}
	if n.cfg.PortMapping {
		opts = append(opts, libp2p.NATPortMap())
	}
	if len(relays) > 0 {
		opts = append(opts, libp2p.EnableAutoRelayWithStaticRelays(relays))
	}
	if n.cfg.RelayService {
		opts = append(opts, libp2p.EnableRelayService(), libp2p.EnableNATService())
	}
	opts = append(opts, n.Options...)
	h, err := libp2p.New(opts...)
	if err != nil {
		return fmt.Errorf("start libp2p on %v: %w (is another program using the port? change p2p.listen in palpo.toml)", n.cfg.Listen, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.basic, n.host, n.cancel = h, h, cancel
	fail := func(err error) error {
		n.closeLocked()
		return err
	}
	if n.cfg.DHT && len(bootstrap) > 0 {
		d, err := dht.New(h, dht.Mode(dht.ModeAuto), dht.BootstrapPeers(bootstrap...))
		if err != nil {
			return fail(fmt.Errorf("start the DHT: %w", err))
		}
		n.dht = d
		// A destination with no known address is looked up in the DHT.
		n.host = routedhost.Wrap(h, d)
		if err := d.Bootstrap(ctx); err != nil {
			return fail(fmt.Errorf("bootstrap the DHT: %w", err))
		}
	}
	ln, err := gostream.Listen(h, HTTPProtocol, gostream.IgnoreEOF())
	if err != nil {
		return fail(fmt.Errorf("serve federation over libp2p: %w", err))
	}
	n.http = &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: n.HeaderTimeout,
		IdleTimeout:       n.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(n.log.Handler(), slog.LevelWarn),
	}
	srv := n.http
	n.wg.Go(func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("federation over libp2p stopped", "error", err)
		}
	})
	if n.cfg.MDNS {
		n.mdns = mdns.NewMdnsService(h, MDNSService, &mdnsNotifee{n: n, ctx: ctx})
		if err := n.mdns.Start(); err != nil {
			return fail(fmt.Errorf("start mDNS discovery: %w (set p2p.mdns = false to go without)", err))
		}
	}
	// Static peers are kept connected; relays are dialled at start too:
	// AutoNAT needs a peer to ask before it can find this node
	// unreachable, which is when auto-relay reserves a slot. A peer listed
	// as both is kept once.
	kept := map[peer.ID]bool{}
	keep := func(pis []peer.AddrInfo, tag string) {
		for _, pi := range pis {
			h.Peerstore().AddAddrs(pi.ID, pi.Addrs, peerstore.PermanentAddrTTL)
			h.ConnManager().Protect(pi.ID, tag)
			if !kept[pi.ID] {
				kept[pi.ID] = true
				n.wg.Go(func() { n.keepConnected(ctx, pi) })
			}
		}
	}
	keep(n.static, "palpo-static")
	keep(relays, "palpo-relay")
	n.started = true
	n.log.Info("peer-to-peer federation listening", "peer_id", n.id.String(), "addrs", fmt.Sprint(h.Network().ListenAddresses()))
	return nil
}

// keepConnected dials a static peer and dials it again whenever it is
// not connected.
func (n *Node) keepConnected(ctx context.Context, pi peer.AddrInfo) {
	t := time.NewTicker(staticRetry)
	defer t.Stop()
	for {
		h := n.hostOrNil()
		if h == nil {
			return
		}
		if h.Network().Connectedness(pi.ID) != network.Connected {
			cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			if err := h.Connect(cctx, pi); err != nil && ctx.Err() == nil {
				n.log.Debug("static peer not reached", "peer_id", pi.ID.String(), "error", err)
			}
			cancel()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

type mdnsNotifee struct {
	n   *Node
	ctx context.Context
}

// HandlePeerFound connects to a Palpo found on the home network, so it is
// one hop away when a room needs it.
func (m *mdnsNotifee) HandlePeerFound(pi peer.AddrInfo) {
	h := m.n.hostOrNil()
	if h == nil || pi.ID == m.n.id {
		return
	}
	h.Peerstore().AddAddrs(pi.ID, pi.Addrs, peerstore.TempAddrTTL)
	ctx, cancel := context.WithTimeout(m.ctx, 20*time.Second)
	defer cancel()
	if err := h.Connect(ctx, pi); err != nil {
		m.n.log.Debug("peer found by mDNS not reached", "peer_id", pi.ID.String(), "error", err)
		return
	}
	m.n.log.Debug("peer found by mDNS", "peer_id", pi.ID.String())
}

func (n *Node) hostOrNil() host.Host {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.host
}

// Connect dials a peer at the given multiaddrs (with /p2p/<peer ID>) and
// keeps the addresses for later requests: for a peer added by hand.
func (n *Node) Connect(ctx context.Context, addrs ...string) error {
	h := n.hostOrNil()
	if h == nil {
		return errors.New("peer-to-peer federation is not running")
	}
	infos, err := addrInfos(addrs)
	if err != nil {
		return err
	}
	var errs []error
	for _, pi := range infos {
		h.Peerstore().AddAddrs(pi.ID, pi.Addrs, peerstore.PermanentAddrTTL)
		if err := h.Connect(ctx, pi); err != nil {
			errs = append(errs, fmt.Errorf("connect to %s: %w", pi.ID, err))
		}
	}
	return errors.Join(errs...)
}

// Addrs are the multiaddrs other peers can dial this node at, each ending
// in /p2p/<peer ID>: what a person shares with a friend.
func (n *Node) Addrs() []string {
	h := n.hostOrNil()
	if h == nil {
		return nil
	}
	var out []string
	for _, a := range h.Addrs() {
		out = append(out, a.Encapsulate(ma.StringCast("/p2p/"+n.id.String())).String())
	}
	slices.Sort(out)
	return out
}

// Stop closes the HTTP server (in-flight requests may finish until ctx
// ends), discovery, the DHT and the host.
func (n *Node) Stop(ctx context.Context) error {
	n.mu.Lock()
	srv := n.http
	n.mu.Unlock()
	var err error
	if srv != nil {
		if err = srv.Shutdown(ctx); err != nil {
			srv.Close()
		}
	}
	n.mu.Lock()
	n.closeLocked()
	n.mu.Unlock()
	n.wg.Wait()
	return err
}

func (n *Node) closeLocked() {
	if n.cancel != nil {
		n.cancel()
	}
	if n.http != nil {
		n.http.Close()
	}
	if n.mdns != nil {
		n.mdns.Close()
	}
	if n.dht != nil {
		n.dht.Close()
	}
	if n.basic != nil {
		n.basic.Close()
	}
	n.http, n.mdns, n.dht, n.basic, n.host, n.cancel = nil, nil, nil, nil, nil, nil
	n.started = false
}

// Transport is the federation transport for destination: libp2p for a
// P2P server name, nil (the default, TCP+TLS) for any other name. It is
// what the federation service's SetTransport takes.
func (n *Node) Transport(destination string) http.RoundTripper {
	if !servername.IsP2P(destination) {
		return nil
	}
	return streamTransport{n: n}
}

// streamTransport carries one federation request over a new libp2p
// stream to the peer the destination's name stands for, as go-libp2p's
// p2p/http does (HTTP/1.1, one request per stream), but also over a
// relayed connection: a server behind a NAT that hole punching cannot
// pass is reached through its relay, within the relay's limits.
type streamTransport struct{ n *Node }

// dialTimeout bounds finding and connecting to a peer (a DHT lookup, a
// relay) and opening the stream.
const dialTimeout = 30 * time.Second

func (t streamTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	dest := r.URL.Host
	pid, err := PeerIDOf(dest)
	if err != nil {
		return nil, err
	}
	h := t.n.hostOrNil()
	if h == nil {
		return nil, fmt.Errorf("%s: peer-to-peer federation is not running", dest)
	}
	ctx := network.WithAllowLimitedConn(r.Context(), "palpo federation")
	dialCtx, cancel := context.WithTimeout(ctx, dialTimeout)
	s, err := h.NewStream(dialCtx, pid, HTTPProtocol)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("reach %s over libp2p: %w", dest, err)
	}
	if d, ok := r.Context().Deadline(); ok {
		s.SetDeadline(d)
	}
	stop := context.AfterFunc(r.Context(), func() { s.Reset() })
	// One request per stream: the caller's request is not changed.
	req := r.Clone(r.Context())
	req.Close = true
	go func() {
		if err := req.Write(s); err != nil {
			s.Reset()
			return
		}
		s.CloseWrite()
	}()
	resp, err := http.ReadResponse(bufio.NewReader(s), r)
	if err != nil {
		stop()
		s.Reset()
		return nil, fmt.Errorf("reach %s over libp2p: %w", dest, err)
	}
	resp.Body = &streamBody{ReadCloser: resp.Body, s: s, stop: stop}
	return resp, nil
}

// streamBody closes the stream with the response body.
type streamBody struct {
	io.ReadCloser
	s    network.Stream
	stop func() bool
}

func (b *streamBody) Close() error {
	b.stop()
	err := b.ReadCloser.Close()
	b.s.Close()
	return err
}
