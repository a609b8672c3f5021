package config

import (
	"strings"
	"testing"
)

func TestFederationDefaultsOff(t *testing.T) {
	cfg := Default()
	f := cfg.Federation
	if f.Enabled || f.Listen != "0.0.0.0:8448" || !f.VerifyCertificates || f.AllowPrivateAddresses || len(f.KeyNotaries) != 0 || f.WellKnownServer != "" {
		t.Fatalf("unexpected federation defaults %+v", f)
	}
}

func TestFederationEnabled(t *testing.T) {
	cfg, err := Parse("server_name = \"example.org\"\n[federation]\nenabled = true\ntls_cert_file = \"cert.pem\"\ntls_key_file = \"key.pem\"\n" +
		"deny_servers = [\"*.evil.example\", \"bad?.org\"]\nkey_notaries = [\"matrix.org\"]\nwell_known_server = \"matrix.example.org:443\"\n")
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Federation.Enabled || cfg.Federation.KeyNotaries[0] != "matrix.org" {
		t.Fatalf("unexpected %+v", cfg.Federation)
	}
}

func TestInvalidFederationConfigSaysHowToFix(t *testing.T) {
	const on = "server_name = \"example.org\"\n[federation]\nenabled = true\n"
	const files = "tls_cert_file = \"c.pem\"\ntls_key_file = \"k.pem\"\n"
	cases := map[string]string{
		on:                                     "tls_cert_file",
		on + "tls_cert_file = \"c.pem\"\n":     "tls_key_file",
		on + files + "listen = \"nonsense\"\n": "federation.listen",
		on + files + "listen = \"host.example:1\"\n":  "federation.listen",
		"[federation]\nenabled = true\n" + files:      "localhost",
		"[federation]\ndeny_servers = [\"\"]\n":       "federation.deny_servers",
		"[federation]\nallow_servers = [\"a b\"]\n":   "federation.allow_servers",
		"[federation]\nkey_notaries = [\"x y\"]\n":    "federation.key_notaries",
		"[federation]\ntrusted_ca_files = [\"\"]\n":   "federation.trusted_ca_files",
		"[federation]\nwell_known_server = \"a:b\"\n": "federation.well_known_server",
	}
	for text, want := range cases {
		_, err := Parse(text)
		if err == nil {
			t.Errorf("%q: expected an error", text)
			continue
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %q does not mention %q", text, err, want)
		}
	}
}

func TestFederationAutoTLS(t *testing.T) {
	cfg, err := Parse("server_name = \"example.org\"\n[federation]\nenabled = true\ndomain = \"example.org\"\n" +
		"[federation.acme]\nca = \"https://ca.example/dir\"\nemail = \"me@example.org\"\nchallenges = [\"tls-alpn-01\"]\n")
	if err != nil {
		t.Fatal(err)
	}
	f := cfg.Federation
	if !f.AutoTLS() || f.ACME.DirectoryURL() != "https://ca.example/dir" || f.ACME.HasChallenge(ChallengeHTTP01) || !f.ACME.HasChallenge(ChallengeTLSALPN01) {
		t.Fatalf("unexpected %+v", f)
	}
	d := Default().Federation.ACME
	if d.CA != ACMELetsEncrypt || !d.HasChallenge(ChallengeHTTP01) || !d.HasChallenge(ChallengeTLSALPN01) || d.HTTPChallengeListen != "0.0.0.0:80" {
		t.Fatalf("unexpected ACME defaults %+v", d)
	}
	// Certificate files win over the domain.
	cfg, err = Parse("server_name = \"example.org\"\n[federation]\nenabled = true\ndomain = \"example.org\"\ntls_cert_file = \"c.pem\"\ntls_key_file = \"k.pem\"\n")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Federation.AutoTLS() {
		t.Fatal("certificate files should win over domain")
	}
}

