package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strings"

	"maunium.net/go/mautrix/id"
)

// The full-text index (event_search, migration 0011_search) follows the
// events a little behind (search_index.go, migration 0026_deferred_search);
// this file only reads it.

// SearchRoom is a room a search may look in, and the last stream position
// it may return there (a user who left sees nothing after leaving;
// math.MaxInt64 for no bound).
type SearchRoom struct {
	RoomID id.RoomID
	MaxPos int64
}

// SearchQuery is one full-text search.
type SearchQuery struct {
	// Match is an FTS5 query expression.
	Match string
	Rooms []SearchRoom
	// Types limits the event types (nil: every indexed type).
	Types      []string
	Senders    []id.UserID
	NotSenders []id.UserID
	// ByRank orders by relevance (best first); otherwise newest first.
	ByRank bool
	// Before, newest-first only: only events before this stream position
	// (0: no bound).
	Before int64
	// Offset, by rank only: matching rows to skip.
	Offset int
	// Floor, when set, leaves out events before this stream position: a
	// search by rank over very many matches ranks the newest of them.
	Floor int64
	Limit int
}

// SearchHit is one matching event and its relevance (higher is better).
type SearchHit struct {
	StreamPos int64
	EventID   id.EventID
	RoomID    id.RoomID
	Rank      float64
}

// ErrBadSearchQuery means the FTS5 engine refused a query expression.
var ErrBadSearchQuery = errors.New("bad search query")

// where builds the query shared by SearchEvents and SearchWindow, with a
// %s for the columns. The index drives it (CROSS JOIN keeps SQLite from
// starting at events); each match is looked up by primary key and kept if
// its room is allowed (an IN list, which SQLite searches as an index) and,
// in a room the user has left, no newer than their leave.
func (q *SearchQuery) where(withBefore bool) (string, []any) {
	var b strings.Builder
	args := []any{q.Match}
	b.WriteString(`SELECT %s FROM event_search
CROSS JOIN events e ON e.stream_pos = event_search.rowid
WHERE event_search MATCH $1 AND e.redacted_by IS NULL AND e.rejected = 0`)
	in := func(col string, not bool, vals []string) {
		if len(vals) == 0 {
			return
		}
		marks := make([]string, len(vals))
		for i, v := range vals {
			args = append(args, v)
			marks[i] = fmt.Sprintf("$%d", len(args))
		}
		op := " IN "
		if not {
			op = " NOT IN "
		}
		b.WriteString(" AND " + col + op + "(" + strings.Join(marks, ", ") + ")")
	}
	rooms := make([]string, len(q.Rooms))
	var capped []SearchRoom
	for i, r := range q.Rooms {
		rooms[i] = string(r.RoomID)
		if r.MaxPos < math.MaxInt64 {
			capped = append(capped, r)
		}
	}
	in("e.room_id", false, rooms)
	if len(capped) > 0 {
		b.WriteString(" AND e.stream_pos <= CASE e.room_id")
		for _, r := range capped {
			args = append(args, string(r.RoomID), r.MaxPos)
			fmt.Fprintf(&b, " WHEN $%d THEN $%d", len(args)-1, len(args))
		}
		b.WriteString(" ELSE e.stream_pos END")
	}
	in("e.type", false, q.Types)
	in("e.sender", false, userStrings(q.Senders))
	in("e.sender", true, userStrings(q.NotSenders))
	if withBefore && q.Before > 0 {
		args = append(args, q.Before)
		fmt.Fprintf(&b, " AND event_search.rowid < $%d", len(args))
	}
	if q.Floor > 0 {
		args = append(args, q.Floor)
		fmt.Fprintf(&b, " AND event_search.rowid >= $%d", len(args))
	}
	return b.String(), args
}

func userStrings(us []id.UserID) []string {
	out := make([]string, len(us))
	for i, u := range us {
		out[i] = string(u)
	}
	return out
}

// SearchEvents returns up to q.Limit matching events: by rank, best first
// (ties newest first), or newest first.
func (db *DB) SearchEvents(ctx context.Context, q *SearchQuery) ([]SearchHit, error) {
	if len(q.Rooms) == 0 || q.Limit <= 0 {
		return nil, nil
	}
	where, args := q.where(!q.ByRank)
	// bm25 is smaller for better matches; the API's rank is larger.
	query := fmt.Sprintf(where, `e.stream_pos, e.event_id, e.room_id, -bm25(event_search)`)
	if q.ByRank {
		args = append(args, q.Limit, q.Offset)
		query += fmt.Sprintf(" ORDER BY 4 DESC, e.stream_pos DESC LIMIT $%d OFFSET $%d", len(args)-1, len(args))
	} else {
		args = append(args, q.Limit)
		query += fmt.Sprintf(" ORDER BY event_search.rowid DESC LIMIT $%d", len(args))
	}
	rows, err := db.reader.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, db.searchErr(ctx, q.Match, err)
	}
	defer rows.Close()
	var out []SearchHit
	for rows.Next() {
		var h SearchHit
		if err := rows.Scan(&h.StreamPos, &h.EventID, &h.RoomID, &h.Rank); err != nil {
			return nil, db.searchErr(ctx, q.Match, err)
		}
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, db.searchErr(ctx, q.Match, err)
	}
	return out, nil
}

// SearchWindow scans the newest matches of q (its paging aside) in
// stream order, up to n of them, and returns how many it found and the
// stream position of the oldest. It is the exact count when below n, and
// otherwise bounds what a count or a ranking has to read: the cost of a
// search stays flat however common its words are.
func (db *DB) SearchWindow(ctx context.Context, q *SearchQuery, n int) (int, int64, error) {
	if len(q.Rooms) == 0 {
		return 0, 0, nil
	}
	where, args := q.where(false)
	args = append(args, n)
	query := `SELECT COUNT(*), COALESCE(MIN(p), 0) FROM (` + fmt.Sprintf(where, `e.stream_pos AS p`) +
		fmt.Sprintf(` ORDER BY event_search.rowid DESC LIMIT $%d)`, len(args))
	var count int
	var oldest int64
	if err := db.reader.QueryRowContext(ctx, query, args...).Scan(&count, &oldest); err != nil {
		return 0, 0, db.searchErr(ctx, q.Match, err)
	}
	return count, oldest, nil
}

// searchErr tells a query FTS5 refused (which the caller's query builder
// should never produce) from a database failure: after a failure, the
// match expression alone is tried, and if that fails too it was the
// expression. (FTS5's messages vary too much to recognise.)
func (db *DB) searchErr(ctx context.Context, match string, err error) error {
	var one int
	probe := db.reader.QueryRowContext(ctx, `SELECT 1 FROM event_search WHERE event_search MATCH $1 LIMIT 1`, match).Scan(&one)
	if probe != nil && !errors.Is(probe, sql.ErrNoRows) {
		return fmt.Errorf("%w: %v", ErrBadSearchQuery, err)
	}
	return fmt.Errorf("search events: %w", err)
}
