package storage

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migration is one numbered schema change, applied forward only.
type migration struct {
	version int
	name    string
	sql     string
}

// migrations are the embedded files, sorted; file NNNN_name.sql is version
// NNNN. Released versions must never be renumbered; TestMigrationsContiguous
// keeps the numbering free of gaps.
var migrations = loadMigrations()

func loadMigrations() []migration {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		panic(err)
	}
	var out []migration
	for _, e := range entries {
		num, name, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || !strings.HasSuffix(name, ".sql") {
			panic("storage: badly named migration " + e.Name())
		}
		body, err := migrationFiles.ReadFile(path.Join("migrations", e.Name()))
		if err != nil {
			panic(err)
		}
		out = append(out, migration{version: v, name: strings.TrimSuffix(name, ".sql"), sql: string(body)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	for i := 1; i < len(out); i++ {
		if out[i].version == out[i-1].version {
			panic(fmt.Sprintf("storage: two migrations numbered %d", out[i].version))
		}
	}
	return out
}

// LatestSchemaVersion is the schema version this build of Palpo writes.
func LatestSchemaVersion() int { return migrations[len(migrations)-1].version }

// ErrNewerSchema means the database was written by a newer Palpo.
var ErrNewerSchema = errors.New("database schema is newer than this Palpo")

// SchemaVersion reads the database's schema version (0 for a new database).
func (db *DB) SchemaVersion(ctx context.Context) (int, error) {
	return schemaVersion(ctx, db.writer)
}

type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

const (
	createSchemaTable = `CREATE TABLE IF NOT EXISTS schema_version (
	version INTEGER NOT NULL
)`
	selectSchemaVersion = `SELECT COALESCE(MAX(version), 0) FROM schema_version`
	deleteSchemaVersion = `DELETE FROM schema_version`
	insertSchemaVersion = `INSERT INTO schema_version (version) VALUES ($1)`
)

func schemaVersion(ctx context.Context, q queryer) (int, error) {
	var v int
	if err := q.QueryRowContext(ctx, selectSchemaVersion).Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}

// migrate brings the schema up to version target, all pending steps in one
// transaction: a failure anywhere leaves the database exactly as it was.
func (db *DB) migrate(ctx context.Context, target int) error {
	return db.WriteTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, createSchemaTable); err != nil {
			return fmt.Errorf("create schema_version: %w", err)
		}
		current, err := schemaVersion(ctx, tx)
		if err != nil {
			return err
		}
		if current > LatestSchemaVersion() {
			return fmt.Errorf("%w: %s has schema version %d but this Palpo knows versions up to %d; "+
				"it was written by a newer Palpo. Run that newer version again, or restore a backup made with this one",
				ErrNewerSchema, db.path, current, LatestSchemaVersion())
		}
		for _, m := range migrations {
			if m.version <= current || m.version > target {
				continue
			}
			if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				return fmt.Errorf("migration %04d_%s: %w", m.version, m.name, err)
			}
		}
		if target > current {
			if _, err := tx.ExecContext(ctx, deleteSchemaVersion); err != nil {
				return fmt.Errorf("update schema version: %w", err)
			}
			if _, err := tx.ExecContext(ctx, insertSchemaVersion, target); err != nil {
				return fmt.Errorf("update schema version: %w", err)
			}
		}
		return nil
	})
}

// BumpSchemaVersionForTest pretends a newer Palpo upgraded the database, so
// tests in other packages can check that such a database is refused.
func (db *DB) BumpSchemaVersionForTest(ctx context.Context) error {
	_, err := db.writer.ExecContext(ctx, `UPDATE schema_version SET version = version + 1`)
	return err
}
