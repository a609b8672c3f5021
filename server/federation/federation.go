// Package federation is Palpo's server-server API foundation: the
// federation listener and its router, inbound request authentication
// (X-Matrix), the signed outbound client with its per-destination transport
// seam, and the key ring (our keys, other servers' keys cached in the
// database, the notary endpoints). Rooms ingestion and the outbound queue
// build on it.
package federation

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"maunium.net/go/mautrix"
	mfed "maunium.net/go/mautrix/federation"

	"github.com/palpo-im/palpo-desktop/p2p/servername"
	"github.com/palpo-im/palpo-desktop/server/config"
	"github.com/palpo-im/palpo-desktop/server/httpapi"
	"github.com/palpo-im/palpo-desktop/server/storage"
)

// Service is the federation foundation of one server.
type Service struct {
	// SoftwareVersion is the version /_matrix/federation/v1/version
	// reports (the server sets it to the admin API's version; this package
	// cannot import admin, which will show federation status).
	SoftwareVersion string
	// CertificatesDir is where automatic TLS (federation.domain) keeps
	// its certificates and ACME account key: inside the data directory, so
	// backups carry them. The server sets it.
	CertificatesDir string
	// RenewCheckInterval is how often automatic TLS checks whether the
	// certificate is due for renewal; zero means certmagic's default (10
	// minutes). Tests with short-lived certificates shorten it. Set it
	// before Start.
	RenewCheckInterval time.Duration

	cfg    *config.Config
	fed    config.Federation
	db     *storage.DB
	key    *mfed.SigningKey
	log    *slog.Logger
	router *httpapi.Router
	client *mfed.Client
	// resolving is the client's server discovery, for SetResolver.
	resolving *mfed.ServerResolvingTransport
	keys      *KeyRing
	acl       serverACL
	// tlsErr is why the outbound trust could not be built (an unreadable
	// trusted_ca_files entry); Start reports it.
	tlsErr error

	transportMu sync.RWMutex
	choose      func(destination string) http.RoundTripper

	mu       sync.Mutex
	listener net.Listener
	http     *http.Server
	auto     *autoTLS
	// fileCert is the certificate from tls_cert_file, for
	// CertificateStatus.
	fileCert *x509.Certificate
	// serverTLS is what the federation and https listeners serve: the
	// certificate source's TLS config, nil until it is started.
	serverTLS *tls.Config
}

// New builds the service and starts nothing (no listener, no outbound
// connection).
func New(cfg *config.Config, db *storage.DB, key *mfed.SigningKey, log *slog.Logger) *Service {
	s := &Service{
		cfg: cfg,
		fed: cfg.Federation,
		db:  db,
		key: key,
		log: log.With("component", "federation"),
		acl: newServerACL(cfg.Federation.AllowServers, cfg.Federation.DenyServers),
	}
	s.router = httpapi.NewRouter(s.log, cfg.HTTP.MaxRequestBytes)
	s.router.SetBodyTimeout(time.Duration(cfg.HTTP.BodyTimeoutSeconds) * time.Second)
	s.client = s.newClient()
	s.keys = newKeyRing(s)
	s.router.Handle(http.MethodGet, "/_matrix/federation/v1/version", s.version)
	s.keys.register(s.router)
	return s
}

// Enabled reports whether this server talks to other servers at all:
// federation.enabled (TCP+TLS with DNS-named servers) or p2p.enabled
// (libp2p with peer-to-peer names).
func (s *Service) Enabled() bool { return s.fed.Enabled || s.cfg.P2P.Enabled }

// tlsListener reports whether the TCP+TLS federation listener runs: with
// federation on and a DNS server name (nobody can look a P2P name up to
// reach a listener).
func (s *Service) tlsListener() bool {
	return s.fed.Enabled && !servername.IsP2P(s.cfg.ServerName)
}

// ServerName is this server's name.
func (s *Service) ServerName() string { return s.cfg.ServerName }

// Router is the federation mux, served on the federation listener.
func (s *Service) Router() *httpapi.Router { return s.router }

// Client is the signed outbound client. With federation disabled its
// requests fail before any connection is made.
func (s *Service) Client() *mfed.Client { return s.client }

// Keys is the key ring: our keys and other servers' keys.
func (s *Service) Keys() *KeyRing { return s.keys }

// AllowedServer applies allow_servers and deny_servers. Our own name is
// always allowed.
func (s *Service) AllowedServer(name string) bool {
	return name == s.cfg.ServerName || s.acl.allowed(name)
}

// RecordSigningKey remembers the signing key in use, so that after a key
// rotation the previous key is served in old_verify_keys. Server start-up
// calls it; it is cheap and idempotent.
func (s *Service) RecordSigningKey(ctx context.Context) error {
	return s.keys.recordOwnKey(ctx)
}

// Start binds the federation listener (TLS from the configured certificate
// files or federation.domain's automatic certificate) and serves Router()
// on it in the background. It does nothing when federation is disabled or
// the server has a P2P name (the p2p package serves Router() over libp2p).
func (s *Service) Start() error { return s.StartWith(nil) }

