package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"maunium.net/go/mautrix/id"
)

// Relation types the server aggregates or checks (the spec's names).
const (
	RelAnnotation = "m.annotation"
	RelReplace    = "m.replace"
	RelThread     = "m.thread"
	RelReference  = "m.reference"
)

// NewRelation is the m.relates_to of an event being persisted: it is
// indexed in the same transaction, unless the parent is already known to be
// in another room (such a relation is ignored, as the spec says).
type NewRelation struct {
	RelatesTo id.EventID
	RelType   string
	// Key is an annotation's key (nil when absent or not a string).
	Key *string
}

// Relation is one indexed child event.
type Relation struct {
	EventID        id.EventID
	RoomID         id.RoomID
	RelatesTo      id.EventID
	RelType        string
	Type           string
	Sender         id.UserID
	StreamPos      int64
	OriginServerTS int64
}

// indexRelation records ev's relation; ev is stored at stream position pos.
func indexRelation(ctx context.Context, tx execer, ev *NewEvent, pos int64) error {
	rel := ev.Relation
	var key any
	if rel.Key != nil {
		key = *rel.Key
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO event_relations (event_id, room_id, relates_to, rel_type, type, sender, aggregation_key, stream_pos, origin_server_ts)
SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9
WHERE NOT EXISTS (SELECT 1 FROM events WHERE event_id = $3 AND room_id <> $2)`,
		ev.EventID, ev.RoomID, rel.RelatesTo, rel.RelType, ev.Type, ev.Sender, key, pos, ev.OriginServerTS)
	if err != nil {
		return fmt.Errorf("index relation: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 || rel.RelType != RelThread {
		return err
	}
	// Federation may deliver an old reply after newer ones: the latest
	// position only moves forward.
	if _, err := tx.ExecContext(ctx, `INSERT INTO threads (room_id, root_id, latest_pos) VALUES ($1, $2, $3)
ON CONFLICT (room_id, root_id) DO UPDATE SET latest_pos = excluded.latest_pos WHERE excluded.latest_pos > threads.latest_pos`,
		ev.RoomID, rel.RelatesTo, pos); err != nil {
		return fmt.Errorf("update thread: %w", err)
	}
	return nil
}

// unindexRelation forgets the relation of a redacted event; a thread whose
// latest reply it was falls back to its previous reply, or disappears.
func unindexRelation(ctx context.Context, tx execer, roomID id.RoomID, evID id.EventID) error {
	var parent id.EventID
	var relType string
	err := tx.QueryRowContext(ctx, `DELETE FROM event_relations WHERE event_id = $1 AND room_id = $2 RETURNING relates_to, rel_type`,
		evID, roomID).Scan(&parent, &relType)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("unindex relation of %s: %w", evID, err)
	}
	if relType != RelThread {
		return nil
	}
	var latest sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT MAX(stream_pos) FROM event_relations WHERE relates_to = $1 AND rel_type = 'm.thread' AND room_id = $2`,
		parent, roomID).Scan(&latest); err != nil {
		return fmt.Errorf("recompute thread %s: %w", parent, err)
	}
	if !latest.Valid {
		_, err = tx.ExecContext(ctx, `DELETE FROM threads WHERE room_id = $1 AND root_id = $2`, roomID, parent)
	} else {
		_, err = tx.ExecContext(ctx, `UPDATE threads SET latest_pos = $3 WHERE room_id = $1 AND root_id = $2`, roomID, parent, latest.Int64)
	}
	if err != nil {
		return fmt.Errorf("recompute thread %s: %w", parent, err)
	}
	return nil
}

// RelationQuery selects children of one parent for /relations.
type RelationQuery struct {
	RoomID    id.RoomID
	Parent    id.EventID
	RelType   string // "" for any
	EventType string // "" for any
	// MaxDepth is how many levels of relations to follow: 1 for direct
	// children only. The filters apply at every level, so a child reached
	// through a non-matching intermediate event is left out (the spec).
	MaxDepth int
	// After and UpTo bound the stream positions: (After, UpTo].
	After, UpTo int64
	Backwards   bool // newest first
	Limit       int
}

