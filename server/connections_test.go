package server_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/palpo-im/palpo-desktop/server/config"
	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
)

// quickTimeouts gives the test server one-second connection timeouts.
func quickTimeouts(c *config.Config) {
	c.HTTP.HeaderTimeoutSeconds, c.HTTP.BodyTimeoutSeconds, c.HTTP.IdleTimeoutSeconds = 1, 1, 1
}

// rawConn opens a TCP connection to the test server.
func rawConn(t *testing.T, ts *testserver.Server) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(ts.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// closedWithin reads from conn until the server closes it, failing if that
// takes longer than limit; it returns what the server sent.
func closedWithin(t *testing.T, what string, conn net.Conn, limit time.Duration) string {
	t.Helper()
	start := time.Now()
	if err := conn.SetReadDeadline(start.Add(limit)); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("%s: the server kept the connection open for %v", what, limit)
	}
	return string(got)
}

// A client that sends its headers too slowly, or stalls in its body, or
// leaves a kept-alive connection idle, is disconnected.
func TestSlowConnectionsAreClosed(t *testing.T) {
	ts := testserver.New(t, quickTimeouts)

	slowHeaders := rawConn(t, ts)
	if _, err := io.WriteString(slowHeaders, "GET /_matrix/client/versions HTTP/1.1\r\nHost: localhost\r\n"); err != nil {
		t.Fatal(err)
	}
	closedWithin(t, "headers never finished", slowHeaders, 5*time.Second)

	slowBody := rawConn(t, ts)
	if _, err := io.WriteString(slowBody, "POST /_matrix/client/v3/login HTTP/1.1\r\nHost: localhost\r\n"+
		"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"type\":"); err != nil {
		t.Fatal(err)
	}
	if got := closedWithin(t, "body never finished", slowBody, 5*time.Second); got != "" && !strings.Contains(got, " 408 ") {
		t.Fatalf("stalled body answered %q", got)
	}

	idle := rawConn(t, ts)
	if _, err := io.WriteString(idle, "GET /_matrix/client/versions HTTP/1.1\r\nHost: localhost\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(idle), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("versions on the idle connection: %v %v", resp, err)
	}
	resp.Body.Close()
	closedWithin(t, "idle kept-alive connection", idle, 5*time.Second)
}

// The timeouts do not cut off a long-poll that outlasts them, nor an upload
// that keeps arriving for longer than the body timeout.
func TestTimeoutsSpareLongPollsAndUploads(t *testing.T) {
	ts := testserver.New(t, quickTimeouts)
	alice := ts.RegisterUser("alice")
	do := func(method, path string, body io.Reader) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, ts.URL+path, body)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+alice.AccessToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	// A /sync long-poll of 2 s (no body).
	first, _ := do(http.MethodGet, "/_matrix/client/v3/sync?timeout=0", nil)
	if first.StatusCode != 200 {
		t.Fatalf("first sync: %d", first.StatusCode)
	}
	var initial struct {
		NextBatch string `json:"next_batch"`
	}
	_, b := do(http.MethodGet, "/_matrix/client/v3/sync?timeout=0", nil)
	if err := json.Unmarshal(b, &initial); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r, b := do(http.MethodGet, "/_matrix/client/v3/sync?timeout=2000&since="+initial.NextBatch, nil)
	if r.StatusCode != 200 || time.Since(start) < 2*time.Second {
		t.Fatalf("long-poll /sync: %d after %v: %s", r.StatusCode, time.Since(start), b)
	}
	// A sliding sync long-poll of 2 s, whose request has a body.
	const ss = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"
	body := `{"lists": {"all": {"ranges": [[0, 10]], "timeline_limit": 1}}}`
	r, b = do(http.MethodPost, ss, strings.NewReader(body))
	var pos struct {
		Pos string `json:"pos"`
	}
	if r.StatusCode != 200 || json.Unmarshal(b, &pos) != nil || pos.Pos == "" {
		t.Fatalf("first sliding sync: %d %s", r.StatusCode, b)
	}
	start = time.Now()
	r, b = do(http.MethodPost, ss+"?timeout=2000&pos="+pos.Pos, strings.NewReader(body))
	if r.StatusCode != 200 || time.Since(start) < 2*time.Second {
		t.Fatalf("long-poll sliding sync: %d after %v: %s", r.StatusCode, time.Since(start), b)
	}
	// An upload whose pieces come every 400 ms, 1.6 s in all: longer than
	// the body timeout, but never pausing as long.
	pr, pw := io.Pipe()
	go func() {
		tick := time.NewTicker(400 * time.Millisecond)
		defer tick.Stop()
		for i := range 4 {
			<-tick.C
			if _, err := pw.Write(bytes.Repeat([]byte{byte('a' + i)}, 1000)); err != nil {
				return
			}
		}
		pw.Close()
	}()
	start = time.Now()
	r, b = do(http.MethodPost, "/_matrix/media/v3/upload?filename=slow.txt", pr)
	if r.StatusCode != 200 || time.Since(start) < time.Second {
		t.Fatalf("slow upload: %d after %v: %s", r.StatusCode, time.Since(start), b)
	}
}

