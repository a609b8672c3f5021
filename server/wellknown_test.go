package server_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/palpo-im/palpo-desktop/server/config"
	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
)

// clientWellKnown asks /.well-known/matrix/client as a client that
// reached the server under host.
func clientWellKnown(t *testing.T, ts *testserver.Server, host string) (string, *http.Response) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, ts.URL+"/.well-known/matrix/client", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var wk struct {
		HS struct {
			BaseURL string `json:"base_url"`
		} `json:"m.homeserver"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&wk); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("client well-known for %s: %d %v", host, resp.StatusCode, err)
	}
	return wk.HS.BaseURL, resp
}

// Without public_baseurl a device on the home network is told the
// address it came by, not localhost; with it (delegation from the
// domain's web server) every client is told the public address, with CORS
// for web clients.
func TestClientWellKnownAddress(t *testing.T) {
	plain := testserver.New(t)
	if got, _ := clientWellKnown(t, plain, "192.0.2.10:8008"); got != "http://192.0.2.10:8008" {
		t.Errorf("home network: %q", got)
	}
	public := testserver.New(t, func(c *config.Config) { c.PublicBaseURL = "https://matrix.example.org" })
	for _, host := range []string{"example.org", "192.0.2.10:8008", "localhost"} {
		got, resp := clientWellKnown(t, public, host)
		if got != "https://matrix.example.org" {
			t.Errorf("public_baseurl, asked as %s: %q", host, got)
		}
		if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("no CORS, asked as %s", host)
		}
	}
}
