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
