package server_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
)

// jsDir holds the Element SDK end-to-end test (e2e/js), whose node_modules
// `make test` installs from the lockfile.
const jsDir = "../e2e/js"

// TestElementSDKEncryptedChat runs two matrix-js-sdk clients with their
// Rust crypto (what Element uses) against a real Palpo: they share an
// encrypted room and each decrypts the other's message. This is the proof
// that Element's end-to-end encryption works with Palpo.
func TestElementSDKEncryptedChat(t *testing.T) {
	node, err := exec.LookPath("node")
	if _, statErr := os.Stat(filepath.Join(jsDir, "node_modules", "matrix-js-sdk")); err != nil || statErr != nil {
		// `make test` installs both and sets PALPO_E2E_JS, so there the
		// test must run; a bare `go test` may skip it.
		if os.Getenv("PALPO_E2E_JS") != "" {
			t.Fatalf("node (%v) or e2e/js/node_modules (%v) missing; run `make e2e-deps`", err, statErr)
		}
		t.Skip("node or e2e/js/node_modules missing; `make test` installs them")
	}
	ts := testserver.New(t)
	creds := map[string]any{}
	for _, name := range []string{"alice", "bob"} {
		c := ts.RegisterUser(name)
		creds[name] = map[string]string{"userId": string(c.UserID), "accessToken": c.AccessToken, "deviceId": string(c.DeviceID)}
	}
	credsJSON, _ := json.Marshal(creds)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "encrypted-chat.mjs", ts.URL, string(credsJSON))
	cmd.Dir = jsDir
	out, err := cmd.CombinedOutput()
	t.Logf("matrix-js-sdk output:\n%s", out)
	if err != nil {
		t.Fatalf("Element SDK encrypted chat failed: %v", err)
	}
}
