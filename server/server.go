// Package server assembles the homeserver: it opens the database, loads the
// signing key, builds the router with every API, and runs the HTTP listeners.
// It has no GUI imports; the desktop app and `palpo serve` both drive it.
package server

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	mfed "maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/p2p"
	"github.com/palpo-im/palpo-desktop/p2p/servername"
	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/admin"
	"github.com/palpo-im/palpo-desktop/server/clientapi"
	"github.com/palpo-im/palpo-desktop/server/config"
	"github.com/palpo-im/palpo-desktop/server/e2ee"
	"github.com/palpo-im/palpo-desktop/server/federation"
	"github.com/palpo-im/palpo-desktop/server/federation/devicelists"
	"github.com/palpo-im/palpo-desktop/server/federation/edus"
	"github.com/palpo-im/palpo-desktop/server/federation/outbound"
	"github.com/palpo-im/palpo-desktop/server/federation/selfcheck"
	"github.com/palpo-im/palpo-desktop/server/httpapi"
	"github.com/palpo-im/palpo-desktop/server/identity"
	"github.com/palpo-im/palpo-desktop/server/keybackup"
	"github.com/palpo-im/palpo-desktop/server/media"
	"github.com/palpo-im/palpo-desktop/server/notices"
	"github.com/palpo-im/palpo-desktop/server/oauth"
	"github.com/palpo-im/palpo-desktop/server/portmap"
	"github.com/palpo-im/palpo-desktop/server/push"
	"github.com/palpo-im/palpo-desktop/server/rooms"
	"github.com/palpo-im/palpo-desktop/server/search"
	"github.com/palpo-im/palpo-desktop/server/slidingsync"
	"github.com/palpo-im/palpo-desktop/server/storage"
	"github.com/palpo-im/palpo-desktop/server/syncer"
	"github.com/palpo-im/palpo-desktop/server/todevice"
)

// Server is one running homeserver.
type Server struct {
	cfg     *config.Config
	dataDir string
	log     *slog.Logger

	db       *storage.DB
	key      *mfed.SigningKey
	accounts *accounts.Service
	rooms    *rooms.Service
	sync     *syncer.Service
	push     *push.Service
	media    *media.Service
	fed      *federation.Service
	outbound *outbound.Sender
	devices  *devicelists.Service
	oauth    *oauth.Service
	p2p      *p2p.Node
	router   *httpapi.Router
	portmap  *portmap.Mapper

	mu        sync.Mutex
	listeners []net.Listener
	http      *http.Server
	// httpsListener is the client API over TLS ([https]), nil when off;
	// it is served by https.
	httpsListener net.Listener
	https         *http.Server
	serveErr      chan error
	started       time.Time
	closed        bool

	// noAccountsHint is logged by Start when there are no accounts yet.
	noAccountsHint string
}

// NoAccountsHint is what a new server with no accounts logs: how to make
// the first one with the command line program cmd.
func NoAccountsHint(cmd string) string {
	return "No accounts yet: create the first one with `" + cmd + " user add NAME --admin`, " +
		"or make an invite code with `" + cmd + " invite create`"
}

// DefaultNoAccountsHint is NoAccountsHint for the installed program.
var DefaultNoAccountsHint = NoAccountsHint("palpo")

// SetNoAccountsHint replaces what Start logs when there are no accounts
// yet (the desktop app points at its Users tab; the command line names
// the binary it was started as). Call it before Start.
func (s *Server) SetNoAccountsHint(hint string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.noAccountsHint = hint
}

