package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"maunium.net/go/mautrix/id"
)

// AdminUser is a user as the admin tools show it: the account with its
// display name, avatar and when any of its devices was last seen.
type AdminUser struct {
	User
	DisplayName string
	AvatarURL   string
	LastSeenTS  int64 // 0: never
}

// adminUserSelect joins what the admin tools show about a user in one row, so
// a page of users costs one query.
const adminUserSelect = `SELECT u.user_id, COALESCE(u.password_hash, ''), u.is_admin, u.deactivated, u.erased,
	COALESCE(u.user_type, ''), u.created_ts, u.locked, u.suspended,
	COALESCE(json_extract(dn.value, '$'), ''), COALESCE(json_extract(av.value, '$'), ''),
	COALESCE((SELECT MAX(d.last_seen_ts) FROM devices d WHERE d.user_id = u.user_id), 0)`

const adminUserFrom = ` FROM users u
LEFT JOIN profile_fields dn ON dn.user_id = u.user_id AND dn.field = 'displayname'
LEFT JOIN profile_fields av ON av.user_id = u.user_id AND av.field = 'avatar_url'`

func scanAdminUser(s scanner) (*AdminUser, error) {
	var u AdminUser
	err := s.Scan(&u.UserID, &u.PasswordHash, &u.IsAdmin, &u.Deactivated, &u.Erased, &u.UserType, &u.CreatedTS, &u.Locked, &u.Suspended,
		&u.DisplayName, &u.AvatarURL, &u.LastSeenTS)
	return &u, err
}

// GetAdminUser returns one user with its profile and last-seen time, or
// ErrNotFound.
func (db *DB) GetAdminUser(ctx context.Context, userID id.UserID) (*AdminUser, error) {
	u, err := scanAdminUser(db.reader.QueryRowContext(ctx, adminUserSelect+adminUserFrom+` WHERE u.user_id = $1`, userID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get user %s: %w", userID, err)
	}
	return u, nil
}

// AdminUserFilter selects and orders users for ListAdminUsers.
type AdminUserFilter struct {
	// Name matches a substring of the localpart or of the display name,
	// case-insensitively; when set, UserID is ignored (as Synapse does).
	Name string
	// UserID matches a substring of the full user ID.
	UserID string
	// Deactivated, Admins: nil means either; otherwise only users with
	// that flag set (true) or clear (false).
	Deactivated *bool
	Admins      *bool
	// OrderBy is one of the AdminUserOrders keys; "" orders by user ID.
	OrderBy   string
	Backwards bool
	Offset    int
	Limit     int
}

// AdminUserOrders maps the sort orders the admin API accepts to SQL. The
// orders Synapse offers for features Palpo lacks (guests, shadow bans)
// have one value for every user, so they sort by user ID alone.
var AdminUserOrders = map[string]string{
	"name":          "u.user_id",
	"displayname":   "COALESCE(json_extract(dn.value, '$'), '')",
	"avatar_url":    "COALESCE(json_extract(av.value, '$'), '')",
	"admin":         "u.is_admin",
	"deactivated":   "u.deactivated",
	"user_type":     "COALESCE(u.user_type, '')",
	"creation_ts":   "u.created_ts",
	"last_seen_ts":  "COALESCE((SELECT MAX(d.last_seen_ts) FROM devices d WHERE d.user_id = u.user_id), 0)",
	"is_guest":      "0",
	"shadow_banned": "0",
	"locked":        "u.locked",
}

// ListAdminUsers returns one page of the users matching f and how many
// match in all. Ties in the chosen order are broken by user ID, so paging
// with Offset is stable.
func (db *DB) ListAdminUsers(ctx context.Context, f AdminUserFilter) ([]AdminUser, int, error) {
	where := []string{"1 = 1"}
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	switch {
	case f.Name != "":
		name := strings.ToLower(f.Name)
		where = append(where, "(LOWER(u.user_id) LIKE "+arg("@%"+escapeLike(name)+"%:%")+" ESCAPE '\\'"+
			" OR LOWER(COALESCE(json_extract(dn.value, '$'), '')) LIKE "+arg("%"+escapeLike(name)+"%")+" ESCAPE '\\')")
	case f.UserID != "":
		where = append(where, "LOWER(u.user_id) LIKE "+arg("%"+escapeLike(strings.ToLower(f.UserID))+"%")+" ESCAPE '\\'")
	}
	if f.Deactivated != nil {
		where = append(where, "u.deactivated = "+arg(*f.Deactivated))
	}
	if f.Admins != nil {
		where = append(where, "u.is_admin = "+arg(*f.Admins))
	}
	from := adminUserFrom + ` WHERE ` + strings.Join(where, " AND ")
	var total int
	if err := db.reader.QueryRowContext(ctx, `SELECT COUNT(*)`+from, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count users: %w", err)
	}
	order, ok := AdminUserOrders[f.OrderBy]
	if !ok {
		if f.OrderBy != "" {
			return nil, 0, fmt.Errorf("list users: unknown order %q", f.OrderBy)
		}
		order = AdminUserOrders["name"]
	}
	dir := "ASC"
	if f.Backwards {
		dir = "DESC"
	}
	q := adminUserSelect + from + ` ORDER BY ` + order + ` ` + dir + `, u.user_id ASC LIMIT ` + arg(f.Limit) + ` OFFSET ` + arg(f.Offset)
	rows, err := db.reader.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, 0, fmt.Errorf("list users: %w", err)
	}
	defer rows.Close()
	var out []AdminUser
	for rows.Next() {
		u, err := scanAdminUser(rows)
		if err != nil {
			return nil, 0, fmt.Errorf("list users: %w", err)
		}
		out = append(out, *u)
	}
	return out, total, rows.Err()
}

// SetUserType sets a user's type ("" for an ordinary user).
func (db *DB) SetUserType(ctx context.Context, userID id.UserID, userType string) error {
	return updateOne(ctx, db.writes(), "set user type", `UPDATE users SET user_type = NULLIF($2, '') WHERE user_id = $1`, userID, userType)
}

// RegistrationTokenPatch changes some fields of a registration token; a
// field whose Set flag is false keeps its value.
type RegistrationTokenPatch struct {
	SetUsesAllowed bool
	UsesAllowed    *int // nil: unlimited
	SetExpiryTime  bool
	ExpiryTime     *int64 // nil: never expires
}

// PatchRegistrationToken applies p and returns the token as it is then, in
// one transaction; ErrNotFound if the token does not exist.
func (db *DB) PatchRegistrationToken(ctx context.Context, token string, p RegistrationTokenPatch) (*RegistrationToken, error) {
	var out *RegistrationToken
	err := db.WriteTx(ctx, func(tx *sql.Tx) error {
		if p.SetUsesAllowed {
			if _, err := tx.ExecContext(ctx, `UPDATE registration_tokens SET uses_allowed = $2 WHERE token = $1`, token, nullableInt(p.UsesAllowed)); err != nil {
				return fmt.Errorf("update registration token: %w", err)
			}
		}
		if p.SetExpiryTime {
			if _, err := tx.ExecContext(ctx, `UPDATE registration_tokens SET expiry_time = $2 WHERE token = $1`, token, nullableInt64(p.ExpiryTime)); err != nil {
				return fmt.Errorf("update registration token: %w", err)
			}
		}
		t, err := scanRegToken(tx.QueryRowContext(ctx, `SELECT `+regTokenColumns+` FROM registration_tokens WHERE token = $1`, token))
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("get registration token: %w", err)
		}
		out = t
		return nil
	})
	return out, err
}
