package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strings"
)

// Backups (app/backup) take the database with VACUUM INTO: SQLite writes a
// compact copy of the database as one read transaction saw it, so the copy
// is consistent however busy the writer is. In WAL mode a reader neither
// blocks the writer nor is blocked by it, and that holds across processes
// (the WAL index in <db>-shm is shared memory), so a `palpo backup create`
// run beside a running server gets the same consistent snapshot as the
// server itself would: every transaction committed before the snapshot's
// read transaction began, none of those after.

// BackupTo writes a consistent copy of the live database to path, which
// must not exist yet. It runs on a connection of its own, so the server
// keeps reading and writing meanwhile.
func (db *DB) BackupTo(ctx context.Context, path string) error {
	return SnapshotFile(ctx, db.path, path)
}

// SnapshotFile writes a consistent copy of the database file at src to dst
// (which must not exist yet) without migrating it or writing to it, whether
// a server is using it or not. A backup must copy the database as it is:
// a newer palpo binary must not upgrade a running older server's database
// under it, and a backup taken before an upgrade must stay restorable by
// the old version.
func SnapshotFile(ctx context.Context, src, dst string) error {
	if _, err := os.Stat(src); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("database %s does not exist: there is nothing to back up yet (start Palpo once first)", src)
		}
		return fmt.Errorf("database %s: %w", src, err)
	}
	// A connection of its own that runs only VACUUM INTO, which reads the
	// source in one read transaction and never writes to it. It cannot be
	// a query_only connection (SQLite refuses VACUUM INTO there, although
	// only the target is written), nor read-only (mode=ro cannot create
	// the WAL index a stopped server's database may lack), nor the
	// server's writer (the snapshot would hold up every write). No
	// journal mode pragma: it would write to a database not in WAL mode.
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	conn, err := sql.Open("sqlite", "file:"+(&url.URL{Path: src}).EscapedPath()+"?"+q.Encode())
	if err != nil {
		return fmt.Errorf("open database %s: %w", src, err)
	}
	defer conn.Close()
	conn.SetMaxOpenConns(1)
	if _, err := conn.ExecContext(ctx, `VACUUM INTO $1`, dst); err != nil {
		return fmt.Errorf("copy database %s to %s: %w", src, dst, err)
	}
	return nil
}

// SnapshotInfo describes a database copy (a snapshot taken for a backup,
// or the one inside a backup being verified).
type SnapshotInfo struct {
	SchemaVersion int
	ServerName    string // from server_meta; empty if never recorded
	// StreamPosition is the newest event's stream position: every event
	// in the snapshot has a position at most this, and every event the
	// server had acknowledged before the snapshot is in it.
	StreamPosition int64
	Users          int
	Rooms          int
	Events         int64
	// Media lists the content files the snapshot refers to (uploads and
	// thumbnails), each once.
	Media []SnapshotMedia
}

// SnapshotMedia is one content file a snapshot refers to.
type SnapshotMedia struct {
	SHA256 string
	Size   int64
}

// openSnapshot opens a database copy that nothing else uses, read-only.
// immutable=1 tells SQLite that no one changes the file, so it takes no
// locks and needs no WAL index: the copy may be on a read-only medium.
func openSnapshot(path string) (*sql.DB, error) {
	conn, err := sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath()+"?mode=ro&immutable=1")
	if err != nil {
		return nil, fmt.Errorf("open database copy %s: %w", path, err)
	}
	conn.SetMaxOpenConns(1)
	return conn, nil
}

