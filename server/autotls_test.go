package server_test

import (
	"context"
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/palpo-im/palpo-desktop/app/backup"
	"github.com/palpo-im/palpo-desktop/server"
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

// shortLived starts pebble issuing certificates valid for validity and a
// server for domain checking for renewal every 200 ms.
func shortLived(t *testing.T, domain string, validity time.Duration) (*testserver.Pebble, *testserver.Server) {
	t.Helper()
	p := testserver.NewPebbleWith(t, testserver.PebbleOptions{Validity: validity})
	s := testserver.NewWithSetup(t, func(srv *server.Server) { srv.Federation().RenewCheckInterval = 200 * time.Millisecond },
		testserver.AutoTLS(p, domain, config.ChallengeTLSALPN01))
	return p, s
}

// A short-lived certificate is renewed before it expires, and the listener
// serves the new one.
func TestAutoTLSRenewsBeforeExpiry(t *testing.T) {
	const domain = "renew.palpo.test"
	p, s := shortLived(t, domain, 20*time.Second)
	first := waitForCertificate(t, s)
	if first.RenewalDue.IsZero() || !first.RenewalDue.After(first.NotBefore) || !first.RenewalDue.Before(first.NotAfter) || !first.ExpiringSoon {
		t.Fatalf("unexpected status %+v", first)
	}
	firstDER := servedCertificate(t, s, p, domain)
	for {
		served := servedCertificate(t, s, p, domain)
		if string(served) != string(firstDER) {
			if now := time.Now(); !now.Before(first.NotAfter) {
				t.Fatalf("the new certificate came at %v, after the old one expired at %v", now, first.NotAfter)
			}
			break
		}
		if time.Now().After(first.NotAfter) {
			t.Fatalf("the certificate expired at %v without being renewed; status %+v", first.NotAfter, s.Federation().CertificateStatus())
		}
		time.Sleep(50 * time.Millisecond) // polling a condition with a deadline
	}
	st := s.Federation().CertificateStatus()
	if !st.NotAfter.After(first.NotAfter) || !st.LastObtained.After(first.LastObtained) || st.LastError != "" {
		t.Fatalf("status after renewal %+v, before %+v", st, first)
	}
}

// A renewal that fails (the CA is down) is reported in the status and the
// log, and the old certificate is still served.
func TestAutoTLSFailingRenewalKeepsServingTheOldCertificate(t *testing.T) {
	// A name of its own at each run: certmagic remembers a failed renewal
	// per name for the whole process, and waits a minute before the next.
	domain := "renewfail" + strconv.FormatInt(time.Now().UnixNano(), 36) + ".palpo.test"
	p, s := shortLived(t, domain, 20*time.Second)
	first := waitForCertificate(t, s)
	firstDER := servedCertificate(t, s, p, domain)
	refused := time.Now()
	p.Refuse(true)
	var st federation.CertificateStatus
	for {
		st = s.Federation().CertificateStatus()
		if st.LastError != "" {
			break
		}
		if time.Now().After(first.NotAfter) {
			t.Fatalf("no renewal failure before the certificate expired; status %+v", st)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition with a deadline
	}
	if st.LastErrorAt.Before(refused) || !st.NotAfter.Equal(first.NotAfter) {
		t.Fatalf("unexpected status %+v", st)
	}
	if time.Now().After(first.NotAfter) {
		t.Skip("the machine was too slow to check before the certificate expired")
	}
	if served := servedCertificate(t, s, p, domain); string(served) != string(firstDER) {
		t.Fatal("another certificate is served after a failed renewal")
	}
	if !strings.Contains(s.Logs(), "certificate renewal failed") {
		t.Fatal("the failed renewal was not logged")
	}
	fs, err := s.FederationStatus(context.Background())
	if err != nil || fs.Certificate == nil || fs.Certificate.LastError == "" {
		t.Fatalf("federation status: %v %+v", err, fs.Certificate)
	}
}

// A backup carries the certificates: the data directory restored from it
// serves the stored certificate without a new order.
func TestAutoTLSCertificateSurvivesBackupAndRestore(t *testing.T) {
	p := testserver.NewPebble(t)
	const domain = "backup.palpo.test"
	s := testserver.New(t, testserver.AutoTLS(p, domain, config.ChallengeTLSALPN01))
	waitForCertificate(t, s)
	first := servedCertificate(t, s, p, domain)
	orders := p.Validations()

	if err := os.WriteFile(filepath.Join(s.DataDir, config.FileName), []byte("server_name = \""+s.ServerName()+"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	res, err := backup.Create(ctx, backup.Source{DataDir: s.DataDir, Config: s.Config, DB: s.DB(), Version: "test"},
		backup.CreateOptions{Dir: t.TempDir(), Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	certs := 0
	for _, f := range res.Manifest.Files {
		if strings.HasPrefix(f.Path, server.CertificatesDirName+"/") {
			certs++
		}
	}
	if certs == 0 {
		t.Fatalf("no certificates in the backup: %+v", res.Manifest.Files)
	}

	// The computer is lost: an empty data directory, restored.
	s.Down()
	entries, err := os.ReadDir(s.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(s.DataDir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := backup.Restore(ctx, res.Path, s.DataDir, backup.RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	s.Up()
	if again := servedCertificate(t, s, p, domain); string(again) != string(first) {
		t.Fatal("the restored server serves another certificate")
	}
	if n := p.Validations(); n != orders {
		t.Fatalf("%d validations after the restore, want %d (no new order)", n, orders)
	}
}
