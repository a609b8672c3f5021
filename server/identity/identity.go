// Package identity keeps the server's ed25519 signing key: the key that signs
// every event and federation request, generated on first start and kept in
// the data directory for the life of the server.
package identity

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/id"
)

// KeyFileName is the signing key's file name in the data directory. The
// format is Synapse's ("ed25519 <version> <unpadded base64 seed>"), so a key
// can move between servers with standard tools.
const KeyFileName = "signing.key"

// LoadOrCreate reads the signing key from dir, or generates and saves one
// when none exists yet.
func LoadOrCreate(dir string) (*federation.SigningKey, error) {
	path := filepath.Join(dir, KeyFileName)
	data, err := os.ReadFile(path)
	if err == nil {
		key, err := federation.ParseSynapseKey(strings.TrimSpace(string(data)))
		if err != nil {
			return nil, fmt.Errorf("signing key %s is damaged (%v); restore it from a backup: a new key would make other servers distrust this one", path, err)
		}
		return key, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read signing key: %w", err)
	}
	key := federation.GenerateSigningKey()
	key.ID = id.NewKeyID(id.KeyAlgorithmEd25519, newKeyVersion())
	if err := writeFileAtomic(path, []byte(key.SynapseString()+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("save signing key: %w", err)
	}
	return key, nil
}

// newKeyVersion returns "a_" and four random letters or digits. The spec
// limits key versions to [a-zA-Z0-9_]; mautrix's default uses base64url, which
// may contain '-'.
func newKeyVersion() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return "a_" + string(b)
}

// writeFileAtomic writes to a temporary file, syncs it, and renames it into
// place, so a crash never leaves a half-written key behind.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
