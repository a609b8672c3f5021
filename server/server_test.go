package server_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"

	"maunium.net/go/mautrix"

	"github.com/palpo-im/palpo-desktop/server"
	"github.com/palpo-im/palpo-desktop/server/config"
	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
	"github.com/palpo-im/palpo-desktop/server/storage"
)

func TestVersions(t *testing.T) {
	ts := testserver.New(t)
	resp, err := ts.Client().Versions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []mautrix.SpecVersion{mautrix.SpecV11, mautrix.SpecV111, mautrix.SpecV112, mautrix.SpecV115} {
		if !resp.ContainsGreaterOrEqual(v) {
			t.Errorf("versions lack %s: %v", v, resp.Versions)
		}
	}
	if resp.UnstableFeatures == nil {
		t.Error("unstable_features missing")
	}
	// With OAuth on (the default), v1.15 comes with its auth_metadata.
	r, err := http.Get(ts.URL + "/_matrix/client/v1/auth_metadata")
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusOK {
		t.Fatalf("auth_metadata: %d", r.StatusCode)
	}
}

// TestOAuthOffKeepsLegacyAuth: with [oauth] enabled = false there is no
// auth_metadata (404 M_UNRECOGNIZED, the spec's answer), and /versions
// stops before v1.15, whose clients would expect it.
func TestOAuthOffKeepsLegacyAuth(t *testing.T) {
	ts := testserver.New(t, func(c *config.Config) { c.OAuth.Enabled = false })
	resp, err := http.Get(ts.URL + "/_matrix/client/v1/auth_metadata")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ Errcode string }
	json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode != 404 || body.Errcode != "M_UNRECOGNIZED" {
		t.Fatalf("got %d %s", resp.StatusCode, body.Errcode)
	}
	v, err := ts.Client().Versions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if v.ContainsGreaterOrEqual(mautrix.SpecV115) || !v.ContainsGreaterOrEqual(mautrix.SpecV112) {
		t.Errorf("versions with OAuth off: %v", v.Versions)
	}
}

