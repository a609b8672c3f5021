package storage

import (
	"context"
	"database/sql"
	"strings"
	"sync"
)

// readPool is the read-only connection pool with its statements prepared
// once: SQLite parses and plans a statement every time it is prepared, and
// the reads behind a sync run hundreds of the same few statements (parsing
// was a third of the CPU a sync benchmark spent in SQLite). database/sql
// keeps a cached statement prepared on each connection that ran it.
type readPool struct {
	*sql.DB
	mu    sync.Mutex
	stmts map[string]*sql.Stmt
}

const (
	// maxCachedStmts bounds the cache; queries beyond it run unprepared.
	maxCachedStmts = 512
	// maxCachedParams keeps queries built with long IN lists, whose text
	// changes with the list's length, out of the cache.
	maxCachedParams = 16
)

// preparedAlways are statements with more parameters than maxCachedParams
// that are still always the same text (multi-row inserts of a few fixed
// sizes), so they are worth caching.
var preparedAlways = map[string]bool{}

func newReadPool(db *sql.DB) *readPool {
	return &readPool{DB: db, stmts: map[string]*sql.Stmt{}}
}

// stmt returns the query's cached statement, preparing it the first time,
// or nil for a query not worth caching (or one that failed to prepare:
// running it plainly then reports the error).
func (p *readPool) stmt(ctx context.Context, query string) *sql.Stmt {
	p.mu.Lock()
	defer p.mu.Unlock()
	if st, ok := p.stmts[query]; ok {
		return st
	}
	if len(p.stmts) >= maxCachedStmts || strings.Count(query, "$") > maxCachedParams {
		return nil
	}
	st, err := p.DB.PrepareContext(ctx, query)
	if err != nil {
		return nil
	}
	p.stmts[query] = st
	return st
}

// QueryContext runs a query through its cached statement.
func (p *readPool) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := p.stmt(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return p.DB.QueryContext(ctx, query, args...)
}

// QueryRowContext runs a one-row query through its cached statement.
func (p *readPool) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := p.stmt(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return p.DB.QueryRowContext(ctx, query, args...)
}

// Close closes the statements and the pool.
func (p *readPool) Close() error {
	p.mu.Lock()
	for _, st := range p.stmts {
		st.Close()
	}
	clear(p.stmts)
	p.mu.Unlock()
	return p.DB.Close()
}

// writeStmts are the writer connection's statements prepared once, for the
// statements persisting an event runs each time: preparing them was half
// the cost of storing a message (SQLite compiles the events table's search
// triggers into every INSERT it prepares).
//
// A statement cannot be prepared on the writer while a transaction holds
// its one connection, so one not prepared yet runs plainly and is noted;
// prepareWanted prepares the noted ones once the transaction is over.
type writeStmts struct {
	db    *sql.DB
	mu    sync.Mutex
	stmts map[string]*sql.Stmt
	want  map[string]bool
}

// stmt returns the query's prepared statement, or nil (noting the query).
func (w *writeStmts) stmt(query string) *sql.Stmt {
	w.mu.Lock()
	defer w.mu.Unlock()
	if st, ok := w.stmts[query]; ok {
		return st
	}
	if len(w.stmts)+len(w.want) < maxCachedStmts && (strings.Count(query, "$") <= maxCachedParams || preparedAlways[query]) {
		if w.want == nil {
			w.want = map[string]bool{}
		}
		w.want[query] = true
	}
	return nil
}

// prepareWanted prepares the statements noted since it last ran. The
// caller holds no transaction on the writer.
func (w *writeStmts) prepareWanted(ctx context.Context) {
	w.mu.Lock()
	want := w.want
	w.want = nil
	w.mu.Unlock()
	for query := range want {
		st, err := w.db.PrepareContext(ctx, query)
		if err != nil {
			continue // it keeps running plainly, which reports its error
		}
		w.mu.Lock()
		if w.stmts == nil {
			w.stmts = map[string]*sql.Stmt{}
		}
		if _, dup := w.stmts[query]; dup {
			st.Close()
		} else {
			w.stmts[query] = st
		}
		w.mu.Unlock()
	}
}

func (w *writeStmts) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, st := range w.stmts {
		st.Close()
	}
	clear(w.stmts)
}

// cachedTx is a write transaction that runs its statements through the
// writer's prepared ones (database/sql reuses a statement prepared on the
// transaction's connection, the writer's only one).
type cachedTx struct {
	tx    *sql.Tx
	stmts *writeStmts
}

func (t cachedTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := t.stmts.stmt(query); st != nil {
		return t.tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	return t.tx.ExecContext(ctx, query, args...)
}

func (t cachedTx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := t.stmts.stmt(query); st != nil {
		return t.tx.StmtContext(ctx, st).QueryContext(ctx, args...)
	}
	return t.tx.QueryContext(ctx, query, args...)
}

func (t cachedTx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := t.stmts.stmt(query); st != nil {
		return t.tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
	}
	return t.tx.QueryRowContext(ctx, query, args...)
}
