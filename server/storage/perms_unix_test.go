//go:build unix

package storage

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// The database and its -wal and -shm files are the owner's only (0600),
// even in a folder anyone may write and with a umask that lets everyone
// read new files; files an older version left readable are narrowed.
func TestDatabaseFilesOwnerOnly(t *testing.T) {
	old := syscall.Umask(0)
	t.Cleanup(func() { syscall.Umask(old) })
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "palpo.db")
	check := func(when string) {
		t.Helper()
		for _, p := range []string{path, path + "-wal", path + "-shm"} {
			info, err := os.Stat(p)
			if err != nil {
				t.Fatalf("%s: %v", when, err)
			}
			if perm := info.Mode().Perm(); perm != 0o600 {
				t.Errorf("%s: %s has mode %o, want 600", when, filepath.Base(p), perm)
			}
		}
	}
	db, err := Open(t.Context(), path, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.SetMeta(t.Context(), "perm-test", "x"); err != nil {
		t.Fatal(err)
	}
	check("new database")
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	// A database left world-readable by an older version.
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Chmod(p, 0o644); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	db, err = Open(t.Context(), path, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.SetMeta(t.Context(), "perm-test", "y"); err != nil {
		t.Fatal(err)
	}
	check("reopened database")
}