// Relations returns children of a parent in stream order (newest first
// when backwards).
func (db *DB) Relations(ctx context.Context, q RelationQuery) ([]Relation, error) {
	args := []any{q.Parent, q.RoomID}
	filter := func(alias string) string {
		var b strings.Builder
		if q.RelType != "" {
			args = append(args, q.RelType)
			fmt.Fprintf(&b, " AND %srel_type = $%d", alias, len(args))
		}
		if q.EventType != "" {
			args = append(args, q.EventType)
			fmt.Fprintf(&b, " AND %stype = $%d", alias, len(args))
		}
		return b.String()
	}
	base := filter("")
	// Each event has one parent, so the tree has no cycles; the depth
	// bound keeps the walk short all the same.
	var with, src string
	if q.MaxDepth > 1 {
		rec := filter("r.")
		args = append(args, q.MaxDepth)
		with = `WITH RECURSIVE tree (event_id, room_id, relates_to, rel_type, type, sender, stream_pos, origin_server_ts, depth) AS (
	SELECT event_id, room_id, relates_to, rel_type, type, sender, stream_pos, origin_server_ts, 1
	FROM event_relations WHERE relates_to = $1 AND room_id = $2` + base + `
	UNION ALL
	SELECT r.event_id, r.room_id, r.relates_to, r.rel_type, r.type, r.sender, r.stream_pos, r.origin_server_ts, tree.depth + 1
	FROM event_relations r JOIN tree ON r.relates_to = tree.event_id
	WHERE tree.depth < $` + fmt.Sprint(len(args)) + ` AND r.room_id = $2` + rec + `
) `
		src = `tree WHERE 1 = 1`
	} else {
		src = `event_relations WHERE relates_to = $1 AND room_id = $2` + base
	}
	args = append(args, q.After, q.UpTo)
	where := fmt.Sprintf(" AND stream_pos > $%d AND stream_pos <= $%d", len(args)-1, len(args))
	order := "ASC"
	if q.Backwards {
		order = "DESC"
	}
	args = append(args, q.Limit)
	query := with + `SELECT event_id, room_id, relates_to, rel_type, type, sender, stream_pos, origin_server_ts FROM ` + src + where +
		` ORDER BY stream_pos ` + order + fmt.Sprintf(" LIMIT $%d", len(args))
	rows, err := db.reader.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("relations of %s: %w", q.Parent, err)
	}
	return scanRelations(rows)
}