// New opens the server's state in dataDir (database, signing key) and builds
// its routes, without listening yet. New must start nothing (no listener, no
// background work): the command line builds a Server without Start to run an
// admin operation with every service hook wired while the server is stopped
// (app/usercli.go); background work belongs in Start.
func New(ctx context.Context, cfg *config.Config, dataDir string, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid config: %w", err)
	}
	key, err := identity.LoadOrCreate(dataDir)
	if err != nil {
		return nil, err
	}
	// Checked before the database records the name: a wrong name must
	// not become permanent.
	if err := checkP2PName(cfg, key, dataDir); err != nil {
		return nil, err
	}
	dbPath := cfg.Database.Path
	if !filepath.IsAbs(dbPath) {
		dbPath = filepath.Join(dataDir, dbPath)
	}
	db, err := storage.Open(ctx, dbPath, cfg.Database.Readers)
	if err != nil {
		return nil, err
	}
	if err := CheckServerName(ctx, db, cfg.ServerName); err != nil {
		db.Close()
		return nil, err
	}
	s := &Server{cfg: cfg, dataDir: dataDir, log: log, db: db, key: key}
	s.accounts = accounts.New(db, cfg, log)
	s.rooms = rooms.New(db, cfg.ServerName, key, log)
	s.rooms.UserDirectorySearchAll = cfg.UserDirectory.SearchAllUsers
	s.rooms.DefaultVersion = id.RoomVersion(cfg.DefaultRoomVersion)
	// Accounts and rooms need each other: deactivation leaves rooms, a
	// profile change updates member events, and member events carry the
	// profile. The interfaces keep the packages independent.
	s.accounts.Rooms = s.rooms
	s.accounts.Profiles = s.rooms
	s.rooms.Profiles = s.accounts
	// An event's notification counts are stored in its own transaction
	// (the push service's preparer), so syncs woken by its commit read
	// them.
	s.push = push.New(db, s.rooms, cfg.ServerName, log)
	s.sync = syncer.New(db, s.rooms, log)
	s.push.AccountData = s.sync
	keys := e2ee.New(db, s.accounts, s.sync.Notifier(), log)
	s.accounts.DeviceEvents = accounts.DevicesObservers{keys, s.push}
	s.sync.OnReadReceipt = s.push.ReadReceiptMoved
	s.media = media.New(db, cfg, dataDir, log)
	notes := notices.New(db, s.accounts, s.rooms, s.sync, cfg.ServerNotices, log)
	s.rooms.LeaveGuard = notes.CheckLeave
	toDevice := todevice.New(db, cfg.ServerName, s.sync.Notifier(), log)
	s.router = httpapi.NewRouter(log, cfg.HTTP.MaxRequestBytes)
	s.router.SetBodyTimeout(time.Duration(cfg.HTTP.BodyTimeoutSeconds) * time.Second)
	// The OAuth pages give the client API the URL where a person approves
	// what an OAuth session asks (m.oauth).
	var approvalURL func(r *http.Request, action string) string
	if cfg.OAuth.Enabled {
		s.oauth = oauth.New(db, s.accounts, log.With("component", "oauth"))
		approvalURL = oauth.Register(s.router, s.oauth, cfg.PublicBaseURL, cfg.ServerName).AccountURL
	}
	clientapi.Register(s.router, clientapi.Deps{
		ServerName:    cfg.ServerName,
		BaseURL:       s.ClientURL,
		PublicBaseURL: cfg.PublicBaseURL,
		Accounts:      s.accounts,
		Rooms:         s.rooms,
		Sync:          s.sync,
		SlidingSync:   slidingsync.New(db, s.rooms, s.sync, log),
		Push:          s.push,
		ToDevice:      toDevice,
		KeyBackup:     keybackup.New(db),
		E2EE:          keys,
		Media:         s.media,
		Search:        search.New(db, s.rooms, s.sync, log),
		Support:       cfg.Support,
		Notices:       notes,
		ApprovalURL:   approvalURL,
		RemoteProfile: func(ctx context.Context, user id.UserID) (map[string]json.RawMessage, error) {
			return s.fed.QueryProfile(ctx, user)
		},
	})
	admin.Register(s.router, admin.Deps{ServerName: cfg.ServerName, Accounts: s.accounts, Media: s.media, Rooms: s.rooms, Notices: notes,
		Federation: s.FederationStatus, FederationCheck: s.FederationCheck})
	// Federation is always built (it is cheap and starts nothing); it
	// listens and connects only when enabled.
	s.fed = federation.New(federationConfig(cfg, dataDir), db, key, log)
	s.fed.SoftwareVersion = admin.Version
	s.fed.CertificatesDir = filepath.Join(dataDir, CertificatesDirName)
	s.fed.RegisterWellKnown(s.router)
	// Port mapping on the home router: built always, it does nothing
	// unless federation and federation.port_mapping are both on.
	s.portmap = portmap.New(cfg.Federation.Enabled && cfg.Federation.PortMapping.Enabled, log.With("component", "portmap"))
	applier := edus.New(db, cfg.ServerName, s.sync, s.sync.Notifier(), log)
	applier.ServerAllowed = s.rooms.ServerAllowed
	deps := federation.RoomDeps{Rooms: s.rooms, Profiles: s.accounts.Profile, EDUs: applier}
	if s.fed.Enabled() {
		// What this server's users do reaches the other servers in their
		// rooms through one persisted queue per destination.
		s.outbound = outbound.New(db, cfg.ServerName, s.fed.Client(), log.With("component", "federation-sender"))
		s.rooms.OnEvent(s.outbound.RoomEvents)
		s.sync.Ephemeral = s.outbound
		toDevice.Federation = s.outbound
		deps.Waker = s.outbound
		// End-to-end encryption keys cross servers: device list updates
		// out and in, and other servers' users' keys on demand.
		s.devices = devicelists.New(db, cfg.ServerName, keys, s.fed.Client(), s.outbound, s.fed.AllowedServer, log)
		keys.SetFederation(s.devices)
		applier.DeviceLists = s.devices
		s.devices.Register(s.fed)
		s.rooms.OnEvent(s.devices.RoomEvents)
	}
	s.fed.RegisterRooms(deps)
	s.fed.RegisterDirectory(federation.DirectoryDeps{Rooms: s.rooms, OpenIDUserInfo: s.accounts.OpenIDUserInfo})
	s.fed.RegisterMedia(s.media)
	if err := s.fed.RecordSigningKey(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if cfg.P2P.Enabled {
		node, err := p2p.New(cfg.P2P, key.Priv, log)
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("invalid config: %w", err)
		}
		node.HeaderTimeout = time.Duration(cfg.HTTP.HeaderTimeoutSeconds) * time.Second
		node.IdleTimeout = time.Duration(cfg.HTTP.IdleTimeoutSeconds) * time.Second
		s.p2p = node
		// P2P names go over libp2p; DNS names over TCP+TLS (when
		// federation.enabled) as before.
		s.fed.SetTransport(node.Transport)
	}
	return s, nil
}

