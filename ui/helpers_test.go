package ui

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"

	"github.com/palpo-im/palpo-desktop/app"
	"github.com/palpo-im/palpo-desktop/server/config"
)

// The tests drive the real window on Fyne's test driver (no display)
// against a real app.App whose server listens on a random loopback port.

const ownerPassword = "owner password"

// newTestApp opens a fresh data directory whose server listens on a
// random loopback port.
func newTestApp(t *testing.T) *app.App {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, config.FileName), []byte(`listen = ["127.0.0.1:0"]`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := app.Open(dir, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// newTestDesktop builds the window for a on a test Fyne app.
func newTestDesktop(t *testing.T, a *app.App, opts Options) (*Desktop, fyne.App) {
	t.Helper()
	fa := test.NewTempApp(t)
	d := New(fa, a, opts)
	// Results of background work run on the test's goroutine, in Wait,
	// as they run on Fyne's event loop in the app.
	d.queue = make(chan func(), 1000)
	d.post = func(fn func()) { d.queue <- fn }
	// No name resolves unless a test says so (no waiting on real DNS).
	d.lookupHost = func(context.Context, string) ([]string, error) {
		return nil, &net.DNSError{Err: "no such host", IsNotFound: true}
	}
	t.Cleanup(d.Shutdown)
	return d, fa
}

// runningDesktop is a desktop past the wizard with its server running and
// an owner account "owner" (admin).
func runningDesktop(t *testing.T, opts Options) (*Desktop, fyne.App) {
	t.Helper()
	a := newTestApp(t)
	if _, err := a.ApplySetup(context.Background(), app.SetupRequest{ServerName: "localhost", Owner: "owner", Password: ownerPassword}, nil); err != nil {
		t.Fatal(err)
	}
	d, fa := newTestDesktop(t, a, opts)
	d.Begin()
	d.Wait()
	if d.wizard != nil || d.win.Content() != d.tabs {
		t.Fatal("the tabs are not shown for a data directory with an account")
	}
	if st := a.Status(); st.State != app.StateRunning {
		t.Fatalf("server state %s: %v", st.State, st.Err)
	}
	return d, fa
}

// objects lists every object under o that is visible.
func objects(o fyne.CanvasObject) []fyne.CanvasObject {
	var out []fyne.CanvasObject
	for _, c := range test.LaidOutObjects(o) {
		if c.Visible() {
			out = append(out, c)
		}
	}
	return out
}

// labels lists the text of the visible labels under o.
func labels(o fyne.CanvasObject) []string {
	var out []string
	for _, c := range objects(o) {
		if l, ok := c.(*widget.Label); ok {
			out = append(out, l.Text)
		}
	}
	return out
}

// hasLabel tells whether a visible label under o contains text.
func hasLabel(o fyne.CanvasObject, text string) bool {
	return slices.ContainsFunc(labels(o), func(l string) bool { return strings.Contains(l, text) })
}

// findButton finds the visible button with this text under o.
func findButton(t *testing.T, o fyne.CanvasObject, text string) *widget.Button {
	t.Helper()
	for _, c := range objects(o) {
		if b, ok := c.(*widget.Button); ok && b.Text == text {
			return b
		}
	}
	t.Fatalf("no %q button; labels: %q", text, labels(o))
	return nil
}

// tap taps an enabled button.
func tap(t *testing.T, b *widget.Button) {
	t.Helper()
	if b.Disabled() {
		t.Fatalf("button %q is disabled", b.Text)
	}
	test.Tap(b)
}

// entries lists the visible entries under o, in order.
func entries(o fyne.CanvasObject) []*widget.Entry {
	var out []*widget.Entry
	for _, c := range objects(o) {
		if e, ok := c.(*widget.Entry); ok {
			out = append(out, e)
		}
	}
	return out
}

// dialogOnTop is the top overlay of the window (an open dialog), or fails.
func dialogOnTop(t *testing.T, d *Desktop) fyne.CanvasObject {
	t.Helper()
	top := d.win.Canvas().Overlays().Top()
	if top == nil {
		t.Fatal("no dialog is open")
	}
	return top
}

func noDialog(t *testing.T, d *Desktop) {
	t.Helper()
	if top := d.win.Canvas().Overlays().Top(); top != nil {
		t.Fatalf("a dialog is still open: %q", labels(top))
	}
}

// clientURL is the running server's address for HTTP calls.
func clientURL(t *testing.T, a *app.App) string {
	t.Helper()
	srv := a.Server()
	if srv == nil {
		t.Fatal("server not running")
	}
	return "http://" + srv.Addrs()[0].String()
}

// callJSON sends a JSON request and decodes the answer.
func callJSON(t *testing.T, method, url, token string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		data, _ := json.Marshal(body)
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// loginStatus tries a password login and returns the status and errcode.
func loginStatus(t *testing.T, a *app.App, user, password string) (int, string) {
	t.Helper()
	status, out := callJSON(t, http.MethodPost, clientURL(t, a)+"/_matrix/client/v3/login", "", map[string]any{
		"type": "m.login.password", "identifier": map[string]string{"type": "m.id.user", "user": user}, "password": password,
	})
	code, _ := out["errcode"].(string)
	return status, code
}

func mustLogin(t *testing.T, a *app.App, user, password string) string {
	t.Helper()
	status, out := callJSON(t, http.MethodPost, clientURL(t, a)+"/_matrix/client/v3/login", "", map[string]any{
		"type": "m.login.password", "identifier": map[string]string{"type": "m.id.user", "user": user}, "password": password,
	})
	tok, _ := out["access_token"].(string)
	if status != http.StatusOK || tok == "" {
		t.Fatalf("login %s: %d %v", user, status, out)
	}
	return tok
}

func configText(t *testing.T, a *app.App) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(a.DataDir(), config.FileName))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