func TestInvalidACMEConfigSaysHowToFix(t *testing.T) {
	const on = "server_name = \"example.org\"\n[federation]\nenabled = true\ndomain = \"example.org\"\n[federation.acme]\n"
	cases := map[string]string{
		"[federation]\ndomain = \"1.2.3.4\"\n":         "federation.domain",
		"[federation]\ndomain = \"a.example:8448\"\n":  "federation.domain",
		"[federation]\ndomain = \"pc.local\"\n":        "federation.domain",
		"[federation]\ndomain = \"no spaces.org\"\n":   "federation.domain",
		on + "ca = \"http://insecure.example/dir\"\n":  "federation.acme.ca",
		on + "ca = \"lets-encrypt\"\n":                 "federation.acme.ca",
		on + "email = \"nobody\"\n":                    "federation.acme.email",
		on + "challenges = []\n":                       "federation.acme.challenges",
		on + "challenges = [\"dns-01\"]\n":             "federation.acme.challenges",
		on + "http_challenge_listen = \"80\"\n":        "federation.acme.http_challenge_listen",
		on + "http_challenge_listen = \"0.0.0.0:x\"\n": "federation.acme.http_challenge_listen",
		on + "ca_root_file = \" \"\n":                  "federation.acme.ca_root_file",
	}
	for text, want := range cases {
		_, err := Parse(text)
		if err == nil {
			t.Errorf("%q: expected an error", text)
			continue
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %q does not mention %q", text, err, want)
		}
	}
}

func TestPortMapping(t *testing.T) {
	if pm := Default().Federation.PortMapping; pm.Enabled || len(pm.Ports) != 0 {
		t.Fatalf("port mapping defaults: %+v", pm)
	}
	cfg, err := Parse("[federation.port_mapping]\nenabled = true\nports = [443]\n")
	if err != nil {
		t.Fatal(err)
	}
	if pm := cfg.Federation.PortMapping; !pm.Enabled || len(pm.Ports) != 1 || pm.Ports[0] != 443 {
		t.Fatalf("parsed: %+v", pm)
	}
	for _, bad := range []string{"0", "65536", "-1"} {
		_, err := Parse("[federation.port_mapping]\nports = [" + bad + "]\n")
		if err == nil || !strings.Contains(err.Error(), "federation.port_mapping.ports") {
			t.Errorf("ports = [%s]: error %v", bad, err)
		}
	}
}

func TestP2PDefaultsOff(t *testing.T) {
	p := Default().P2P
	if p.Enabled || !p.MDNS || len(p.BootstrapPeers) != 0 || len(p.Relays) != 0 || len(p.StaticPeers) != 0 || p.RelayService || len(p.Listen) == 0 {
		t.Fatalf("unexpected p2p defaults %+v", p)
	}
}

func TestInvalidP2PConfigSaysHowToFix(t *testing.T) {
	const name = "duafvfkasysx6g3mesqxlgct7bhkun6bhff5bjyjebmlut7uhcva.p2p.alt"
	if _, err := Parse("server_name = \"" + name + "\"\n[p2p]\nenabled = true\nstatic_peers = [\"/ip4/127.0.0.1/tcp/1/p2p/12D3KooWabc\"]\n"); err != nil {
		t.Fatalf("valid P2P config refused: %v", err)
	}
	// A P2P-named server with federation on needs no certificate: nobody
	// can reach a TLS listener by that name.
	if _, err := Parse("server_name = \"" + name + "\"\n[federation]\nenabled = true\n[p2p]\nenabled = true\n"); err != nil {
		t.Fatalf("P2P name with federation refused: %v", err)
	}
	cases := map[string]string{
		"server_name = \"" + name[:51] + "b.p2p.alt\"\n":                 "canonical",
		"server_name = \"" + strings.ToUpper(name[:52]) + ".p2p.alt\"\n": "lower case",
		"server_name = \"abc.p2p.alt\"\n":                                "52 base32",
		"[p2p]\nenabled = true\nlisten = []\n":                           "p2p.listen",
		"[p2p]\nlisten = [\"0.0.0.0:8449\"]\n":                           "p2p.listen",
		"[p2p]\nbootstrap_peers = [\"/ip4/1.2.3.4/tcp/1\"]\n":            "p2p.bootstrap_peers",
		"[p2p]\nrelays = [\"relay.example\"]\n":                          "p2p.relays",
		"[p2p]\nstatic_peers = [\"\"]\n":                                 "p2p.static_peers",
		"[p2p]\nenable = true\n":                                         "unknown key",
	}
	for text, want := range cases {
		_, err := Parse(text)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want one mentioning %q", text, err, want)
		}
	}
}
