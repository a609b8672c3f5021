package testserver

import (
	"bytes"
	"context"
	"crypto/x509"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
	"github.com/miekg/dns"

	"github.com/palpo-im/palpo-desktop/server/config"
)

// Pebble is an ACME test CA (Let's Encrypt's pebble) running in the test
// process, with a DNS server that resolves every name to 127.0.0.1, so its
// validation authority really connects to the server under test over
// loopback: HTTP-01 to HTTPPort, TLS-ALPN-01 to TLSPort.
type Pebble struct {
	// DirectoryURL is the ACME directory; RootFile is the PEM root its
	// own HTTPS certificate chains to (federation.acme.ca_root_file).
	DirectoryURL string
	RootFile     string
	// HTTPPort and TLSPort are where validation connects on 127.0.0.1.
	HTTPPort, TLSPort int
	// IssuedRootFile is a PEM file of the root pebble's certificates
	// chain to, for federation.trusted_ca_files.
	IssuedRootFile string

	ca      *ca.CAImpl
	log     *lockedBuffer
	dnsAddr string
	refuse  atomic.Bool
}

// PebbleOptions changes how the test CA issues.
type PebbleOptions struct {
	// Validity is how long certificates are valid; zero is pebble's
	// default (90 days). Pebble issues to the second.
	Validity time.Duration
}

// NewPebble starts pebble and its DNS server until the test ends.
// Validation is real but does not sleep (PEBBLE_VA_NOSLEEP), so the test
// must not run in parallel with others.
func NewPebble(t *testing.T) *Pebble {
	t.Helper()
	return NewPebbleWith(t, PebbleOptions{})
}

// NewPebbleWith is NewPebble with options.
func NewPebbleWith(t *testing.T, opts PebbleOptions) *Pebble {
	t.Helper()
	t.Setenv("PEBBLE_VA_NOSLEEP", "1")
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/letsencrypt/pebble/v2").Output()
	if err != nil {
		t.Fatalf("find pebble's module (for its test certificates): %v", err)
	}
	certs := filepath.Join(strings.TrimSpace(string(out)), "test", "certs")

	// pebble asks over TCP; UDP on the same port too, for other resolvers.
	dnsLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dnsAddr := dnsLn.Addr().String()
	dnsTCP := &dns.Server{Listener: dnsLn, Handler: dns.HandlerFunc(loopbackDNS)}
	go dnsTCP.ActivateAndServe()
	t.Cleanup(func() { dnsTCP.Shutdown() })
	if dnsConn, err := net.ListenPacket("udp", dnsAddr); err == nil {
		dnsUDP := &dns.Server{PacketConn: dnsConn, Handler: dns.HandlerFunc(loopbackDNS)}
		go dnsUDP.ActivateAndServe()
		t.Cleanup(func() { dnsUDP.Shutdown() })
	}

	p := &Pebble{RootFile: filepath.Join(certs, "pebble.minica.pem"), HTTPPort: FreePort(t), TLSPort: FreePort(t), log: &lockedBuffer{}, dnsAddr: dnsAddr}
	logger := log.New(p.log, "pebble ", log.LstdFlags)
	store := db.NewMemoryStore()
	p.ca = ca.New(logger, store, "", "ecdsa", 0, 1, map[string]ca.Profile{"default": {Description: "test", ValidityPeriod: uint64(opts.Validity / time.Second)}})
	p.IssuedRootFile = filepath.Join(t.TempDir(), "pebble-issued-root.pem")
	if err := os.WriteFile(p.IssuedRootFile, p.ca.GetRootCert(0).PEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	v := va.New(logger, p.HTTPPort, p.TLSPort, false, dnsAddr, store)
	w := wfe.New(logger, store, v, p.ca, []string{"pebble.letsencrypt.org"}, false, false, 1, 1)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	acme := w.Handler()
	srv := &http.Server{ErrorLog: logger, Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if p.refuse.Load() {
			http.Error(rw, "refusing (test)", http.StatusServiceUnavailable)
			return
		}
		acme.ServeHTTP(rw, r)
	})}
	go srv.ServeTLS(ln, filepath.Join(certs, "localhost", "cert.pem"), filepath.Join(certs, "localhost", "key.pem"))
	t.Cleanup(func() {
		srv.Close()
		if t.Failed() {
			t.Logf("pebble log:\n%s", p.log.String())
		}
	})
	p.DirectoryURL = "https://localhost:" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port) + "/dir"
	return p
}

// loopbackDNS answers every A question with 127.0.0.1 (and AAAA with
// nothing).
func loopbackDNS(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	for _, q := range r.Question {
		if q.Qtype == dns.TypeA {
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(127, 0, 0, 1)})
		}
	}
	w.WriteMsg(m)
}

// Refuse makes the CA answer every request with 503 (on) or serve again
// (off): a CA that is down.
func (p *Pebble) Refuse(on bool) { p.refuse.Store(on) }

// Resolver answers every host name with 127.0.0.1, through the test DNS
// server (for federation.Service.SetResolver).
func (p *Pebble) Resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, p.dnsAddr)
	}}
}

// Roots trusts the roots pebble issues certificates under.
func (p *Pebble) Roots() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(p.ca.GetRootCert(0).PEM())
	return pool
}

// Log is what pebble logged so far.
func (p *Pebble) Log() string { return p.log.String() }

// Validations counts the challenges pebble validated (one per order
// here), and HTTPValidations those answered over HTTP-01.
func (p *Pebble) Validations() int {
	return bytes.Count([]byte(p.log.String()), []byte("Pulled a task from the Tasks queue"))
}

// HTTPValidations counts pebble's HTTP-01 requests.
func (p *Pebble) HTTPValidations() int {
	return bytes.Count([]byte(p.log.String()), []byte("Attempting to validate w/ HTTP"))
}

// AutoTLS turns federation on with automatic TLS from p for domain, with
// only the given challenges: the federation listener on 127.0.0.1:TLSPort,
// the HTTP-01 listener on 127.0.0.1:HTTPPort, server_name
// "<domain>:<TLSPort>".
func AutoTLS(p *Pebble, domain string, challenges ...string) Option {
	return func(cfg *config.Config) {
		cfg.ServerName = domain + ":" + strconv.Itoa(p.TLSPort)
		cfg.Federation.Enabled = true
		cfg.Federation.Listen = "127.0.0.1:" + strconv.Itoa(p.TLSPort)
		cfg.Federation.Domain = domain
		cfg.Federation.AllowPrivateAddresses = true
		cfg.Federation.ACME.CA = p.DirectoryURL
		cfg.Federation.ACME.CARootFile = p.RootFile
		cfg.Federation.ACME.Challenges = challenges
		cfg.Federation.ACME.HTTPChallengeListen = "127.0.0.1:" + strconv.Itoa(p.HTTPPort)
	}
}

// HTTPSOn serves the client API over https on 127.0.0.1:port, with the
// federation certificate.
func HTTPSOn(port int) Option {
	return func(cfg *config.Config) {
		cfg.HTTPS.Enabled = true
		cfg.HTTPS.Listen = "127.0.0.1:" + strconv.Itoa(port)
	}
}
