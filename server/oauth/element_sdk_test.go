package oauth_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// jsDir holds the Element SDK end-to-end tests (e2e/js), whose
// node_modules `make test` installs from the lockfile.
const jsDir = "../../e2e/js"

// TestElementSDKSignUp drives Palpo's OAuth server with Element's SDK
// (matrix-js-sdk's OAuth2 class): the SDK discovers the server, registers
// a client, builds the authorization URL with prompt=create; this test's
// browser signs up on the pages with an invite code and allows; the SDK
// exchanges the code, syncs, refreshes, signs a second device in with the
// device authorization grant (the browser approves it on /link), and
// revokes both sessions.
func TestElementSDKSignUp(t *testing.T) {
	node, err := exec.LookPath("node")
	if _, statErr := os.Stat(filepath.Join(jsDir, "node_modules", "matrix-js-sdk")); err != nil || statErr != nil {
		// `make test` installs both and sets PALPO_E2E_JS, so there the
		// test must run; a bare `go test` may skip it.
		if os.Getenv("PALPO_E2E_JS") != "" {
			t.Fatalf("node (%v) or e2e/js/node_modules (%v) missing; run `make e2e-deps`", err, statErr)
		}
		t.Skip("node or e2e/js/node_modules missing; `make test` installs them")
	}
	e := newEnv(t, withInvites)
	code := e.newInvite(t)
	b := e.browser(t)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "oauth-signup.mjs", e.URL)
	cmd.Dir = jsDir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ok := false
	lines := bufio.NewScanner(stdout)
	lines.Buffer(make([]byte, 64<<10), 1<<20)
	for lines.Scan() {
		line := lines.Text()
		if !strings.HasPrefix(line, "{") {
			t.Logf("node: %s", line)
			continue
		}
		var msg struct {
			Authorize string `json:"authorize"`
			UserCode  string `json:"user_code"`
			Complete  string `json:"verification_uri_complete"`
			OK        bool   `json:"ok"`
		}
		if err := json.Unmarshal([]byte(line), &msg); err != nil {
			t.Fatalf("node said %q: %v", line, err)
		}
		switch {
		case msg.Authorize != "":
			p := b.get(msg.Authorize)
			if p.URL.Path != "/account/register" {
				t.Fatalf("the SDK's prompt=create URL led to %s", p.URL)
			}
			p = b.submit(p, "/account/register", url.Values{"username": {"erin"}, "password": {"a long passphrase"},
				"confirm": {"a long passphrase"}, "invite_code": {code}})
			cb := b.approve(p)
			fmt.Fprintf(stdin, "{\"code\":%q,\"state\":%q}\n", cb.Get("code"), cb.Get("state"))
		case msg.UserCode != "":
			if !strings.HasPrefix(msg.Complete, e.URL+"/link?user_code=") {
				t.Errorf("verification_uri_complete %q", msg.Complete)
			}
			p := b.get(msg.Complete)
			p = b.submit(p, "/link/decide", url.Values{"action": {"allow"}})
			if !strings.Contains(p.Body, "Device signed in") {
				t.Fatalf("approving the SDK's device: %d\n%s", p.Status, p.Body)
			}
		case msg.OK:
			ok = true
		}
	}
	err = cmd.Wait()
	t.Logf("matrix-js-sdk stderr:\n%s", stderr.String())
	if err != nil || !ok {
		t.Fatalf("Element SDK OAuth sign-up failed: %v", err)
	}
}
