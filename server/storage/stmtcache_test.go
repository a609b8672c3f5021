package storage

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestReadPoolCachesStatements(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "palpo.db"), 2)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	p := db.reader
	const q = `SELECT COUNT(*) FROM rooms WHERE room_id != $1`
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var n int
			if err := p.QueryRowContext(ctx, q, fmt.Sprint("!x", i)).Scan(&n); err != nil || n != 0 {
				t.Errorf("cached query: %d %v", n, err)
			}
		}()
	}
	wg.Wait()
	if len(p.stmts) != 1 {
		t.Fatalf("%d statements cached for one query", len(p.stmts))
	}
	// A query with a long generated IN list is not cached.
	marks := make([]string, maxCachedParams+1)
	args := make([]any, len(marks))
	for i := range marks {
		marks[i], args[i] = fmt.Sprintf("$%d", i+1), fmt.Sprint(i)
	}
	rows, err := p.QueryContext(ctx, `SELECT room_id FROM rooms WHERE room_id IN (`+strings.Join(marks, ",")+`)`, args...)
	if err != nil {
		t.Fatal(err)
	}
	rows.Close()
	if len(p.stmts) != 1 {
		t.Fatalf("an IN-list query was cached (%d statements)", len(p.stmts))
	}
	// A query that does not prepare reports its error and is not cached.
	if _, err := p.QueryContext(ctx, `SELECT nosuchcolumn FROM rooms`); err == nil {
		t.Fatal("a bad query ran")
	}
	if len(p.stmts) != 1 {
		t.Fatalf("a failed query was cached (%d statements)", len(p.stmts))
	}
}
