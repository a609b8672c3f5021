package app

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/palpo-im/palpo-desktop/server"
)

// The choice is read from [federation] and written back as three keys,
// the file's comments kept; bad domains and emails are refused in plain
// words.
func TestSaveFederationSettings(t *testing.T) {
	a := openTestApp(t, `# my server
server_name = "palpo.example.org"
listen = ["127.0.0.1:0"]

[federation]
# where other servers connect
listen = "127.0.0.1:0"

[federation.acme]
challenges = ["tls-alpn-01"] # no port 80 here
`)
	if s := a.FederationSettings(); s.Mode != FederationOff || s.Domain != "" || s.ServerName != "palpo.example.org" || s.CertFiles {
		t.Fatalf("default: %+v", s)
	}
	for domain, want := range map[string]string{
		"":               "type the domain",
		"192.0.2.1":      "is an IP address",
		"example.org:80": "without a port",
		"nodot":          "not a host name",
		"box.local":      "cannot reach a local name",
	} {
		err := CheckFederationDomain(domain)
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "federation.domain") {
			t.Errorf("domain %q: %v, want %q without the config key", domain, err, want)
		}
		if _, err := a.SaveFederationSettings(FederationSettings{Mode: FederationInternet, Domain: domain}); err == nil {
			t.Errorf("domain %q saved", domain)
		}
	}
	if err := CheckACMEEmail("not an address"); err == nil || !strings.Contains(err.Error(), "not an email address") {
		t.Errorf("bad email: %v", err)
	}
	// Peer to peer on a server with a domain is a gateway: it needs the
	// domain too.
	if _, err := a.SaveFederationSettings(FederationSettings{Mode: FederationPeerToPeer}); err == nil || !strings.Contains(err.Error(), "type the domain") {
		t.Errorf("peer to peer without a domain: %v", err)
	}

	note, err := a.SaveFederationSettings(FederationSettings{Mode: FederationInternet, Domain: "Palpo.Example.org ", Email: "me@example.org"})
	if err != nil || note != "" {
		t.Fatalf("save: %q %v", note, err)
	}
	text := readConfigText(t, a)
	for _, want := range []string{"# my server", "# where other servers connect", "# no port 80 here",
		"enabled = true", `domain = "palpo.example.org"`, `email = "me@example.org"`} {
		if !strings.Contains(text, want) {
			t.Errorf("palpo.toml lacks %q:\n%s", want, text)
		}
	}
	if s := a.FederationSettings(); s.Mode != FederationInternet || s.Domain != "palpo.example.org" || s.Email != "me@example.org" {
		t.Fatalf("after saving: %+v", s)
	}
	if st := a.CertificateStatus(); !st.Enabled || !st.Auto || st.Domain != "palpo.example.org" || !st.NotAfter.IsZero() || st.Running {
		t.Fatalf("no certificate yet: %+v", st)
	}

	if _, err := a.SaveFederationSettings(FederationSettings{Mode: FederationOff}); err != nil {
		t.Fatal(err)
	}
	if s := a.FederationSettings(); s.Mode != FederationOff || s.Domain != "palpo.example.org" {
		t.Fatalf("off (the domain is kept for next time): %+v", s)
	}
	if st := a.CertificateStatus(); st.Enabled {
		t.Fatalf("off: %+v", st)
	}

	local := openTestApp(t, `listen = ["127.0.0.1:0"]`)
	if _, err := local.SaveFederationSettings(FederationSettings{Mode: FederationInternet, Domain: "example.org"}); err == nil ||
		!strings.Contains(err.Error(), "other servers can never reach it") {
		t.Fatalf("localhost: %v", err)
	}
}

func TestFederationNameProblem(t *testing.T) {
	for name, bad := range map[string]bool{
		"localhost": true, "localhost:8008": true, "box.local": true, "192.0.2.1": true, "[::1]:8448": true, "box": true,
		"example.org": false, "matrix.example.org:8448": false,
	} {
		if got := FederationNameProblem(name) != ""; got != bad {
			t.Errorf("%s: problem %v, want %v", name, got, bad)
		}
	}
	if got := SuggestFederationDomain("example.org:8448"); got != "example.org" {
		t.Errorf("suggestion %q", got)
	}
	if got := SuggestFederationDomain("localhost"); got != "" {
		t.Errorf("suggestion for localhost %q", got)
	}
}

// With the server stopped, the certificate's dates come from the
// automatic certificates' storage in the data directory, or the
// configured file; the renewal is due with a third of the lifetime left.
func TestCertificateStatusFromDisk(t *testing.T) {
	a := openTestApp(t, `server_name = "palpo.example.org"
listen = ["127.0.0.1:0"]
[federation]
enabled = true
domain = "palpo.example.org"
[federation.acme]
challenges = ["tls-alpn-01"]
`)
	notBefore := time.Now().Add(-24 * time.Hour).Truncate(time.Second)
	notAfter := notBefore.Add(90 * 24 * time.Hour)
	dir := filepath.Join(a.DataDir(), server.CertificatesDirName, "certificates", "acme.example-directory", "palpo.example.org")
	writeCert(t, filepath.Join(dir, "palpo.example.org.crt"), "palpo.example.org", notBefore, notAfter)
	// An older one from another certificate authority is passed over.
	writeCert(t, filepath.Join(filepath.Dir(dir), "..", "old-ca", "palpo.example.org", "palpo.example.org.crt"), "palpo.example.org",
		notBefore.Add(-60*24*time.Hour), notAfter.Add(-60*24*time.Hour))
	st := a.CertificateStatus()
	if !st.Auto || !st.NotAfter.Equal(notAfter) || !st.NotBefore.Equal(notBefore) || !st.RenewAt.Equal(notAfter.Add(-30*24*time.Hour)) {
		t.Fatalf("stored: %+v", st)
	}
	if st.ExpiringSoon(time.Now()) || !st.ExpiringSoon(notAfter.Add(-13*24*time.Hour)) || st.Expired(time.Now()) || !st.Expired(notAfter) {
		t.Fatalf("expiry: %+v", st)
	}

	files := openTestApp(t, `server_name = "palpo.example.org"
listen = ["127.0.0.1:0"]
[federation]
enabled = true
tls_cert_file = "fullchain.pem"
tls_key_file = "privkey.pem"
`)
	writeCert(t, filepath.Join(files.DataDir(), "fullchain.pem"), "files.example.org", notBefore, notAfter)
	st = files.CertificateStatus()
	if st.Auto || st.Domain != "files.example.org" || !st.NotAfter.Equal(notAfter) || !st.RenewAt.IsZero() ||
		st.File != filepath.Join(files.DataDir(), "fullchain.pem") {
		t.Fatalf("file: %+v", st)
	}
}

func writeCert(t *testing.T, path, name string, notBefore, notAfter time.Time) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: notBefore, NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
