// Package testserver starts a complete Palpo server in-process on a random
// loopback port with a temporary data directory, for tests that drive it
// with a real Matrix client library.
package testserver

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"

	"github.com/palpo-im/palpo-desktop/server"
	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/config"
)

// Server is a running test server.
type Server struct {
	*server.Server
	// URL is the server's base URL, such as http://127.0.0.1:41234.
	URL string
	// DataDir is the temporary data directory; it survives Restart.
	DataDir string
	// Config is the configuration the server runs with.
	Config *config.Config
	// FederationURL is the federation listener's base URL, such as
	// https://127.0.0.1:41235, when federation is enabled (see Federated).
	FederationURL string

	t     testing.TB
	logs  *lockedBuffer
	setup func(*server.Server)
}

// Option adjusts the test server's config before it starts.
type Option func(*config.Config)

// New starts a server and stops it when the test ends. Its log is printed
// only if the test fails.
func New(t testing.TB, opts ...Option) *Server {
	t.Helper()
	return NewWithSetup(t, nil, opts...)
}

// NewWithSetup is New with setup run on the built server before it starts,
// at every start (Restart and Up too): for seams that must be set before
// the server listens, such as the federation resolver.
func NewWithSetup(t testing.TB, setup func(*server.Server), opts ...Option) *Server {
	t.Helper()
	return newIn(t, t.TempDir(), defaultConfig(), opts, setup)
}

func defaultConfig() *config.Config {
	cfg := config.Default()
	cfg.Listen = []string{"127.0.0.1:0"}
	// Generous rate limits, so tests that log in often are not slowed down;
	// tests of the limits themselves set their own.
	generous := config.RateLimit{PerSecond: 1000, Burst: 1000}
	cfg.RateLimits = config.RateLimits{LoginPerAddress: generous, LoginPerAccount: generous, RegisterPerAddress: generous}
	return cfg
}

func newIn(t testing.TB, dataDir string, cfg *config.Config, opts []Option, setup func(*server.Server)) *Server {
	t.Helper()
	for _, o := range opts {
		o(cfg)
	}
	s := &Server{DataDir: dataDir, Config: cfg, t: t, logs: &lockedBuffer{}, setup: setup}
	s.start()
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("server log:\n%s", s.logs.String())
		}
	})
	return s
}

func (s *Server) start() {
	s.t.Helper()
	log := slog.New(slog.NewTextHandler(s.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := server.New(context.Background(), s.Config, s.DataDir, log)
	if err != nil {
		s.t.Fatalf("start test server: %v", err)
	}
	if s.setup != nil {
		s.setup(srv)
	}
	if err := srv.Start(); err != nil {
		s.t.Fatalf("start test server: %v", err)
	}
	s.Server = srv
	s.URL = "http://" + srv.Addrs()[0].String()
	if addr := srv.Federation().Addr(); addr != nil {
		s.FederationURL = "https://" + addr.String()
	}
}

func (s *Server) stop() {
	if s.Server == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Server.Shutdown(ctx); err != nil {
		s.t.Errorf("stop test server: %v", err)
	}
	s.Server = nil
}

// Down stops the server, keeping its data directory, as a computer that
// was switched off; Up starts it again.
func (s *Server) Down() {
	s.t.Helper()
	s.stop()
}

// Up starts a server stopped by Down.
func (s *Server) Up() {
	s.t.Helper()
	s.start()
}

// Restart stops the server and starts it again on the same data directory,
// as a person closing and reopening the app would (the port may change).
func (s *Server) Restart() {
	s.t.Helper()
	s.stop()
	s.start()
}

// Client returns a mautrix client for the server with no user logged in.
func (s *Server) Client() *mautrix.Client {
	s.t.Helper()
	c, err := mautrix.NewClient(s.URL, "", "")
	if err != nil {
		s.t.Fatal(err)
	}
	return c
}

// DefaultPassword is the password RegisterUser gives accounts.
const DefaultPassword = "correct horse battery staple"

// RegisterUser creates an account directly through the accounts service
// (not through /register, so tests of other endpoints do not depend on it)
// and returns a client logged in as it, on a new device.
func (s *Server) RegisterUser(localpart string) *mautrix.Client {
	s.t.Helper()
	return s.registerUser(localpart, false)
}

// RegisterAdmin is RegisterUser for an admin account.
func (s *Server) RegisterAdmin(localpart string) *mautrix.Client {
	s.t.Helper()
	return s.registerUser(localpart, true)
}

func (s *Server) registerUser(localpart string, admin bool) *mautrix.Client {
	s.t.Helper()
	res, err := s.Accounts().CreateAccount(context.Background(), accounts.NewAccount{
		Localpart: localpart, Password: DefaultPassword, Admin: admin, ByAdmin: true,
		Login: &accounts.SessionParams{DisplayName: "test device"},
	})
	if err != nil {
		s.t.Fatalf("register %s: %v", localpart, err)
	}
	c, err := mautrix.NewClient(s.URL, res.UserID, res.AccessToken)
	if err != nil {
		s.t.Fatal(err)
	}
	c.DeviceID = res.DeviceID
	return c
}

// Login logs an existing user in on a new device through /login.
func (s *Server) Login(localpart, password string) *mautrix.Client {
	s.t.Helper()
	c := s.Client()
	_, err := c.Login(context.Background(), &mautrix.ReqLogin{
		Type:             mautrix.AuthTypePassword,
		Identifier:       mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: localpart},
		Password:         password,
		StoreCredentials: true,
	})
	if err != nil {
		s.t.Fatalf("login %s: %v", localpart, err)
	}
	return c
}

// Logs returns everything the server has logged so far.
func (s *Server) Logs() string { return s.logs.String() }

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