func scanRelations(rows *sql.Rows) ([]Relation, error) {
	defer rows.Close()
	var out []Relation
	for rows.Next() {
		var r Relation
		if err := rows.Scan(&r.EventID, &r.RoomID, &r.RelatesTo, &r.RelType, &r.Type, &r.Sender, &r.StreamPos, &r.OriginServerTS); err != nil {
			return nil, fmt.Errorf("scan relation: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// RelationSummary counts the children of one type of one parent.
type RelationSummary struct {
	Parent  id.EventID
	RoomID  id.RoomID // the children's room; only those in the parent's count
	RelType string
	Count   int
	// ByUser is how many of them the asking user sent.
	ByUser int
	// Latest is the newest child.
	Latest id.EventID
}

// relationBatch bounds the parents of one query.
const relationBatch = 500

// RelationSummaries counts the thread, edit and reference children of
// parents, leaving out children sent by the users in exclude (those the
// asking user ignores). Parents without such children are absent.
func (db *DB) RelationSummaries(ctx context.Context, parents []id.EventID, user id.UserID, exclude []id.UserID) ([]RelationSummary, error) {
	var out []RelationSummary
	for start := 0; start < len(parents); start += relationBatch {
		chunk := parents[start:min(start+relationBatch, len(parents))]
		args := []any{user}
		in := relationMarks(&args, chunk)
		notIn := ""
		if len(exclude) > 0 {
			notIn = " AND sender NOT IN (" + relationMarks(&args, exclude) + ")"
		}
		rows, err := db.reader.QueryContext(ctx, `SELECT s.relates_to, s.room_id, s.rel_type, s.n, s.mine, e.event_id FROM (
	SELECT relates_to, room_id, rel_type, COUNT(*) AS n, SUM(CASE WHEN sender = $1 THEN 1 ELSE 0 END) AS mine, MAX(stream_pos) AS latest
	FROM event_relations
	WHERE relates_to IN (`+in+`) AND rel_type IN ('m.thread', 'm.replace', 'm.reference')`+notIn+`
	GROUP BY relates_to, room_id, rel_type
) s JOIN events e ON e.stream_pos = s.latest`, args...)
		if err != nil {
			return nil, fmt.Errorf("relation summaries: %w", err)
		}
		for rows.Next() {
			var s RelationSummary
			if err := rows.Scan(&s.Parent, &s.RoomID, &s.RelType, &s.Count, &s.ByUser, &s.Latest); err != nil {
				rows.Close()
				return nil, fmt.Errorf("relation summaries: %w", err)
			}
			out = append(out, s)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// RelationsOfParents lists the children of the given types of several
// parents, leaving out senders in exclude, in stream order.
func (db *DB) RelationsOfParents(ctx context.Context, parents []id.EventID, relTypes []string, exclude []id.UserID) ([]Relation, error) {
	var out []Relation
	for start := 0; start < len(parents); start += relationBatch {
		chunk := parents[start:min(start+relationBatch, len(parents))]
		var args []any
		in := relationMarks(&args, chunk)
		types := relationMarks(&args, relTypes)
		notIn := ""
		if len(exclude) > 0 {
			notIn = " AND sender NOT IN (" + relationMarks(&args, exclude) + ")"
		}
		rows, err := db.reader.QueryContext(ctx, `SELECT event_id, room_id, relates_to, rel_type, type, sender, stream_pos, origin_server_ts
FROM event_relations WHERE relates_to IN (`+in+`) AND rel_type IN (`+types+`)`+notIn+` ORDER BY stream_pos`, args...)
		if err != nil {
			return nil, fmt.Errorf("relations of events: %w", err)
		}
		rels, err := scanRelations(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, rels...)
	}
	return out, nil
}

// HasAnnotation tells whether sender already annotated parent with key in
// an event of type evType (redacted annotations are no longer indexed).
func (db *DB) HasAnnotation(ctx context.Context, parent id.EventID, sender id.UserID, evType, key string) (bool, error) {
	var one int
	err := db.reader.QueryRowContext(ctx, `SELECT 1 FROM event_relations
WHERE relates_to = $1 AND rel_type = 'm.annotation' AND aggregation_key = $2 AND sender = $3 AND type = $4 LIMIT 1`,
		parent, key, sender, evType).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("find annotation: %w", err)
	}
	return true, nil
}

// IsRelation tells whether an event is indexed as the child of a relation.
func (db *DB) IsRelation(ctx context.Context, evID id.EventID) (bool, error) {
	return db.relationExists(ctx, `SELECT 1 FROM event_relations WHERE event_id = $1`, evID)
}

// IsRelationTarget tells whether any indexed relation points at evID.
func (db *DB) IsRelationTarget(ctx context.Context, evID id.EventID) (bool, error) {
	return db.relationExists(ctx, `SELECT 1 FROM event_relations WHERE relates_to = $1 LIMIT 1`, evID)
}

func (db *DB) relationExists(ctx context.Context, query string, evID id.EventID) (bool, error) {
	var one int
	err := db.reader.QueryRowContext(ctx, query, evID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("look up relation of %s: %w", evID, err)
	}
	return true, nil
}

// Thread is a thread root with the position of its latest reply.
type Thread struct {
	RootID    id.EventID
	LatestPos int64
}

// Threads lists a room's threads newest reply first, those whose latest
// reply is at or before upTo. With participant set, only threads they
// started or replied in.
func (db *DB) Threads(ctx context.Context, roomID id.RoomID, participant id.UserID, upTo int64, limit int) ([]Thread, error) {
	args := []any{roomID, upTo}
	where := " AND t.latest_pos <= $2"
	if participant != "" {
		args = append(args, participant)
		n := len(args)
		where += fmt.Sprintf(` AND (EXISTS (SELECT 1 FROM events e WHERE e.event_id = t.root_id AND e.sender = $%d)
	OR EXISTS (SELECT 1 FROM event_relations r WHERE r.relates_to = t.root_id AND r.rel_type = 'm.thread' AND r.room_id = t.room_id AND r.sender = $%d))`, n, n)
	}
	args = append(args, limit)
	rows, err := db.reader.QueryContext(ctx, `SELECT t.root_id, t.latest_pos FROM threads t WHERE t.room_id = $1`+where+
		fmt.Sprintf(" ORDER BY t.latest_pos DESC LIMIT $%d", len(args)), args...)
	if err != nil {
		return nil, fmt.Errorf("threads of %s: %w", roomID, err)
	}
	defer rows.Close()
	var out []Thread
	for rows.Next() {
		var t Thread
		if err := rows.Scan(&t.RootID, &t.LatestPos); err != nil {
			return nil, fmt.Errorf("threads of %s: %w", roomID, err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// relationMarks appends vals to args and returns their placeholders.
func relationMarks[T ~string](args *[]any, vals []T) string {
	marks := make([]string, len(vals))
	for i, v := range vals {
		*args = append(*args, string(v))
		marks[i] = fmt.Sprintf("$%d", len(*args))
	}
	return strings.Join(marks, ",")
}
