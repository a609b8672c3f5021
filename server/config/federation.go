package config

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/palpo-im/palpo-desktop/p2p/servername"
)

// Federation configures the server-server API: talking to other Matrix
// servers. Off by default: a server that never turns it on makes no
// outbound connection at all.
type Federation struct {
	// Enabled turns federation on: the federation listener starts and
	// other servers' keys and rooms can be reached.
	Enabled bool `toml:"enabled"`
	// Listen is the host:port the federation API (TLS) listens on.
	Listen string `toml:"listen"`
	// TLSCertFile and TLSKeyFile are the PEM files of the federation
	// listener's certificate (full chain) and its private key. Relative
	// paths are inside the data directory.
	TLSCertFile string `toml:"tls_cert_file"`
	TLSKeyFile  string `toml:"tls_key_file"`
	// TrustedCAFiles are extra PEM files of certificate authorities trusted
	// for outbound connections, beside the system's (private CAs, tests).
	TrustedCAFiles []string `toml:"trusted_ca_files"`
	// VerifyCertificates checks other servers' certificates. Turning it
	// off lets anyone on the path impersonate any server.
	VerifyCertificates bool `toml:"verify_certificates"`
	// AllowServers, when not empty, lists the only servers this one talks
	// to; DenyServers lists servers it never talks to. Entries may use the
	// globs * and ? (as in server ACLs).
	AllowServers []string `toml:"allow_servers"`
	DenyServers  []string `toml:"deny_servers"`
	// KeyNotaries are servers asked for another server's keys when that
	// server cannot be reached directly. Empty by default: asking a notary
	// tells it which servers this one talks to.
	KeyNotaries []string `toml:"key_notaries"`
	// AllowPrivateAddresses lets outbound federation reach private,
	// loopback and link-local addresses (a LAN, tests).
	AllowPrivateAddresses bool `toml:"allow_private_addresses"`
	// WellKnownServer, when set, is served at the client listener's
	// /.well-known/matrix/server ("host:port" that other servers should
	// connect to for server_name: delegation).
	WellKnownServer string `toml:"well_known_server"`
	// Domain, when set and no certificate files are, turns on automatic
	// TLS: the federation listener's certificate for this name is obtained
	// from the ACME certificate authority and renewed by itself.
	Domain string `toml:"domain"`
	// ACME configures that certificate authority.
	ACME ACME `toml:"acme"`
	// PortMapping forwards ports on the home router (NAT-PMP, UPnP IGD).
	PortMapping PortMapping `toml:"port_mapping"`
}

func defaultFederation() Federation {
	return Federation{
		Listen:             "0.0.0.0:8448",
		TrustedCAFiles:     []string{},
		VerifyCertificates: true,
		AllowServers:       []string{},
		DenyServers:        []string{},
		KeyNotaries:        []string{},
		ACME:               defaultACME(),
		PortMapping:        defaultPortMapping(),
	}
}

func (f Federation) validate(serverName string) error {
	// A peer-to-peer server name cannot be looked up in DNS, so nobody
	// could reach a TLS listener by it: with federation on, such a server
	// only sends to DNS-named servers and needs no listener or certificate.
	if f.Enabled && !servername.IsP2P(serverName) {
		host, port, err := net.SplitHostPort(f.Listen)
		if err != nil {
			return fmt.Errorf("federation.listen %q: %v; use host:port such as \"0.0.0.0:8448\"", f.Listen, err)
		}
		if host != "" && net.ParseIP(host) == nil && host != "localhost" {
			return fmt.Errorf("federation.listen %q: host must be an IP address or \"localhost\"", f.Listen)
		}
		if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
			return fmt.Errorf("federation.listen %q: port must be a number from 0 to 65535; the default is 8448", f.Listen)
		}
		if (strings.TrimSpace(f.TLSCertFile) == "") != (strings.TrimSpace(f.TLSKeyFile) == "") ||
			strings.TrimSpace(f.TLSCertFile) == "" && f.Domain == "" {
			return errors.New("federation.tls_cert_file and federation.tls_key_file: both are needed when federation is enabled without federation.domain; " +
				"set them to the PEM files of this server's certificate and private key (such as Let's Encrypt's fullchain.pem and privkey.pem), " +
				"or set federation.domain to this server's public DNS name for an automatic certificate, or set federation.enabled = false")
		}
		if h, _, ok := strings.Cut(serverName, ":"); ok && h == "localhost" || serverName == "localhost" {
			return errors.New("federation.enabled: server_name \"localhost\" cannot federate, since other servers cannot reach it by that name; " +
				"set server_name to this server's public host name (before any account exists), or set federation.enabled = false")
		}
	}
	if err := validateDomain(f.Domain); err != nil {
		return err
	}
	if f.AutoTLS() {
		if err := f.ACME.validate(); err != nil {
			return err
		}
	}
	if err := f.PortMapping.validate(); err != nil {
		return err
	}
	for _, f := range f.TrustedCAFiles {
		if strings.TrimSpace(f) == "" {
			return errors.New("federation.trusted_ca_files: an entry is empty; list PEM files of certificate authorities, or leave the list empty")
		}
	}
	for key, list := range map[string][]string{"allow_servers": f.AllowServers, "deny_servers": f.DenyServers} {
		for _, pattern := range list {
			if err := validateServerGlob(pattern); err != nil {
				return fmt.Errorf("federation.%s %q: %w; use server names such as \"example.org\", optionally with * and ? globs (\"*.example.org\")", key, pattern, err)
			}
		}
	}
	for _, n := range f.KeyNotaries {
		if err := ValidateServerName(n); err != nil {
			return fmt.Errorf("federation.key_notaries %q: %w; list server names such as \"matrix.org\", or leave the list empty", n, err)
		}
	}
	if f.WellKnownServer != "" {
		if err := ValidateServerName(f.WellKnownServer); err != nil {
			return fmt.Errorf("federation.well_known_server %q: %w; use host:port such as \"matrix.example.org:443\", or leave it empty", f.WellKnownServer, err)
		}
	}
	return nil
}

// validateServerGlob checks a server name that may contain * and ? globs.
func validateServerGlob(pattern string) error {
	if pattern == "" {
		return errors.New("is empty")
	}
	for _, r := range pattern {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-.:[]*?", r)) {
			return fmt.Errorf("contains %q", r)
		}
	}
	return nil
}
