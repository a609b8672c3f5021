package accounts

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"maunium.net/go/mautrix"

	"github.com/palpo-im/palpo-desktop/server/config"
	"github.com/palpo-im/palpo-desktop/server/storage"
)

// newAdminTestService is an accounts service on a fresh database with a
// clock the test moves.
func newAdminTestService(t *testing.T, secret string) (*Service, *time.Time) {
	t.Helper()
	db, err := storage.Open(context.Background(), filepath.Join(t.TempDir(), "palpo.db"), 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	cfg := config.Default()
	cfg.Registration.SharedSecret = secret
	s := New(db, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	now := time.Unix(1_700_000_000, 0)
	s.Now = func() time.Time { return now }
	return s, &now
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	var re mautrix.RespError
	if !errors.As(err, &re) || re.ErrCode != code {
		t.Fatalf("want %s, got %v", code, err)
	}
}

func TestSharedSecretNonceExpires(t *testing.T) {
	s, now := newAdminTestService(t, "secret")
	r := s.NewSharedSecretRegistration()
	req := func(nonce, name string) SharedSecretRequest {
		return SharedSecretRequest{Nonce: nonce, Username: name, Password: "a long enough password",
			MAC: SharedSecretMAC("secret", nonce, name, "a long enough password", false, ""), InhibitLogin: true}
	}
	nonce, err := r.Nonce()
	if err != nil {
		t.Fatal(err)
	}
	*now = now.Add(nonceTTL + time.Second)
	_, err = r.Register(context.Background(), req(nonce, "late"))
	wantCode(t, err, "M_UNKNOWN")
	// A nonce used within the minute works.
	nonce, _ = r.Nonce()
	*now = now.Add(nonceTTL - time.Second)
	if _, err := r.Register(context.Background(), req(nonce, "intime")); err != nil {
		t.Fatal(err)
	}
}

func TestSharedSecretNoncesAreBounded(t *testing.T) {
	s, now := newAdminTestService(t, "secret")
	r := s.NewSharedSecretRegistration()
	for range maxNonces {
		if _, err := r.Nonce(); err != nil {
			t.Fatal(err)
		}
	}
	_, err := r.Nonce()
	wantCode(t, err, "M_LIMIT_EXCEEDED")
	// Expired nonces make room again.
	*now = now.Add(nonceTTL + time.Second)
	if _, err := r.Nonce(); err != nil {
		t.Fatal(err)
	}
}

// The MAC is Synapse's: these vectors come from Python's hmac module, which
// Synapse and its register_new_matrix_user script use.
func TestSharedSecretMACMatchesSynapse(t *testing.T) {
	for _, tc := range []struct {
		admin    bool
		userType string
		want     string
	}{
		{true, "", "dc5ed98b283077684552e3f72d67f26b3366bf58"},
		{false, "bot", "24aa4ce0a91cc14c8d7b06e2c344d3d698805c6e"},
	} {
		if got := SharedSecretMAC("secret", "abc", "alice", "pw", tc.admin, tc.userType); got != tc.want {
			t.Errorf("admin=%v type=%q: mac %s, want %s", tc.admin, tc.userType, got, tc.want)
		}
	}
}
