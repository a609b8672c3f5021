package selfcheck_test

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	mfed "maunium.net/go/mautrix/federation"

	"github.com/palpo-im/palpo-desktop/server/federation/selfcheck"
	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
)

// zone is a fake DNS zone served to a net.Resolver through its Dial hook,
// so the checks meet real DNS answers without the network.
type zone struct {
	a   map[string][]net.IP   // "example.test." -> addresses
	srv map[string][]*net.SRV // "_matrix-fed._tcp.example.test." -> records
}

func (z *zone) resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(context.Context, string, string) (net.Conn, error) {
		client, server := net.Pipe()
		go z.serve(server)
		return client, nil
	}}
}

// serve answers DNS over a stream (two-byte length prefix per message).
func (z *zone) serve(c net.Conn) {
	defer c.Close()
	for {
		var n uint16
		if err := binary.Read(c, binary.BigEndian, &n); err != nil {
			return
		}
		buf := make([]byte, n)
		if _, err := io.ReadFull(c, buf); err != nil {
			return
		}
		var p dnsmessage.Parser
		h, err := p.Start(buf)
		if err != nil {
			return
		}
		q, err := p.Question()
		if err != nil {
			return
		}
		name := strings.ToLower(q.Name.String())
		b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true})
		b.EnableCompression()
		_ = b.StartQuestions()
		_ = b.Question(q)
		_ = b.StartAnswers()
		hdr := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}
		found := false
		for _, ip := range z.a[name] {
			found = true
			if v4 := ip.To4(); v4 != nil && q.Type == dnsmessage.TypeA {
				_ = b.AResource(hdr, dnsmessage.AResource{A: [4]byte(v4)})
			} else if v4 == nil && q.Type == dnsmessage.TypeAAAA {
				_ = b.AAAAResource(hdr, dnsmessage.AAAAResource{AAAA: [16]byte(ip.To16())})
			}
		}
		for _, s := range z.srv[name] {
			found = true
			if q.Type == dnsmessage.TypeSRV {
				_ = b.SRVResource(hdr, dnsmessage.SRVResource{Priority: s.Priority, Weight: s.Weight, Port: s.Port, Target: dnsmessage.MustNewName(s.Target)})
			}
		}
		msg, err := b.Finish()
		if err != nil {
			return
		}
		if !found {
			// NXDOMAIN: rebuild the header with the error code.
			msg[3] = msg[3]&0xF0 | byte(dnsmessage.RCodeNameError)
		}
		out := binary.BigEndian.AppendUint16(nil, uint16(len(msg)))
		if _, err := c.Write(append(out, msg...)); err != nil {
			return
		}
	}
}

// network maps public addresses ("203.0.113.5:8448") to loopback
// listeners; anything else is a closed port.
type network struct {
	mu     sync.Mutex
	routes map[string]string
	closed string
}

func newNetwork(t *testing.T) *network {
	return &network{routes: map[string]string{}, closed: "127.0.0.1:" + strconv.Itoa(testserver.FreePort(t))}
}

func (n *network) dial(ctx context.Context, network, address string) (net.Conn, error) {
	n.mu.Lock()
	to, ok := n.routes[address]
	n.mu.Unlock()
	if !ok {
		to = n.closed
	}
	var d net.Dialer
	return d.DialContext(ctx, network, to)
}

type fixture struct {
	t    *testing.T
	ca   *testserver.CA
	zone *zone
	net  *network
	key  *mfed.SigningKey
	cfg  selfcheck.Config
}

const (
	domain   = "example.test"
	publicIP = "203.0.113.5"
)

func newFixture(t *testing.T) *fixture {
	f := &fixture{t: t, ca: testserver.NewCA(t), zone: &zone{a: map[string][]net.IP{}, srv: map[string][]*net.SRV{}}, net: newNetwork(t), key: mfed.GenerateSigningKey()}
	f.cfg = selfcheck.Config{
		ServerName:     domain,
		KeyID:          f.key.ID,
		PublicKey:      f.key.Pub,
		RootCAs:        f.ca.Pool(),
		Resolver:       f.zone.resolver(),
		Dial:           f.net.dial,
		Now:            time.Now,
		LocalAddresses: func() ([]net.IP, error) { return []net.IP{net.ParseIP(publicIP)}, nil },
		Timeout:        5 * time.Second,
		// The test CA issues certificates for a day.
		ExpiryWarning: time.Hour,
	}
	return f
}

