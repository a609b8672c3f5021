package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"maunium.net/go/mautrix/id"
)

// Report kinds.
const (
	ReportEvent = "event"
	ReportRoom  = "room"
	ReportUser  = "user"
)

// Report is a user's report of an event, a room or a user.
type Report struct {
	ID         int64
	Kind       string
	Reporter   id.UserID
	RoomID     id.RoomID
	EventID    id.EventID
	TargetUser id.UserID
	Reason     *string
	Score      *int64
	Content    []byte
	ReceivedTS int64
}

// AddReport stores a report and returns its ID.
func (db *DB) AddReport(ctx context.Context, r *Report) (int64, error) {
	res, err := db.exec(ctx, `INSERT INTO reports (kind, reporter, room_id, event_id, target_user, reason, score, content, received_ts)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		r.Kind, r.Reporter, nullString(string(r.RoomID)), nullString(string(r.EventID)), nullString(string(r.TargetUser)),
		r.Reason, r.Score, string(r.Content), r.ReceivedTS)
	if err != nil {
		return 0, fmt.Errorf("add report: %w", err)
	}
	return res.LastInsertId()
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// ReportFilter selects reports of one kind for the admin API.
type ReportFilter struct {
	Kind     string
	Reporter id.UserID // "" for any
	RoomID   id.RoomID // "" for any
	Target   id.UserID // the reported event's sender or the reported user; "" for any
	Newest   bool      // newest first
	From     int       // offset
	Limit    int
}

const reportColumns = `report_id, kind, reporter, COALESCE(room_id, ''), COALESCE(event_id, ''), COALESCE(target_user, ''), reason, score, content, received_ts`

func scanReport(s scanner) (*Report, error) {
	var r Report
	var reason sql.NullString
	var score sql.NullInt64
	var content string
	if err := s.Scan(&r.ID, &r.Kind, &r.Reporter, &r.RoomID, &r.EventID, &r.TargetUser, &reason, &score, &content, &r.ReceivedTS); err != nil {
		return nil, err
	}
	if reason.Valid {
		r.Reason = &reason.String
	}
	if score.Valid {
		r.Score = &score.Int64
	}
	r.Content = []byte(content)
	return &r, nil
}

// ListReports returns a page of reports and how many match in all.
func (db *DB) ListReports(ctx context.Context, f ReportFilter) ([]*Report, int, error) {
	where := ` FROM reports WHERE kind = $1 AND ($2 = '' OR reporter = $2) AND ($3 = '' OR room_id = $3) AND ($4 = '' OR target_user = $4)`
	args := []any{f.Kind, string(f.Reporter), string(f.RoomID), string(f.Target)}
	var total int
	if err := db.reader.QueryRowContext(ctx, `SELECT COUNT(*)`+where, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count reports: %w", err)
	}
	order := "ASC"
	if f.Newest {
		order = "DESC"
	}
	rows, err := db.reader.QueryContext(ctx, `SELECT `+reportColumns+where+
		` ORDER BY received_ts `+order+`, report_id `+order+` LIMIT $5 OFFSET $6`, append(args, f.Limit, f.From)...)
	if err != nil {
		return nil, 0, fmt.Errorf("list reports: %w", err)
	}
	defer rows.Close()
	out := []*Report{}
	for rows.Next() {
		r, err := scanReport(rows)
		if err != nil {
			return nil, 0, fmt.Errorf("list reports: %w", err)
		}
		out = append(out, r)
	}
	return out, total, rows.Err()
}

// GetReport returns one report of a kind, or ErrNotFound.
func (db *DB) GetReport(ctx context.Context, kind string, reportID int64) (*Report, error) {
	r, err := scanReport(db.reader.QueryRowContext(ctx, `SELECT `+reportColumns+` FROM reports WHERE report_id = $1 AND kind = $2`, reportID, kind))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get report %d: %w", reportID, err)
	}
	return r, nil
}

// DeleteReport removes one report of a kind; ErrNotFound if there is none.
func (db *DB) DeleteReport(ctx context.Context, kind string, reportID int64) error {
	return updateOne(ctx, db.writes(), "delete report", `DELETE FROM reports WHERE report_id = $1 AND kind = $2`, reportID, kind)
}
