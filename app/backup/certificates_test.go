package backup

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/palpo-im/palpo-desktop/server"
)

func TestCertificatesDirIsTheServers(t *testing.T) {
	if certificatesDir != server.CertificatesDirName {
		t.Fatalf("backups carry %q, the server keeps certificates in %q", certificatesDir, server.CertificatesDirName)
	}
}

// writeTree writes files (slash paths relative to root).
func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for rel, data := range files {
		p := filepath.Join(root, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// certmagicLike is the layout of automatic TLS's storage (file names as
// certmagic writes them; the contents do not matter to backups).
var certmagicLike = map[string]string{
	"acme/ca.example-directory/users/default/default.key":            "account key",
	"acme/ca.example-directory/users/default/default.json":           `{"status":"valid"}`,
	"certificates/ca.example-directory/example.org/example.org.crt":  "certificate chain",
	"certificates/ca.example-directory/example.org/example.org.key":  "certificate key",
	"certificates/ca.example-directory/example.org/example.org.json": `{"sans":["example.org"]}`,
}

// A backup carries the certificates folder (not its lock files) and a
// restore puts it back: format 2, which older Palpos refuse as newer.
func TestCertificatesAreBackedUpAndRestored(t *testing.T) {
	in := newInstall(t)
	certs := filepath.Join(in.dir, certificatesDir)
	writeTree(t, certs, certmagicLike)
	writeTree(t, certs, map[string]string{"locks/issue_cert_example.org.lock": "held"})
	res := in.backup(t, CreateOptions{Verify: true})
	m := res.Manifest
	if m.Format != formatCertificates {
		t.Fatalf("format %d, want %d with certificates", m.Format, formatCertificates)
	}
	var got []string
	for _, f := range m.Files {
		if strings.HasPrefix(f.Path, certificatesPrefix) {
			got = append(got, strings.TrimPrefix(f.Path, certificatesPrefix))
		}
	}
	if len(got) != len(certmagicLike) {
		t.Fatalf("backed up certificates %v, want %d files (and no locks)", got, len(certmagicLike))
	}

	target := filepath.Join(t.TempDir(), "restored")
	if _, err := Restore(t.Context(), res.Path, target, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	for rel, data := range certmagicLike {
		b, err := os.ReadFile(filepath.Join(target, certificatesDir, filepath.FromSlash(rel)))
		if err != nil || !bytes.Equal(b, []byte(data)) {
			t.Fatalf("%s restored as %q (%v)", rel, b, err)
		}
	}
	if exists(filepath.Join(target, certificatesDir, "locks")) {
		t.Fatal("lock files were restored")
	}

	// Restoring over a data directory with other certificates replaces
	// them; the previous ones are kept in before-restore.
	writeTree(t, filepath.Join(target, certificatesDir), map[string]string{"certificates/other/other.crt": "newer"})
	rr, err := Restore(t.Context(), res.Path, target, RestoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if exists(filepath.Join(target, certificatesDir, "certificates", "other")) ||
		!exists(filepath.Join(rr.Previous, certificatesDir, "certificates", "other", "other.crt")) {
		t.Fatalf("the previous certificates were not moved aside (previous: %q)", rr.Previous)
	}
}

// A backup without certificates (made before the domain was set, or by
// an older Palpo) leaves the data directory's certificates in place:
// throwing them away would only make the server order new ones.
func TestRestoreWithoutCertificatesKeepsTheCurrentOnes(t *testing.T) {
	in := newInstall(t)
	res := in.backup(t, CreateOptions{})
	if res.Manifest.Format != 1 {
		t.Fatalf("format %d without certificates, want 1", res.Manifest.Format)
	}
	in.stop(t)
	writeTree(t, filepath.Join(in.dir, certificatesDir), certmagicLike)
	if _, err := Restore(t.Context(), res.Path, in.dir, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	for rel, data := range certmagicLike {
		b, err := os.ReadFile(filepath.Join(in.dir, certificatesDir, filepath.FromSlash(rel)))
		if err != nil || string(b) != data {
			t.Fatalf("%s after the restore: %q (%v)", rel, b, err)
		}
	}
}
