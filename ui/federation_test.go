package ui

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"fyne.io/fyne/v2/test"

	"github.com/palpo-im/palpo-desktop/app"
	"github.com/palpo-im/palpo-desktop/server/config"
	"github.com/palpo-im/palpo-desktop/server/federation/selfcheck"
	"github.com/palpo-im/palpo-desktop/server/portmap"
)

// The words for each state of federation, without a server.
func TestFederationText(t *testing.T) {
	if got := federationText(app.FederationStatus{}, true); got != federationOffText {
		t.Errorf("off: %q", got)
	}
	stopped := federationText(app.FederationStatus{Enabled: true, Listen: "0.0.0.0:8448"}, false)
	if !strings.Contains(stopped, "On") || !strings.Contains(stopped, "port 8448") {
		t.Errorf("on, stopped: %q", stopped)
	}
	quiet := federationText(app.FederationStatus{Enabled: true, Addr: "[::]:8448"}, true)
	if quiet != "On: other servers connect to this one at [::]:8448\nNo other server contacted yet" {
		t.Errorf("on, nobody contacted: %q", quiet)
	}
	next := time.Now().Add(time.Minute)
	busy := federationText(app.FederationStatus{Enabled: true, Addr: "0.0.0.0:8448", Destinations: []app.DestinationStatus{
		{Name: "a.example", LastSuccess: time.Now()},
		{Name: "b.example", Queued: 3, RetryCount: 2, NextRetry: next,
			LastError: `request error: Put "matrix-federation://b.example/_matrix/federation/v1/send/1": dial tcp 192.0.2.1:8448: connect: connection refused`},
	}}, true)
	want := "On: other servers connect to this one at 0.0.0.0:8448\n2 servers, 1 waiting to retry\n" +
		"• b.example: 3 updates waiting, next try " + strings.ToLower(timeText(next)[:1]) + timeText(next)[1:] +
		" (last error: the server refused the connection)\n• a.example: up to date"
	if busy != want {
		t.Errorf("two servers:\n got %q\nwant %q", busy, want)
	}
	var many []app.DestinationStatus
	for i := range 8 {
		many = append(many, app.DestinationStatus{Name: "s" + strconv.Itoa(i) + ".example"})
	}
	if got := federationText(app.FederationStatus{Enabled: true, Addr: "0.0.0.0:8448", Destinations: many}, true); !strings.Contains(got, "8 servers, all answering") ||
		!strings.HasSuffix(got, "\n…and 3 more") || strings.Count(got, "•") != maxDestinationLines {
		t.Errorf("many servers: %q", got)
	}
	for in, want := range map[string]string{
		"x: lookup nowhere.example: no such host":         "no server found under that name",
		"x: tls: failed to verify certificate: x509: ...": "its security certificate was not accepted",
		"x: context deadline exceeded":                    "no answer in time",
		"send: M_FORBIDDEN: not allowed":                  "not allowed",
		"odd":                                             "odd",
	} {
		if got := sendErrorText(in); got != want {
			t.Errorf("sendErrorText(%q) = %q, want %q", in, got, want)
		}
	}
}

