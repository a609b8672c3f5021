package federation

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"go.mau.fi/util/exhttp"
	mfed "maunium.net/go/mautrix/federation"

	"github.com/palpo-im/palpo-desktop/p2p/servername"
)

// ErrDisabled is what every outbound request answers while federation is
// off: no connection is made.
var ErrDisabled = errors.New("federation is disabled (federation.enabled = false)")

// ErrNoP2P is what a request to a peer-to-peer server name answers when
// no libp2p transport carries it (p2p.enabled = false): such a name is
// never looked up in DNS.
var ErrNoP2P = errors.New("peer-to-peer federation is off (p2p.enabled = false), so peer-to-peer server names cannot be reached")

// ErrDNSDisabled is what a request to a DNS-named server answers on a
// server with only peer-to-peer federation on.
var ErrDNSDisabled = errors.New("federation over the internet is off (federation.enabled = false); only peer-to-peer servers are reached")

// SetTransport replaces the transport for some destinations: choose is
// asked for each outbound request's destination server name and returns
// the http.RoundTripper to carry it, or nil for the default (TCP+TLS after
// server discovery). The request it gets has the URL scheme
// "matrix-federation" and the destination server name as its host; it is
// already signed. libp2p uses it for P2P names, and tests use it to cut a
// server off (a transport that drops or delays requests). nil restores the
// default for every destination.
func (s *Service) SetTransport(choose func(destination string) http.RoundTripper) {
	s.transportMu.Lock()
	defer s.transportMu.Unlock()
	s.choose = choose
}

// SetResolver makes outbound federation look host names up (addresses,
// SRV records, the hosts of .well-known lookups) with r instead of the
// system's resolver: tests give it a resolver that answers 127.0.0.1 for
// names such as "a.palpo.test". Call it before Start; nil restores the
// system's resolver. It bypasses no check: the certificate must still be
// valid for the name, and private addresses still need
// allow_private_addresses.
func (s *Service) SetResolver(r *net.Resolver) {
	s.client.Dialer.Resolver = r
	s.resolving.ResolveOpts.DNSClient = r
}

func (s *Service) chosenTransport(destination string) http.RoundTripper {
	s.transportMu.RLock()
	choose := s.choose
	s.transportMu.RUnlock()
	if choose == nil {
		return nil
	}
	return choose(destination)
}

// newClient builds the signed outbound client: mautrix's client with its
// server-resolving transport behind our per-destination chooser.
func (s *Service) newClient() *mfed.Client {
	tlsCfg, tlsErr := s.outboundTLS()
	settings := exhttp.SensibleClientSettings.
		WithTLSConfig(tlsCfg).
		// Generous: a send_join of a large room takes the resident server
		// a while to answer.
		WithResponseHeaderTimeout(2 * time.Minute)
	c := mfed.NewClient(s.cfg.ServerName, s.key, nil, settings)
	c.UserAgent = "Palpo"
	if s.fed.AllowPrivateAddresses {
		c.AllowIP = func(ip net.IP) bool { return !ip.IsUnspecified() && !ip.IsMulticast() }
	} else {
		c.AllowIP = mfed.DefaultAllowIP
	}
	// Checked before a request is even built: denied servers are never
	// contacted. With federation off every request stops in the transport
	// below with ErrDisabled, which says why.
	c.AllowServer = func(name string) bool { return !s.Enabled() || s.AllowedServer(name) }
	srt, ok := c.HTTP.Transport.(*mfed.ServerResolvingTransport)
	if !ok {
		panic("federation: mautrix client without a server-resolving transport")
	}
	// .well-known lookups go through the same address filter and trust.
	srt.ResolveOpts = &mfed.ResolveServerNameOpts{HTTPClient: c.ExtHTTP}
	s.resolving = srt
	c.HTTP.Transport = &chooserTransport{s: s, fallback: srt, tlsErr: tlsErr}
	s.tlsErr = tlsErr
	return c
}

// outboundTLS is the trust for outbound connections: the system's roots
// plus federation.trusted_ca_files, or no verification at all when
// verify_certificates is false. An unreadable CA file makes every
// outbound request fail with the reason (New cannot fail; Start logs it).
func (s *Service) outboundTLS() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if !s.fed.VerifyCertificates {
		cfg.InsecureSkipVerify = true
		return cfg, nil
	}
	if len(s.fed.TrustedCAFiles) == 0 {
		return cfg, nil
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	for _, f := range s.fed.TrustedCAFiles {
		pem, err := os.ReadFile(f)
		if err != nil {
			return cfg, fmt.Errorf("federation.trusted_ca_files: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return cfg, fmt.Errorf("federation.trusted_ca_files: %s holds no PEM certificate", f)
		}
	}
	cfg.RootCAs = pool
	return cfg, nil
}

// chooserTransport asks the chooser for a destination's transport first
// and falls back to server discovery plus TCP+TLS.
type chooserTransport struct {
	s        *Service
	fallback *mfed.ServerResolvingTransport
	tlsErr   error
}

func (t *chooserTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if !t.s.Enabled() {
		return nil, ErrDisabled
	}
	if r.Body != nil && r.Body != http.NoBody && r.Header.Get("Content-Type") == "" {
		// mautrix's client sends JSON bodies without saying so; other
		// servers (Dendrite) refuse a body of no media type.
		r = r.Clone(r.Context())
		r.Header.Set("Content-Type", "application/json")
	}
	if rt := t.s.chosenTransport(r.URL.Host); rt != nil {
		return rt.RoundTrip(r)
	}
	if servername.IsP2P(r.URL.Host) {
		return nil, fmt.Errorf("%s: %w", r.URL.Host, ErrNoP2P)
	}
	if !t.s.fed.Enabled {
		return nil, fmt.Errorf("%s: %w", r.URL.Host, ErrDNSDisabled)
	}
	if t.tlsErr != nil {
		return nil, t.tlsErr
	}
	return t.fallback.RoundTrip(r)
}

// CloseIdleConnections lets http.Client.CloseIdleConnections reach the
// default transport's pool.
func (t *chooserTransport) CloseIdleConnections() {
	t.fallback.Transport.CloseIdleConnections()
}
