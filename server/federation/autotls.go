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
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3"
	"go.uber.org/zap"

	"github.com/palpo-im/palpo-desktop/server/config"
	"github.com/palpo-im/palpo-desktop/server/federation/selfcheck"
)

// CertificateStatus is the certificate the federation listener (and the
// client API's https listener) serves, as the admin API and the app show
// it.
type CertificateStatus struct {
	// Auto is true when the certificate comes from an ACME CA
	// (federation.domain), false for certificate files.
	Auto bool
	// Domain is the name the certificate is for: federation.domain, or
	// for certificate files the first name in the certificate.
	Domain string
	// CA is the ACME directory URL certificates are ordered from, ""
	// for certificate files.
	CA string
	// Issuer is the name of the certificate authority that signed the
	// certificate in use (such as "R11" for Let's Encrypt), "" when there
	// is none yet.
	Issuer string
	// NotBefore and NotAfter are the certificate in use's validity; zero
	// when there is none yet (the first order has not succeeded).
	NotBefore, NotAfter time.Time
	// RenewalDue is about when the certificate is renewed: when a third
	// of its lifetime is left, certmagic's default (the CA may suggest a
	// time near it through ACME renewal information). Zero for
	// certificate files, which Palpo does not renew, and before the first
	// certificate.
	RenewalDue time.Time
	// ExpiringSoon is true when the certificate in use expires within
	// ExpiringSoonWindow (14 days): renewal should have happened by then,
	// so it is failing, or certificate files need replacing.
	ExpiringSoon bool
	// LastObtained is when a certificate was last issued or renewed by
	// this process; zero when none was.
	LastObtained time.Time
	// LastError is why the last order or renewal failed ("" when the last
	// one succeeded), and LastErrorAt when.
	LastError   string
	LastErrorAt time.Time
}

// ExpiringSoonWindow is how close to its expiry a certificate counts as
// expiring soon: Let's Encrypt's 90-day certificates are renewed with 30
// days left, so under 14 days means renewal has been failing for weeks.
// It is the self-check's threshold, so the two never disagree.
const ExpiringSoonWindow = selfcheck.DefaultExpiryWarning

// fillFromLeaf sets what the certificate itself says.
func (st *CertificateStatus) fillFromLeaf(leaf *x509.Certificate, now time.Time) {
	st.NotBefore, st.NotAfter = leaf.NotBefore, leaf.NotAfter
	st.Issuer = leaf.Issuer.CommonName
	if st.Issuer == "" {
		st.Issuer = leaf.Issuer.String()
	}
	st.ExpiringSoon = leaf.NotAfter.Sub(now) < ExpiringSoonWindow
	if st.Domain == "" && len(leaf.DNSNames) > 0 {
		st.Domain = leaf.DNSNames[0]
	}
}

// autoTLS is the certificate manager behind federation.domain: certmagic
// with its storage in the data directory, and the port-80 listener that
// answers HTTP-01 challenges.
type autoTLS struct {
	domain string
	magic  *certmagic.Config
	cache  *certmagic.Cache
	issuer *certmagic.ACMEIssuer
	cancel context.CancelFunc
	log    *slog.Logger

	httpListener net.Listener
	httpServer   *http.Server

	mu     sync.Mutex
	status CertificateStatus
}

// newAutoTLS builds the manager; alpnAddr is the bound address of the
// listener the CA's TLS-ALPN-01 check connects to: the client API's https
// listener when there is one (the CA always connects to port 443), else
// the federation listener. Both answer it, by GetCertificate.
// certmagic's solvers are pointed at our own listeners' ports: finding the
// port in use, they leave answering to the handlers installed here instead
// of binding a listener of their own.
func (s *Service) newAutoTLS(alpnAddr net.Addr) (*autoTLS, error) {
	a := s.fed.ACME
	if s.CertificatesDir == "" {
		return nil, errors.New("federation automatic TLS: no certificates directory set")
	}
	m := &autoTLS{domain: s.fed.Domain, log: s.log.With("domain", s.fed.Domain)}
	m.status = CertificateStatus{Auto: true, Domain: s.fed.Domain, CA: a.DirectoryURL()}
	var roots *x509.CertPool
	if a.CARootFile != "" {
		pem, err := os.ReadFile(a.CARootFile)
		if err != nil {
			return nil, fmt.Errorf("federation.acme.ca_root_file: %w; name a readable PEM file, or leave it empty", err)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("federation.acme.ca_root_file %s: no PEM certificate in it", a.CARootFile)
		}
	}
	nop := zap.NewNop()
	m.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert:   func(certmagic.Certificate) (*certmagic.Config, error) { return m.magic, nil },
		RenewCheckInterval: s.RenewCheckInterval,
		Logger:             nop,
	})
	m.magic = certmagic.New(m.cache, certmagic.Config{
		Storage: &certmagic.FileStorage{Path: s.CertificatesDir},
		OnEvent: m.onEvent,
		Logger:  nop,
	})
	fedHost, fedPort, _ := net.SplitHostPort(alpnAddr.String())
	tmpl := certmagic.ACMEIssuer{
		CA:                      a.DirectoryURL(),
		Email:                   a.Email,
		Agreed:                  true,
		DisableHTTPChallenge:    !a.HasChallenge(config.ChallengeHTTP01),
		DisableTLSALPNChallenge: !a.HasChallenge(config.ChallengeTLSALPN01),
		ListenHost:              fedHost,
		TrustedRoots:            roots,
		Logger:                  nop,
	}
	tmpl.AltTLSALPNPort, _ = strconv.Atoi(fedPort)
	if a.HasChallenge(config.ChallengeHTTP01) {
		ln, err := net.Listen("tcp", a.HTTPChallengeListen)
		if err != nil {
			return nil, fmt.Errorf("federation.acme.http_challenge_listen on %s: %w (port 80 needs root or CAP_NET_BIND_SERVICE on Linux; "+
				"change http_challenge_listen, or set federation.acme.challenges = [\"tls-alpn-01\"])", a.HTTPChallengeListen, err)
		}
		m.httpListener = ln
		host, port, _ := net.SplitHostPort(ln.Addr().String())
		tmpl.AltHTTPPort, _ = strconv.Atoi(port)
		if !a.HasChallenge(config.ChallengeTLSALPN01) {
			tmpl.ListenHost = host
		}
	}
	m.issuer = certmagic.NewACMEIssuer(m.magic, tmpl)
	m.magic.Issuers = []certmagic.Issuer{m.issuer}
	if m.httpListener != nil {
		m.httpServer = &http.Server{
			Handler:           m.issuer.HTTPChallengeHandler(http.HandlerFunc(m.redirect)),
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          slog.NewLogLogger(m.log.Handler(), slog.LevelWarn),
		}
		srv, ln := m.httpServer, m.httpListener
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				m.log.Error("ACME HTTP challenge listener failed", "error", err)
			}
		}()
	}
	return m, nil
}

