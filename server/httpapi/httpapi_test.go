package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"maunium.net/go/mautrix"
)

type echoBody struct {
	Name  string `json:"name"`
	Count int    `json:"count"`
}

func newTestServer(t *testing.T) (*httptest.Server, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	rt := NewRouter(slog.New(slog.NewTextHandler(&logs, nil)), 1024)
	rt.Handle(http.MethodPost, "/echo", func(w http.ResponseWriter, r *http.Request) error {
		var body echoBody
		if err := ReadJSON(r, &body); err != nil {
			return err
		}
		return WriteJSON(w, http.StatusOK, body)
	})
	rt.Handle(http.MethodPost, "/upload", func(w http.ResponseWriter, r *http.Request) error {
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			return err
		}
		return WriteJSON(w, http.StatusOK, map[string]int64{"n": n})
	}, MaxBody(4096))
	rt.Handle(http.MethodGet, "/hello/{name}", func(w http.ResponseWriter, r *http.Request) error {
		return WriteJSON(w, http.StatusOK, map[string]string{"hello": r.PathValue("name")})
	})
	rt.Handle(http.MethodGet, "/panic", func(http.ResponseWriter, *http.Request) error {
		panic("boom")
	})
	rt.Handle(http.MethodGet, "/fail", func(http.ResponseWriter, *http.Request) error {
		return errors.New("database exploded at /secret/path")
	})
	rt.Handle(http.MethodGet, "/forbidden", func(http.ResponseWriter, *http.Request) error {
		return mautrix.MForbidden.WithMessage("no")
	})
	srv := httptest.NewServer(rt)
	t.Cleanup(srv.Close)
	return srv, &logs
}

type matrixError struct {
	status int
	Code   string `json:"errcode"`
	Msg    string `json:"error"`
}

func do(t *testing.T, method, url string, body io.Reader, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func expectError(t *testing.T, method, url string, body io.Reader, status int, code string) matrixError {
	t.Helper()
	resp, b := do(t, method, url, body, nil)
	var me matrixError
	if err := json.Unmarshal(b, &me); err != nil {
		t.Fatalf("%s %s: body %q is not a Matrix error: %v", method, url, b, err)
	}
	me.status = resp.StatusCode
	if resp.StatusCode != status || me.Code != code {
		t.Fatalf("%s %s: got %d %s (%s), want %d %s", method, url, resp.StatusCode, me.Code, me.Msg, status, code)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("error Content-Type %q", ct)
	}
	if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatal("error response lacks CORS headers")
	}
	return me
}

func TestJSONBodies(t *testing.T) {
	srv, _ := newTestServer(t)
	resp, b := do(t, "POST", srv.URL+"/echo", strings.NewReader(`{"name":"x","count":2}`), nil)
	if resp.StatusCode != 200 || string(b) != `{"name":"x","count":2}` {
		t.Fatalf("echo: %d %s", resp.StatusCode, b)
	}
	for _, body := range []string{"", "{", "not json", `{"name": "x",}`, "\x00"} {
		expectError(t, "POST", srv.URL+"/echo", strings.NewReader(body), 400, "M_NOT_JSON")
	}
	for _, body := range []string{`[]`, `"str"`, `{"name": 5}`, `{"count": "many"}`, `{"count": 1.5}`} {
		expectError(t, "POST", srv.URL+"/echo", strings.NewReader(body), 400, "M_BAD_JSON")
	}
}

func TestBodyLimits(t *testing.T) {
	srv, _ := newTestServer(t)
	big := `{"name":"` + strings.Repeat("a", 2000) + `"}`
	// Declared length over the limit: refused before reading.
	expectError(t, "POST", srv.URL+"/echo", strings.NewReader(big), 413, "M_TOO_LARGE")
	// Chunked (no declared length): refused while reading.
	expectError(t, "POST", srv.URL+"/echo", io.MultiReader(strings.NewReader(big)), 413, "M_TOO_LARGE")
	// A route with its own larger limit accepts it, and enforces its own.
	resp, b := do(t, "POST", srv.URL+"/upload", strings.NewReader(big), nil)
	if resp.StatusCode != 200 {
		t.Fatalf("upload: %d %s", resp.StatusCode, b)
	}
	expectError(t, "POST", srv.URL+"/upload", io.MultiReader(strings.NewReader(strings.Repeat("x", 5000))), 413, "M_TOO_LARGE")
}

