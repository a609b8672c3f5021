package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// RegistrationToken is an invite: a token that lets someone register.
type RegistrationToken struct {
	Token       string `json:"token"`
	UsesAllowed *int   `json:"uses_allowed"`
	Completed   int    `json:"completed"`
	ExpiryTime  *int64 `json:"expiry_time"` // ms since the epoch
	CreatedTS   int64  `json:"-"`
}

const regTokenColumns = `token, uses_allowed, completed, expiry_time, created_ts`

func scanRegToken(s scanner) (*RegistrationToken, error) {
	var t RegistrationToken
	var uses, expiry sql.NullInt64
	if err := s.Scan(&t.Token, &uses, &t.Completed, &expiry, &t.CreatedTS); err != nil {
		return nil, err
	}
	if uses.Valid {
		n := int(uses.Int64)
		t.UsesAllowed = &n
	}
	if expiry.Valid {
		t.ExpiryTime = &expiry.Int64
	}
	return &t, nil
}

func nullableInt(p *int) any {
	if p == nil {
		return nil
	}
	return *p
}

func nullableInt64(p *int64) any {
	if p == nil {
		return nil
	}
	return *p
}

// CreateRegistrationToken stores a new token; ErrUserExists is not used
// here: a duplicate token gives ErrTokenExists.
func (db *DB) CreateRegistrationToken(ctx context.Context, t *RegistrationToken) error {
	_, err := db.exec(ctx, `INSERT INTO registration_tokens (token, uses_allowed, completed, expiry_time, created_ts) VALUES ($1, $2, 0, $3, $4)`,
		t.Token, nullableInt(t.UsesAllowed), nullableInt64(t.ExpiryTime), t.CreatedTS)
	if err != nil {
		if isUniqueViolation(err) {
			return ErrTokenExists
		}
		return fmt.Errorf("create registration token: %w", err)
	}
	return nil
}

// ErrTokenExists means a registration token with that text already exists.
var ErrTokenExists = errors.New("registration token already exists")

// GetRegistrationToken returns one token, or ErrNotFound.
func (db *DB) GetRegistrationToken(ctx context.Context, token string) (*RegistrationToken, error) {
	t, err := scanRegToken(db.reader.QueryRowContext(ctx, `SELECT `+regTokenColumns+` FROM registration_tokens WHERE token = $1`, token))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get registration token: %w", err)
	}
	return t, nil
}

// ListRegistrationTokens returns every token, oldest first.
func (db *DB) ListRegistrationTokens(ctx context.Context) ([]RegistrationToken, error) {
	rows, err := db.reader.QueryContext(ctx, `SELECT `+regTokenColumns+` FROM registration_tokens ORDER BY created_ts, token`)
	if err != nil {
		return nil, fmt.Errorf("list registration tokens: %w", err)
	}
	defer rows.Close()
	var out []RegistrationToken
	for rows.Next() {
		t, err := scanRegToken(rows)
		if err != nil {
			return nil, fmt.Errorf("list registration tokens: %w", err)
		}
		out = append(out, *t)
	}
	return out, rows.Err()
}

// UpdateRegistrationToken replaces uses_allowed and expiry_time.
func (db *DB) UpdateRegistrationToken(ctx context.Context, token string, usesAllowed *int, expiry *int64) error {
	return updateOne(ctx, db.writes(), "update registration token",
		`UPDATE registration_tokens SET uses_allowed = $2, expiry_time = $3 WHERE token = $1`, token, nullableInt(usesAllowed), nullableInt64(expiry))
}

// DeleteRegistrationToken removes a token; ErrNotFound if unknown.
func (db *DB) DeleteRegistrationToken(ctx context.Context, token string) error {
	return updateOne(ctx, db.writes(), "delete registration token", `DELETE FROM registration_tokens WHERE token = $1`, token)
}

// Register creates a user and, unless session is nil, its first device and
// tokens, in one transaction. With a registration token, one use of it is
// counted in the same transaction, and the registration fails with
// ErrTokenUsedUp if the token expired or ran out meanwhile.
func (db *DB) Register(ctx context.Context, u *User, session *NewSession, regToken string, nowTS int64) error {
	return db.WriteTx(ctx, func(tx *sql.Tx) error {
		if regToken != "" {
			res, err := tx.ExecContext(ctx, `UPDATE registration_tokens SET completed = completed + 1
WHERE token = $1 AND (uses_allowed IS NULL OR completed < uses_allowed) AND (expiry_time IS NULL OR expiry_time > $2)`, regToken, nowTS)
			if err != nil {
				return fmt.Errorf("use registration token: %w", err)
			}
			if n, _ := res.RowsAffected(); n == 0 {
				return ErrTokenUsedUp
			}
		}
		if err := createUser(ctx, tx, u); err != nil {
			return err
		}
		if session != nil {
			return createSession(ctx, tx, session)
		}
		return nil
	})
}

// ErrTokenUsedUp means a registration token is unknown, expired or has no
// uses left.
var ErrTokenUsedUp = errors.New("registration token is not valid")