// InspectSnapshot reads what a backup records about a database copy made
// by BackupTo or SnapshotFile. The copy may have any schema version,
// older or newer than this Palpo's; tables it lacks count as empty.
func InspectSnapshot(ctx context.Context, path string) (*SnapshotInfo, error) {
	conn, err := openSnapshot(path)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	tables, err := snapshotTables(ctx, conn)
	if err != nil {
		return nil, fmt.Errorf("database copy %s: %w", path, err)
	}
	if !tables["schema_version"] {
		return nil, fmt.Errorf("database copy %s is not a Palpo database (it has no schema_version table)", path)
	}
	info := &SnapshotInfo{}
	if info.SchemaVersion, err = schemaVersion(ctx, conn); err != nil {
		return nil, fmt.Errorf("database copy %s: %w", path, err)
	}
	if tables["server_meta"] {
		err := conn.QueryRowContext(ctx, selectMeta, MetaServerName).Scan(&info.ServerName)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("database copy %s: server name: %w", path, err)
		}
	}
	counts := []struct {
		table, query string
		dst          any
	}{
		{"users", `SELECT COUNT(*) FROM users`, &info.Users},
		{"rooms", `SELECT COUNT(*) FROM rooms`, &info.Rooms},
		{"events", `SELECT COUNT(*) FROM events`, &info.Events},
		{"events", `SELECT COALESCE(MAX(stream_pos), 0) FROM events`, &info.StreamPosition},
	}
	for _, c := range counts {
		if !tables[c.table] {
			continue
		}
		if err := conn.QueryRowContext(ctx, c.query).Scan(c.dst); err != nil {
			return nil, fmt.Errorf("database copy %s: %s: %w", path, c.query, err)
		}
	}
	if tables["media_content"] {
		rows, err := conn.QueryContext(ctx, `SELECT sha256, size FROM media_content ORDER BY sha256`)
		if err != nil {
			return nil, fmt.Errorf("database copy %s: media files: %w", path, err)
		}
		defer rows.Close()
		for rows.Next() {
			var m SnapshotMedia
			if err := rows.Scan(&m.SHA256, &m.Size); err != nil {
				return nil, fmt.Errorf("database copy %s: media files: %w", path, err)
			}
			info.Media = append(info.Media, m)
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("database copy %s: media files: %w", path, err)
		}
	}
	return info, nil
}

func snapshotTables(ctx context.Context, conn *sql.DB) (map[string]bool, error) {
	rows, err := conn.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'table'`)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, fmt.Errorf("list tables: %w", err)
		}
		out[name] = true
	}
	return out, rows.Err()
}

// ErrCorruptDatabase means a database file failed SQLite's integrity check.
var ErrCorruptDatabase = errors.New("database is damaged")

// CheckSnapshotIntegrity runs SQLite's full integrity check (every page,
// index and constraint) on a database copy and the foreign key check.
func CheckSnapshotIntegrity(ctx context.Context, path string) error {
	conn, err := openSnapshot(path)
	if err != nil {
		return err
	}
	defer conn.Close()
	// A file that is not SQLite at all fails here, on the first read.
	rows, err := conn.QueryContext(ctx, `PRAGMA integrity_check(20)`)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrCorruptDatabase, path, err)
	}
	var problems []string
	for rows.Next() {
		var msg string
		if err := rows.Scan(&msg); err != nil {
			rows.Close()
			return fmt.Errorf("%w: %s: %v", ErrCorruptDatabase, path, err)
		}
		if msg != "ok" {
			problems = append(problems, msg)
		}
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrCorruptDatabase, path, err)
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s: %s", ErrCorruptDatabase, path, strings.Join(problems, "; "))
	}
	var fkProblems int
	if err := conn.QueryRowContext(ctx, `SELECT COUNT(*) FROM pragma_foreign_key_check`).Scan(&fkProblems); err != nil {
		return fmt.Errorf("%w: %s: foreign key check: %v", ErrCorruptDatabase, path, err)
	}
	if fkProblems > 0 {
		return fmt.Errorf("%w: %s: %d rows refer to rows that do not exist", ErrCorruptDatabase, path, fkProblems)
	}
	return nil
}

// CheckRestorableSchema refuses a database copy whose schema is newer than
// this Palpo's, with the message a start-up on it would give; an older
// one is upgraded by the usual migrations at the next start.
func CheckRestorableSchema(version int) error {
	if version > LatestSchemaVersion() {
		return fmt.Errorf("%w: the backup's database has schema version %d but this Palpo knows versions up to %d; "+
			"it was made by a newer Palpo. Restore it with that version (or a newer one)",
			ErrNewerSchema, version, LatestSchemaVersion())
	}
	return nil
}

// OpenAtSchemaVersionForTest creates a database migrated only up to
// version, as an older Palpo would have left it, for tests that restore
// old backups.
func OpenAtSchemaVersionForTest(ctx context.Context, path string, version int) (*DB, error) {
	return open(ctx, path, 1, version)
}