// tlsServer starts an HTTPS server on loopback with a certificate for
// hosts, reachable at the public address pub ("ip:port").
func (f *fixture) tlsServer(pub string, h http.Handler, hosts ...string) {
	certFile, keyFile := f.ca.Issue(hosts...)
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		f.t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	// The connect check opens and closes a bare TCP connection.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	f.t.Cleanup(srv.Close)
	f.net.mu.Lock()
	f.net.routes[pub] = srv.Listener.Addr().String()
	f.net.mu.Unlock()
}

// federation serves the key endpoint with key for serverName.
func federation(key *mfed.SigningKey, serverName string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /_matrix/key/v2/server", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(key.GenerateKeyResponse(serverName, nil))
	})
	return mux
}

func wellKnown(server string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/matrix/server", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{"m.server": server})
	})
	return mux
}

// good sets up the usual working case: the domain at publicIP, Palpo's
// federation listener on 8448 there, no delegation.
func (f *fixture) good() {
	f.zone.a[domain+"."] = []net.IP{net.ParseIP(publicIP)}
	f.tlsServer(publicIP+":8448", federation(f.key, domain), domain)
}

func (f *fixture) run() []selfcheck.Result {
	f.t.Helper()
	res := selfcheck.Run(context.Background(), f.cfg)
	for _, r := range res {
		f.t.Logf("%-12s %-4s %s | %s", r.Check, r.Status, r.Message, r.Fix)
		if r.Message == "" || r.Status != selfcheck.OK && r.Fix == "" {
			f.t.Errorf("%s: a result needs a message, and a fix unless ok", r.Check)
		}
	}
	return res
}

func find(t *testing.T, res []selfcheck.Result, check string) selfcheck.Result {
	t.Helper()
	for _, r := range res {
		if r.Check == check {
			return r
		}
	}
	t.Fatalf("no %s result", check)
	return selfcheck.Result{}
}

func expect(t *testing.T, res []selfcheck.Result, check string, st selfcheck.Status, contains string) {
	t.Helper()
	r := find(t, res, check)
	if r.Status != st || !strings.Contains(r.Message, contains) {
		t.Errorf("%s: got %s %q, want %s containing %q", check, r.Status, r.Message, st, contains)
	}
}

func TestAllGood(t *testing.T) {
	f := newFixture(t)
	f.good()
	res := f.run()
	if selfcheck.Failed(res) {
		t.Fatal("failed")
	}
	for _, c := range []string{selfcheck.CheckDNS, selfcheck.CheckWellKnown, selfcheck.CheckSRV, selfcheck.CheckRoute, selfcheck.CheckAddress, selfcheck.CheckConnect, selfcheck.CheckCertificate, selfcheck.CheckKey} {
		if r := find(t, res, c); r.Status != selfcheck.OK {
			t.Errorf("%s: %s", c, r.Status)
		}
	}
	expect(t, res, selfcheck.CheckRoute, selfcheck.OK, domain+":8448")
	expect(t, res, selfcheck.CheckConnect, selfcheck.OK, publicIP+":8448")
}