// checkP2PName applies the peer-to-peer naming rule: a P2P server name is
// made from the signing key, so it must be this server's key's, and a
// server with p2p on runs under that name, unless it has a domain with
// federation on as well (then it reaches P2P servers as a gateway, under
// its domain).
func checkP2PName(cfg *config.Config, key *mfed.SigningKey, dataDir string) error {
	own := servername.FromKey(key.Priv.Public().(ed25519.PublicKey))
	keyFile := filepath.Join(dataDir, identity.KeyFileName)
	if servername.IsP2P(cfg.ServerName) && cfg.ServerName != own {
		return fmt.Errorf("server_name %q is the peer-to-peer name of another signing key; this server's key (%s) has the name %q. "+
			"Set server_name = %q in palpo.toml, or put back the signing key that name was made from",
			cfg.ServerName, keyFile, own, own)
	}
	if cfg.P2P.Enabled && !servername.IsP2P(cfg.ServerName) && !cfg.Federation.Enabled {
		return fmt.Errorf("p2p.enabled: a peer-to-peer server is named after its signing key; set server_name = %q in palpo.toml "+
			"(before any account exists: a server name never changes), or turn federation.enabled on too for a server with a domain that also reaches peer-to-peer servers", own)
	}
	return nil
}

// CertificatesDirName is the folder in the data directory where automatic
// TLS keeps certificates and the ACME account key.
const CertificatesDirName = "certificates"

// federationConfig is cfg with the federation file paths made absolute:
// relative ones are inside the data directory, like the database's.
func federationConfig(cfg *config.Config, dataDir string) *config.Config {
	c := *cfg
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dataDir, p)
	}
	c.Federation.TLSCertFile = abs(c.Federation.TLSCertFile)
	c.Federation.TLSKeyFile = abs(c.Federation.TLSKeyFile)
	c.Federation.ACME.CARootFile = abs(c.Federation.ACME.CARootFile)
	c.Federation.TrustedCAFiles = make([]string, len(cfg.Federation.TrustedCAFiles))
	for i, f := range cfg.Federation.TrustedCAFiles {
		c.Federation.TrustedCAFiles[i] = abs(f)
	}
	return &c
}