// StartWith is Start for a server that also serves the client API over
// https at httpsAddr (nil: it does not): the certificate is made ready
// for that listener even without a federation listener (ClientTLSConfig),
// and the CA's TLS-ALPN-01 check is pointed at it, since CAs connect to
// port 443.
func (s *Service) StartWith(httpsAddr net.Addr) error {
	if !s.tlsListener() {
		if s.Enabled() {
			if err := s.keys.recordOwnKey(context.Background()); err != nil {
				return err
			}
		}
		if httpsAddr == nil {
			return nil
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.http != nil || s.serverTLS != nil {
		return errors.New("federation listener already started")
	}
	if !s.tlsListener() {
		return s.startCertificatesLocked(httpsAddr)
	}
	if s.tlsErr != nil {
		return fmt.Errorf("%w; fix or remove the file in palpo.toml", s.tlsErr)
	}
	if err := s.keys.recordOwnKey(context.Background()); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", s.fed.Listen)
	if err != nil {
		return fmt.Errorf("federation listen on %s: %w (is another program using that port? change federation.listen in palpo.toml)", s.fed.Listen, err)
	}
	alpn := ln.Addr()
	if httpsAddr != nil {
		alpn = httpsAddr
	}
	if err := s.startCertificatesLocked(alpn); err != nil {
		ln.Close()
		return err
	}
	// The Matrix error rewriting wraps the TLS connection from outside, so
	// it sees net/http's plain-text answers before they are encrypted.
	s.listener = httpapi.Listener(tls.NewListener(ln, s.serverTLS))
	s.http = &http.Server{
		Handler:           s.router,
		ReadHeaderTimeout: time.Duration(s.cfg.HTTP.HeaderTimeoutSeconds) * time.Second,
		IdleTimeout:       time.Duration(s.cfg.HTTP.IdleTimeoutSeconds) * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	httpapi.CloseUnusedOnShutdown(s.http)
	srv, l := s.http, s.listener
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("federation listener failed", "error", err)
		}
	}()
	s.log.Info("federation listening", "addr", ln.Addr().String(), "server_name", s.cfg.ServerName)
	return nil
}

// startCertificatesLocked makes the certificate ready: automatic TLS for
// federation.domain (answering TLS-ALPN-01 at alpnAddr), or the
// certificate files, which win when set.
func (s *Service) startCertificatesLocked(alpnAddr net.Addr) error {
	if s.fed.AutoTLS() {
		auto, err := s.newAutoTLS(alpnAddr)
		if err == nil {
			err = auto.start()
			if err != nil {
				auto.stop(context.Background())
			}
		}
		if err != nil {
			return err
		}
		s.auto = auto
		s.serverTLS = auto.tlsConfig()
		return nil
	}
	cert, err := tls.LoadX509KeyPair(s.fed.TLSCertFile, s.fed.TLSKeyFile)
	if err != nil {
		return fmt.Errorf("federation TLS certificate (federation.tls_cert_file %s, tls_key_file %s): %w; check that both are PEM files and belong together",
			s.fed.TLSCertFile, s.fed.TLSKeyFile, err)
	}
	s.fileCert = cert.Leaf
	s.serverTLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if left := time.Until(cert.Leaf.NotAfter); left < ExpiringSoonWindow {
		// Palpo does not renew certificate files: say so while there is
		// time to act.
		s.log.Warn("the certificate in federation.tls_cert_file expires soon; renew it and restart Palpo, or set federation.domain for automatic certificates",
			"file", s.fed.TLSCertFile, "not_after", cert.Leaf.NotAfter)
	}
	return nil
}

// ClientTLSConfig is the TLS config for the client API's https listener:
// the same certificate as federation's. nil before StartWith was given an
// https address (or federation started).
func (s *Service) ClientTLSConfig() *tls.Config {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.serverTLS == nil {
		return nil
	}
	return s.serverTLS.Clone()
}

// CertificateStatus is the federation listener's certificate: automatic
// (federation.domain) with its expiry and last order error, or from files.
// The zero value when the listener is not running.
func (s *Service) CertificateStatus() CertificateStatus {
	s.mu.Lock()
	auto, file := s.auto, s.fileCert
	s.mu.Unlock()
	if auto != nil {
		return auto.certificateStatus()
	}
	var st CertificateStatus
	if file != nil {
		st.fillFromLeaf(file, time.Now())
	}
	return st
}

// Addr is the federation listener's bound address, or nil when it is not
// running.
func (s *Service) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.listener == nil {
		return nil
	}
	return s.listener.Addr()
}

// Stop closes the listener, lets in-flight requests finish until ctx ends,
// and closes idle outbound connections.
func (s *Service) Stop(ctx context.Context) error {
	s.mu.Lock()
	srv := s.http
	s.http, s.listener = nil, nil
	auto := s.auto
	s.auto, s.serverTLS, s.fileCert = nil, nil, nil
	s.mu.Unlock()
	if auto != nil {
		auto.stop(ctx)
	}
	var err error
	if srv != nil {
		if err = srv.Shutdown(ctx); err != nil {
			srv.Close()
			err = fmt.Errorf("federation shutdown: %w", err)
		}
	}
	s.client.HTTP.CloseIdleConnections()
	return err
}

func (s *Service) version(w http.ResponseWriter, _ *http.Request) error {
	v := s.SoftwareVersion
	if v == "" {
		v = "0.0.0-unknown"
	}
	return httpapi.WriteJSON(w, http.StatusOK, &mfed.RespServerVersion{
		Server: mfed.ServerVersion{Name: "Palpo", Version: v},
	})
}

// RegisterWellKnown serves /.well-known/matrix/server on the client router:
// the delegation target from federation.well_known_server, or M_NOT_FOUND
// when none is configured.
func (s *Service) RegisterWellKnown(rt *httpapi.Router) {
	rt.Handle(http.MethodGet, "/.well-known/matrix/server", func(w http.ResponseWriter, _ *http.Request) error {
		if s.fed.WellKnownServer == "" {
			return mautrix.MNotFound.WithMessage("This server does not delegate federation (federation.well_known_server is not set)").WithStatus(http.StatusNotFound)
		}
		return httpapi.WriteJSON(w, http.StatusOK, &mfed.RespWellKnown{Server: s.fed.WellKnownServer})
	})
}
