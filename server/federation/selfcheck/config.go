package selfcheck

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"

	mfed "maunium.net/go/mautrix/federation"

	"github.com/palpo-im/palpo-desktop/server/config"
)

// FromConfig is the check of a server with this config and signing key:
// its server_name, its delegation, federation.domain when Palpo obtains
// its certificate for it (with certificate files the domain is not used),
// and as trust the system's roots plus
// federation.trusted_ca_files (so a private CA on a LAN is judged as the
// other servers there judge it). Paths must already be absolute. The
// public address is not looked up; set PublicAddress to do so.
func FromConfig(cfg *config.Config, key *mfed.SigningKey) (Config, error) {
	c := Config{ServerName: cfg.ServerName, WellKnownServer: cfg.Federation.WellKnownServer}
	if cfg.Federation.AutoTLS() {
		c.Domain = cfg.Federation.Domain
	}
	if key != nil {
		c.KeyID, c.PublicKey = key.ID, key.Pub
	}
	if len(cfg.Federation.TrustedCAFiles) > 0 {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		for _, f := range cfg.Federation.TrustedCAFiles {
			pem, err := os.ReadFile(f)
			if err != nil {
				return c, fmt.Errorf("federation.trusted_ca_files: %w", err)
			}
			if !pool.AppendCertsFromPEM(pem) {
				return c, fmt.Errorf("federation.trusted_ca_files: %s holds no PEM certificate", f)
			}
		}
		c.RootCAs = pool
	}
	return c, nil
}

// PublicAddressFrom finds this network's public address by asking url,
// a service that answers with the caller's address as plain text (such as
// https://api.ipify.org). Only for when the person running the check
// chooses such a service: it learns that this network runs a check.
func PublicAddressFrom(url string) func(ctx context.Context) (net.IP, error) {
	return func(ctx context.Context) (net.IP, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return nil, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, 256))
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", url, err)
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("%s answered status %d", url, resp.StatusCode)
		}
		ip := net.ParseIP(strings.TrimSpace(string(body)))
		if ip == nil {
			return nil, fmt.Errorf("%s did not answer with an IP address", url)
		}
		return ip, nil
	}
}
