package app

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/palpo-im/palpo-desktop/p2p/servername"
	"github.com/palpo-im/palpo-desktop/server"
	"github.com/palpo-im/palpo-desktop/server/federation/selfcheck"
)

// CertificateWarning is how close to its expiry a certificate is shown as
// a warning: the self-check's threshold. An automatic certificate is
// renewed about 30 days ahead, so one this close is one whose renewals
// keep failing.
const CertificateWarning = selfcheck.DefaultExpiryWarning

// CertificateStatus is the federation certificate as the app shows it. It
// adapts the running server's federation.CertificateStatus, and fills what
// that lacks from the certificate itself (in the data directory's
// certificate storage, or the configured file), so the app can say the
// same with the server stopped.
type CertificateStatus struct {
	// Enabled is federation.enabled; nothing else is set when it is off.
	Enabled bool
	// Auto is an automatic certificate (federation.domain), as opposed
	// to files named in palpo.toml.
	Auto bool
	// Domain is the name the certificate is for: federation.domain, or
	// the file certificate's first name.
	Domain string
	// File is the certificate file, for certificates from files.
	File string
	// NotBefore and NotAfter bound the certificate in use; zero when
	// there is none yet.
	NotBefore, NotAfter time.Time
	// RenewAt is when an automatic certificate is due for renewal
	// (a third of its lifetime before it ends); zero for files.
	RenewAt time.Time
	// LastObtained is when this run of the server last got one.
	LastObtained time.Time
	// LastError is why the last order or renewal failed, "" when it
	// did not; LastErrorAt when.
	LastError   string
	LastErrorAt time.Time
	// Running tells whether this came from the running server (else from
	// the files on disk).
	Running bool
}

// ExpiringSoon tells whether the certificate ends within
// CertificateWarning of now (or has ended).
func (c CertificateStatus) ExpiringSoon(now time.Time) bool {
	return !c.NotAfter.IsZero() && c.NotAfter.Sub(now) < CertificateWarning
}

// Expired tells whether the certificate has ended.
func (c CertificateStatus) Expired(now time.Time) bool {
	return !c.NotAfter.IsZero() && !now.Before(c.NotAfter)
}

// CertificateStatus reads the federation certificate's state: from the
// running server when it runs (what it serves, even when palpo.toml has
// changed since it started), else from the data directory.
func (a *App) CertificateStatus() CertificateStatus {
	cfg := a.Config()
	f := cfg.Federation
	// Only a TLS listener has a certificate: federation over the
	// internet under a DNS name (peer to peer needs none).
	tls := f.Enabled && !servername.IsP2P(cfg.ServerName)
	st := CertificateStatus{Enabled: tls, Auto: f.AutoTLS(), Domain: f.Domain}
	if srv := a.Server(); srv != nil && srv.Federation() != nil {
		fed := srv.Federation()
		st = CertificateStatus{Enabled: fed.Addr() != nil || fed.Enabled() && tls}
		if fed.Addr() != nil {
			fs := fed.CertificateStatus()
			st.Running = true
			st.Auto, st.Domain = fs.Auto, fs.Domain
			st.NotBefore, st.NotAfter = fs.NotBefore, fs.NotAfter
			st.RenewAt = fs.RenewalDue
			st.LastObtained = fs.LastObtained
			st.LastError, st.LastErrorAt = fs.LastError, fs.LastErrorAt
		}
	}
	if !st.Enabled {
		return CertificateStatus{}
	}
	if !st.Auto && f.TLSCertFile != "" {
		st.File = f.TLSCertFile
		if !filepath.IsAbs(st.File) {
			st.File = filepath.Join(a.dataDir, st.File)
		}
	}
	// The leaf on disk gives everything when the server is stopped (or
	// has no certificate yet). A running server's validity is what it
	// serves, so the disk is not read then: the desktop asks every few
	// seconds.
	if !st.Running || st.NotAfter.IsZero() {
		if !st.Auto {
			st.Domain = ""
		}
		var leaf *x509.Certificate
		if st.Auto {
			leaf = storedCertificate(filepath.Join(a.dataDir, server.CertificatesDirName), st.Domain)
		} else if st.File != "" {
			leaf = firstCertificate(st.File)
		}
		if leaf != nil {
			st.NotBefore, st.NotAfter = leaf.NotBefore, leaf.NotAfter
			if st.Domain == "" {
				st.Domain = leafName(leaf)
			}
		}
	}
	if st.Auto && !st.NotAfter.IsZero() && st.RenewAt.IsZero() {
		st.RenewAt = renewalDue(st.NotBefore, st.NotAfter)
	}
	return st
}

// renewalDue is when an automatic certificate is renewed: with a third of
// its lifetime left (the certificate manager's default window), or 30
// days ahead when its start is not known (Let's Encrypt's 90 days).
func renewalDue(notBefore, notAfter time.Time) time.Time {
	if notBefore.IsZero() || !notBefore.Before(notAfter) {
		return notAfter.Add(-30 * 24 * time.Hour)
	}
	return notAfter.Add(-notAfter.Sub(notBefore) / 3)
}

// storedCertificate finds the newest certificate for domain in the
// automatic certificates' storage (one folder per certificate authority,
// then one per name), or nil.
func storedCertificate(dir, domain string) *x509.Certificate {
	if domain == "" || strings.ContainsAny(domain, `*?[\/`) {
		return nil
	}
	matches, _ := filepath.Glob(filepath.Join(dir, "certificates", "*", domain, domain+".crt"))
	var best *x509.Certificate
	for _, m := range matches {
		if c := firstCertificate(m); c != nil && (best == nil || c.NotAfter.After(best.NotAfter)) {
			best = c
		}
	}
	return best
}

// firstCertificate is the first certificate of a PEM file (the leaf of a
// full chain), or nil.
func firstCertificate(path string) *x509.Certificate {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil
		}
		if b.Type == "CERTIFICATE" {
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil
			}
			return c
		}
	}
}

func leafName(c *x509.Certificate) string {
	if len(c.DNSNames) > 0 {
		return c.DNSNames[0]
	}
	if len(c.IPAddresses) > 0 {
		return c.IPAddresses[0].String()
	}
	return c.Subject.CommonName
}