// The Status tab of a server with federation on shows its listener, and a
// server that does not answer with what it is owed and why it failed.
func TestStatusTabShowsFederation(t *testing.T) {
	dir := t.TempDir()
	cert, key := selfSignedCert(t, dir)
	toml := `server_name = "palpo.test"
listen = ["127.0.0.1:0"]
[federation]
enabled = true
listen = "127.0.0.1:0"
tls_cert_file = "` + cert + `"
tls_key_file = "` + key + `"
allow_private_addresses = true
`
	if err := os.WriteFile(filepath.Join(dir, config.FileName), []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := app.Open(dir, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.ApplySetup(context.Background(), app.SetupRequest{ServerName: "palpo.test", Owner: "owner", Password: ownerPassword}, nil); err != nil {
		t.Fatal(err)
	}
	d, _ := newTestDesktop(t, a, Options{})
	d.Begin()
	d.Wait()
	if st := a.Status(); st.State != app.StateRunning {
		t.Fatalf("server state %s: %v", st.State, st.Err)
	}
	s := d.status
	s.loadStats()
	d.Wait()
	addr := a.Server().Federation().Addr().String()
	if want := "On: other servers connect to this one at " + addr + "\nNo other server contacted yet"; s.federation.Text != want {
		t.Fatalf("federation on, nobody contacted: %q, want %q", s.federation.Text, want)
	}

	// A server nobody answers for (a loopback port nobody listens on).
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gone := ln.Addr().String()
	ln.Close()
	if err := a.Server().Outbound().QueueEDU(context.Background(), []string{gone}, "m.direct_to_device", map[string]any{
		"sender": "@owner:palpo.test", "type": "m.test", "message_id": "1", "messages": map[string]any{},
	}); err != nil {
		t.Fatal(err)
	}
	want := "• " + gone + ": 1 update waiting, next try "
	for deadline := time.Now().Add(30 * time.Second); ; {
		s.loadStats()
		d.Wait()
		if strings.Contains(s.federation.Text, "(last error:") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no failure shown: %q", s.federation.Text)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition with a deadline
	}
	if !strings.Contains(s.federation.Text, "1 server, 1 waiting to retry\n"+want) ||
		!strings.HasSuffix(s.federation.Text, "(last error: the server refused the connection)") {
		t.Fatalf("failing server: %q", s.federation.Text)
	}
	if !hasLabel(s.content, s.federation.Text) {
		t.Fatalf("the text is not on the tab: %q", labels(s.content))
	}

	// Stopped, the tab says federation will come back with the server.
	tap(t, s.stop)
	d.Wait()
	s.loadStats()
	d.Wait()
	if s.federation.Text != "On: other servers can connect on port 0 once the server runs" {
		t.Fatalf("stopped: %q", s.federation.Text)
	}
}

// selfSignedCert writes a certificate for 127.0.0.1 and its key into dir.
func selfSignedCert(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:   time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "fullchain.pem"), filepath.Join(dir, "privkey.pem")
	for _, f := range []struct {
		path, typ string
		der       []byte
	}{{certFile, "CERTIFICATE", der}, {keyFile, "PRIVATE KEY", keyDER}} {
		if err := os.WriteFile(f.path, pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return certFile, keyFile
}

// The Check button runs the self-check and shows its findings under the
// row: a server named localhost cannot federate, and says how to fix it.
func TestFederationCheckButton(t *testing.T) {
	d, _ := runningDesktop(t, Options{})
	c := d.status.fedCheck
	if c.results.Visible() {
		t.Fatal("results shown before a check")
	}
	test.Tap(c.button)
	d.Wait()
	got := c.results.Text
	if !c.results.Visible() || !strings.Contains(got, "cannot reach this one") || !strings.Contains(got, "Problem: The server name is localhost") || !strings.Contains(got, "Fix: Set server_name") {
		t.Fatalf("results: %q", got)
	}
	if c.button.Disabled() || c.button.Text != "Check" {
		t.Fatal("button not back after the check")
	}
}

func TestFederationCheckText(t *testing.T) {
	ok := federationCheckText([]selfcheck.Result{{Check: "key", Status: selfcheck.OK, Message: "Key served."}, {Check: "certificate", Status: selfcheck.Warn, Message: "Expires soon.", Fix: "Renew it."}})
	if ok != "Other servers can reach this one.\n• Key served.\n• Note: Expires soon. Renew it." {
		t.Fatalf("%q", ok)
	}
}

func TestFederationTextShowsPortMapping(t *testing.T) {
	base := app.FederationStatus{Enabled: true, Addr: "0.0.0.0:8448"}
	cases := []struct {
		pm   portmap.Status
		want string
	}{
		{portmap.Status{Enabled: true}, "Asking the router to forward the ports"},
		{portmap.Status{Enabled: true, Method: portmap.MethodNATPMP, ExternalIP: "203.0.113.7", Mappings: []portmap.Mapping{
			{Name: "federation", Protocol: "tcp", InternalPort: 8448, ExternalPort: 8448, Expires: time.Now().Add(time.Hour)},
			{Name: "http-challenge", Protocol: "tcp", InternalPort: 80, ExternalPort: 8080, Expires: time.Now().Add(time.Hour)},
		}}, "Router forwards port 8448, 80 (as 8080) from 203.0.113.7"},
		{portmap.Status{Enabled: true, LastError: "no router answered"}, "Router did not forward the ports: no router answered"},
	}
	for _, c := range cases {
		st := base
		pm := c.pm
		st.PortMapping = &pm
		if got := federationText(st, true); !strings.Contains(got, c.want) {
			t.Errorf("federationText with %+v:\n%s\nwant it to contain %q", c.pm, got, c.want)
		}
	}
	if got := federationText(base, true); strings.Contains(got, "Router") {
		t.Errorf("without port mapping the text mentions the router:\n%s", got)
	}
}
