// Package storage owns Palpo's SQL: opening the SQLite database, the schema
// migrations, and one file of queries per domain. Nothing outside this package
// writes SQL.
package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"

	_ "modernc.org/sqlite" // registers the pure-Go "sqlite" driver
)

// DB is the database: one writer connection, because SQLite allows a single
// writer at a time and queueing in Go is cheaper than SQLITE_BUSY retries,
// and a pool of read-only connections, which WAL lets run beside the writer.
type DB struct {
	path       string
	writer     *sql.DB
	writeStmts writeStmts
	reader     *readPool
	// tokens caches access-token lookups (tokencache.go); every write
	// except event persistence invalidates it.
	tokens tokenCache
	// ignoreLists caches users' m.ignored_user_list, under the token
	// cache's generation.
	ignoreLists ignoreListCache
	// positions caches the stream positions (positions.go) and keyCounts
	// devices' key counts (keys.go); every write but event persistence
	// invalidates both once it has committed (wrote).
	positions positionsCache
	keyCounts keyCountsCache
	// unread caches users' unread counts per room (unread.go): wrote drops
	// them all, a receipt its user's, and a commit of events adds its
	// notifications to them.
	unread unreadCache
}

// Open opens (creating if needed) the SQLite database at path and applies
// pending migrations. It refuses a database written by a newer Palpo.
func Open(ctx context.Context, path string, readers int) (*DB, error) {
	return open(ctx, path, readers, LatestSchemaVersion())
}

func open(ctx context.Context, path string, readers, migrateTo int) (*DB, error) {
	if readers < 1 {
		readers = 1
	}
	if err := ownerOnly(path); err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	writer, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	writer.SetMaxOpenConns(1)
	writer.SetMaxIdleConns(1)
	writer.SetConnMaxLifetime(0)
	writer.SetConnMaxIdleTime(0)
	// Ping forces the first connection so a bad path fails here, and so the
	// WAL journal mode is set before any reader connects.
	if err := writer.PingContext(ctx); err != nil {
		writer.Close()
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	db := &DB{path: path, writer: writer, writeStmts: writeStmts{db: writer}}
	if err := db.migrate(ctx, migrateTo); err != nil {
		writer.Close()
		return nil, err
	}
	reader, err := sql.Open("sqlite", dsn(path, true))
	if err != nil {
		writer.Close()
		return nil, fmt.Errorf("open database %s for reading: %w", path, err)
	}
	reader.SetMaxOpenConns(readers)
	reader.SetMaxIdleConns(readers)
	db.reader = newReadPool(reader)
	return db, nil
}

// ownerOnly makes the database file readable by its owner only (0600),
// whatever the folder's mode and the umask: it holds password hashes,
// access tokens and private messages. The file is made here when missing,
// and SQLite gives the -wal and -shm files it creates the database file's
// mode (exactly: it chmods them past the umask), so they follow. Files
// left by an older Palpo with a wider mode are narrowed.
func ownerOnly(path string) error {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		info, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		// Take away group and other access; keep the owner's (a read-only
		// copy being verified stays read-only).
		if perm := info.Mode().Perm(); perm&0o077 != 0 {
			if err := os.Chmod(p, perm&0o700); err != nil {
				return err
			}
		}
	}
	return nil
}

// dsn builds the modernc.org/sqlite connection string. Pragmas are set per
// connection so every pooled connection gets them.
func dsn(path string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "foreign_keys(ON)")
	q.Add("_pragma", "journal_mode(WAL)")
	// NORMAL in WAL mode is durable against process crashes; FULL also
	// survives power loss at the cost of an fsync per commit. We choose FULL:
	// "loses nothing" is the promise, and commits are not our bottleneck.
	q.Add("_pragma", "synchronous(FULL)")
	// Savepoints (one per batch of a group commit) and sorts keep their
	// scratch pages in memory instead of writing a temporary file.
	q.Add("_pragma", "temp_store(MEMORY)")
	if readOnly {
		q.Add("_pragma", "query_only(ON)")
	} else {
		// BEGIN IMMEDIATE takes the write lock up front, so a transaction
		// never fails half-way through on a lock upgrade.
		q.Set("_txlock", "immediate")
	}
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
}

// Path is the database file's path.
func (db *DB) Path() string { return db.path }

// Close checkpoints the WAL into the main file and closes every connection.
func (db *DB) Close() error {
	var errs []error
	if db.reader != nil {
		errs = append(errs, db.reader.Close())
	}
	if db.writer != nil {
		db.writeStmts.close()
		// A clean checkpoint leaves a self-contained database file behind,
		// which is what a person copying the data directory expects.
		if _, err := db.writer.Exec("PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
			errs = append(errs, fmt.Errorf("checkpoint: %w", err))
		}
		errs = append(errs, db.writer.Close())
	}
	return errors.Join(errs...)
}

// WriteTx runs fn in one write transaction, committing when fn returns nil.
func (db *DB) WriteTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	// Whatever it wrote may have ended a session or changed an account.
	defer db.tokens.invalidate()
	return db.writeTx(ctx, fn)
}

// writeTx is WriteTx for writes that change nothing a token lookup reads.
func (db *DB) writeTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	defer db.wrote()
	return db.commitTx(ctx, fn)
}

// wrote invalidates what is cached between writes. Called after a write
// has committed: positions or counts read meanwhile carry an older
// generation, so they are never served.
func (db *DB) wrote() {
	db.streamsMoved()
	db.unread.invalidate()
}

// streamsMoved is wrote for a write that changes no unread count but those
// it drops itself (a receipt: its user's, in its room).
func (db *DB) streamsMoved() {
	db.positions.invalidate()
	db.keyCounts.invalidate()
}

// commitTx runs fn in one write transaction; its callers say what the
// write invalidates.
func (db *DB) commitTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := db.writer.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// exec runs one write statement outside a transaction; like WriteTx it
// invalidates the token cache.
func (db *DB) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return db.writes().ExecContext(ctx, query, args...)
}

// writes is the writer connection for statements outside a transaction:
// each one invalidates the token cache (tokencache.go) and the caches
// wrote clears. Writes whose effect shows only when their rows are read
// (RETURNING through QueryContext) may invalidate before they commit, so
// writes to stream tables or keys use ExecContext or a transaction. Code
// in this package writes through it, WriteTx or exec, never db.writer
// itself (TestWritesInvalidateTokenCache checks).
func (db *DB) writes() invalidatingWriter { return invalidatingWriter{db} }

type invalidatingWriter struct{ db *DB }

func (w invalidatingWriter) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	defer w.db.tokens.invalidate()
	defer w.db.wrote()
	return w.db.writer.ExecContext(ctx, query, args...)
}

func (w invalidatingWriter) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	defer w.db.tokens.invalidate()
	defer w.db.wrote()
	return w.db.writer.QueryContext(ctx, query, args...)
}

func (w invalidatingWriter) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	defer w.db.tokens.invalidate()
	defer w.db.wrote()
	return w.db.writer.QueryRowContext(ctx, query, args...)
}

// Ping checks that both pools answer.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.writer.PingContext(ctx); err != nil {
		return err
	}
	return db.reader.PingContext(ctx)
}
