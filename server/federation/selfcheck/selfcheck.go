// Package selfcheck tells whether other Matrix servers can reach this one:
// the checks the community's federation tester makes, run from this
// computer. It looks up the server name in DNS (A/AAAA and SRV), fetches
// /.well-known/matrix/server, works out the route other servers will take
// (mautrix's implementation of the spec's server discovery), connects
// there, judges the certificate and asks for the signing key through that
// public route, comparing it with ours.
//
// Every network seam is injectable (resolver, dialer, trust, clock, the
// public address) so tests build each case without real DNS. Nothing here
// asks a third-party service anything unless the caller supplies
// PublicAddress.
package selfcheck

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	mfed "maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/p2p/servername"
)

// Status is a check's verdict.
type Status string

// The verdicts: OK needs nothing; Warn may stop some servers or soon will;
// Fail stops other servers from reaching this one.
const (
	OK   Status = "ok"
	Warn Status = "warn"
	Fail Status = "fail"
)

// Check names, stable for the app and scripts.
const (
	CheckName        = "server_name"
	CheckDNS         = "dns"
	CheckDomain      = "domain"
	CheckWellKnown   = "well_known"
	CheckSRV         = "srv"
	CheckRoute       = "route"
	CheckAddress     = "address"
	CheckConnect     = "connect"
	CheckCertificate = "certificate"
	CheckKey         = "key"
)

// Result is one check: its verdict, one plain sentence saying what was
// found, and (unless OK) one sentence saying how to fix it.
type Result struct {
	Check   string `json:"check"`
	Status  Status `json:"status"`
	Message string `json:"message"`
	Fix     string `json:"fix,omitempty"`
}

// Failed tells whether any result failed.
func Failed(results []Result) bool {
	return slices.ContainsFunc(results, func(r Result) bool { return r.Status == Fail })
}

// DefaultExpiryWarning is how close to its expiry a certificate draws a
// warning: Let's Encrypt renews 30 days ahead, so a certificate this close
// to its end is one whose renewal is failing.
const DefaultExpiryWarning = 14 * 24 * time.Hour

// Config is what the check needs to know about this server, and the seams.
type Config struct {
	// ServerName is this server's server_name (the domain, possibly with a
	// port).
	ServerName string
	// WellKnownServer is the delegation this server is configured to serve
	// (federation.well_known_server), "" when none.
	WellKnownServer string
	// Domain is federation.domain when Palpo obtains its certificate for
	// it, "" otherwise: the name certificate authorities must reach, and
	// the one other servers' route must expect a certificate for.
	Domain string
	// KeyID and PublicKey are this server's signing key, which the route
	// must answer with.
	KeyID     id.KeyID
	PublicKey id.SigningKey

	// RootCAs is the trust for certificates; nil means the system's roots
	// (what other servers on the internet use).
	RootCAs *x509.CertPool
	// Resolver looks names up; nil means the system's resolver.
	Resolver *net.Resolver
	// Dial connects to an IP address and port ("203.0.113.5:8448"); nil
	// means a plain TCP dial.
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
	// Now is the clock (certificate validity); nil means time.Now.
	Now func() time.Time
	// LocalAddresses lists this computer's addresses; nil means its
	// network interfaces' addresses.
	LocalAddresses func() ([]net.IP, error)
	// PublicAddress finds this network's public address (as seen from the
	// internet). It needs an outside service, so it is nil by default and
	// the address check then only compares with this computer's own
	// addresses.
	PublicAddress func(ctx context.Context) (net.IP, error)
	// Timeout bounds each network step; 0 means 10 seconds.
	Timeout time.Duration
	// ExpiryWarning is how close to its expiry a certificate draws a
	// warning; 0 means DefaultExpiryWarning.
	ExpiryWarning time.Duration
}

type checker struct {
	c       Config
	client  *http.Client
	results []Result
}

func (k *checker) add(check string, st Status, msg, fix string) {
	k.results = append(k.results, Result{Check: check, Status: st, Message: msg, Fix: fix})
}

