package testserver

import (
	"bytes"
	"crypto/x509"
	"log"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

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

	ca  *ca.CAImpl
	log *lockedBuffer
}

// NewPebble starts pebble and its DNS server until the test ends.
// Validation is real but does not sleep (PEBBLE_VA_NOSLEEP), so the test
// must not run in parallel with others.
func NewPebble(t *testing.T) *Pebble {
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

	p := &Pebble{RootFile: filepath.Join(certs, "pebble.minica.pem"), HTTPPort: FreePort(t), TLSPort: FreePort(t), log: &lockedBuffer{}}
	logger := log.New(p.log, "pebble ", log.LstdFlags)
	store := db.NewMemoryStore()
	p.ca = ca.New(logger, store, "", "ecdsa", 0, 1, map[string]ca.Profile{"default": {Description: "test"}})
	v := va.New(logger, p.HTTPPort, p.TLSPort, false, dnsAddr, store)
	w := wfe.New(logger, store, v, p.ca, []string{"pebble.letsencrypt.org"}, false, false, 1, 1)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: w.Handler(), ErrorLog: logger}
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