// CheckServerName records the server name in a new database and refuses to
// run an existing database under another name: every user ID, room and
// signature in it is tied to the name it was created with. The admin
// commands run the same check when they open the database directly.
func CheckServerName(ctx context.Context, db *storage.DB, name string) error {
	stored, ok, err := db.Meta(ctx, storage.MetaServerName)
	if err != nil {
		return err
	}
	if !ok {
		return db.SetMeta(ctx, storage.MetaServerName, name)
	}
	if stored != name {
		return fmt.Errorf("server_name is %q in the config, but the database %s was created for %q; "+
			"a server name can never change. Set server_name = %q in palpo.toml, or start with a new data directory",
			name, db.Path(), stored, stored)
	}
	return nil
}

// Handler is the full HTTP handler (for tests and embedding).
func (s *Server) Handler() http.Handler { return s.router }

// Routes lists every endpoint the client router serves (the client API,
// media, admin, and /.well-known).
func (s *Server) Routes() []httpapi.Route { return s.router.Routes() }

// FederationRoutes lists every endpoint the federation router serves on
// the federation listener (registered whether or not federation is on).
func (s *Server) FederationRoutes() []httpapi.Route { return s.fed.Router().Routes() }

// ServerName is the configured server name.
func (s *Server) ServerName() string { return s.cfg.ServerName }

// SigningKey is the server's ed25519 signing key.
func (s *Server) SigningKey() *mfed.SigningKey { return s.key }

// Accounts is the accounts service (for the admin tools and tests).
func (s *Server) Accounts() *accounts.Service { return s.accounts }

// OAuth is the OAuth 2.0 authorization server, nil when [oauth] is off
// (for tests).
func (s *Server) OAuth() *oauth.Service { return s.oauth }

// Rooms is the rooms service (for the admin tools and tests).
func (s *Server) Rooms() *rooms.Service { return s.rooms }

// Sync is the sync engine (for tests and the admin tools).
func (s *Server) Sync() *syncer.Service { return s.sync }

// Push is the push service (for tests).
func (s *Server) Push() *push.Service { return s.push }

// Media is the media repository (for the admin tools and tests).
func (s *Server) Media() *media.Service { return s.media }

// Federation is the federation service (its router, signed client and key
// ring), built whether or not federation is enabled.
func (s *Server) Federation() *federation.Service { return s.fed }

// Outbound is the federation sender, nil when federation is off (for tests
// and the admin tools).
func (s *Server) Outbound() *outbound.Sender { return s.outbound }

// FederationStatus is whether federation is on, where it listens, and each
// destination's queue and last error: what the admin API and the desktop
// app's Status tab show.
func (s *Server) FederationStatus(ctx context.Context) (federation.Status, error) {
	st, err := s.fed.Status(ctx, s.outbound)
	if s.portmap.Enabled() {
		pm := s.portmap.Status()
		st.PortMapping = &pm
	}
	if a := s.HTTPSAddr(); a != nil {
		st.HTTPSAddr = a.String()
	}
	if s.p2p != nil {
		p := s.p2p.Status()
		st.P2P = &p
	}
	return st, err
}

// P2P is the peer-to-peer node, nil when p2p is off (for tests and the
// desktop app).
func (s *Server) P2P() *p2p.Node { return s.p2p }

// FederationCheck runs the federation self-check for this server's name,
// delegation and signing key: what other servers find when they look this
// server up. It makes DNS and HTTPS requests to this server's own public
// name, and asks no other service.
func (s *Server) FederationCheck(ctx context.Context) ([]selfcheck.Result, error) {
	c, err := selfcheck.FromConfig(federationConfig(s.cfg, s.dataDir), s.key)
	if err != nil {
		return nil, err
	}
	return selfcheck.Run(ctx, c), nil
}

// DB is the server's database (for the admin tools and tests).
func (s *Server) DB() *storage.DB { return s.db }

