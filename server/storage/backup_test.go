package storage

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A snapshot holds exactly the transactions committed before it began:
// one still open on the writer is not in it, and the writer is not
// blocked by the snapshot.
func TestBackupToIsConsistentWhileWriting(t *testing.T) {
	db, _ := openTemp(t)
	ctx := context.Background()
	if err := db.SetMeta(ctx, "before", "1"); err != nil {
		t.Fatal(err)
	}
	tx, err := db.writer.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, insertMeta, "uncommitted", "1"); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "copy.db")
	if err := db.BackupTo(ctx, dst); err != nil {
		t.Fatalf("BackupTo with a write transaction open: %v", err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	copyMeta := func(key string) bool {
		conn, err := openSnapshot(dst)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		var v string
		err = conn.QueryRowContext(ctx, selectMeta, key).Scan(&v)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			t.Fatal(err)
		}
		return err == nil
	}
	if !copyMeta("before") || copyMeta("uncommitted") {
		t.Fatalf("snapshot: committed row present %v, uncommitted row present %v", copyMeta("before"), copyMeta("uncommitted"))
	}
	// The target must not exist: VACUUM INTO never overwrites.
	if err := db.BackupTo(ctx, dst); err == nil {
		t.Fatal("BackupTo overwrote an existing file")
	}
}

// SnapshotFile works from a second connection beside a live writer (as
// `palpo backup create` does beside a running server) and never migrates.
func TestSnapshotFileBesideWriterAndWithoutMigrating(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	old, err := OpenAtSchemaVersionForTest(ctx, path, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if err := old.SetMeta(ctx, MetaServerName, "example.org"); err != nil {
		t.Fatal(err)
	}
	// A write transaction stays open on the live connection meanwhile.
	tx, err := old.writer.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, insertMeta, "uncommitted", "1"); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "copy.db")
	if err := SnapshotFile(ctx, path, dst); err != nil {
		t.Fatal(err)
	}
	info, err := InspectSnapshot(ctx, dst)
	if err != nil {
		t.Fatal(err)
	}
	if info.SchemaVersion != 1 || info.ServerName != "example.org" || info.Users != 0 || info.StreamPosition != 0 || len(info.Media) != 0 {
		t.Fatalf("snapshot of a version 1 database: %+v", info)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if v, err := old.SchemaVersion(ctx); err != nil || v != 1 {
		t.Fatalf("the original was changed: version %d, %v", v, err)
	}
	if err := CheckSnapshotIntegrity(ctx, dst); err != nil {
		t.Fatal(err)
	}

	err = SnapshotFile(ctx, filepath.Join(t.TempDir(), "missing.db"), filepath.Join(t.TempDir(), "x.db"))
	if err == nil || !strings.Contains(err.Error(), "does not exist: there is nothing to back up yet") {
		t.Fatalf("snapshot of a missing database: %v", err)
	}
}

func TestInspectSnapshotCountsMedia(t *testing.T) {
	db, _ := openTemp(t)
	ctx := context.Background()
	for i, sha := range []string{"aa11", "bb22"} {
		m := &Media{MediaID: "m" + sha, UserID: "@u:x", ContentType: "text/plain", Size: int64(10 + i), CreatedTS: 1, UploadedTS: 1}
		if err := db.StoreMedia(ctx, m, &MediaContent{SHA256: sha, Size: int64(10 + i), SniffedType: "text/plain", CreatedTS: 1}, 0); err != nil {
			t.Fatal(err)
		}
	}
	dst := filepath.Join(t.TempDir(), "copy.db")
	if err := db.BackupTo(ctx, dst); err != nil {
		t.Fatal(err)
	}
	info, err := InspectSnapshot(ctx, dst)
	if err != nil {
		t.Fatal(err)
	}
	if info.SchemaVersion != LatestSchemaVersion() || len(info.Media) != 2 || info.Media[0] != (SnapshotMedia{"aa11", 10}) || info.Media[1] != (SnapshotMedia{"bb22", 11}) {
		t.Fatalf("inspect: %+v", info)
	}
}

func TestCheckSnapshotIntegrityFindsDamage(t *testing.T) {
	db, _ := openTemp(t)
	ctx := context.Background()
	for i := range 200 {
		if err := db.SetMeta(ctx, strings.Repeat("k", 50)+string(rune('a'+i%26))+strings.Repeat("x", i), strings.Repeat("v", 300)); err != nil {
			t.Fatal(err)
		}
	}
	dst := filepath.Join(t.TempDir(), "copy.db")
	if err := db.BackupTo(ctx, dst); err != nil {
		t.Fatal(err)
	}
	if err := CheckSnapshotIntegrity(ctx, dst); err != nil {
		t.Fatalf("good copy: %v", err)
	}
	data, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	// Overwrite the middle of the file (b-tree pages, past the header).
	for i := len(data) / 2; i < len(data)/2+4096 && i < len(data); i++ {
		data[i] = 0xA5
	}
	bad := filepath.Join(t.TempDir(), "bad.db")
	if err := os.WriteFile(bad, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := CheckSnapshotIntegrity(ctx, bad); !errors.Is(err, ErrCorruptDatabase) {
		t.Fatalf("damaged copy: %v", err)
	}
	notDB := filepath.Join(t.TempDir(), "text.db")
	if err := os.WriteFile(notDB, []byte(strings.Repeat("not a database ", 100)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := CheckSnapshotIntegrity(ctx, notDB); !errors.Is(err, ErrCorruptDatabase) {
		t.Fatalf("not a database: %v", err)
	}
}

func TestCheckRestorableSchema(t *testing.T) {
	if err := CheckRestorableSchema(LatestSchemaVersion()); err != nil {
		t.Fatal(err)
	}
	if err := CheckRestorableSchema(1); err != nil {
		t.Fatal(err)
	}
	err := CheckRestorableSchema(LatestSchemaVersion() + 1)
	if !errors.Is(err, ErrNewerSchema) || !strings.Contains(err.Error(), "made by a newer Palpo") {
		t.Fatalf("newer schema: %v", err)
	}
}
