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
		t.Run(mode, func(t *testing.T) { elementSDKChat(t, mode, false) })
	}
}

// TestElementSDKFederatedEncryptedChat is the same chat with alice on one
// Palpo and bob on another, federating: the invite, the join, bob's and
// alice's device lists and keys, and the room keys (to-device) all cross
// between the servers, and each side still decrypts the other.
func TestElementSDKFederatedEncryptedChat(t *testing.T) {
	for _, mode := range []string{"sync", "sliding"} {
		t.Run(mode, func(t *testing.T) { elementSDKChat(t, mode, true) })
	}
}

// elementSDKChat runs the chat with both clients on /sync v3 (mode "sync")
// or on simplified sliding sync ("sliding", what Element Web's sliding sync
// mode uses: to-device messages and device lists then come through its
// extensions). With federated, bob is on a second server.
func elementSDKChat(t *testing.T, mode string, federated bool) {
	node := elementSDKNode(t)
	var servers map[string]*testserver.Server
	if federated {
		ca := testserver.NewCA(t)
		servers = map[string]*testserver.Server{
			"alice": testserver.New(t, testserver.Federated(ca)),
			"bob":   testserver.New(t, testserver.Federated(ca)),
		}
	} else {
		ts := testserver.New(t)
		servers = map[string]*testserver.Server{"alice": ts, "bob": ts}
	}
	creds := map[string]any{}
	for _, name := range []string{"alice", "bob"} {
		ts := servers[name]
		c := ts.RegisterUser(name)
		creds[name] = map[string]string{
			"userId": string(c.UserID), "accessToken": c.AccessToken, "deviceId": string(c.DeviceID), "baseUrl": ts.URL,
		}
	}
	credsJSON, _ := json.Marshal(creds)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "encrypted-chat.mjs", servers["alice"].URL, string(credsJSON), mode)
	cmd.Dir = jsDir
	out, err := cmd.CombinedOutput()
	t.Logf("matrix-js-sdk output:\n%s", out)
	if err != nil {
		t.Fatalf("Element SDK encrypted chat (%s) failed: %v", mode, err)
	}
	if federated {
		// The chat really crossed the servers: bob's join went through
		// alice's server, and alice's client claimed a one-time key of bob's
		// device from bob's server to send him the room key.
		for _, want := range []struct{ server, path string }{
			{"alice", "path=/_matrix/federation/v2/send_join/"},
			{"bob", "path=/_matrix/federation/v2/invite/"},
			{"bob", "path=/_matrix/federation/v1/user/keys/claim status=200"},
		} {
			if !strings.Contains(servers[want.server].Logs(), want.path) {
				t.Errorf("%s's server never served %s", want.server, want.path)
			}
		}
	}
	// The clients really synced the way asked, on every server.
	for _, name := range []string{"alice", "bob"} {
		logs := servers[name].Logs()
		usedSliding := strings.Contains(logs, "simplified_msc3575/sync")
		usedV3 := strings.Contains(logs, "path=/_matrix/client/v3/sync")
		if (mode == "sliding") != usedSliding || (mode == "sliding") == usedV3 {
			t.Fatalf("mode %s, yet %s's server saw sliding sync: %v, /sync: %v", mode, name, usedSliding, usedV3)
		}
	}
}

// elementSDKNode returns node's path, skipping the test where node or the
// SDK is missing outside `make test`.
func elementSDKNode(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if _, statErr := os.Stat(filepath.Join(jsDir, "node_modules", "matrix-js-sdk")); err != nil || statErr != nil {
		// `make test` installs both and sets PALPO_E2E_JS, so there the
		// test must run; a bare `go test` may skip it.
		if os.Getenv("PALPO_E2E_JS") != "" {
			t.Fatalf("node (%v) or e2e/js/node_modules (%v) missing; run `make e2e-deps`", err, statErr)
		}
		t.Skip("node or e2e/js/node_modules missing; `make test` installs them")
	}
	return node
}
