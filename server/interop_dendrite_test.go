package server_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/internal/dendrite"
	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
)

// TestInteropDendriteBasics checks the Dendrite harness itself, with no Palpo
// involved: the peer starts with a certificate from a test CA, takes a user,
// a room and a message, and serves a self-signed server key over HTTPS that
// a client trusting only the test CA accepts. The federation tests build on
// each of these.
func TestInteropDendriteBasics(t *testing.T) {
	ca := testserver.NewCA(t)
	cert, key := ca.Issue("127.0.0.1")
	d := dendrite.Start(t, dendrite.Options{CertFile: cert, KeyFile: key, TrustedCAFile: ca.CertFile})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	alice := d.RegisterUser("alice")
	if want := d.UserID("alice"); alice.UserID != want {
		t.Fatalf("registered %s, want %s", alice.UserID, want)
	}
	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Name: "interop", Preset: "private_chat"})
	if err != nil {
		t.Fatalf("create room on Dendrite: %v", err)
	}
	sent, err := alice.SendText(ctx, room.RoomID, "hello from the harness")
	if err != nil {
		t.Fatalf("send on Dendrite: %v", err)
	}
	// Dendrite stores events asynchronously: an event just sent may not
	// be readable for a moment.
	var ev *event.Event
	for deadline := time.Now().Add(15 * time.Second); ; {
		if ev, err = alice.GetEvent(ctx, room.RoomID, sent.EventID); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("read the message back: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := ev.Content.ParseRaw(ev.Type); err != nil {
		t.Fatal(err)
	}
	if body := ev.Content.AsMessage().Body; body != "hello from the harness" || ev.Sender != alice.UserID {
		t.Fatalf("message read back: sender %s body %q", ev.Sender, body)
	}
	if ev.Type != event.EventMessage {
		t.Fatalf("message read back has type %s", ev.Type)
	}

	// The federation listener, as a Palpo would reach it: HTTPS to the IP
	// literal of the server name, verified against the test CA alone.
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12},
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+d.ServerName+"/_matrix/key/v2/server", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("fetch Dendrite's server key over TLS: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /_matrix/key/v2/server: %d %s %v", resp.StatusCode, body, err)
	}
	var keys federation.ServerKeyResponse
	if err := json.Unmarshal(body, &keys); err != nil {
		t.Fatalf("server key response: %v: %s", err, body)
	}
	if keys.ServerName != d.ServerName {
		t.Fatalf("server key names %q, want %q", keys.ServerName, d.ServerName)
	}
	if len(keys.VerifyKeys) == 0 {
		t.Fatalf("server key response has no verify_keys: %s", body)
	}
	if err := keys.VerifySelfSignature(); err != nil {
		t.Fatalf("server key self-signature: %v", err)
	}
	if time.Until(keys.ValidUntilTS.Time) <= 0 {
		t.Fatalf("server key already expired: valid_until_ts %v", keys.ValidUntilTS.Time)
	}
	// A self-signature check that passes on anything proves nothing: the
	// same signed bytes checked against another key must fail.
	other, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for keyID := range keys.VerifyKeys {
		keys.VerifyKeys[keyID] = federation.ServerVerifyKey{Key: id.SigningKey(base64.RawStdEncoding.EncodeToString(other))}
	}
	if err := keys.VerifySelfSignature(); err == nil {
		t.Fatal("the server key's signature verified with a different key")

	}
}
