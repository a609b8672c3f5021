package config

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// HTTPS serves the client API (the same one as listen) over TLS, with the
// federation certificate: the automatic one for federation.domain, or
// federation's certificate files. This is how phones reach
// https://example.org.
type HTTPS struct {
	// Enabled turns the https listener on.
	Enabled bool `toml:"enabled"`
	// Listen is the host:port it listens on; 443 is where clients (and
	// certificate authorities' tls-alpn-01 checks) connect.
	Listen string `toml:"listen"`
}

func defaultHTTPS() HTTPS {
	return HTTPS{Listen: "0.0.0.0:443"}
}

func (h HTTPS) validate(c *Config) error {
	if !h.Enabled {
		return nil
	}
	host, port, err := net.SplitHostPort(h.Listen)
	if err != nil {
		return fmt.Errorf("https.listen %q: %v; use host:port such as \"0.0.0.0:443\"", h.Listen, err)
	}
	if host != "" && net.ParseIP(host) == nil && host != "localhost" {
		return fmt.Errorf("https.listen %q: host must be an IP address or \"localhost\"", h.Listen)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("https.listen %q: port must be a number from 0 to 65535; the default is 443", h.Listen)
	}
	f := c.Federation
	cert, key := strings.TrimSpace(f.TLSCertFile) != "", strings.TrimSpace(f.TLSKeyFile) != ""
	if cert != key {
		return errors.New("https.enabled: federation.tls_cert_file and federation.tls_key_file go together; set both, or neither and set federation.domain")
	}
	if !cert && f.Domain == "" {
		return errors.New("https.enabled: there is no certificate to serve; set federation.domain to this server's public DNS name " +
			"(such as \"example.org\") for an automatic certificate, or federation.tls_cert_file and tls_key_file to certificate files, " +
			"or set https.enabled = false")
	}
	others := map[string]string{}
	for _, l := range c.Listen {
		others[l] = "listen"
	}
	if f.Enabled {
		others[f.Listen] = "federation.listen"
	}
	if f.AutoTLS() && f.ACME.HasChallenge(ChallengeHTTP01) {
		others[f.ACME.HTTPChallengeListen] = "federation.acme.http_challenge_listen"
	}
	for addr, key := range others {
		if samePort(h.Listen, addr) {
			return fmt.Errorf("https.listen %q: %s %q uses the same port; give each listener its own port", h.Listen, key, addr)
		}
	}
	return nil
}

// samePort reports whether two listen addresses would take the same port:
// the same non-zero port on the same host, or on any host when one of
// them listens on every address.
func samePort(a, b string) bool {
	ah, ap, err1 := net.SplitHostPort(a)
	bh, bp, err2 := net.SplitHostPort(b)
	if err1 != nil || err2 != nil || ap != bp || ap == "0" {
		return false
	}
	wild := func(h string) bool { ip := net.ParseIP(h); return h == "" || ip != nil && ip.IsUnspecified() }
	return ah == bh || wild(ah) || wild(bh)
}