// redirect answers everything on the port-80 listener but challenges.
func (m *autoTLS) redirect(w http.ResponseWriter, r *http.Request) {
	http.Redirect(w, r, "https://"+m.domain+r.URL.RequestURI(), http.StatusMovedPermanently)
}

// start loads the certificate kept in storage and, when there is none or
// it is due, orders one in the background. Asynchronous on purpose: with
// the CA down a start must not hang, and a certificate already in storage
// keeps being served while certmagic retries (with back-off) and renews.
func (m *autoTLS) start() error {
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	// A certificate in storage is loaded now, before the listener serves:
	// ManageAsync loads it in a goroutine, and a connection in between
	// would find none. No certificate yet is not an error here.
	_, _ = m.magic.CacheManagedCertificate(ctx, m.domain)
	if err := m.magic.ManageAsync(ctx, []string{m.domain}); err != nil {
		cancel()
		return fmt.Errorf("federation automatic TLS for %s: %w", m.domain, err)
	}
	return nil
}

// tlsConfig serves the managed certificate; acme-tls/1 lets the CA's
// TLS-ALPN-01 check reach GetCertificate's challenge answer.
func (m *autoTLS) tlsConfig() *tls.Config {
	return &tls.Config{
		GetCertificate: m.magic.GetCertificate,
		NextProtos:     []string{"http/1.1", acmez.ACMETLS1Protocol},
		MinVersion:     tls.VersionTLS12,
	}
}

func (m *autoTLS) stop(ctx context.Context) {
	if m.cancel != nil {
		m.cancel()
	}
	if m.httpServer != nil {
		if err := m.httpServer.Shutdown(ctx); err != nil {
			m.httpServer.Close()
		}
	}
	m.cache.Stop()
}

// onEvent records and logs what happens to the certificate; a failed
// order or renewal is kept for CertificateStatus.
func (m *autoTLS) onEvent(_ context.Context, event string, data map[string]any) error {
	switch event {
	case "cert_obtained":
		renewal, _ := data["renewal"].(bool)
		m.mu.Lock()
		m.status.LastObtained = time.Now()
		m.status.LastError, m.status.LastErrorAt = "", time.Time{}
		m.mu.Unlock()
		m.log.Info("federation certificate obtained", "renewal", renewal, "issuer", data["issuer"])
	case "cert_failed":
		renewal, _ := data["renewal"].(bool)
		msg := fmt.Sprint(data["error"])
		m.mu.Lock()
		m.status.LastError, m.status.LastErrorAt = msg, time.Now()
		m.mu.Unlock()
		if renewal {
			// The certificate in use keeps being served until it expires.
			m.log.Error("certificate renewal failed; the current certificate is served until it expires, and renewal is retried in the background",
				"not_after", m.certificateStatus().NotAfter, "error", msg)
		} else {
			m.log.Error("federation certificate order failed; retrying in the background", "error", msg)
		}
	}
	return nil
}

func (m *autoTLS) certificateStatus() CertificateStatus {
	m.mu.Lock()
	st := m.status
	m.mu.Unlock()
	var leaf *x509.Certificate
	for _, c := range m.cache.AllMatchingCertificates(m.domain) {
		if c.Leaf != nil && (leaf == nil || c.Leaf.NotAfter.After(leaf.NotAfter)) {
			leaf = c.Leaf
		}
	}
	if leaf != nil {
		st.fillFromLeaf(leaf, time.Now())
		lifetime := leaf.NotAfter.Sub(leaf.NotBefore)
		st.RenewalDue = leaf.NotAfter.Add(-time.Duration(float64(lifetime) * certmagic.DefaultRenewalWindowRatio))
	}
	return st
}
