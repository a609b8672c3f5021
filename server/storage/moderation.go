package storage

import (
	"context"

	"maunium.net/go/mautrix/id"
)

// Account moderation flags (spec: "Account moderation"). Both leave the
// account's tokens alone: the rules that read them are in accounts.

const (
	updateUserLocked    = `UPDATE users SET locked = $2 WHERE user_id = $1`
	updateUserSuspended = `UPDATE users SET suspended = $2 WHERE user_id = $1`
)

// SetUserLocked locks or unlocks an account; ErrNotFound if there is none.
func (db *DB) SetUserLocked(ctx context.Context, userID id.UserID, locked bool) error {
	return updateOne(ctx, db.writes(), "set locked", updateUserLocked, userID, locked)
}

// SetUserSuspended suspends or unsuspends an account; ErrNotFound if there
// is none.
func (db *DB) SetUserSuspended(ctx context.Context, userID id.UserID, suspended bool) error {
	return updateOne(ctx, db.writes(), "set suspended", updateUserSuspended, userID, suspended)
}
