package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// ACME challenge types federation.acme.challenges may list.
const (
	ChallengeHTTP01    = "http-01"
	ChallengeTLSALPN01 = "tls-alpn-01"
)

// ACME certificate authorities federation.acme.ca may name besides a
// directory URL.
const (
	ACMELetsEncrypt        = "letsencrypt"
	ACMELetsEncryptStaging = "letsencrypt-staging"
)

// ACME configures automatic TLS for the federation listener: used when
// federation.domain is set and no certificate files are.
type ACME struct {
	// CA is "letsencrypt", "letsencrypt-staging", or the https URL of an
	// ACME directory.
	CA string `toml:"ca"`
	// CARootFile is a PEM file of the root that the ACME server's own
	// HTTPS certificate chains to, for a private CA (and tests); empty
	// means the system's roots. Relative paths are inside the data
	// directory.
	CARootFile string `toml:"ca_root_file"`
	// Email is given to the CA for expiry notices; optional.
	Email string `toml:"email"`
	// Challenges are the ways the CA may check that this server owns
	// the domain: "http-01" (port 80, http_challenge_listen) and
	// "tls-alpn-01" (on the federation listener itself).
	Challenges []string `toml:"challenges"`
	// HTTPChallengeListen is where the HTTP-01 challenge is answered;
	// every other request there is redirected to https.
	HTTPChallengeListen string `toml:"http_challenge_listen"`
}

func defaultACME() ACME {
	return ACME{
		CA:                  ACMELetsEncrypt,
		Challenges:          []string{ChallengeHTTP01, ChallengeTLSALPN01},
		HTTPChallengeListen: "0.0.0.0:80",
	}
}

// AutoTLS reports whether the federation listener gets its certificate
// from the ACME CA: a domain is set and no certificate files are (files
// win).
func (f Federation) AutoTLS() bool {
	return f.Domain != "" && strings.TrimSpace(f.TLSCertFile) == "" && strings.TrimSpace(f.TLSKeyFile) == ""
}

// HasChallenge reports whether challenge (ChallengeHTTP01, …) is enabled.
func (a ACME) HasChallenge(challenge string) bool { return slices.Contains(a.Challenges, challenge) }

// DirectoryURL is the ACME directory the CA setting names.
func (a ACME) DirectoryURL() string {
	switch a.CA {
	case ACMELetsEncrypt, "":
		return "https://acme-v02.api.letsencrypt.org/directory"
	case ACMELetsEncryptStaging:
		return "https://acme-staging-v02.api.letsencrypt.org/directory"
	}
	return a.CA
}

func validateDomain(domain string) error {
	if domain == "" {
		return nil
	}
	if net.ParseIP(domain) != nil {
		return fmt.Errorf("federation.domain %q: is an IP address; certificate authorities issue certificates for host names such as \"matrix.example.org\"", domain)
	}
	if strings.Contains(domain, ":") {
		return fmt.Errorf("federation.domain %q: must be a host name without a port, such as \"example.org\"", domain)
	}
	if err := ValidateServerName(domain); err != nil || !strings.Contains(domain, ".") || strings.HasSuffix(domain, ".") {
		return fmt.Errorf("federation.domain %q: not a host name; use the public DNS name other servers connect to, such as \"example.org\", or leave it empty", domain)
	}
	l := strings.ToLower(domain)
	if l == "localhost" || strings.HasSuffix(l, ".localhost") || strings.HasSuffix(l, ".local") {
		return fmt.Errorf("federation.domain %q: a certificate authority cannot reach a local name; use this server's public DNS name, or set tls_cert_file and tls_key_file", domain)
	}
	return nil
}

func (a ACME) validate() error {
	switch a.CA {
	case ACMELetsEncrypt, ACMELetsEncryptStaging:
	default:
		u, err := url.Parse(a.CA)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return fmt.Errorf("federation.acme.ca %q: use \"letsencrypt\", \"letsencrypt-staging\", or the https URL of an ACME directory", a.CA)
		}
	}
	if a.CARootFile != "" && strings.TrimSpace(a.CARootFile) == "" {
		return errors.New("federation.acme.ca_root_file: is blank; name a PEM file of the ACME server's root certificate, or leave it empty")
	}
	if a.Email != "" && (!strings.Contains(a.Email, "@") || strings.ContainsAny(a.Email, " \t<>")) {
		return fmt.Errorf("federation.acme.email %q: not an email address; give one such as \"admin@example.org\", or leave it empty", a.Email)
	}
	if len(a.Challenges) == 0 {
		return errors.New("federation.acme.challenges: is empty; list \"http-01\" and/or \"tls-alpn-01\" (the default is both)")
	}
	for _, c := range a.Challenges {
		if c != ChallengeHTTP01 && c != ChallengeTLSALPN01 {
			return fmt.Errorf("federation.acme.challenges %q: unknown challenge; use \"http-01\" and/or \"tls-alpn-01\"", c)
		}
	}
	if a.HasChallenge(ChallengeHTTP01) {
		host, port, err := net.SplitHostPort(a.HTTPChallengeListen)
		if err != nil {
			return fmt.Errorf("federation.acme.http_challenge_listen %q: %v; use host:port such as \"0.0.0.0:80\"", a.HTTPChallengeListen, err)
		}
		if host != "" && net.ParseIP(host) == nil && host != "localhost" {
			return fmt.Errorf("federation.acme.http_challenge_listen %q: host must be an IP address or \"localhost\"", a.HTTPChallengeListen)
		}
		if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
			return fmt.Errorf("federation.acme.http_challenge_listen %q: port must be a number from 0 to 65535; certificate authorities connect to port 80", a.HTTPChallengeListen)
		}
	}
	return nil
}