// Run runs every check that applies and returns the results in order.
// Later checks that depend on an earlier failure are left out.
func Run(ctx context.Context, c Config) []Result {
	if c.Resolver == nil {
		c.Resolver = net.DefaultResolver
	}
	if c.Dial == nil {
		var d net.Dialer
		c.Dial = d.DialContext
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.LocalAddresses == nil {
		c.LocalAddresses = interfaceAddresses
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.ExpiryWarning <= 0 {
		c.ExpiryWarning = DefaultExpiryWarning
	}
	k := &checker{c: c}
	k.client = &http.Client{
		Timeout: c.Timeout,
		Transport: &http.Transport{
			DialContext:         k.dial,
			TLSClientConfig:     &tls.Config{RootCAs: c.RootCAs, Time: c.Now, MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout: c.Timeout,
			DisableKeepAlives:   true,
		},
		// Other servers do not follow redirects for .well-known.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	k.run(ctx)
	return k.results
}

func interfaceAddresses() ([]net.IP, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	var ips []net.IP
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			ips = append(ips, n.IP)
		}
	}
	return ips, nil
}

// lookup resolves a host name (or passes an IP literal through).
func (k *checker) lookup(ctx context.Context, host string) ([]net.IP, error) {
	if ip := net.ParseIP(strings.Trim(host, "[]")); ip != nil {
		return []net.IP{ip}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, k.c.Timeout)
	defer cancel()
	addrs, err := k.c.Resolver.LookupIPAddr(ctx, host)
	if err != nil {
		return nil, err
	}
	ips := make([]net.IP, len(addrs))
	for i, a := range addrs {
		ips[i] = a.IP
	}
	return ips, nil
}

// dial resolves through the configured resolver and connects through the
// configured dialer, trying each address.
func (k *checker) dial(ctx context.Context, network, address string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	ips, err := k.lookup(ctx, host)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, ip := range ips {
		dctx, cancel := context.WithTimeout(ctx, k.c.Timeout)
		conn, err := k.c.Dial(dctx, network, net.JoinHostPort(ip.String(), port))
		cancel()
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return nil, fmt.Errorf("%s has no address", host)
	}
	return nil, errors.Join(errs...)
}

func (k *checker) run(ctx context.Context) {
	name := k.c.ServerName
	if servername.IsP2P(name) {
		// Nothing here applies, and looking the name up would only ask
		// the DNS resolver about a name that is not in DNS.
		if _, err := servername.Parse(name); err != nil {
			k.add(CheckName, Fail, fmt.Sprintf("The server name %q ends like a peer-to-peer name but is not one: %v.", name, err),
				"Set server_name to the peer-to-peer name Palpo gives at start-up, exactly.")
			return
		}
		k.add(CheckName, OK, "This is a peer-to-peer server name: other servers reach it over libp2p, not through DNS, "+
			"so the DNS, port and certificate checks do not apply. Its reachability is in the status (p2p).", "")
		return
	}
	host, port, ok := mfed.ParseServerName(name)
	if !ok {
		k.add(CheckName, Fail, fmt.Sprintf("The server name %q is not a valid Matrix server name.", name),
			"Set server_name to a domain name such as example.org.")
		return
	}
	if strings.EqualFold(host, "localhost") {
		k.add(CheckName, Fail, "The server name is localhost, which other servers cannot reach.",
			"Set server_name to this server's public domain name (before any account exists).")
		return
	}
	isIP := net.ParseIP(strings.Trim(host, "[]")) != nil
	if isIP {
		k.add(CheckName, Warn, fmt.Sprintf("The server name %s is an IP address: other servers connect to it directly, and certificate authorities rarely issue certificates for IP addresses.", name),
			"Use a domain name as server_name for federation on the internet.")
	} else if ip := k.checkDNS(ctx, host); !ip {
		k.checkDomainDNS(ctx, host)
		return
	}
	k.checkDomainDNS(ctx, host)

	// Delegation and SRV records are only consulted for a name without
	// a port (spec: resolving server names, steps 3 to 6).
	srvHost := host
	if !isIP && port == 0 {
		srvHost = k.checkWellKnown(ctx, host)
		if h, p, ok := mfed.ParseServerName(srvHost); ok && p == 0 && net.ParseIP(strings.Trim(h, "[]")) == nil {
			k.checkSRV(ctx, h)
		}
	}

	rctx, cancel := context.WithTimeout(ctx, 2*k.c.Timeout)
	route, err := mfed.ResolveServerName(rctx, name, &mfed.ResolveServerNameOpts{HTTPClient: k.client, DNSClient: k.c.Resolver})
	cancel()
	if err != nil || len(route.IPPort) == 0 {
		k.add(CheckRoute, Fail, fmt.Sprintf("Other servers cannot work out where to connect for %s: %v.", name, err),
			"Fix the DNS records and delegation of the server name.")
		return
	}
	tlsName, _, _ := mfed.ParseServerName(route.HostHeader)
	tlsName = strings.Trim(tlsName, "[]")
	via := "directly"
	if route.HostHeader != name {
		via = "through the delegation to " + route.HostHeader
	}
	k.add(CheckRoute, OK, fmt.Sprintf("Other servers will connect to %s (%s) and expect a certificate for %s.", strings.Join(route.IPPort, " or "), via, tlsName), "")
	k.checkDomainRoute(host, tlsName, !isIP && port == 0)

	addr, ok := k.checkAddressAndConnect(ctx, route.IPPort)
	if !ok {
		return
	}
	k.checkCertificate(ctx, addr, tlsName)
	k.checkKey(ctx, addr, tlsName, route.HostHeader)
}

// checkDNS looks up the domain's A/AAAA records.
func (k *checker) checkDNS(ctx context.Context, host string) bool {
	ips, err := k.lookup(ctx, host)
	if err != nil || len(ips) == 0 {
		k.add(CheckDNS, Fail, fmt.Sprintf("%s has no A or AAAA record in DNS (%v).", host, errText(err)),
			fmt.Sprintf("At your DNS provider, add an A record (and AAAA for IPv6) for %s pointing at this network's public address.", host))
		return false
	}
	k.add(CheckDNS, OK, fmt.Sprintf("%s resolves to %s.", host, joinIPs(ips)), "")
	return true
}

// checkDomainDNS looks up federation.domain's A/AAAA records when it is
// not the server name's host (whose lookup checkDNS reported).
func (k *checker) checkDomainDNS(ctx context.Context, host string) {
	d := k.c.Domain
	if d == "" || strings.EqualFold(d, host) {
		return
	}
	ips, err := k.lookup(ctx, d)
	if err != nil || len(ips) == 0 {
		k.add(CheckDomain, Fail, fmt.Sprintf("federation.domain %s has no A or AAAA record in DNS (%v): the certificate authority cannot check it, so Palpo gets no certificate, and other servers cannot reach it.", d, errText(err)),
			fmt.Sprintf("At your DNS provider, add an A record (and AAAA for IPv6) for %s pointing at this network's public address.", d))
		return
	}
	k.add(CheckDomain, OK, fmt.Sprintf("federation.domain %s resolves to %s.", d, joinIPs(ips)), "")
}

// checkDomainRoute tells whether other servers, connecting for the server
// name (host), expect a certificate for federation.domain: the only
// name Palpo has one for.
// delegable is false for a server name other servers connect to directly
// (an IP address or a name with a port), which no delegation changes.
func (k *checker) checkDomainRoute(host, tlsName string, delegable bool) {
	d := k.c.Domain
	if d == "" {
		return
	}
	if strings.EqualFold(d, tlsName) {
		k.add(CheckDomain, OK, fmt.Sprintf("Other servers reach %s, federation.domain, which Palpo has its certificate for.", d), "")
		return
	}
	msg := fmt.Sprintf("Other servers expect a certificate for %s, but Palpo obtains its certificate for federation.domain %s.", tlsName, d)
	if !delegable {
		k.add(CheckDomain, Fail, msg, fmt.Sprintf("Set federation.domain = %q: other servers connect to the server name %s directly, without delegation.", tlsName, k.c.ServerName))
		return
	}
	k.add(CheckDomain, Fail, msg, fmt.Sprintf("Send other servers to %s: set federation.well_known_server = %q and make https://%s reach Palpo's client listener (or the [https] listener), or set federation.domain = %q.",
		d, d+":8448", host, tlsName))
}

// checkWellKnown fetches https://host/.well-known/matrix/server and
// returns the name SRV lookups continue with (the delegated one, or host).
func (k *checker) checkWellKnown(ctx context.Context, host string) string {
	url := "https://" + host + "/.well-known/matrix/server"
	wctx, cancel := context.WithTimeout(ctx, k.c.Timeout)
	wk, _, err := mfed.RequestWellKnown(wctx, k.client, host)
	cancel()
	want := k.c.WellKnownServer
	if err != nil {
		absent := strings.Contains(err.Error(), "status code 404") || isRefused(err)
		switch {
		case want != "":
			k.add(CheckWellKnown, Fail, fmt.Sprintf("%s does not delegate to %s as configured (%v), so other servers do not use the delegation.", url, want, err),
				fmt.Sprintf("Make https://%s (port 443) reach Palpo's client listener, or have the web server there serve {\"m.server\": %q} at that path.", host, want))
		case absent:
			k.add(CheckWellKnown, OK, fmt.Sprintf("%s does not delegate federation (nothing is served there), so other servers use SRV records or port 8448.", url), "")
		default:
			k.add(CheckWellKnown, Warn, fmt.Sprintf("%s answers, but not with a delegation other servers accept (%v); they fall back to SRV records or port 8448.", url, err),
				"Serve a valid {\"m.server\": \"host:port\"} there over HTTPS with a trusted certificate, or serve nothing (404).")
		}
		return host
	}
	switch {
	case want != "" && wk.Server != want:
		k.add(CheckWellKnown, Fail, fmt.Sprintf("%s delegates federation to %s, but this server is configured for %s.", url, wk.Server, want),
			fmt.Sprintf("Make that file say {\"m.server\": %q} (or point it at Palpo), or set federation.well_known_server to where it points.", want))
	default:
		k.add(CheckWellKnown, OK, fmt.Sprintf("%s delegates federation to %s.", url, wk.Server), "")
	}
	return wk.Server
}

// checkSRV reports the SRV records of host.
func (k *checker) checkSRV(ctx context.Context, host string) {
	sctx, cancel := context.WithTimeout(ctx, k.c.Timeout)
	recs, err := mfed.RequestSRV(sctx, k.c.Resolver, host)
	cancel()
	var dnsErr *net.DNSError
	switch {
	case err != nil && errors.As(err, &dnsErr) && dnsErr.IsNotFound, err == nil && len(recs) == 0:
		k.add(CheckSRV, OK, fmt.Sprintf("%s has no _matrix-fed._tcp or _matrix._tcp SRV record, so other servers use port 8448 there.", host), "")
	case err != nil:
		k.add(CheckSRV, Warn, fmt.Sprintf("The SRV lookup for %s failed (%v); other servers may fall back to port 8448.", host, err),
			"Check the DNS zone of "+host+" at your DNS provider.")
	default:
		var targets []string
		for _, r := range recs {
			targets = append(targets, net.JoinHostPort(strings.TrimSuffix(r.Target, "."), strconv.Itoa(int(r.Port))))
		}
		k.add(CheckSRV, OK, fmt.Sprintf("SRV records for %s point at %s.", host, strings.Join(targets, ", ")), "")
	}
}

// checkAddressAndConnect compares the route's addresses with this
// computer's, then connects; it returns the ip:port that answered.
func (k *checker) checkAddressAndConnect(ctx context.Context, route []string) (string, bool) {
	var ips []net.IP
	var addrs []string
	for _, hp := range route {
		host, port, err := net.SplitHostPort(hp)
		if err != nil {
			continue
		}
		found, err := k.lookup(ctx, host)
		if err != nil {
			k.add(CheckAddress, Fail, fmt.Sprintf("%s, where other servers connect, has no address in DNS (%v).", host, err),
				fmt.Sprintf("At your DNS provider, add an A record for %s pointing at this network's public address.", host))
			continue
		}
		for _, ip := range found {
			ips = append(ips, ip)
			addrs = append(addrs, net.JoinHostPort(ip.String(), port))
		}
	}
	if len(ips) == 0 {
		return "", false
	}
	k.checkAddress(ctx, ips)

	var errs []string
	for _, a := range addrs {
		dctx, cancel := context.WithTimeout(ctx, k.c.Timeout)
		conn, err := k.c.Dial(dctx, "tcp", a)
		cancel()
		if err == nil {
			conn.Close()
			k.add(CheckConnect, OK, fmt.Sprintf("%s accepts connections.", a), "")
			return a, true
		}
		errs = append(errs, fmt.Sprintf("%s: %v", a, err))
	}
	_, port, _ := net.SplitHostPort(addrs[0])
	k.add(CheckConnect, Fail, fmt.Sprintf("Nothing answers where other servers connect (%s).", strings.Join(errs, "; ")),
		fmt.Sprintf("Check that Palpo's federation listener is running on port %s (federation.listen), open TCP port %s in this computer's firewall and forward it on your router to this computer.", port, port))
	return "", false
}

// checkAddress tells whether the route's addresses are this computer's
// (or this network's public address, when that can be found out).
func (k *checker) checkAddress(ctx context.Context, ips []net.IP) {
	local, _ := k.c.LocalAddresses()
	for _, ip := range ips {
		for _, l := range local {
			if ip.Equal(l) {
				if ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() {
					k.add(CheckAddress, Warn, fmt.Sprintf("The route points at %s, this computer's own address, but a private one that servers on the internet cannot reach.", ip),
						"Point DNS at this network's public address (the router's) and forward the port to this computer.")
					return
				}
				k.add(CheckAddress, OK, fmt.Sprintf("The route points at %s, an address of this computer.", ip), "")
				return
			}
		}
	}
	if k.c.PublicAddress != nil {
		pctx, cancel := context.WithTimeout(ctx, k.c.Timeout)
		pub, err := k.c.PublicAddress(pctx)
		cancel()
		if err != nil {
			k.add(CheckAddress, Warn, fmt.Sprintf("The route points at %s, not an address of this computer, and this network's public address could not be found out (%v).", joinIPs(ips), err),
				"If this computer is behind a router, make sure that is the router's public address and the port is forwarded.")
			return
		}
		if slices.ContainsFunc(ips, pub.Equal) {
			k.add(CheckAddress, OK, fmt.Sprintf("The route points at %s, this network's public address.", pub), "")
			return
		}
		k.add(CheckAddress, Fail, fmt.Sprintf("The route points at %s, but this network's public address is %s: other servers reach another machine.", joinIPs(ips), pub),
			fmt.Sprintf("At your DNS provider, change the record to %s (or fix the delegation).", pub))
		return
	}
	k.add(CheckAddress, Warn, fmt.Sprintf("The route points at %s, which is not an address of this computer; behind a router it should be the router's public address (Palpo did not ask an outside service what that is).", joinIPs(ips)),
		"Make sure that is your public address and that the router forwards the port to this computer.")
}

// checkCertificate connects with TLS as other servers do (SNI = tlsName)
// and judges the certificate itself, so each problem gets its own words.
func (k *checker) checkCertificate(ctx context.Context, addr, tlsName string) {
	state, err := k.handshake(ctx, addr, tlsName)
	if err != nil {
		k.add(CheckCertificate, Fail, fmt.Sprintf("The TLS handshake with %s failed (%v).", addr, err),
			"Check that the port reaches Palpo's federation listener (TLS), not another service.")
		return
	}
	certs := state.PeerCertificates
	leaf := certs[0]
	now := k.c.Now()
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, verr := leaf.Verify(x509.VerifyOptions{DNSName: tlsName, Roots: k.c.RootCAs, Intermediates: inter, CurrentTime: now})
	var hostErr x509.HostnameError
	var invalid x509.CertificateInvalidError
	var unknown x509.UnknownAuthorityError
	switch {
	case errors.As(verr, &invalid) && invalid.Reason == x509.Expired && now.After(leaf.NotAfter):
		k.add(CheckCertificate, Fail, fmt.Sprintf("The certificate for %s expired on %s.", tlsName, leaf.NotAfter.UTC().Format(time.DateOnly)),
			"Renew the certificate and restart Palpo (or let Palpo obtain and renew it automatically).")
	case errors.As(verr, &invalid) && invalid.Reason == x509.Expired:
		k.add(CheckCertificate, Fail, fmt.Sprintf("The certificate for %s is not valid before %s (check this computer's clock).", tlsName, leaf.NotBefore.UTC().Format(time.RFC3339)),
			"Set this computer's clock right, or use a certificate that is valid now.")
	case errors.As(verr, &hostErr):
		k.add(CheckCertificate, Fail, fmt.Sprintf("The certificate is for %s, not for %s, the name other servers expect.", certNames(leaf), tlsName),
			fmt.Sprintf("Use a certificate issued for %s.", tlsName))
	case errors.As(verr, &unknown):
		k.add(CheckCertificate, Fail, fmt.Sprintf("The certificate for %s is not signed by an authority other servers trust (%s).", tlsName, leaf.Issuer.CommonName),
			"Use a certificate from a public authority such as Let's Encrypt, with the full chain in the certificate file.")
	case verr != nil:
		k.add(CheckCertificate, Fail, fmt.Sprintf("The certificate for %s is not valid: %v.", tlsName, verr),
			"Use a valid certificate from a public authority such as Let's Encrypt.")
	case leaf.NotAfter.Sub(now) < k.c.ExpiryWarning:
		days := int(leaf.NotAfter.Sub(now).Hours() / 24)
		k.add(CheckCertificate, Warn, fmt.Sprintf("The certificate for %s expires in %d days, on %s.", tlsName, days, leaf.NotAfter.UTC().Format(time.DateOnly)),
			"Renew it soon; federation stops when it expires.")
	default:
		k.add(CheckCertificate, OK, fmt.Sprintf("The certificate for %s is valid until %s.", tlsName, leaf.NotAfter.UTC().Format(time.DateOnly)), "")
	}
}

func (k *checker) handshake(ctx context.Context, addr, tlsName string) (tls.ConnectionState, error) {
	hctx, cancel := context.WithTimeout(ctx, k.c.Timeout)
	defer cancel()
	raw, err := k.c.Dial(hctx, "tcp", addr)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer raw.Close()
	sni := tlsName
	if net.ParseIP(sni) != nil {
		sni = ""
	}
	// Verified below by hand, against the injected clock, to tell an
	// expired certificate from a wrong name.
	conn := tls.Client(raw, &tls.Config{ServerName: sni, InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}) //nolint:gosec // verified in checkCertificate
	if err := conn.HandshakeContext(hctx); err != nil {
		return tls.ConnectionState{}, err
	}
	st := conn.ConnectionState()
	if len(st.PeerCertificates) == 0 {
		return st, errors.New("no certificate")
	}
	return st, nil
}

// checkKey asks the route for /_matrix/key/v2/server, as other servers do
// before trusting anything signed by this one, and compares with our key.
// The certificate is judged by checkCertificate; here it is not checked,
// so a certificate problem does not hide a key problem.
func (k *checker) checkKey(ctx context.Context, addr, tlsName, hostHeader string) {
	sni := tlsName
	if net.ParseIP(sni) != nil {
		sni = ""
	}
	client := &http.Client{
		Timeout: k.c.Timeout,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return k.c.Dial(ctx, network, addr)
			},
			TLSClientConfig:   &tls.Config{ServerName: sni, InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}, //nolint:gosec // judged in checkCertificate
			DisableKeepAlives: true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+"/_matrix/key/v2/server", nil)
	if err != nil {
		k.add(CheckKey, Fail, fmt.Sprintf("The key request could not be made: %v.", err), "Report this as a bug.")
		return
	}
	req.Host = hostHeader
	resp, err := client.Do(req)
	if err != nil {
		k.add(CheckKey, Fail, fmt.Sprintf("Asking %s for this server's signing key failed (%v).", addr, err),
			"Check that the port reaches Palpo's federation listener.")
		return
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		k.add(CheckKey, Fail, fmt.Sprintf("%s answered the signing key request with status %d, not with a key.", addr, resp.StatusCode),
			"Make the route reach Palpo's federation listener, not a web server or another service.")
		return
	}
	var keys mfed.ServerKeyResponse
	if err := json.Unmarshal(body, &keys); err != nil {
		k.add(CheckKey, Fail, fmt.Sprintf("%s answered the signing key request with something that is not a Matrix key (%v).", addr, err),
			"Make the route reach Palpo's federation listener, not a web server or another service.")
		return
	}
	if keys.ServerName != k.c.ServerName {
		k.add(CheckKey, Fail, fmt.Sprintf("%s answers with the keys of %q, another server, not %s.", addr, keys.ServerName, k.c.ServerName),
			"Point DNS or the delegation at this computer, or forward the port to this computer instead of the other server.")
		return
	}
	got, ok := keys.VerifyKeys[k.c.KeyID]
	if !ok || got.Key != k.c.PublicKey {
		k.add(CheckKey, Fail, fmt.Sprintf("%s answers for %s, but not with this server's current key %s: another server is answering under this name.", addr, keys.ServerName, k.c.KeyID),
			"Point DNS or the delegation at this computer (or stop the other server using this name).")
		return
	}
	if err := keys.VerifySelfSignature(); err != nil {
		k.add(CheckKey, Fail, fmt.Sprintf("%s answers with this server's key, but its signature does not verify (%v).", addr, err),
			"Report this as a bug.")
		return
	}
	k.add(CheckKey, OK, fmt.Sprintf("This server's signing key %s is served through the public route.", k.c.KeyID), "")
}

func isRefused(err error) bool {
	var op *net.OpError
	var dnsErr *net.DNSError
	return errors.As(err, &op) && op.Op == "dial" || errors.As(err, &dnsErr)
}

func joinIPs(ips []net.IP) string {
	s := make([]string, len(ips))
	for i, ip := range ips {
		s[i] = ip.String()
	}
	return strings.Join(s, ", ")
}

func certNames(c *x509.Certificate) string {
	names := slices.Clone(c.DNSNames)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 {
		return c.Subject.CommonName
	}
	return strings.Join(names, ", ")
}

func errText(err error) string {
	if err == nil {
		return "no addresses"
	}
	return err.Error()
}
