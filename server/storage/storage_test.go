package storage

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func openTemp(t *testing.T) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "palpo.db")
	db, err := Open(context.Background(), path, 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, path
}

func TestOpenAppliesPragmasAndMigrations(t *testing.T) {
	db, _ := openTemp(t)
	ctx := context.Background()
	var mode string
	if err := db.writer.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal_mode = %q, %v; want wal", mode, err)
	}
	var fk int
	if err := db.reader.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk); err != nil || fk != 1 {
		t.Fatalf("reader foreign_keys = %d, %v", fk, err)
	}
	v, err := db.SchemaVersion(ctx)
	if err != nil || v != LatestSchemaVersion() {
		t.Fatalf("schema version %d, %v; want %d", v, err, LatestSchemaVersion())
	}
	// Readers must not be able to write: a write on the wrong pool is a bug
	// we want to hear about in tests, not a lock contention in production.
	if _, err := db.reader.ExecContext(ctx, insertMeta, "x", "y"); err == nil {
		t.Fatal("reader pool accepted a write")
	}
}

func TestMetaRoundTripAndReopen(t *testing.T) {
	db, path := openTemp(t)
	ctx := context.Background()
	if _, ok, err := db.Meta(ctx, MetaServerName); err != nil || ok {
		t.Fatalf("fresh database has server name: %v %v", ok, err)
	}
	if err := db.SetMeta(ctx, MetaServerName, "example.org"); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db2, err := Open(ctx, path, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	v, ok, err := db2.Meta(ctx, MetaServerName)
	if err != nil || !ok || v != "example.org" {
		t.Fatalf("after reopen: %q %v %v", v, ok, err)
	}
}

// TestUpgradeFromFirstMigration opens a database made by migration 1 only,
// puts data in it, and checks that Open brings it to the latest schema
// without losing that data.
func TestUpgradeFromFirstMigration(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	old, err := open(ctx, path, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := old.SchemaVersion(ctx); v != 1 {
		t.Fatalf("old database at version %d, want 1", v)
	}
	if err := old.SetMeta(ctx, MetaServerName, "old.example"); err != nil {
		t.Fatal(err)
	}
	old.Close()

	db, err := Open(ctx, path, 1)
	if err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	defer db.Close()
	if v, _ := db.SchemaVersion(ctx); v != LatestSchemaVersion() {
		t.Fatalf("upgraded to %d, want %d", v, LatestSchemaVersion())
	}
	if v, ok, err := db.Meta(ctx, MetaServerName); err != nil || !ok || v != "old.example" {
		t.Fatalf("data lost in upgrade: %q %v %v", v, ok, err)
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	db, path := openTemp(t)
	ctx := context.Background()
	if err := db.WriteTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE schema_version SET version = version + 1`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err := Open(ctx, path, 1)
	if !errors.Is(err, ErrNewerSchema) {
		t.Fatalf("want ErrNewerSchema, got %v", err)
	}
	if !strings.Contains(err.Error(), "newer Palpo") || !strings.Contains(err.Error(), path) {
		t.Fatalf("message should explain and name the file: %v", err)
	}
}

func TestFailedMigrationRollsBack(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "bad.db")
	db, err := open(ctx, path, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// Make migration 1 fail by creating its table up front.
	if _, err := db.writer.ExecContext(ctx, `CREATE TABLE server_meta (x INTEGER)`); err != nil {
		t.Fatal(err)
	}
	if err := db.migrate(ctx, LatestSchemaVersion()); err == nil {
		t.Fatal("expected migration to fail")
	}
	if v, err := db.SchemaVersion(ctx); err != nil || v != 0 {
		t.Fatalf("failed migration left version %d (%v)", v, err)
	}
}

func TestWriteTxRollsBackOnError(t *testing.T) {
	db, _ := openTemp(t)
	ctx := context.Background()
	boom := errors.New("boom")
	err := db.WriteTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, insertMeta, "k", "v"); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("got %v", err)
	}
	if _, ok, _ := db.Meta(ctx, "k"); ok {
		t.Fatal("rolled-back write is visible")
	}
}

func TestOpenBadPath(t *testing.T) {
	_, err := Open(context.Background(), filepath.Join(t.TempDir(), "no", "such", "dir", "x.db"), 1)
	if err == nil {
		t.Fatal("expected an error")
	}
}

// TestMigrationsContiguous: released migration numbers run 1, 2, 3… with no
// gaps, so every database applies the same steps in the same order.
func TestMigrationsContiguous(t *testing.T) {
	for i, m := range migrations {
		if m.version != i+1 {
			t.Fatalf("migration %d is numbered %d: number migrations without gaps", i+1, m.version)
		}
	}
}