func TestWellKnownAndRootPage(t *testing.T) {
	ts := testserver.New(t)
	resp, err := http.Get(ts.URL + "/.well-known/matrix/client")
	if err != nil {
		t.Fatal(err)
	}
	var wk struct {
		HS struct {
			BaseURL string `json:"base_url"`
		} `json:"m.homeserver"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&wk); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	_, port, _ := net.SplitHostPort(ts.Addrs()[0].String())
	if wk.HS.BaseURL != "http://localhost:"+port {
		t.Fatalf("base_url %q", wk.HS.BaseURL)
	}
	if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Error(".well-known lacks CORS")
	}

	resp, err = http.Get(ts.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(string(page), "http://localhost:"+port) || !strings.Contains(string(page), "@name:localhost") {
		t.Fatalf("root page: %s", page)
	}
}

func TestPublicBaseURL(t *testing.T) {
	ts := testserver.New(t, func(c *config.Config) { c.PublicBaseURL = "https://matrix.example.org" })
	if ts.ClientURL() != "https://matrix.example.org" {
		t.Fatal(ts.ClientURL())
	}
}

func TestPreflightOnClientEndpoint(t *testing.T) {
	ts := testserver.New(t)
	req, _ := http.NewRequest(http.MethodOptions, ts.URL+"/_matrix/client/versions", nil)
	req.Header.Set("Origin", "https://app.element.io")
	req.Header.Set("Access-Control-Request-Method", "GET")
	req.Header.Set("Access-Control-Request-Private-Network", "true")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 || resp.Header.Get("Access-Control-Allow-Origin") != "*" ||
		resp.Header.Get("Access-Control-Allow-Private-Network") != "true" {
		t.Fatalf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
}

func TestUnknownClientEndpoint(t *testing.T) {
	ts := testserver.New(t)
	_, err := ts.Client().MakeRequest(context.Background(), http.MethodGet, ts.URL+"/_matrix/client/v3/no_such_thing", nil, nil)
	if !errorIs(err, mautrix.MUnrecognized) {
		t.Fatalf("got %v", err)
	}
	_, err = ts.Client().MakeRequest(context.Background(), http.MethodPost, ts.URL+"/_matrix/client/versions", map[string]any{}, nil)
	var httpErr mautrix.HTTPError
	if !errorIs(err, mautrix.MUnrecognized) || !asHTTPError(err, &httpErr) || httpErr.Response.StatusCode != 405 {
		t.Fatalf("wrong method: %v", err)
	}
}

func TestRestartKeepsSigningKeyAndData(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	key := ts.SigningKey()
	if err := ts.DB().SetMeta(ctx, "test_marker", "kept"); err != nil {
		t.Fatal(err)
	}
	ts.Restart()
	if got := ts.SigningKey(); got.ID != key.ID || got.Pub != key.Pub {
		t.Fatalf("signing key changed across restart: %s → %s", key.ID, got.ID)
	}
	if v, ok, err := ts.DB().Meta(ctx, "test_marker"); err != nil || !ok || v != "kept" {
		t.Fatalf("data lost across restart: %q %v %v", v, ok, err)
	}
	if _, err := ts.Client().Versions(ctx); err != nil {
		t.Fatalf("restarted server does not answer: %v", err)
	}
}

func TestServerNameCannotChange(t *testing.T) {
	ts := testserver.New(t)
	dir := ts.DataDir
	ts.Shutdown(context.Background())
	cfg := config.Default()
	cfg.ServerName = "other.example"
	_, err := server.New(context.Background(), cfg, dir, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), `"localhost"`) || !strings.Contains(err.Error(), "server_name") {
		t.Fatalf("want a refusal naming the old name, got %v", err)
	}
}

func TestBusyPortIsAClearError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := config.Default()
	cfg.Listen = []string{ln.Addr().String()}
	srv, err := server.New(context.Background(), cfg, t.TempDir(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	err = srv.Start()
	if err == nil || !strings.Contains(err.Error(), "listen") {
		t.Fatalf("got %v", err)
	}
}

// TestWALGrownOnlyWhenServing: a server built but not started (what an
// admin command does while no server runs) leaves the write-ahead log
// small; starting to serve grows it ahead of use (storage.ReserveWAL).
func TestWALGrownOnlyWhenServing(t *testing.T) {
	cfg := config.Default()
	cfg.Listen = []string{"127.0.0.1:0"}
	dir := t.TempDir()
	srv, err := server.New(context.Background(), cfg, dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	walSize := func() int64 {
		t.Helper()
		info, err := os.Stat(srv.DB().Path() + "-wal")
		if err != nil {
			t.Fatal(err)
		}
		return info.Size()
	}
	const reserved = 4 << 20 // ReserveWAL grows it to about 4.5 MB
	if n := walSize(); n >= reserved {
		t.Fatalf("WAL is %d bytes before the server serves", n)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	if n := walSize(); n < reserved {
		t.Fatalf("WAL is %d bytes once serving, want it grown ahead of use", n)
	}
}

func TestNewerDatabaseRefused(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	dbPath := ts.DB().Path()
	ts.Shutdown(ctx)
	db, err := storage.Open(ctx, dbPath, 1)
	if err != nil {
		t.Fatal(err)
	}
	// Simulate a newer Palpo having upgraded the schema.
	if err := db.BumpSchemaVersionForTest(ctx); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err = server.New(ctx, ts.Config, ts.DataDir, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "newer Palpo") {
		t.Fatalf("got %v", err)
	}
}

func TestBaseURLForListenAddr(t *testing.T) {
	cases := map[string]string{
		"127.0.0.1:8008":   "http://localhost:8008",
		"0.0.0.0:8008":     "http://localhost:8008",
		"[::]:8008":        "http://localhost:8008",
		"[::1]:8008":       "http://localhost:8008",
		"192.168.1.5:8008": "http://192.168.1.5:8008",
		"[fd00::5]:8008":   "http://[fd00::5]:8008",
	}
	for in, want := range cases {
		if got := server.BaseURLForListenAddr(in); got != want {
			t.Errorf("%s → %s, want %s", in, got, want)
		}
	}
}
