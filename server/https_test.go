package server_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"

	"github.com/palpo-im/palpo-desktop/server/config"
	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
)

// httpsClient trusts only roots and looks names up with resolver (nil:
// the system's).
func httpsClient(roots *x509.CertPool, resolver *net.Resolver) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second, Resolver: resolver}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext:     d.DialContext,
		TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
	}}
}

// The client API over https with a certificate pebble issued through the
// https listener itself (tls-alpn-01 on the "443" port): a Matrix client
// trusting only pebble's root logs in, and /.well-known/matrix/client
// answers with the https address.
func TestHTTPSClientAPIWithAutomaticCertificate(t *testing.T) {
	p := testserver.NewPebble(t)
	const domain = "phone.palpo.test"
	fedPort := testserver.FreePort(t)
	s := testserver.New(t, testserver.AutoTLS(p, domain, config.ChallengeTLSALPN01), testserver.HTTPSOn(p.TLSPort),
		func(cfg *config.Config) { cfg.Federation.Listen = "127.0.0.1:" + strconv.Itoa(fedPort) })
	waitForCertificate(t, s)
	if got := s.HTTPSAddr(); got == nil || got.(*net.TCPAddr).Port != p.TLSPort {
		t.Fatalf("https listener on %v, want port %d", got, p.TLSPort)
	}
	s.RegisterUser("alice")

	base := "https://" + domain + ":" + strconv.Itoa(p.TLSPort)
	hc := httpsClient(p.Roots(), p.Resolver())
	c, err := mautrix.NewClient(base, "", "")
	if err != nil {
		t.Fatal(err)
	}
	c.Client = hc
	ctx := context.Background()
	if _, err := c.Login(ctx, &mautrix.ReqLogin{
		Type:             mautrix.AuthTypePassword,
		Identifier:       mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "alice"},
		Password:         testserver.DefaultPassword,
		StoreCredentials: true,
	}); err != nil {
		t.Fatalf("login over https: %v", err)
	}
	who, err := c.Whoami(ctx)
	if err != nil || who.UserID != c.UserID {
		t.Fatalf("whoami over https: %v %+v", err, who)
	}

	// Discovery on the https listener points at itself, with https.
	resp, err := hc.Get(base + "/.well-known/matrix/client")
	if err != nil {
		t.Fatal(err)
	}
	var wk struct {
		Homeserver struct {
			BaseURL string `json:"base_url"`
		} `json:"m.homeserver"`
	}
	err = json.NewDecoder(resp.Body).Decode(&wk)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || wk.Homeserver.BaseURL != base {
		t.Fatalf("well-known: status %d, %+v, %v; want base_url %s", resp.StatusCode, wk, err, base)
	}

	// The same certificate on both listeners.
	https := servedCertificateAt(t, s.HTTPSAddr().String(), p, domain)
	if fed := servedCertificate(t, s, p, domain); string(fed) != string(https) {
		t.Fatal("the https and federation listeners serve different certificates")
	}

	// The admin status shows the certificate and the https listener.
	admin := s.RegisterAdmin("admin")
	var st struct {
		HTTPSListeningOn *string `json:"https_listening_on"`
		Certificate      *struct {
			Automatic    bool    `json:"automatic"`
			Domain       *string `json:"domain"`
			Issuer       *string `json:"issuer"`
			ExpiresTS    *int64  `json:"expires_ts"`
			RenewalDueTS *int64  `json:"renewal_due_ts"`
			ExpiringSoon bool    `json:"expiring_soon"`
			LastError    *string `json:"last_error"`
		} `json:"certificate"`
	}
	if _, err := admin.MakeRequest(ctx, http.MethodGet, admin.BuildURL(mautrix.BaseURLPath{"_palpo", "admin", "v1", "federation"}), nil, &st); err != nil {
		t.Fatal(err)
	}
	ct := st.Certificate
	if st.HTTPSListeningOn == nil || ct == nil || !ct.Automatic || ct.Domain == nil || *ct.Domain != domain || ct.Issuer == nil ||
		ct.ExpiresTS == nil || ct.RenewalDueTS == nil || *ct.RenewalDueTS >= *ct.ExpiresTS || ct.ExpiringSoon || ct.LastError != nil {
		t.Fatalf("unexpected admin status %+v / %+v", st, ct)
	}
}

// servedCertificateAt connects to addr trusting only pebble's root and
// returns the leaf it was shown.
func servedCertificateAt(t *testing.T, addr string, p *testserver.Pebble, domain string) []byte {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{ServerName: domain, RootCAs: p.Roots()})
	if err != nil {
		t.Fatalf("TLS to %s: %v", addr, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].Raw
}

// With certificate files and federation off, the https listener serves
// them.
func TestHTTPSWithCertificateFiles(t *testing.T) {
	ca := testserver.NewCA(t)
	cert, key := ca.Issue("127.0.0.1")
	port := testserver.FreePort(t)
	s := testserver.New(t, testserver.HTTPSOn(port), func(cfg *config.Config) {
		cfg.Federation.TLSCertFile, cfg.Federation.TLSKeyFile = cert, key
	})
	if s.Federation().Addr() != nil {
		t.Fatal("the federation listener runs with federation off")
	}
	resp, err := httpsClient(ca.Pool(), nil).Get("https://127.0.0.1:" + strconv.Itoa(port) + "/_matrix/client/versions")
	if err != nil {
		t.Fatalf("versions over https: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("versions over https: status %d", resp.StatusCode)
	}
	st := s.Federation().CertificateStatus()
	if st.Auto || st.NotAfter.IsZero() || st.Issuer != "Palpo test CA" || st.Domain != "127.0.0.1" && st.Domain != "" || !st.ExpiringSoon {
		// The test CA's certificates live a day: expiring soon.
		t.Fatalf("unexpected status %+v", st)
	}
	if !strings.Contains(s.Logs(), "expires soon") {
		t.Fatal("a certificate file expiring within a day was not logged")
	}
}
