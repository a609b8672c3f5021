package selfcheck_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/palpo-im/palpo-desktop/server/config"
	"github.com/palpo-im/palpo-desktop/server/federation/selfcheck"
	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
)

// A real Palpo federating over port 443 through delegation, as set up
// behind a web server: https://example.test (the web host) passes
// /.well-known/matrix/ to Palpo's client listener, which answers both
// well-knowns; matrix.example.test:443 reaches the federation listener.
// The self-check finds the delegation, the route and Palpo's own key, and
// clients are told the public https address (with CORS, for web clients).
func TestPalpoDelegationOver443(t *testing.T) {
	f := newFixture(t)
	const (
		webIP  = "198.51.100.7"
		target = "matrix." + domain + ":443"
	)
	certFile, keyFile := f.ca.Issue("matrix." + domain)
	palpo := testserver.New(t, testserver.Federated(f.ca), func(c *config.Config) {
		c.ServerName = domain
		c.PublicBaseURL = "https://matrix." + domain
		c.Federation.WellKnownServer = target
		c.Federation.TLSCertFile, c.Federation.TLSKeyFile = certFile, keyFile
	})
	client, err := url.Parse(palpo.URL)
	if err != nil {
		t.Fatal(err)
	}
	f.tlsServer(webIP+":443", httputil.NewSingleHostReverseProxy(client), domain)
	f.net.mu.Lock()
	f.net.routes[publicIP+":443"] = strings.TrimPrefix(palpo.FederationURL, "https://")
	f.net.mu.Unlock()
	f.zone.a[domain+"."] = []net.IP{net.ParseIP(webIP)}
	f.zone.a["matrix."+domain+"."] = []net.IP{net.ParseIP(publicIP)}

	// Clients asking https://example.test learn the public base URL.
	httpc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: f.ca.Pool()},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return f.net.dial(ctx, network, webIP+":443")
		},
	}}
	resp, err := httpc.Get("https://" + domain + "/.well-known/matrix/client")
	if err != nil {
		t.Fatal(err)
	}
	var wk struct {
		HS struct {
			BaseURL string `json:"base_url"`
		} `json:"m.homeserver"`
	}
	err = json.NewDecoder(resp.Body).Decode(&wk)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || wk.HS.BaseURL != "https://matrix."+domain {
		t.Fatalf("client well-known: %d %+v %v", resp.StatusCode, wk, err)
	}
	if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Error("client well-known lacks CORS")
	}

	c, err := selfcheck.FromConfig(palpo.Config, palpo.SigningKey())
	if err != nil {
		t.Fatal(err)
	}
	c.RootCAs = f.ca.Pool()
	c.Resolver, c.Dial, c.LocalAddresses, c.ExpiryWarning = f.cfg.Resolver, f.cfg.Dial, f.cfg.LocalAddresses, time.Hour
	f.cfg = c
	res := f.run()
	if selfcheck.Failed(res) {
		t.Fatal("failed")
	}
	expect(t, res, selfcheck.CheckWellKnown, selfcheck.OK, "delegates federation to "+target)
	expect(t, res, selfcheck.CheckRoute, selfcheck.OK, "through the delegation to "+target)
	expect(t, res, selfcheck.CheckCertificate, selfcheck.OK, "matrix."+domain)
	expect(t, res, selfcheck.CheckKey, selfcheck.OK, string(palpo.SigningKey().ID))
}

// FromConfig checks federation.domain when Palpo obtains its certificate
// for it; with certificate files the domain is not used, so not checked.
func TestFromConfigDomain(t *testing.T) {
	cfg := config.Default()
	cfg.ServerName = "example.org"
	cfg.Federation.Domain = "matrix.example.org"
	c, err := selfcheck.FromConfig(cfg, nil)
	if err != nil || c.Domain != "matrix.example.org" {
		t.Fatalf("domain %q, %v", c.Domain, err)
	}
	cfg.Federation.TLSCertFile, cfg.Federation.TLSKeyFile = "/c.pem", "/k.pem"
	if c, _ := selfcheck.FromConfig(cfg, nil); c.Domain != "" {
		t.Fatalf("domain %q checked with certificate files", c.Domain)
	}
}
