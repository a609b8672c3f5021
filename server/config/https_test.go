package config

import (
	"strings"
	"testing"
)

func TestHTTPSDefaultsOff(t *testing.T) {
	h := Default().HTTPS
	if h.Enabled || h.Listen != "0.0.0.0:443" {
		t.Fatalf("unexpected https defaults %+v", h)
	}
}

func TestHTTPSWithDomainOrFiles(t *testing.T) {
	// The automatic certificate, federation itself off.
	cfg, err := Parse("server_name = \"example.org\"\n[federation]\ndomain = \"example.org\"\n[https]\nenabled = true\nlisten = \"127.0.0.1:8443\"\n")
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.HTTPS.Enabled || cfg.HTTPS.Listen != "127.0.0.1:8443" {
		t.Fatalf("unexpected %+v", cfg.HTTPS)
	}
	// Certificate files.
	if _, err := Parse("server_name = \"example.org\"\n[federation]\ntls_cert_file = \"c.pem\"\ntls_key_file = \"k.pem\"\n[https]\nenabled = true\n"); err != nil {
		t.Fatal(err)
	}
}

func TestInvalidHTTPSConfigSaysHowToFix(t *testing.T) {
	const domain = "server_name = \"example.org\"\n[federation]\ndomain = \"example.org\"\n"
	cases := map[string]string{
		"[https]\nenabled = true\n": "federation.domain",
		"server_name = \"example.org\"\n[federation]\ntls_cert_file = \"c.pem\"\n[https]\nenabled = true\n": "tls_key_file",
		domain + "[https]\nenabled = true\nlisten = \"443\"\n":                                              "https.listen",
		domain + "[https]\nenabled = true\nlisten = \"host.example:443\"\n":                                 "https.listen",
		domain + "[https]\nenabled = true\nlisten = \"0.0.0.0:99999\"\n":                                    "https.listen",
		domain + "[https]\nenabled = true\nlisten = \"0.0.0.0:8008\"\n":                                     "same port",
		domain + "[https]\nenabled = true\nlisten = \"0.0.0.0:80\"\n":                                       "federation.acme.http_challenge_listen",
		domain + "enabled = true\nlisten = \"0.0.0.0:443\"\n[https]\nenabled = true\n":                      "federation.listen",
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
	// Off, nothing about it is checked.
	if _, err := Parse("[https]\nlisten = \"nonsense\"\n"); err != nil {
		t.Fatalf("a disabled https section was checked: %v", err)
	}
}