func TestUnknownEndpointsAndMethods(t *testing.T) {
	srv, _ := newTestServer(t)
	expectError(t, "GET", srv.URL+"/nothing/here", nil, 404, "M_UNRECOGNIZED")
	expectError(t, "GET", srv.URL+"/_matrix/client/v3/nope", nil, 404, "M_UNRECOGNIZED")
	expectError(t, "DELETE", srv.URL+"/echo", nil, 405, "M_UNRECOGNIZED")
	resp, _ := do(t, "PUT", srv.URL+"/echo", nil, nil)
	if resp.Header.Get("Allow") != "POST" {
		t.Fatalf("Allow = %q", resp.Header.Get("Allow"))
	}
	resp, b := do(t, "GET", srv.URL+"/hello/%21room%3Aexample.org", nil, nil)
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"!room:example.org"`) {
		t.Fatalf("path value: %d %s", resp.StatusCode, b)
	}
	resp, _ = do(t, "HEAD", srv.URL+"/hello/x", nil, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("HEAD: %d", resp.StatusCode)
	}
}

func TestCORSAndPrivateNetworkPreflight(t *testing.T) {
	srv, logs := newTestServer(t)
	resp, b := do(t, "OPTIONS", srv.URL+"/echo", nil, map[string]string{
		"Origin":                                 "https://app.element.io",
		"Access-Control-Request-Method":          "POST",
		"Access-Control-Request-Headers":         "authorization, content-type",
		"Access-Control-Request-Private-Network": "true",
	})
	if resp.StatusCode/100 != 2 || len(b) != 0 {
		t.Fatalf("preflight: %d %q", resp.StatusCode, b)
	}
	want := map[string]string{
		"Access-Control-Allow-Origin":          "*",
		"Access-Control-Allow-Private-Network": "true",
	}
	for k, v := range want {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	for _, m := range []string{"GET", "POST", "PUT", "DELETE", "OPTIONS"} {
		if !strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), m) {
			t.Errorf("Allow-Methods lacks %s", m)
		}
	}
	for _, h := range []string{"Authorization", "Content-Type", "X-Requested-With"} {
		if !strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), h) {
			t.Errorf("Allow-Headers lacks %s", h)
		}
	}
	// The preflight must not have run the endpoint (which would answer M_NOT_JSON).
	if strings.Contains(logs.String(), "M_NOT_JSON") {
		t.Error("preflight ran the endpoint")
	}
	// Without the PNA request header, no PNA answer.
	resp, _ = do(t, "OPTIONS", srv.URL+"/echo", nil, map[string]string{"Origin": "https://x"})
	if resp.Header.Get("Access-Control-Allow-Private-Network") != "" {
		t.Error("PNA header sent unasked")
	}
	// Ordinary responses carry CORS headers too.
	resp, _ = do(t, "GET", srv.URL+"/hello/x", nil, map[string]string{"Origin": "https://x"})
	if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Error("GET lacks CORS")
	}
}

func TestPanicsAndInternalErrors(t *testing.T) {
	srv, logs := newTestServer(t)
	expectError(t, "GET", srv.URL+"/panic", nil, 500, "M_UNKNOWN")
	if !strings.Contains(logs.String(), "panic in handler") || !strings.Contains(logs.String(), "boom") {
		t.Fatalf("panic not logged: %s", logs)
	}
	me := expectError(t, "GET", srv.URL+"/fail", nil, 500, "M_UNKNOWN")
	if strings.Contains(me.Msg, "secret") {
		t.Fatal("internal error leaked to the client")
	}
	if !strings.Contains(logs.String(), "database exploded") {
		t.Fatal("internal error not logged")
	}
	expectError(t, "GET", srv.URL+"/forbidden", nil, 403, "M_FORBIDDEN")
	// The server still works after a panic.
	resp, _ := do(t, "GET", srv.URL+"/hello/x", nil, nil)
	if resp.StatusCode != 200 {
		t.Fatal("server broken after panic")
	}
}

func TestLogsNeverContainQueryStrings(t *testing.T) {
	srv, logs := newTestServer(t)
	do(t, "GET", srv.URL+"/hello/x?access_token=syt_secret_token", nil, nil)
	if strings.Contains(logs.String(), "syt_secret_token") {
		t.Fatalf("access token logged: %s", logs)
	}
	if !strings.Contains(logs.String(), "/hello/x") {
		t.Fatalf("request not logged: %s", logs)
	}
}

func TestRoutesListed(t *testing.T) {
	rt := NewRouter(slog.New(slog.DiscardHandler), 1024)
	rt.Handle("GET", "/a", nil)
	rt.Handle("PUT", "/a", nil)
	if got := rt.Routes(); len(got) != 2 || got[1] != (Route{"PUT", "/a"}) {
		t.Fatalf("routes %v", got)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("duplicate route accepted")
		}
	}()
	rt.Handle("GET", "/a", nil)
}

func TestMirror(t *testing.T) {
	rt := NewRouter(slog.New(slog.DiscardHandler), 1024)
	answer := func(s string) HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) error {
			n, err := io.Copy(io.Discard, r.Body)
			if err != nil {
				return err
			}
			return WriteJSON(w, http.StatusOK, map[string]any{"from": s, "n": n, "x": r.PathValue("x")})
		}
	}
	rt.Handle("GET", "/new/a/{x}", answer("a"))
	rt.Handle("POST", "/new/up", answer("up"), MaxBody(4096))
	rt.Handle("POST", "/new/newcomer", answer("newcomer"))
	rt.Handle("GET", "/old/own", answer("old own"))
	rt.Handle("GET", "/new/own", answer("new own"))
	rt.Handle("GET", "/newer/z", answer("z"))
	rt.Mirror("/new", "/old", func(r Route) bool { return r.Path == "/new/newcomer" })
	srv := httptest.NewServer(rt)
	t.Cleanup(srv.Close)

	// The twin runs the same handler with the same options.
	if _, b := do(t, "GET", srv.URL+"/old/a/7", nil, nil); string(b) != `{"from":"a","n":0,"x":"7"}` {
		t.Fatalf("mirrored route: %s", b)
	}
	big := strings.Repeat("a", 2000)
	if _, b := do(t, "POST", srv.URL+"/old/up", strings.NewReader(big), nil); !strings.Contains(string(b), `"n":2000`) {
		t.Fatalf("mirrored route lost its body limit: %s", b)
	}
	// Skipped routes, and paths that only share the prefix's letters, get
	// no twin; a twin registered before keeps its own handler.
	expectError(t, "POST", srv.URL+"/old/newcomer", nil, 404, "M_UNRECOGNIZED")
	expectError(t, "GET", srv.URL+"/older/z", nil, 404, "M_UNRECOGNIZED")
	if _, b := do(t, "GET", srv.URL+"/old/own", nil, nil); !strings.Contains(string(b), `"old own"`) {
		t.Fatalf("explicit twin replaced: %s", b)
	}
	want := map[Route]bool{{"GET", "/old/a/{x}"}: true, {"POST", "/old/up"}: true}
	for _, r := range rt.Routes() {
		if strings.HasPrefix(r.Path, "/old/") && r.Path != "/old/own" && !want[r] {
			t.Errorf("unexpected twin %v", r)
		}
		delete(want, r)
	}
	if len(want) != 0 {
		t.Errorf("twins not listed in Routes: %v", want)
	}
}

func TestClientGoneIsNotAnError(t *testing.T) {
	var logs syncBuffer
	rt := NewRouter(slog.New(slog.NewTextHandler(&logs, nil)), 1024)
	started := make(chan struct{})
	finished := make(chan struct{})
	rt.Handle(http.MethodGet, "/slow", func(w http.ResponseWriter, r *http.Request) error {
		defer close(finished)
		close(started)
		<-r.Context().Done()
		return r.Context().Err()
	})
	srv := httptest.NewServer(rt)
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/slow", nil)
	go func() {
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	<-started
	cancel() // the client hangs up mid-request
	<-finished
	srv.Close() // waits for the handler's logging to finish
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Fatalf("client disconnect logged as an error: %s", logs.String())
	}
}

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