func TestAllGoodThroughDelegationAndSRV(t *testing.T) {
	f := newFixture(t)
	f.zone.a[domain+"."] = []net.IP{net.ParseIP("198.51.100.7")} // the web host
	f.zone.a["matrix."+domain+"."] = []net.IP{net.ParseIP(publicIP)}
	f.tlsServer("198.51.100.7:443", wellKnown("matrix."+domain+":443"), domain)
	f.tlsServer(publicIP+":443", federation(f.key, domain), "matrix."+domain)
	f.cfg.WellKnownServer = "matrix." + domain + ":443"
	res := f.run()
	if selfcheck.Failed(res) {
		t.Fatal("failed")
	}
	expect(t, res, selfcheck.CheckWellKnown, selfcheck.OK, "delegates federation to matrix."+domain+":443")
	expect(t, res, selfcheck.CheckRoute, selfcheck.OK, "expect a certificate for matrix."+domain)

	// SRV without a port in the delegation.
	g := newFixture(t)
	g.zone.a[domain+"."] = []net.IP{net.ParseIP(publicIP)}
	g.zone.a["fed."+domain+"."] = []net.IP{net.ParseIP(publicIP)}
	g.zone.srv["_matrix-fed._tcp."+domain+"."] = []*net.SRV{{Target: "fed." + domain + ".", Port: 9000}}
	g.tlsServer(publicIP+":9000", federation(g.key, domain), domain)
	res = g.run()
	if selfcheck.Failed(res) {
		t.Fatal("failed")
	}
	expect(t, res, selfcheck.CheckSRV, selfcheck.OK, "fed."+domain+":9000")
}

func TestWrongDNS(t *testing.T) {
	f := newFixture(t)
	f.good()
	f.zone.a[domain+"."] = []net.IP{net.ParseIP("198.51.100.99")}
	f.cfg.PublicAddress = func(context.Context) (net.IP, error) { return net.ParseIP(publicIP), nil }
	res := f.run()
	expect(t, res, selfcheck.CheckAddress, selfcheck.Fail, "public address is "+publicIP)
	expect(t, res, selfcheck.CheckConnect, selfcheck.Fail, "Nothing answers")

	// Without a public address lookup it can only warn.
	f.cfg.PublicAddress = nil
	res = f.run()
	expect(t, res, selfcheck.CheckAddress, selfcheck.Warn, "not an address of this computer")

	// No record at all.
	delete(f.zone.a, domain+".")
	res = f.run()
	expect(t, res, selfcheck.CheckDNS, selfcheck.Fail, "no A or AAAA record")
	if len(res) != 1 {
		t.Errorf("later checks ran without DNS: %v", res)
	}
}

func TestClosedPort(t *testing.T) {
	f := newFixture(t)
	f.zone.a[domain+"."] = []net.IP{net.ParseIP(publicIP)}
	res := f.run()
	expect(t, res, selfcheck.CheckConnect, selfcheck.Fail, publicIP+":8448")
	if r := find(t, res, selfcheck.CheckConnect); !strings.Contains(r.Fix, "8448") {
		t.Errorf("fix does not name the port: %s", r.Fix)
	}
	if selfcheck.Failed(res) != true {
		t.Error("not failed")
	}
}

func TestExpiredAndExpiringCertificate(t *testing.T) {
	f := newFixture(t)
	f.good()
	// The test CA issues for a day: two days on, it has expired.
	f.cfg.Now = func() time.Time { return time.Now().Add(48 * time.Hour) }
	res := f.run()
	expect(t, res, selfcheck.CheckCertificate, selfcheck.Fail, "expired")
	// The key is still checked: a certificate problem does not hide it.
	expect(t, res, selfcheck.CheckKey, selfcheck.OK, string(f.key.ID))

	// Today it expires within a day: a warning by default.
	f.cfg.Now = time.Now
	f.cfg.ExpiryWarning = 0
	res = f.run()
	expect(t, res, selfcheck.CheckCertificate, selfcheck.Warn, "expires in 0 days")
}

func TestHostnameMismatch(t *testing.T) {
	f := newFixture(t)
	f.zone.a[domain+"."] = []net.IP{net.ParseIP(publicIP)}
	f.tlsServer(publicIP+":8448", federation(f.key, domain), "other.test")
	res := f.run()
	expect(t, res, selfcheck.CheckCertificate, selfcheck.Fail, "is for other.test, not for "+domain)
}

func TestUntrustedCertificate(t *testing.T) {
	f := newFixture(t)
	f.good()
	f.cfg.RootCAs = testserver.NewCA(t).Pool()
	res := f.run()
	expect(t, res, selfcheck.CheckCertificate, selfcheck.Fail, "not signed by an authority")
}