// Start binds every listen address and serves on them in the background. A
// port that cannot be bound fails Start, so the user hears about it at once.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.http != nil {
		return errors.New("server already started")
	}
	if err := s.media.Start(); err != nil {
		return err
	}
	if err := s.push.Start(); err != nil {
		return fmt.Errorf("start push delivery: %w", err)
	}
	// Only a serving server needs its commits fast: a command that builds
	// the server to change one thing (palpo user add) writes no 4 MB here.
	if err := s.db.ReserveWAL(context.Background()); err != nil {
		s.log.Warn("could not grow the database's write-ahead log ahead of use; commits are slower until it has grown", "error", err)
	}
	// What a failed start has opened so far is closed again.
	var lns []net.Listener
	var httpsLn net.Listener
	fedStarted, started := false, false
	defer func() {
		if started {
			return
		}
		for _, l := range lns {
			l.Close()
		}
		if httpsLn != nil {
			httpsLn.Close()
		}
		if fedStarted {
			s.fed.Stop(context.Background())
		}
		s.push.Stop()
	}()
	for _, addr := range s.cfg.Listen {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("listen on %s: %w (is another Palpo or program using that port? change listen in palpo.toml)", addr, err)
		}
		lns = append(lns, httpapi.Listener(ln))
	}
	// The https listener is bound before federation starts: the CA's
	// TLS-ALPN-01 check is answered on it (CAs connect to port 443).
	var httpsAddr net.Addr
	if s.cfg.HTTPS.Enabled {
		ln, err := net.Listen("tcp", s.cfg.HTTPS.Listen)
		if err != nil {
			return fmt.Errorf("https listen on %s: %w (port 443 needs root or CAP_NET_BIND_SERVICE on Linux, and no other web server on it; change https.listen in palpo.toml)",
				s.cfg.HTTPS.Listen, err)
		}
		httpsLn, httpsAddr = ln, ln.Addr()
	}
	if err := s.fed.StartWith(httpsAddr); err != nil {
		return err
	}
	fedStarted = true
	if s.p2p != nil {
		if err := s.p2p.Start(s.fed.Router()); err != nil {
			return err
		}
	}
	started = true
	// Port mapping runs in the background: a router that does not answer
	// must not delay the start.
	s.portmap.Start(s.portMappingPorts())
	s.listeners = lns
	// No ReadTimeout or WriteTimeout: they would cut off long-polls (/sync)
	// and large downloads; the router bounds request bodies per request.
	s.http = &http.Server{
		Handler:           s.router,
		ReadHeaderTimeout: time.Duration(s.cfg.HTTP.HeaderTimeoutSeconds) * time.Second,
		IdleTimeout:       time.Duration(s.cfg.HTTP.IdleTimeoutSeconds) * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	httpapi.CloseUnusedOnShutdown(s.http)
	s.sync.Start()
	if s.outbound != nil {
		s.outbound.Start()
	}
	s.serveErr = make(chan error, len(lns)+1)
	s.started = time.Now()
	for _, ln := range lns {
		go func() {
			if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.serveErr <- err
			}
		}()
	}
	if httpsLn != nil {
		s.serveHTTPSLocked(httpsLn)
	}
	s.log.Info("Palpo is ready: connect your Matrix client to "+s.clientURLLocked(), "server_name", s.cfg.ServerName, "url", s.clientURLLocked())
	// A new headless server has nobody who can sign in yet: say how to fix
	// that, since registration needs an invite by default.
	if n, err := s.db.CountUsers(context.Background(), true); err == nil && n == 0 {
		hint := s.noAccountsHint
		if hint == "" {
			hint = DefaultNoAccountsHint
		}
		s.log.Info(hint)
	}
	return nil
}

