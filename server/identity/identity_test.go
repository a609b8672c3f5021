package identity

import (
	"crypto/ed25519"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

func TestKeyKeptAcrossLoads(t *testing.T) {
	dir := t.TempDir()
	k1, err := LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^ed25519:a_[A-Za-z0-9]{4}$`).MatchString(string(k1.ID)) {
		t.Fatalf("key ID %q is not a valid key ID", k1.ID)
	}
	k2, err := LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	if k1.ID != k2.ID || k1.Pub != k2.Pub || !k1.Priv.Equal(k2.Priv) {
		t.Fatal("second load returned a different key")
	}
	sig := ed25519.Sign(k2.Priv, []byte("x"))
	if !ed25519.Verify(k1.Priv.Public().(ed25519.PublicKey), []byte("x"), sig) {
		t.Fatal("keys do not match")
	}
	if runtime.GOOS != "windows" {
		st, err := os.Stat(filepath.Join(dir, KeyFileName))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("key file mode %v (%v), want 0600", st.Mode().Perm(), err)
		}
	}
}

func TestDamagedKeyRefused(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, KeyFileName), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadOrCreate(dir)
	if err == nil || !strings.Contains(err.Error(), "backup") {
		t.Fatalf("want a clear error, got %v", err)
	}
}
