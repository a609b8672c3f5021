package federation_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	mfed "maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/federation/signutil"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/p2p/servername"
	"github.com/palpo-im/palpo-desktop/server"
	"github.com/palpo-im/palpo-desktop/server/config"
	"github.com/palpo-im/palpo-desktop/server/federation"
	"github.com/palpo-im/palpo-desktop/server/identity"
	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
)

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// httpsClient trusts the test CA, for raw requests to a federation listener.
func httpsClient(t *testing.T, ca *testserver.CA) *http.Client {
	pem, err := os.ReadFile(ca.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

// xMatrix signs a request the way the spec says (and the way a forger
// would, with the wrong key or destination).
func xMatrix(t *testing.T, key *mfed.SigningKey, method, uri, origin, destination string, body []byte) string {
	t.Helper()
	obj := map[string]any{"method": method, "uri": uri, "origin": origin, "destination": destination}
	if body != nil {
		obj["content"] = json.RawMessage(body)
	}
	sig, err := key.SignJSON(obj)
	if err != nil {
		t.Fatal(err)
	}
	return mfed.XMatrixAuth{Origin: origin, Destination: destination, KeyID: key.ID, Signature: sig}.String()
}

type reply struct {
	status int
	code   string
	body   []byte
}

func do(t *testing.T, c *http.Client, method, url, auth string, body []byte) reply {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx(t), method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var e struct {
		ErrCode string `json:"errcode"`
	}
	_ = json.Unmarshal(data, &e)
	return reply{status: resp.StatusCode, code: e.ErrCode, body: data}
}

const echoPath = "/_matrix/federation/v1/palpo_test/echo/{txn}"

// addEcho registers an authed test route answering the verified origin and
// the body it got.
func addEcho(s *testserver.Server) {
	s.Federation().HandleAuthed(http.MethodPut, echoPath, func(w http.ResponseWriter, r *http.Request, origin string) error {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return err
		}
		w.Header().Set("Content-Type", "application/json")
		return json.NewEncoder(w).Encode(map[string]any{"origin": origin, "txn": r.PathValue("txn"), "body": json.RawMessage(body)})
	})
}

func TestKeyFetchedAndCachedAcrossRestart(t *testing.T) {
	ca := testserver.NewCA(t)
	a := testserver.New(t, testserver.Federated(ca))
	b := testserver.New(t, testserver.Federated(ca))
	bKey := b.SigningKey()

	pub, until, err := a.Federation().Keys().VerifyKey(ctx(t), b.ServerName(), bKey.ID, time.Now())
	if err != nil {
		t.Fatalf("fetch B's key: %v", err)
	}
	if pub != bKey.Pub || until.Before(time.Now().Add(24*time.Hour)) {
		t.Fatalf("got key %s until %s, want %s valid for days", pub, until, bKey.Pub)
	}
	if k, err := a.DB().ServerKey(ctx(t), b.ServerName(), string(bKey.ID)); err != nil || k.PublicKey != string(bKey.Pub) {
		t.Fatalf("B's key not in A's database: %+v %v", k, err)
	}

	// B goes away and A restarts: the key comes from A's database.
	if err := b.Shutdown(ctx(t)); err != nil {
		t.Fatal(err)
	}
	a.Restart()
	pub, _, err = a.Federation().Keys().VerifyKey(ctx(t), b.ServerName(), bKey.ID, time.Now())
	if err != nil || pub != bKey.Pub {
		t.Fatalf("cached key after restart: %s, %v", pub, err)
	}
	// A key B never had is not found (B is not asked again so soon).
	if _, _, err := a.Federation().Keys().VerifyKey(ctx(t), b.ServerName(), "ed25519:nope", time.Now()); err == nil {
		t.Fatal("unknown key ID verified")
	}
	// Past the key's validity it is not valid (B cannot be asked).
	if _, _, err := a.Federation().Keys().VerifyKey(ctx(t), b.ServerName(), bKey.ID, time.Now().Add(30*24*time.Hour)); err == nil {
		t.Fatal("key valid a month from now")
	}
}

func TestDeadServerIsBackedOff(t *testing.T) {
	ca := testserver.NewCA(t)
	a := testserver.New(t, testserver.Federated(ca))
	var calls atomic.Int32
	dead := fmt.Sprintf("127.0.0.1:%d", testserver.FreePort(t))
	a.Federation().SetTransport(func(dest string) http.RoundTripper {
		if dest != dead {
			return nil
		}
		return roundTripper(func(*http.Request) (*http.Response, error) {
			calls.Add(1)
			return nil, errors.New("partitioned")
		})
	})
	_, _, err := a.Federation().Keys().VerifyKey(ctx(t), dead, "ed25519:x", time.Now())
	if err == nil || errors.Is(err, federation.ErrKeyBackoff) {
		t.Fatalf("first fetch: %v", err)
	}
	_, _, err = a.Federation().Keys().VerifyKey(ctx(t), dead, "ed25519:x", time.Now())
	if !errors.Is(err, federation.ErrKeyBackoff) {
		t.Fatalf("second fetch: %v, want backoff", err)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("the dead server was asked %d times, want 1", n)
	}
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestSignedRequestVerifies(t *testing.T) {
	ca := testserver.NewCA(t)
	a := testserver.New(t, testserver.Federated(ca))
	b := testserver.New(t, testserver.Federated(ca))
	addEcho(b)

	var out struct {
		Origin string          `json:"origin"`
		Txn    string          `json:"txn"`
		Body   json.RawMessage `json:"body"`
	}
	_, _, err := a.Federation().Client().MakeFullRequest(ctx(t), mfed.RequestParams{
		ServerName:   b.ServerName(),
		Method:       http.MethodPut,
		Path:         mfed.URLPath{"v1", "palpo_test", "echo", "txn 1/é"},
		Authenticate: true,
		RequestJSON:  map[string]string{"hello": "wörld"},
		ResponseJSON: &out,
	})
	if err != nil {
		t.Fatalf("signed request: %v", err)
	}
	if out.Origin != a.ServerName() || out.Txn != "txn 1/é" || !strings.Contains(string(out.Body), "wörld") {
		t.Fatalf("unexpected echo %+v (%s)", out, out.Body)
	}
	// The federation version endpoint answers over the same TLS listener.
	ver, err := a.Federation().Client().Version(ctx(t), b.ServerName())
	if err != nil || ver.Server.Name != "Palpo" || ver.Server.Version == "" {
		t.Fatalf("version: %+v %v", ver, err)
	}
}

func TestBadRequestsRefused(t *testing.T) {
	ca := testserver.NewCA(t)
	a := testserver.New(t, testserver.Federated(ca))
	b := testserver.New(t, testserver.Federated(ca), func(c *config.Config) { c.HTTP.MaxRequestBytes = 64 << 10 })
	addEcho(b)
	c := httpsClient(t, ca)
	uri := "/_matrix/federation/v1/palpo_test/echo/t1"
	url := b.FederationURL + uri
	body := []byte(`{"a":1}`)
	aKey := a.SigningKey()

	// The control: correctly signed by A's real key, so the refusals below
	// are about what each one changes.
	if r := do(t, c, http.MethodPut, url, xMatrix(t, aKey, http.MethodPut, uri, a.ServerName(), b.ServerName(), body), body); r.status != http.StatusOK {
		t.Fatalf("correctly signed request: %d %s", r.status, r.body)
	}
	forged := mfed.GenerateSigningKey()
	forged.ID = aKey.ID
	cases := map[string]string{
		"unsigned":          "",
		"not X-Matrix":      "Bearer abc",
		"forged":            xMatrix(t, forged, http.MethodPut, uri, a.ServerName(), b.ServerName(), body),
		"wrong destination": xMatrix(t, aKey, http.MethodPut, uri, a.ServerName(), "other.example", body),
		"other body":        xMatrix(t, aKey, http.MethodPut, uri, a.ServerName(), b.ServerName(), []byte(`{"a":2}`)),
		"other uri":         xMatrix(t, aKey, http.MethodPut, uri+"x", a.ServerName(), b.ServerName(), body),
		"unknown key":       strings.Replace(xMatrix(t, aKey, http.MethodPut, uri, a.ServerName(), b.ServerName(), body), string(aKey.ID), "ed25519:nope", 1),
		"missing sig":       fmt.Sprintf(`X-Matrix origin="%s",key="%s"`, a.ServerName(), aKey.ID),
	}
	for name, auth := range cases {
		if r := do(t, c, http.MethodPut, url, auth, body); r.status != http.StatusUnauthorized || r.code != "M_UNAUTHORIZED" {
			t.Errorf("%s: got %d %s, want 401 M_UNAUTHORIZED", name, r.status, r.body)
		}
	}
	big := []byte(`{"a":"` + strings.Repeat("x", 70<<10) + `"}`)
	if r := do(t, c, http.MethodPut, url, xMatrix(t, aKey, http.MethodPut, uri, a.ServerName(), b.ServerName(), big), big); r.status != http.StatusRequestEntityTooLarge || r.code != "M_TOO_LARGE" {
		t.Errorf("oversized body: %d %s", r.status, r.body)
	}
	notJSON := []byte(`{nope`)
	if r := do(t, c, http.MethodPut, url, xMatrix(t, aKey, http.MethodPut, uri, a.ServerName(), b.ServerName(), []byte(`"x"`)), notJSON); r.status != http.StatusBadRequest || r.code != "M_NOT_JSON" {
		t.Errorf("body not JSON: %d %s", r.status, r.body)
	}
}

func TestDeniedServerRefused(t *testing.T) {
	ca := testserver.NewCA(t)
	a := testserver.New(t, testserver.Federated(ca))
	c := testserver.New(t, testserver.Federated(ca), func(cfg *config.Config) { cfg.Federation.DenyServers = []string{a.ServerName()} })
	allowOnly := testserver.New(t, testserver.Federated(ca), func(cfg *config.Config) { cfg.Federation.AllowServers = []string{"*.example.org"} })
	for _, s := range []*testserver.Server{c, allowOnly} {
		addEcho(s)
		err := a.Federation().Client().MakeRequest(ctx(t), s.ServerName(), true, http.MethodPut, mfed.URLPath{"v1", "palpo_test", "echo", "t"}, map[string]any{}, nil)
		var respErr mautrix.HTTPError
		if !errors.As(err, &respErr) || respErr.RespError == nil || respErr.RespError.ErrCode != "M_FORBIDDEN" || respErr.Response.StatusCode != http.StatusForbidden {
			t.Fatalf("request from a denied server: %v", err)
		}
	}
	// The denying server does not contact A either, not even for its keys.
	if c.Federation().AllowedServer(a.ServerName()) {
		t.Fatal("A allowed")
	}
	if _, err := c.Federation().Client().Version(ctx(t), a.ServerName()); !errors.Is(err, mfed.ErrServerNameFiltered) {
		t.Fatalf("request to a denied server: %v", err)
	}
}

func TestKeyServerAndNotary(t *testing.T) {
	ca := testserver.NewCA(t)
	a := testserver.New(t, testserver.Federated(ca))
	n := testserver.New(t, testserver.Federated(ca))
	c := httpsClient(t, ca)
	aKey, nKey := a.SigningKey(), n.SigningKey()

	r := do(t, c, http.MethodGet, a.FederationURL+"/_matrix/key/v2/server", "", nil)
	if r.status != http.StatusOK {
		t.Fatalf("key server: %d %s", r.status, r.body)
	}
	if err := signutil.VerifyJSON(a.ServerName(), aKey.ID, aKey.Pub, json.RawMessage(r.body)); err != nil {
		t.Fatalf("own key response not self-signed: %v (%s)", err, r.body)
	}

	check := func(name string, r reply) {
		t.Helper()
		var out struct {
			ServerKeys []json.RawMessage `json:"server_keys"`
		}
		if r.status != http.StatusOK || json.Unmarshal(r.body, &out) != nil || len(out.ServerKeys) != 1 {
			t.Fatalf("%s: %d %s", name, r.status, r.body)
		}
		raw := out.ServerKeys[0]
		if err := signutil.VerifyJSON(a.ServerName(), aKey.ID, aKey.Pub, raw); err != nil {
			t.Errorf("%s: origin signature: %v", name, err)
		}
		if err := signutil.VerifyJSON(n.ServerName(), nKey.ID, nKey.Pub, raw); err != nil {
			t.Errorf("%s: notary signature: %v", name, err)
		}
	}
	q := fmt.Sprintf(`{"server_keys":{%q:{%q:{"minimum_valid_until_ts":%d}}}}`, a.ServerName(), aKey.ID, time.Now().UnixMilli())
	check("POST query", do(t, c, http.MethodPost, n.FederationURL+"/_matrix/key/v2/query", "", []byte(q)))
	check("GET query", do(t, c, http.MethodGet, n.FederationURL+"/_matrix/key/v2/query/"+a.ServerName(), "", nil))
	if r := do(t, c, http.MethodPost, n.FederationURL+"/_matrix/key/v2/query", "", []byte(`{"server_keys":[]}`)); r.status != http.StatusBadRequest || r.code != "M_BAD_JSON" {
		t.Errorf("bad query: %d %s", r.status, r.body)
	}
	// A server nobody can reach is left out, not an error.
	dead := fmt.Sprintf("127.0.0.1:%d", testserver.FreePort(t))
	if r := do(t, c, http.MethodGet, n.FederationURL+"/_matrix/key/v2/query/"+dead, "", nil); r.status != http.StatusOK || !strings.Contains(string(r.body), `"server_keys":[]`) {
		t.Errorf("query for a dead server: %d %s", r.status, r.body)
	}
}

func TestNotaryUsedOnlyWhenListed(t *testing.T) {
	ca := testserver.NewCA(t)
	n := testserver.New(t, testserver.Federated(ca))
	target := testserver.New(t, testserver.Federated(ca))
	withNotary := testserver.New(t, testserver.Federated(ca), func(c *config.Config) { c.Federation.KeyNotaries = []string{n.ServerName()} })
	without := testserver.New(t, testserver.Federated(ca))
	// The notary knows the target's keys; the others cannot reach it.
	if _, _, err := n.Federation().Keys().VerifyKey(ctx(t), target.ServerName(), target.SigningKey().ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	cut := func(dest string) http.RoundTripper {
		if dest != target.ServerName() {
			return nil
		}
		return roundTripper(func(*http.Request) (*http.Response, error) { return nil, errors.New("partitioned") })
	}
	withNotary.Federation().SetTransport(cut)
	without.Federation().SetTransport(cut)
	pub, _, err := withNotary.Federation().Keys().VerifyKey(ctx(t), target.ServerName(), target.SigningKey().ID, time.Now())
	if err != nil || pub != target.SigningKey().Pub {
		t.Fatalf("key through the notary: %s %v", pub, err)
	}
	if _, _, err := without.Federation().Keys().VerifyKey(ctx(t), target.ServerName(), target.SigningKey().ID, time.Now()); err == nil {
		t.Fatal("key found without a notary and without the server")
	}
}

func TestKeyRotationKeepsOldKey(t *testing.T) {
	ca := testserver.NewCA(t)
	a := testserver.New(t, testserver.Federated(ca))
	b := testserver.New(t, testserver.Federated(ca))
	old := a.SigningKey()
	signedBefore := time.Now()

	if err := a.Shutdown(ctx(t)); err != nil {
		t.Fatal(err)
	}
	next := mfed.GenerateSigningKey()
	next.ID = "ed25519:a_next"
	if err := os.WriteFile(filepath.Join(a.DataDir, identity.KeyFileName), []byte(next.SynapseString()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a.Restart()
	if a.SigningKey().ID != next.ID {
		t.Fatalf("key after rotation: %s", a.SigningKey().ID)
	}
	r := do(t, httpsClient(t, ca), http.MethodGet, a.FederationURL+"/_matrix/key/v2/server", "", nil)
	var resp mfed.ServerKeyResponse
	if err := json.Unmarshal(r.body, &resp); err != nil {
		t.Fatal(err)
	}
	if _, ok := resp.VerifyKeys[next.ID]; !ok || len(resp.VerifyKeys) != 1 {
		t.Fatalf("verify_keys %v", resp.VerifyKeys)
	}
	o, ok := resp.OldVerifyKeys[old.ID]
	if !ok || o.Key != old.Pub || o.ExpiredTS.Before(signedBefore) || o.ExpiredTS.After(time.Now()) {
		t.Fatalf("old_verify_keys %+v, want %s", resp.OldVerifyKeys, old.ID)
	}
	if err := resp.VerifySelfSignature(); err != nil {
		t.Fatal(err)
	}
	// Another server verifies something A signed with the old key before
	// the rotation, and not after it.
	pub, _, err := b.Federation().Keys().VerifyKey(ctx(t), a.ServerName(), old.ID, signedBefore)
	if err != nil || pub != old.Pub {
		t.Fatalf("old key before rotation: %s %v", pub, err)
	}
	if _, _, err := b.Federation().Keys().VerifyKey(ctx(t), a.ServerName(), old.ID, time.Now().Add(time.Hour)); !errors.Is(err, federation.ErrKeyExpired) {
		t.Fatalf("old key after rotation: %v", err)
	}
}

func TestDisabledMakesNoConnection(t *testing.T) {
	s := testserver.New(t)
	f := s.Federation()
	if f.Enabled() || f.Addr() != nil {
		t.Fatalf("federation on by default: enabled %v addr %v", f.Enabled(), f.Addr())
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	target := ln.Addr().String()
	if _, err := f.Client().Version(ctx(t), target); !errors.Is(err, federation.ErrDisabled) {
		t.Fatalf("request with federation disabled: %v", err)
	}
	// Even a transport chosen for the destination is not used.
	f.SetTransport(func(string) http.RoundTripper {
		return roundTripper(func(*http.Request) (*http.Response, error) { return nil, errors.New("should not be called") })
	})
	if _, _, err := f.Keys().VerifyKey(ctx(t), target, "ed25519:x", time.Now()); !errors.Is(err, federation.ErrDisabled) {
		t.Fatalf("key fetch with federation disabled: %v", err)
	}
	// Our own key is answered locally all the same.
	if pub, _, err := f.Keys().VerifyKey(ctx(t), s.ServerName(), s.SigningKey().ID, time.Now()); err != nil || pub != s.SigningKey().Pub {
		t.Fatalf("own key: %s %v", pub, err)
	}
	// Prove the listener works, then that nothing had connected to it.
	probe, err := net.Dial("tcp", target)
	if err != nil {
		t.Fatal(err)
	}
	probe.Close()
	deadline := time.Now().Add(5 * time.Second)
	for accepted.Load() < 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := accepted.Load(); n != 1 {
		t.Fatalf("%d connections reached the listener, want only the probe", n)
	}
}

func TestUntrustedCertificateRefused(t *testing.T) {
	ca, other := testserver.NewCA(t), testserver.NewCA(t)
	a := testserver.New(t, testserver.Federated(ca))
	b := testserver.New(t, testserver.Federated(other))
	_, _, err := a.Federation().Keys().VerifyKey(ctx(t), b.ServerName(), b.SigningKey().ID, time.Now())
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("key fetch over an untrusted certificate: %v", err)
	}
	// With verification off (only for experiments) it connects.
	lax := testserver.New(t, testserver.Federated(ca), func(c *config.Config) { c.Federation.VerifyCertificates = false })
	if _, _, err := lax.Federation().Keys().VerifyKey(ctx(t), b.ServerName(), b.SigningKey().ID, time.Now()); err != nil {
		t.Fatalf("verify_certificates = false: %v", err)
	}
}

func TestWellKnownServer(t *testing.T) {
	plain := testserver.New(t)
	resp, err := http.Get(plain.URL + "/.well-known/matrix/server")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("well-known without delegation: %d", resp.StatusCode)
	}
	delegating := testserver.New(t, func(c *config.Config) { c.Federation.WellKnownServer = "matrix.example.org:443" })
	resp, err = http.Get(delegating.URL + "/.well-known/matrix/server")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var wk mfed.RespWellKnown
	if err := json.NewDecoder(resp.Body).Decode(&wk); err != nil || wk.Server != "matrix.example.org:443" {
		t.Fatalf("well-known: %+v %v", wk, err)
	}
}

func TestPrivateAddressesRefusedByDefault(t *testing.T) {
	ca := testserver.NewCA(t)
	b := testserver.New(t, testserver.Federated(ca))
	strict := testserver.New(t, testserver.Federated(ca), func(c *config.Config) { c.Federation.AllowPrivateAddresses = false })
	_, err := strict.Federation().Client().Version(ctx(t), b.ServerName())
	if !errors.Is(err, mfed.ErrIPFiltered) {
		t.Fatalf("request to a loopback address: %v", err)
	}
}

func TestUnreadableCAFileFailsStart(t *testing.T) {
	cfg := config.Default()
	cfg.ServerName = "127.0.0.1:1"
	cfg.Listen = []string{"127.0.0.1:0"}
	cfg.Federation.Enabled = true
	cfg.Federation.Listen = "127.0.0.1:0"
	cfg.Federation.TLSCertFile, cfg.Federation.TLSKeyFile = "c.pem", "k.pem"
	cfg.Federation.TrustedCAFiles = []string{filepath.Join(t.TempDir(), "missing.pem")}
	srv, err := server.New(context.Background(), cfg, t.TempDir(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	if err := srv.Start(); err == nil || !strings.Contains(err.Error(), "trusted_ca_files") {
		t.Fatalf("start with an unreadable CA file: %v", err)
	}
}

// TestForgedKeyResponsesRejected serves key responses through the
// transport seam: only a response for the right server, signed by every
// key it lists, is cached.
func TestForgedKeyResponsesRejected(t *testing.T) {
	ca := testserver.NewCA(t)
	a := testserver.New(t, testserver.Federated(ca))
	real := mfed.GenerateSigningKey()
	other := mfed.GenerateSigningKey()
	other.ID = real.ID
	responses := map[string]func(name string) any{
		"good.example": func(name string) any { return real.GenerateKeyResponse(name, nil) },
		"other-name.example": func(string) any {
			return real.GenerateKeyResponse("good.example", nil)
		},
		"bad-sig.example": func(name string) any {
			r := real.GenerateKeyResponse(name, nil)
			r.Signatures = other.GenerateKeyResponse(name, nil).Signatures
			return r
		},
		"unsigned.example": func(name string) any {
			r := real.GenerateKeyResponse(name, nil)
			r.Signatures = nil
			return r
		},
	}
	a.Federation().SetTransport(func(dest string) http.RoundTripper {
		mk, ok := responses[dest]
		if !ok {
			return nil
		}
		return roundTripper(func(r *http.Request) (*http.Response, error) {
			body, _ := json.Marshal(mk(dest))
			return &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"application/json"}},
				Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body)), Request: r}, nil
		})
	})
	if pub, _, err := a.Federation().Keys().VerifyKey(ctx(t), "good.example", real.ID, time.Now()); err != nil || pub != real.Pub {
		t.Fatalf("genuine response: %s %v", pub, err)
	}
	for _, name := range []string{"other-name.example", "bad-sig.example", "unsigned.example"} {
		if _, _, err := a.Federation().Keys().VerifyKey(ctx(t), name, real.ID, time.Now()); err == nil {
			t.Errorf("%s: forged key response accepted", name)
		}
		if _, err := a.DB().ServerKey(ctx(t), name, string(real.ID)); err == nil {
			t.Errorf("%s: forged key cached", name)
		}
	}
}

func TestP2PNameKeyNeedsNoFetch(t *testing.T) {
	s := testserver.New(t)
	key := mfed.GenerateSigningKey()
	name := servername.FromKey(key.Priv.Public().(ed25519.PublicKey))
	// Derived from the name alone: no request is made (federation is off
	// here, so any fetch would fail with ErrDisabled), for any key
	// version of the ed25519 algorithm.
	for _, keyID := range []id.KeyID{"ed25519:a_abcd", key.ID} {
		pub, until, err := s.Federation().Keys().VerifyKey(ctx(t), name, keyID, time.Now())
		if err != nil || pub != key.Pub || until.Before(time.Now().Add(time.Hour)) {
			t.Fatalf("%s: key %s until %v, %v; want %s", keyID, pub, until, err, key.Pub)
		}
	}
	// A signature by that key verifies with it; one by another key not.
	msg := map[string]any{"hello": "world"}
	sig, err := key.SignJSON(msg)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(map[string]any{"hello": "world", "signatures": map[string]any{name: map[string]string{string(key.ID): sig}}})
	pub, _, _ := s.Federation().Keys().VerifyKey(ctx(t), name, key.ID, time.Now())
	if err := signutil.VerifyJSON(name, key.ID, pub, json.RawMessage(raw)); err != nil {
		t.Fatalf("signature by the name's key: %v", err)
	}
	other := mfed.GenerateSigningKey()
	otherName := servername.FromKey(other.Priv.Public().(ed25519.PublicKey))
	pub, _, _ = s.Federation().Keys().VerifyKey(ctx(t), otherName, key.ID, time.Now())
	if err := signutil.VerifyJSON(name, key.ID, pub, json.RawMessage(raw)); err == nil {
		t.Fatal("a signature verified with another name's key")
	}
	for _, bad := range []struct {
		name  string
		keyID id.KeyID
	}{{name, "curve25519:x"}, {"abc" + servername.Suffix, "ed25519:x"}, {strings.ToUpper(name[:52]) + servername.Suffix, "ed25519:x"}} {
		if _, _, err := s.Federation().Keys().VerifyKey(ctx(t), bad.name, bad.keyID, time.Now()); !errors.Is(err, federation.ErrKeyNotFound) {
			t.Errorf("%s %s: %v, want ErrKeyNotFound", bad.name, bad.keyID, err)
		}
	}
}