func TestDelegationPointingElsewhere(t *testing.T) {
	f := newFixture(t)
	f.good()
	f.zone.a["old."+domain+"."] = []net.IP{net.ParseIP("198.51.100.8")}
	f.tlsServer(publicIP+":443", wellKnown("old."+domain+":8448"), domain)
	f.cfg.WellKnownServer = domain + ":8448"
	res := f.run()
	expect(t, res, selfcheck.CheckWellKnown, selfcheck.Fail, "delegates federation to old."+domain+":8448, but this server is configured for "+domain+":8448")
	expect(t, res, selfcheck.CheckRoute, selfcheck.OK, "old."+domain+":8448")
	expect(t, res, selfcheck.CheckConnect, selfcheck.Fail, "Nothing answers")

	// Configured delegation that is not served at all.
	g := newFixture(t)
	g.good()
	g.cfg.WellKnownServer = "matrix." + domain + ":443"
	res = g.run()
	expect(t, res, selfcheck.CheckWellKnown, selfcheck.Fail, "does not delegate to matrix."+domain+":443")
}

func TestKeyMismatch(t *testing.T) {
	f := newFixture(t)
	f.zone.a[domain+"."] = []net.IP{net.ParseIP(publicIP)}
	other := mfed.GenerateSigningKey()
	f.tlsServer(publicIP+":8448", federation(other, domain), domain)
	res := f.run()
	expect(t, res, selfcheck.CheckKey, selfcheck.Fail, "not with this server's current key")

	g := newFixture(t)
	g.zone.a[domain+"."] = []net.IP{net.ParseIP(publicIP)}
	g.tlsServer(publicIP+":8448", federation(g.key, "someone-else.test"), domain)
	res = g.run()
	expect(t, res, selfcheck.CheckKey, selfcheck.Fail, `"someone-else.test", another server`)

	h := newFixture(t)
	h.zone.a[domain+"."] = []net.IP{net.ParseIP(publicIP)}
	h.tlsServer(publicIP+":8448", http.NotFoundHandler(), domain)
	res = h.run()
	expect(t, res, selfcheck.CheckKey, selfcheck.Fail, "status 404")
}

func TestPrivateAddressAndBadName(t *testing.T) {
	f := newFixture(t)
	f.zone.a[domain+"."] = []net.IP{net.ParseIP("192.168.1.10")}
	f.cfg.LocalAddresses = func() ([]net.IP, error) { return []net.IP{net.ParseIP("192.168.1.10")}, nil }
	res := f.run()
	expect(t, res, selfcheck.CheckAddress, selfcheck.Warn, "private")

	f.cfg.ServerName = "bad name!"
	res = f.run()
	expect(t, res, selfcheck.CheckName, selfcheck.Fail, "not a valid")
}

func TestPublicAddressLookupError(t *testing.T) {
	f := newFixture(t)
	f.good()
	f.cfg.LocalAddresses = func() ([]net.IP, error) { return nil, nil }
	f.cfg.PublicAddress = func(context.Context) (net.IP, error) { return nil, errors.New("offline") }
	res := f.run()
	expect(t, res, selfcheck.CheckAddress, selfcheck.Warn, "could not be found out")
	f.cfg.PublicAddress = func(context.Context) (net.IP, error) { return net.ParseIP(publicIP), nil }
	res = f.run()
	expect(t, res, selfcheck.CheckAddress, selfcheck.OK, "public address")
}

func TestPublicAddressFrom(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/bad" {
			_, _ = io.WriteString(w, "<html>")
			return
		}
		_, _ = io.WriteString(w, publicIP+"\n")
	}))
	defer srv.Close()
	ip, err := selfcheck.PublicAddressFrom(srv.URL)(context.Background())
	if err != nil || ip.String() != publicIP {
		t.Fatalf("%v %v", ip, err)
	}
	if _, err := selfcheck.PublicAddressFrom(srv.URL + "/bad")(context.Background()); err == nil {
		t.Fatal("no error for a non-address")
	}
}

func TestLocalhostCannotFederate(t *testing.T) {
	f := newFixture(t)
	f.cfg.ServerName = "localhost:8448"
	res := f.run()
	expect(t, res, selfcheck.CheckName, selfcheck.Fail, "localhost")
	if len(res) != 1 {
		t.Errorf("%d results", len(res))
	}
}

