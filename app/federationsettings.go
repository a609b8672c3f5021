package app

import (
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"syscall"

	"github.com/palpo-im/palpo-desktop/p2p/servername"
	"github.com/palpo-im/palpo-desktop/server/config"
)

// The app's "Connect to other Matrix servers" choice (the wizard and the
// Settings tab): off, over the internet with this person's domain, or peer
// to peer. It is a view of the [federation] section of palpo.toml, and
// saving it edits just those keys (tomledit.go), comments kept.

// FederationMode is how this server reaches other Matrix servers.
type FederationMode string

// The modes.
const (
	// FederationOff: federation disabled; nothing leaves this computer.
	FederationOff FederationMode = "off"
	// FederationInternet: federation on, with an automatic certificate
	// for the person's domain (federation.domain).
	FederationInternet FederationMode = "internet"
	// FederationPeerToPeer: other servers reached without a domain.
	FederationPeerToPeer FederationMode = "p2p"
)

// FederationSettings is the choice as the app shows it.
type FederationSettings struct {
	Mode FederationMode
	// Domain is the public name the certificate is for
	// (federation.domain); Email the optional address the certificate
	// authority writes to about it (federation.acme.email).
	Domain string
	Email  string
	// CertFiles is set when palpo.toml names certificate files
	// (federation.tls_cert_file): they win over an automatic certificate.
	CertFiles bool
	// ServerName is server_name, which other servers find this one by.
	ServerName string
	// Gateway is set for the peer-to-peer mode of a server with a domain:
	// it keeps its name and reaches other servers both over the internet
	// and peer to peer (federation.enabled and p2p.enabled).
	Gateway bool
}

// FederationSettings reads the choice from the loaded config.
func (a *App) FederationSettings() FederationSettings {
	cfg := a.Config()
	f := cfg.Federation
	s := FederationSettings{Mode: FederationOff, Domain: f.Domain, Email: f.ACME.Email, ServerName: cfg.ServerName,
		CertFiles: strings.TrimSpace(f.TLSCertFile) != ""}
	switch {
	case cfg.P2P.Enabled:
		s.Mode = FederationPeerToPeer
		s.Gateway = f.Enabled && !servername.IsP2P(cfg.ServerName)
	case f.Enabled:
		s.Mode = FederationInternet
	}
	return s
}

// CheckFederationDomain checks a domain typed for the certificate the way
// palpo.toml's federation.domain is checked, and says what is wrong in a
// sentence without the config key.
func CheckFederationDomain(domain string) error {
	if strings.TrimSpace(domain) == "" {
		return errors.New("type the domain other servers reach this computer by, such as example.org")
	}
	cfg := config.Default()
	cfg.Federation.Domain = domain
	return withoutKey(cfg.Validate(), "federation.domain")
}

// CheckACMEEmail checks the optional email for the certificate authority.
func CheckACMEEmail(email string) error {
	if email == "" {
		return nil
	}
	cfg := config.Default()
	cfg.Federation.Domain = "example.org"
	cfg.Federation.ACME.Email = email
	return withoutKey(cfg.Validate(), "federation.acme.email")
}

// withoutKey drops the `key "value": ` that config errors start with,
// which means nothing to someone typing into a field.
func withoutKey(err error, key string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if rest, ok := strings.CutPrefix(msg, key+" "); ok {
		if _, after, ok := strings.Cut(rest, ": "); ok {
			return errors.New(after)
		}
	}
	return err
}

// FederationNameProblem says why other servers could never reach a server
// by this name ("" when they can): they look it up in public DNS.
func FederationNameProblem(serverName string) string {
	host := serverName
	if h, _, err := net.SplitHostPort(serverName); err == nil {
		host = h
	}
	host = strings.ToLower(strings.Trim(host, "[]"))
	switch {
	case servername.IsP2P(host):
		return "This server has a peer-to-peer name, which no certificate can be issued for: other servers reach it peer to peer."
	case host == "localhost" || strings.HasSuffix(host, ".localhost"):
		return "This server is named " + serverName + ", a name only this computer knows, so other servers can never reach it."
	case strings.HasSuffix(host, ".local"):
		return "This server is named " + serverName + ", a name only your home network knows, so other servers can never reach it."
	case net.ParseIP(host) != nil:
		return "This server is named by an address (" + serverName + "), and certificates are only issued for domain names."
	case !strings.Contains(host, "."):
		return "This server is named " + serverName + ", which is not an internet domain, so other servers can never reach it."
	}
	return ""
}

// SuggestFederationDomain is the domain to offer for a server name: the
// name itself without a port.
func SuggestFederationDomain(serverName string) string {
	if FederationNameProblem(serverName) != "" {
		return ""
	}
	if h, _, err := net.SplitHostPort(serverName); err == nil {
		return h
	}
	return serverName
}