// rawRequest sends raw bytes to the server and reads its answer.
func rawRequest(t *testing.T, ts *testserver.Server, raw string) (*http.Response, map[string]any) {
	t.Helper()
	conn := rawConn(t, ts)
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("answer to %.60q: %v", raw, err)
	}
	defer resp.Body.Close()
	var body map[string]any
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatalf("answer to %.60q is not JSON: %d %s", raw, resp.StatusCode, b)
	}
	return resp, body
}

// The answers net/http or ServeMux would write themselves (400 for a
// malformed request, 431 for huge headers, 301 to a cleaned path) are
// Matrix JSON errors.
func TestProtocolErrorsAreMatrixErrors(t *testing.T) {
	ts := testserver.New(t)
	for _, tc := range []struct {
		what, raw string
		status    int
		errcode   string
	}{
		{"double slash", "GET //_matrix/client/versions HTTP/1.1\r\nHost: localhost\r\n\r\n", 404, "M_UNRECOGNIZED"},
		{"dot-dot", "POST /_matrix/client/v3/../v3/login HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\n\r\n{}", 404, "M_UNRECOGNIZED"},
		{"dot segment", "GET /_matrix/client/./versions HTTP/1.1\r\nHost: localhost\r\n\r\n", 404, "M_UNRECOGNIZED"},
		{"malformed request line", "HELLO\r\n\r\n", 400, "M_UNRECOGNIZED"},
		{"no Host header", "GET /_matrix/client/versions HTTP/1.1\r\n\r\n", 400, "M_UNRECOGNIZED"},
		{"malformed header", "GET /_matrix/client/versions HTTP/1.1\r\nHost: localhost\r\nno colon here\r\n\r\n", 400, "M_UNRECOGNIZED"},
		{"unknown transfer encoding", "POST /_matrix/client/v3/login HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: rot13\r\n\r\n", 501, "M_UNRECOGNIZED"},
		{"huge headers", "GET /_matrix/client/versions HTTP/1.1\r\nHost: localhost\r\nX-Big: " + strings.Repeat("a", 1<<20+8192) + "\r\n\r\n", 431, "M_TOO_LARGE"},
	} {
		resp, body := rawRequest(t, ts, tc.raw)
		if resp.StatusCode != tc.status || body["errcode"] != tc.errcode || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s: %d %s %v, want %d %s", tc.what, resp.StatusCode, resp.Header.Get("Content-Type"), body, tc.status, tc.errcode)
		}
		if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("%s: no CORS headers", tc.what)
		}
	}
	// Well-formed requests are untouched.
	resp, body := rawRequest(t, ts, "GET /_matrix/client/versions HTTP/1.1\r\nHost: localhost\r\n\r\n")
	if resp.StatusCode != 200 || body["versions"] == nil {
		t.Fatalf("versions: %d %v", resp.StatusCode, body)
	}
}
