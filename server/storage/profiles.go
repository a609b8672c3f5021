package storage

import (
	"context"
	"encoding/json"
	"fmt"

	"maunium.net/go/mautrix/id"
)

// Profile field names the spec defines; others are namespaced custom keys.
const (
	ProfileDisplayName = "displayname"
	ProfileAvatarURL   = "avatar_url"
)

// GetProfile returns every profile field of a user as raw JSON values.
func (db *DB) GetProfile(ctx context.Context, userID id.UserID) (map[string]json.RawMessage, error) {
	rows, err := db.reader.QueryContext(ctx, `SELECT field, value FROM profile_fields WHERE user_id = $1`, userID)
	if err != nil {
		return nil, fmt.Errorf("get profile %s: %w", userID, err)
	}
	defer rows.Close()
	out := map[string]json.RawMessage{}
	for rows.Next() {
		var field, value string
		if err := rows.Scan(&field, &value); err != nil {
			return nil, fmt.Errorf("get profile %s: %w", userID, err)
		}
		out[field] = json.RawMessage(value)
	}
	return out, rows.Err()
}

// SetProfileField sets one profile field to a JSON value.
func (db *DB) SetProfileField(ctx context.Context, userID id.UserID, field string, value json.RawMessage) error {
	_, err := db.exec(ctx, `INSERT INTO profile_fields (user_id, field, value) VALUES ($1, $2, $3)
ON CONFLICT (user_id, field) DO UPDATE SET value = excluded.value`, userID, field, string(value))
	if err != nil {
		return fmt.Errorf("set profile %s %s: %w", userID, field, err)
	}
	return nil
}

// DeleteProfileField removes one profile field.
func (db *DB) DeleteProfileField(ctx context.Context, userID id.UserID, field string) error {
	if _, err := db.exec(ctx, `DELETE FROM profile_fields WHERE user_id = $1 AND field = $2`, userID, field); err != nil {
		return fmt.Errorf("delete profile %s %s: %w", userID, field, err)
	}
	return nil
}
