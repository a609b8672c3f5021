package app

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mfed "maunium.net/go/mautrix/federation"

	"github.com/palpo-im/palpo-desktop/server/config"
	"github.com/palpo-im/palpo-desktop/server/identity"
)

// A server named 127.0.0.1:<port> whose key endpoint answers there with
// its own key, behind a certificate from a CA the config trusts: the
// check passes (with warnings) and exits 0; the same listener answering
// with another key fails it.
func TestFederationCheckCommand(t *testing.T) {
	cert, caFile := selfSignedLoopback(t)
	key := mfed.GenerateSigningKey()
	answer := key
	var serverName string
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/_matrix/key/v2/server" {
			http.NotFound(w, r)
			return
		}
		_ = json.NewEncoder(w).Encode(answer.GenerateKeyResponse(serverName, nil))
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	defer srv.Close()
	serverName = srv.Listener.Addr().(*net.TCPAddr).String()

	dir := t.TempDir()
	cfg := "server_name = \"" + serverName + "\"\nlisten = [\"127.0.0.1:0\"]\n[federation]\ntrusted_ca_files = [\"" + filepath.ToSlash(caFile) + "\"]\n"
	if err := os.WriteFile(filepath.Join(dir, config.FileName), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	failsCLI(t, "", 1, "no signing key", "federation", "check", "--data-dir", dir)
	if err := os.WriteFile(filepath.Join(dir, identity.KeyFileName), []byte(key.SynapseString()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	out := mustCLI(t, "", "federation", "check", "--data-dir", dir)
	for _, want := range []string{"Federation check for " + serverName, "OK    key", "OK    connect", "Other servers can reach this one."} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	out = mustCLI(t, "", "federation", "--data-dir", dir, "check", "--json")
	var got struct {
		ServerName string `json:"server_name"`
		Failed     bool   `json:"failed"`
		Results    []struct{ Check, Status, Message, Fix string }
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil || got.Failed || got.ServerName != serverName || len(got.Results) == 0 {
		t.Fatalf("json %v: %s", err, out)
	}

	answer = mfed.GenerateSigningKey()
	code, out, _ := cli(t, "", nil, "federation", "check", "--data-dir", dir)
	if code != 1 || !strings.Contains(out, "FAIL  key") || !strings.Contains(out, "fix: ") || !strings.Contains(out, "cannot reach") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
}

func TestFederationCheckCommandErrors(t *testing.T) {
	failsCLI(t, "", 1, "no Palpo data", "federation", "check", "--data-dir", t.TempDir())
	failsCLI(t, "", 2, "missing command", "federation")
	failsCLI(t, "", 2, `unknown command "frob"`, "federation", "frob")
	failsCLI(t, "", 2, "unexpected argument", "federation", "check", "extra")
	failsCLI(t, "", 2, "--public-address-url", "federation", "check", "--public-address-url", "ftp://x")
	if out := mustCLI(t, "", "federation", "help"); !strings.Contains(out, "palpo federation check") {
		t.Fatal(out)
	}

	// localhost cannot federate: the check fails without the network.
	dir := testDataDir(t)
	if err := os.WriteFile(filepath.Join(dir, identity.KeyFileName), []byte(mfed.GenerateSigningKey().SynapseString()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, _ := cli(t, "", nil, "federation", "check", "--data-dir", dir)
	if code != 1 || !strings.Contains(out, "FAIL  server_name") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
}

// selfSignedLoopback makes a certificate for 127.0.0.1 that is its own
// authority, and writes it as a PEM file to trust.
func selfSignedLoopback(t *testing.T) (tls.Certificate, string) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(90 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv}, file
}

// The app's check works with the server stopped (from the data directory)
// and running (through the server).
func TestAppFederationCheck(t *testing.T) {
	dir := testDataDir(t)
	a, err := Open(dir, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.FederationCheck(t.Context()); err == nil || !strings.Contains(err.Error(), "signing key") {
		t.Fatalf("stopped, before the first start: %v", err)
	}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Stop() })
	res, err := a.FederationCheck(t.Context())
	if err != nil || len(res) != 1 || res[0].Check != "server_name" || res[0].Status != "fail" {
		t.Fatalf("running, named localhost: %+v %v", res, err)
	}
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	res, err = a.FederationCheck(t.Context())
	if err != nil || len(res) != 1 || res[0].Status != "fail" {
		t.Fatalf("stopped: %+v %v", res, err)
	}
}
