package oauth_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
)

// masterKey is a new cross-signing master key for user, as uploaded.
func masterKey(user string) map[string]any {
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	k := base64.RawStdEncoding.EncodeToString(pub)
	return map[string]any{"user_id": user, "usage": []string{"master"}, "keys": map[string]string{"ed25519:" + k: k}}
}

// uploadMaster posts a master key with token and auth, and decodes the answer.
func (e *env) uploadMaster(t *testing.T, token string, key map[string]any, auth map[string]any) (int, map[string]any) {
	t.Helper()
	body := map[string]any{"master_key": key}
	if auth != nil {
		body["auth"] = auth
	}
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, e.URL+"/_matrix/client/v3/keys/device_signing/upload", bytes.NewReader(raw))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return decode(t, resp)
}

// TestCrossSigningResetWithOAuth: an OAuth session replacing its
// cross-signing keys is offered the m.oauth stage (spec: "OAuth
// authentication"), whose URL is the account page's approval; once the
// person approves there, the retry with only the session passes.
func TestCrossSigningResetWithOAuth(t *testing.T) {
	e := newEnv(t)
	e.RegisterUser("alice")
	clientID := e.register(t, webClient())
	b := e.browser(t)
	verifier, challenge := pkce()
	_, tok := e.exchange(t, clientID, e.signedInCode(t, b, clientID, "DEVXSIGN01", challenge), verifier)
	token := tok["access_token"].(string)

	// The first upload needs no authentication.
	if status, body := e.uploadMaster(t, token, masterKey("@alice:localhost"), nil); status != 200 {
		t.Fatalf("first upload: %d %v", status, body)
	}
	second := masterKey("@alice:localhost")
	status, uia := e.uploadMaster(t, token, second, nil)
	if status != 401 {
		t.Fatalf("replacing keys: %d %v", status, uia)
	}
	var stages []string
	for _, f := range uia["flows"].([]any) {
		for _, s := range f.(map[string]any)["stages"].([]any) {
			stages = append(stages, s.(string))
		}
	}
	approveURL, _ := uia["params"].(map[string]any)["m.oauth"].(map[string]any)["url"].(string)
	if !slices.Contains(stages, "m.oauth") || approveURL != e.URL+"/account?action=org.matrix.cross_signing_reset" {
		t.Fatalf("UIA answer %v", uia)
	}
	session := uia["session"].(string)
	// Not approved yet: the retry is answered with the flows again.
	if status, body := e.uploadMaster(t, token, second, map[string]any{"session": session}); status != 401 {
		t.Fatalf("retry before approval: %d %v", status, body)
	}
	p := b.get(approveURL)
	if !strings.Contains(p.Body, "replace your encryption identity") {
		t.Fatalf("approval page: %d\n%s", p.Status, p.Body)
	}
	p = b.submit(p, "/account/approve", url.Values{})
	if !strings.Contains(p.Body, "Reset allowed") {
		t.Fatalf("approve: %d\n%s", p.Status, p.Body)
	}
	if status, body := e.uploadMaster(t, token, second, map[string]any{"session": session}); status != 200 {
		t.Fatalf("retry after approval: %d %v", status, body)
	}
	// The approval was spent: another reset needs another.
	status, uia = e.uploadMaster(t, token, masterKey("@alice:localhost"), nil)
	if status != 401 {
		t.Fatalf("third key: %d", status)
	}
	if status, _ := e.uploadMaster(t, token, masterKey("@alice:localhost"), map[string]any{"session": uia["session"]}); status != 401 {
		t.Errorf("approval used twice: %d", status)
	}

	// A password session is not offered m.oauth.
	pw := e.Login("alice", testserver.DefaultPassword)
	status, uia = e.uploadMaster(t, pw.AccessToken, masterKey("@alice:localhost"), nil)
	if status != 401 || uia["params"].(map[string]any)["m.oauth"] != nil || strings.Contains(mustJSON(uia["flows"]), "m.oauth") {
		t.Errorf("password session UIA: %d %v", status, uia)
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