// SaveFederationSettings writes the choice to palpo.toml and reloads the
// config; a running server keeps the old values until it restarts (the
// caller does that). The note, when not "", is a sentence to show about
// how it was saved.
func (a *App) SaveFederationSettings(s FederationSettings) (note string, err error) {
	cfg := a.Config()
	var edits []tomlEdit
	switch s.Mode {
	case FederationOff:
		if cfg.Federation.Enabled {
			edits = append(edits, tomlEdit{"federation.enabled", "false", func(c *config.Config) bool { return !c.Federation.Enabled }})
		}
		if cfg.P2P.Enabled {
			edits = append(edits, p2pOff)
		}
	case FederationInternet:
		var err error
		if edits, note, err = internetEdits(cfg, s); err != nil {
			return "", err
		}
		if cfg.P2P.Enabled {
			edits = append(edits, p2pOff)
		}
	case FederationPeerToPeer:
		own, err := a.PeerToPeerName()
		if err != nil {
			return "", err
		}
		if p := PeerToPeerProblem(cfg.ServerName, own); p != "" {
			return "", errors.New(p)
		}
		if !servername.IsP2P(cfg.ServerName) {
			// A server with a domain: a gateway, over the internet too.
			if edits, note, err = internetEdits(cfg, s); err != nil {
				return "", err
			}
		}
		if !cfg.P2P.Enabled {
			edits = append(edits, p2pOn)
		}
	default:
		return "", fmt.Errorf("unknown way of connecting to other servers %q", s.Mode)
	}
	if err := a.editConfig(edits...); err != nil {
		return "", err
	}
	if len(edits) > 0 {
		a.log.Info("federation settings changed", "mode", string(s.Mode), "domain", a.Config().Federation.Domain)
	}
	return note, nil
}

// internetEdits are the edits that turn federation over the internet on
// with s's domain and email, and the note about how, if any.
func internetEdits(cfg *config.Config, s FederationSettings) (edits []tomlEdit, note string, err error) {
	if p := FederationNameProblem(cfg.ServerName); p != "" {
		return nil, "", errors.New(p)
	}
	domain := strings.ToLower(strings.TrimSpace(s.Domain))
	email := strings.TrimSpace(s.Email)
	if err := CheckFederationDomain(domain); err != nil {
		return nil, "", fmt.Errorf("the domain %q: %w", domain, err)
	}
	if err := CheckACMEEmail(email); err != nil {
		return nil, "", fmt.Errorf("the email %q: %w", email, err)
	}
	if !cfg.Federation.Enabled {
		edits = append(edits, tomlEdit{"federation.enabled", "true", func(c *config.Config) bool { return c.Federation.Enabled }})
	}
	if domain != cfg.Federation.Domain {
		edits = append(edits, tomlEdit{"federation.domain", tomlString(domain), func(c *config.Config) bool { return c.Federation.Domain == domain }})
	}
	if email != cfg.Federation.ACME.Email {
		edits = append(edits, tomlEdit{"federation.acme.email", tomlString(email), func(c *config.Config) bool { return c.Federation.ACME.Email == email }})
	}
	if strings.TrimSpace(cfg.Federation.TLSCertFile) == "" { // an automatic certificate
		if only, why := challengesFor(cfg.Federation.ACME); only != nil {
			edits = append(edits, tomlEdit{"federation.acme.challenges", tomlStrings(only), func(c *config.Config) bool { return slices.Equal(c.Federation.ACME.Challenges, only) }})
			note = why
		}
	}
	return edits, note, nil
}

// challengesFor looks at whether this computer lets Palpo answer the
// certificate authority's HTTP-01 check on port 80: on Linux a program
// without special rights may not use ports below 1024, and a server that
// cannot bind it would not start at all. Then only TLS-ALPN-01 (answered
// on the federation port itself) is kept, and why says so in a sentence.
// nil when the challenges can stay as they are.
func challengesFor(acme config.ACME) (only []string, why string) {
	if !acme.HasChallenge(config.ChallengeHTTP01) || !acme.HasChallenge(config.ChallengeTLSALPN01) {
		return nil, ""
	}
	ln, err := net.Listen("tcp", acme.HTTPChallengeListen)
	if err == nil {
		ln.Close()
		return nil, ""
	}
	if !errors.Is(err, syscall.EACCES) && !errors.Is(err, os.ErrPermission) {
		return nil, "" // in use (perhaps by this server already): leave it
	}
	return []string{config.ChallengeTLSALPN01},
		"This computer does not let Palpo use port 80, so the certificate authority checks your domain on port 443 instead: " +
			"forward port 443 on your router to this computer's port 8448 (or the federation port you chose)."
}
