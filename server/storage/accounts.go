package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"maunium.net/go/mautrix/id"
)

// ErrNotFound means the row asked for does not exist.
var ErrNotFound = errors.New("not found")

// ErrUserExists means a user with that ID already exists.
var ErrUserExists = errors.New("user already exists")

// User is one account.
type User struct {
	UserID       id.UserID
	PasswordHash string // empty: no password login
	IsAdmin      bool
	Deactivated  bool
	Erased       bool
	UserType     string
	CreatedTS    int64
	Locked       bool
	Suspended    bool
}

const userColumns = `user_id, COALESCE(password_hash, ''), is_admin, deactivated, erased, COALESCE(user_type, ''), created_ts, locked, suspended`

type scanner interface{ Scan(dest ...any) error }

func scanUser(s scanner) (*User, error) {
	var u User
	err := s.Scan(&u.UserID, &u.PasswordHash, &u.IsAdmin, &u.Deactivated, &u.Erased, &u.UserType, &u.CreatedTS, &u.Locked, &u.Suspended)
	return &u, err
}

// execer is what both *sql.DB and *sql.Tx offer, so one query function
// serves inside and outside a transaction.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

const insertUser = `INSERT INTO users (user_id, password_hash, is_admin, user_type, created_ts)
VALUES ($1, NULLIF($2, ''), $3, NULLIF($4, ''), $5)`

func createUser(ctx context.Context, ex execer, u *User) error {
	_, err := ex.ExecContext(ctx, insertUser, u.UserID, u.PasswordHash, u.IsAdmin, u.UserType, u.CreatedTS)
	if err != nil {
		if isUniqueViolation(err) {
			return ErrUserExists
		}
		return fmt.Errorf("create user %s: %w", u.UserID, err)
	}
	return nil
}

// isUniqueViolation recognises SQLite's (and PostgreSQL's) duplicate key error.
func isUniqueViolation(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "UNIQUE constraint failed") || strings.Contains(msg, "duplicate key")
}

// CreateUser adds a user; ErrUserExists if the ID is taken.
func (db *DB) CreateUser(ctx context.Context, u *User) error {
	return createUser(ctx, db.writes(), u)
}

const selectUser = `SELECT ` + userColumns + ` FROM users WHERE user_id = $1`

// GetUser returns one user, or ErrNotFound.
func (db *DB) GetUser(ctx context.Context, userID id.UserID) (*User, error) {
	u, err := scanUser(db.reader.QueryRowContext(ctx, selectUser, userID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get user %s: %w", userID, err)
	}
	return u, nil
}

// UserExists tells whether a user ID is taken (deactivated users included:
// their IDs are never reused).
func (db *DB) UserExists(ctx context.Context, userID id.UserID) (bool, error) {
	_, err := db.GetUser(ctx, userID)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// UserFilter selects users for ListUsers.
type UserFilter struct {
	// Search matches a substring of the user ID or display name.
	Search             string
	IncludeDeactivated bool
	// AdminsOnly, when set, restricts the list to admins (true) or
	// non-admins (false).
	AdminsOnly *bool
	Offset     int
	Limit      int // 0: no limit
}

// ListUsers returns the users matching f, ordered by user ID, and how many
// match in all (for paging).
func (db *DB) ListUsers(ctx context.Context, f UserFilter) ([]User, int, error) {
	where := []string{"1 = 1"}
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if !f.IncludeDeactivated {
		where = append(where, "u.deactivated = 0")
	}
	if f.AdminsOnly != nil {
		where = append(where, "u.is_admin = "+arg(*f.AdminsOnly))
	}
	if f.Search != "" {
		p := "%" + escapeLike(strings.ToLower(f.Search)) + "%"
		where = append(where, "(LOWER(u.user_id) LIKE "+arg(p)+" ESCAPE '\\' OR LOWER(COALESCE(json_extract(p.value, '$'), '')) LIKE "+arg(p)+" ESCAPE '\\')")
	}
	from := ` FROM users u LEFT JOIN profile_fields p ON p.user_id = u.user_id AND p.field = 'displayname' WHERE ` + strings.Join(where, " AND ")
	var total int
	if err := db.reader.QueryRowContext(ctx, `SELECT COUNT(*)`+from, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count users: %w", err)
	}
	q := `SELECT u.user_id, COALESCE(u.password_hash, ''), u.is_admin, u.deactivated, u.erased, COALESCE(u.user_type, ''), u.created_ts` + from + ` ORDER BY u.user_id`
	if f.Limit > 0 {
		q += " LIMIT " + arg(f.Limit) + " OFFSET " + arg(f.Offset)
	}
	rows, err := db.reader.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, 0, fmt.Errorf("list users: %w", err)
	}
	defer rows.Close()
	var out []User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, 0, fmt.Errorf("list users: %w", err)
		}
		out = append(out, *u)
	}
	return out, total, rows.Err()
}

func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// CountUsers counts users, deactivated ones included or not.
func (db *DB) CountUsers(ctx context.Context, includeDeactivated bool) (int, error) {
	q := `SELECT COUNT(*) FROM users`
	if !includeDeactivated {
		q += ` WHERE deactivated = 0`
	}
	var n int
	if err := db.reader.QueryRowContext(ctx, q).Scan(&n); err != nil {
		return 0, fmt.Errorf("count users: %w", err)
	}
	return n, nil
}

func updateOne(ctx context.Context, ex execer, what string, query string, args ...any) error {
	res, err := ex.ExecContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// SetPasswordHash replaces a user's password hash ("" removes password login).
func (db *DB) SetPasswordHash(ctx context.Context, userID id.UserID, hash string) error {
	return updateOne(ctx, db.writes(), "set password", `UPDATE users SET password_hash = NULLIF($2, '') WHERE user_id = $1`, userID, hash)
}

// SetAdmin makes a user an admin or not.
func (db *DB) SetAdmin(ctx context.Context, userID id.UserID, admin bool) error {
	return updateOne(ctx, db.writes(), "set admin", `UPDATE users SET is_admin = $2 WHERE user_id = $1`, userID, admin)
}

// SetDeactivated marks a user deactivated (or reactivated). Deactivating
// also removes the password, every device and so every token, and, with
// erase, the profile, all in one transaction.
func (db *DB) SetDeactivated(ctx context.Context, userID id.UserID, deactivated, erase bool) error {
	return db.WriteTx(ctx, func(tx *sql.Tx) error {
		if err := updateOne(ctx, tx, "deactivate", `UPDATE users SET deactivated = $2, erased = $3 WHERE user_id = $1`, userID, deactivated, erase && deactivated); err != nil {
			return err
		}
		if !deactivated {
			return nil
		}
		for _, q := range []string{
			`UPDATE users SET password_hash = NULL WHERE user_id = $1`,
			`DELETE FROM devices WHERE user_id = $1`,
			`DELETE FROM login_tokens WHERE user_id = $1`,
		} {
			if _, err := tx.ExecContext(ctx, q, userID); err != nil {
				return fmt.Errorf("deactivate %s: %w", userID, err)
			}
		}
		if erase {
			if _, err := tx.ExecContext(ctx, `DELETE FROM profile_fields WHERE user_id = $1`, userID); err != nil {
				return fmt.Errorf("erase %s: %w", userID, err)
			}
		}
		return nil
	})
}
