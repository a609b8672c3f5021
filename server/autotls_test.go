package server_test

import (
	"crypto/tls"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/palpo-im/palpo-desktop/server/config"
	"github.com/palpo-im/palpo-desktop/server/federation"
	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
)

// waitForCertificate polls until the server has a certificate.
func waitForCertificate(t *testing.T, s *testserver.Server) federation.CertificateStatus {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := s.Federation().CertificateStatus()
		if !st.NotAfter.IsZero() {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("no certificate after 30 s; status %+v", st)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition with a deadline
	}
}

// servedCertificate connects to the federation listener as a client that
// trusts only pebble's root and returns the leaf it was shown.
func servedCertificate(t *testing.T, s *testserver.Server, p *testserver.Pebble, domain string) []byte {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", s.Federation().Addr().String(),
		&tls.Config{ServerName: domain, RootCAs: p.Roots()})
	if err != nil {
		t.Fatalf("TLS to the federation listener: %v", err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].Raw
}

func testAutoTLS(t *testing.T, challenge string) {
	p := testserver.NewPebble(t)
	const domain = "palpo.test"
	s := testserver.New(t, testserver.AutoTLS(p, domain, challenge))
	st := waitForCertificate(t, s)
	if !st.Auto || st.Domain != domain || st.LastError != "" || st.LastObtained.IsZero() {
		t.Fatalf("unexpected status %+v", st)
	}
	first := servedCertificate(t, s, p, domain)
	if challenge == config.ChallengeHTTP01 && p.HTTPValidations() == 0 {
		t.Fatal("pebble made no HTTP-01 request")
	}
	if challenge == config.ChallengeTLSALPN01 && p.HTTPValidations() != 0 {
		t.Fatal("pebble validated over HTTP though only tls-alpn-01 is enabled")
	}
	orders := p.Validations()

	// After a restart the certificate comes from the data directory: the
	// same one, with no new order.
	s.Restart()
	again := servedCertificate(t, s, p, domain)
	if string(again) != string(first) {
		t.Fatal("a different certificate after restart")
	}
	if n := p.Validations(); n != orders {
		t.Fatalf("%d validations after restart, want %d (no new order)", n, orders)
	}
	if st := s.Federation().CertificateStatus(); st.NotAfter.IsZero() {
		t.Fatalf("no certificate in the status after restart: %+v", st)
	}
}

func TestAutoTLSHTTP01(t *testing.T)    { testAutoTLS(t, config.ChallengeHTTP01) }
func TestAutoTLSTLSALPN01(t *testing.T) { testAutoTLS(t, config.ChallengeTLSALPN01) }

// With the CA unreachable the server still starts (the order runs in the
// background) and the failure shows in CertificateStatus.
func TestAutoTLSCADownDoesNotBlockStart(t *testing.T) {
	p := testserver.NewPebble(t)
	p.DirectoryURL = "https://localhost:" + strconv.Itoa(testserver.FreePort(t)) + "/dir"
	start := time.Now()
	s := testserver.New(t, testserver.AutoTLS(p, "palpo.test", config.ChallengeTLSALPN01))
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("start took %v with the CA down", d)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := s.Federation().CertificateStatus()
		if st.LastError != "" {
			if !st.NotAfter.IsZero() || st.LastErrorAt.IsZero() {
				t.Fatalf("unexpected status %+v", st)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no error reported; status %+v", st)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition with a deadline
	}
}
