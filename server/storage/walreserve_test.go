package storage

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// crashImage copies a database's files as a power cut would leave them
// while it is open: the main file and the WAL, without the shared-memory
// index (which lives in memory, and SQLite rebuilds from the WAL).
func crashImage(t *testing.T, path string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "palpo.db")
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(path + suffix)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst+suffix, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func walSize(t *testing.T, path string) int64 {
	t.Helper()
	info, err := os.Stat(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	return info.Size()
}

// TestWALReserved: the server's database has its WAL grown ahead of use
// (one opened for a single command does not), its commits survive a crash
// in the grown file, and the zeros past them are never read back as data,
// however often the server restarts.
func TestWALReserved(t *testing.T) {
	ctx := context.Background()
	db, path := openTemp(t)
	want := int64(32 + walReserveFrames*(24+4096))
	if got := walSize(t, path); got >= want {
		t.Fatalf("WAL is %d bytes after a plain open: grown for a command that needs no speed", got)
	}
	if err := db.ReserveWAL(ctx); err != nil {
		t.Fatal(err)
	}
	if got := walSize(t, path); got < want {
		t.Fatalf("WAL is %d bytes after ReserveWAL, want at least %d", got, want)
	}
	for i, name := range []string{"one.example", "two.example", "three.example"} {
		if i == 1 {
			// Checkpointed: the next commit restarts the log at the start
			// of the grown file, before older frames.
			if _, err := db.writer.ExecContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.SetMeta(ctx, MetaServerName, name); err != nil {
			t.Fatal(err)
		}
		// The server dies; the next start opens what the disk holds.
		image := crashImage(t, path)
		db.Close()
		var err error
		if db, err = Open(ctx, image, 1); err != nil {
			t.Fatalf("restart %d: %v", i, err)
		}
		if err := db.ReserveWAL(ctx); err != nil {
			t.Fatalf("restart %d: %v", i, err)
		}
		path = image
		got, ok, err := db.Meta(ctx, MetaServerName)
		if err != nil || !ok || got != name {
			t.Fatalf("restart %d: server name %q %v %v, want %q", i, got, ok, err, name)
		}
		var check string
		if err := db.reader.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
			t.Fatalf("restart %d: integrity %q %v", i, check, err)
		}
	}
	db.Close()
}