// serveHTTPSLocked serves the client router over TLS on ln, with the
// federation certificate.
func (s *Server) serveHTTPSLocked(ln net.Listener) {
	// The Matrix error rewriting wraps the TLS connection from outside (as
	// on the federation listener), which hides the *tls.Conn from
	// net/http: withTLSState gives handlers r.TLS back, so that
	// /.well-known/matrix/client and the root page say https.
	s.httpsListener = httpapi.Listener(tls.NewListener(ln, s.fed.ClientTLSConfig()))
	s.https = &http.Server{
		Handler:           withTLSState(s.router),
		ConnContext:       rememberTLSConn,
		ReadHeaderTimeout: time.Duration(s.cfg.HTTP.HeaderTimeoutSeconds) * time.Second,
		IdleTimeout:       time.Duration(s.cfg.HTTP.IdleTimeoutSeconds) * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	httpapi.CloseUnusedOnShutdown(s.https)
	srv, l := s.https, s.httpsListener
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.serveErr <- err
		}
	}()
	s.log.Info("client API listening over https", "addr", ln.Addr().String())
}

type tlsConnKey struct{}

// rememberTLSConn keeps the connection's *tls.Conn in its context.
func rememberTLSConn(ctx context.Context, c net.Conn) context.Context {
	for c != nil {
		if tc, ok := c.(*tls.Conn); ok {
			return context.WithValue(ctx, tlsConnKey{}, tc)
		}
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		c = u.NetConn()
	}
	return ctx
}

// withTLSState sets r.TLS from the connection rememberTLSConn kept.
func withTLSState(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if tc, ok := r.Context().Value(tlsConnKey{}).(*tls.Conn); ok && r.TLS == nil {
			st := tc.ConnectionState()
			r.TLS = &st
		}
		h.ServeHTTP(w, r)
	})
}

// HTTPSAddr is the https listener's bound address, nil when [https] is
// off or the server is not running.
func (s *Server) HTTPSAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.httpsListener == nil {
		return nil
	}
	return s.httpsListener.Addr()
}

// Addrs returns the addresses actually bound (ports resolved).
func (s *Server) Addrs() []net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]net.Addr, len(s.listeners))
	for i, ln := range s.listeners {
		out[i] = ln.Addr()
	}
	return out
}

// Started is when Start succeeded (zero before).
func (s *Server) Started() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.started
}

// Err returns a channel that yields an error if a listener fails while
// serving.
func (s *Server) Err() <-chan error { return s.serveErr }

// ClientURL is the address a client should use: public_baseurl when set,
// otherwise derived from the first bound listener.
func (s *Server) ClientURL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.clientURLLocked()
}

func (s *Server) clientURLLocked() string {
	if s.cfg.PublicBaseURL != "" {
		return s.cfg.PublicBaseURL
	}
	addr := s.cfg.Listen[0]
	if len(s.listeners) > 0 {
		addr = s.listeners[0].Addr().String()
	}
	return BaseURLForListenAddr(addr)
}

// BaseURLForListenAddr turns a listen address into the URL a client on this
// computer should type: loopback and wildcard addresses become "localhost",
// which is what people expect to see (and what Element's docs show).
func BaseURLForListenAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + addr
	}
	if ip := net.ParseIP(host); host == "" || host == "localhost" || (ip != nil && (ip.IsLoopback() || ip.IsUnspecified())) {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// Shutdown stops accepting requests, lets in-flight ones finish until ctx
// ends, and closes the database cleanly.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	srv, httpsSrv := s.http, s.https
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	var errs []error
	// First, so the router stops forwarding to a server going away; a
	// router that does not answer is logged, not a failed shutdown.
	if err := s.portmap.Stop(ctx); err != nil {
		s.log.Warn("Port mapping not removed from the router", "error", err)
	}
	s.sync.Stop()
	if srv != nil {
		if err := srv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("http shutdown: %w", err))
			srv.Close()
		}
	}
	if httpsSrv != nil {
		if err := httpsSrv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("https shutdown: %w", err))
			httpsSrv.Close()
		}
	}
	if s.p2p != nil {
		if err := s.p2p.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("p2p shutdown: %w", err))
		}
	}
	if err := s.fed.Stop(ctx); err != nil {
		errs = append(errs, err)
	}
	if s.outbound != nil {
		// Transactions in flight are abandoned, and resent under the same
		// IDs at the next start.
		s.outbound.Stop()
		s.devices.Wait()
	}
	// After the HTTP server, so no event is being recorded while the
	// pushers store how far they got; before the database closes.
	s.push.Stop()
	s.rooms.Close()
	if err := s.db.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close database: %w", err))
	}
	return errors.Join(errs...)
}
