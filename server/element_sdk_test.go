package server_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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
	for _, mode := range []string{"sync", "sliding"} {
		t.Run(mode, func(t *testing.T) { elementSDKChat(t, mode) })
	}
}

// elementSDKChat runs the chat with both clients on /sync v3 (mode "sync")
// or on simplified sliding sync ("sliding", what Element Web's sliding sync
// mode uses: to-device messages and device lists then come through its
// extensions).
func elementSDKChat(t *testing.T, mode string) {
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
	cmd := exec.CommandContext(ctx, node, "encrypted-chat.mjs", ts.URL, string(credsJSON), mode)
	cmd.Dir = jsDir
	out, err := cmd.CombinedOutput()
	t.Logf("matrix-js-sdk output:\n%s", out)
	if err != nil {
		t.Fatalf("Element SDK encrypted chat (%s) failed: %v", mode, err)
	}
	// The clients really synced the way asked.
	logs := ts.Logs()
	usedSliding := strings.Contains(logs, "simplified_msc3575/sync")
	usedV3 := strings.Contains(logs, "path=/_matrix/client/v3/sync")
	if (mode == "sliding") != usedSliding || (mode == "sliding") == usedV3 {
		t.Fatalf("mode %s, yet sliding sync used: %v, /sync used: %v", mode, usedSliding, usedV3)
	}
}