// federation.domain is checked: that it resolves, and that the route
// other servers take expects a certificate for it.
func TestDomain(t *testing.T) {
	// The server name itself: one check, through the route.
	f := newFixture(t)
	f.good()
	f.cfg.Domain = domain
	res := f.run()
	if selfcheck.Failed(res) {
		t.Fatal("failed")
	}
	expect(t, res, selfcheck.CheckDomain, selfcheck.OK, "Other servers reach "+domain+", federation.domain")

	// Delegation to the domain.
	g := newFixture(t)
	g.zone.a[domain+"."] = []net.IP{net.ParseIP("198.51.100.7")}
	g.zone.a["matrix."+domain+"."] = []net.IP{net.ParseIP(publicIP)}
	g.tlsServer("198.51.100.7:443", wellKnown("matrix."+domain+":8448"), domain)
	g.tlsServer(publicIP+":8448", federation(g.key, domain), "matrix."+domain)
	g.cfg.Domain = "matrix." + domain
	res = g.run()
	if selfcheck.Failed(res) {
		t.Fatal("failed")
	}
	var verdicts []string
	for _, r := range res {
		if r.Check == selfcheck.CheckDomain && r.Status == selfcheck.OK {
			verdicts = append(verdicts, r.Message)
		}
	}
	if len(verdicts) != 2 || !strings.Contains(verdicts[0], "federation.domain matrix."+domain+" resolves to "+publicIP) ||
		!strings.Contains(verdicts[1], "Other servers reach matrix."+domain) {
		t.Fatalf("domain verdicts %q", verdicts)
	}
	if r := res[len(res)-1]; r.Check != selfcheck.CheckKey || r.Status != selfcheck.OK {
		t.Fatalf("last check %+v", r)
	}

	// The domain without the delegation: other servers expect the server
	// name's certificate.
	h := newFixture(t)
	h.good()
	h.zone.a["matrix."+domain+"."] = []net.IP{net.ParseIP(publicIP)}
	h.cfg.Domain = "matrix." + domain
	res = h.run()
	var routeResult selfcheck.Result
	for _, r := range res {
		if r.Check == selfcheck.CheckDomain && r.Status == selfcheck.Fail {
			routeResult = r
		}
	}
	if !strings.Contains(routeResult.Message, "expect a certificate for "+domain+", but Palpo obtains its certificate for federation.domain matrix."+domain) ||
		!strings.Contains(routeResult.Fix, `federation.well_known_server = "matrix.`+domain+`:8448"`) {
		t.Fatalf("no route verdict for the domain: %+v", res)
	}

	// With a port in the server name there is no delegation to suggest.
	h.cfg.ServerName = domain + ":8448"
	res = h.run()
	found := false
	for _, r := range res {
		if r.Check == selfcheck.CheckDomain && r.Status == selfcheck.Fail && strings.Contains(r.Fix, `federation.domain = "`+domain+`"`) {
			found = true
		}
	}
	if !found {
		t.Fatalf("no fix naming the server name's host: %+v", res)
	}

	// A domain with no DNS record.
	n := newFixture(t)
	n.good()
	n.cfg.Domain = "nowhere." + domain
	res = n.run()
	expect(t, res, selfcheck.CheckDomain, selfcheck.Fail, "federation.domain nowhere."+domain+" has no A or AAAA record")
}

// TestP2PName: a peer-to-peer server name is not looked up at all; one
// that only looks like it fails.
func TestP2PName(t *testing.T) {
	f := newFixture(t)
	f.good()
	f.cfg.ServerName = "duafvfkasysx6g3mesqxlgct7bhkun6bhff5bjyjebmlut7uhcva.p2p.alt"
	f.cfg.Resolver = nil // the system's: it must not be asked
	res := f.run()
	if len(res) != 1 {
		t.Fatalf("%d results, want only the name's", len(res))
	}
	expect(t, res, selfcheck.CheckName, selfcheck.OK, "peer-to-peer")
	f.cfg.ServerName = "abc.p2p.alt"
	expect(t, f.run(), selfcheck.CheckName, selfcheck.Fail, "not one")
}
