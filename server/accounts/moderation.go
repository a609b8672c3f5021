package accounts

import (
	"context"
	"errors"
	"net/http"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/storage"
)

// Account moderation (spec: "Account moderation"): an admin may lock an
// account (every request but logout is refused until it is unlocked, and
// its sessions are kept so nothing is lost) or suspend it (the user can
// still read, leave and tidy up, but not speak: the client API decides
// which requests are writes).

// The spec's error codes, which mautrix does not define.
var (
	MUserLocked    = mautrix.RespError{ErrCode: "M_USER_LOCKED", StatusCode: http.StatusUnauthorized}
	MUserSuspended = mautrix.RespError{ErrCode: "M_USER_SUSPENDED", StatusCode: http.StatusForbidden}
)

var (
	// ErrLocked answers a locked account's requests. soft_logout tells the
	// client to keep its session and keys: the lock may be lifted.
	ErrLocked = MUserLocked.WithMessage("This account has been locked").WithExtraField("soft_logout", true)
	// errLockedLogin refuses a locked account a new session.
	errLockedLogin = MUserLocked.WithMessage("This account has been locked")
	// ErrSuspended answers a suspended account's writes, in the spec's words.
	ErrSuspended = MUserSuspended.WithMessage("You cannot perform this action while suspended.")
)

// checkNotLocked refuses a new session (login, refresh) to a locked account.
func (s *Service) checkNotLocked(ctx context.Context, userID id.UserID) error {
	u, err := s.db.GetUser(ctx, userID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil // the caller answers for a missing account
	}
	if err != nil {
		return err
	}
	if u.Locked {
		return errLockedLogin
	}
	return nil
}

// moderationTarget checks an admin's lock or suspend request, in the
// spec's order: the caller is an admin (done by AuthenticateAdmin before
// any lookup, so non-admins learn nothing about who exists), the user is
// local (M_INVALID_PARAM), exists and is active (M_NOT_FOUND), and is not
// another admin (M_FORBIDDEN). change is true for a change, which an admin
// may not make to their own account.
func (s *Service) moderationTarget(ctx context.Context, by *Caller, userID id.UserID, change bool) (*storage.User, error) {
	if err := s.CheckLocalUser(userID); err != nil {
		return nil, err
	}
	u, err := s.db.GetUser(ctx, userID)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && u.Deactivated) {
		return nil, mautrix.MNotFound.WithMessage("User not found")
	}
	if err != nil {
		return nil, err
	}
	if change && userID == by.UserID {
		return nil, mautrix.MForbidden.WithMessage("You cannot lock or suspend your own account")
	}
	if u.IsAdmin && userID != by.UserID {
		return nil, mautrix.MForbidden.WithMessage("Server admins cannot be locked or suspended")
	}
	return u, nil
}

// Locked tells an admin whether an account is locked.
func (s *Service) Locked(ctx context.Context, by *Caller, userID id.UserID) (bool, error) {
	u, err := s.moderationTarget(ctx, by, userID, false)
	if err != nil {
		return false, err
	}
	return u.Locked, nil
}

// SetLocked locks or unlocks an account for an admin.
func (s *Service) SetLocked(ctx context.Context, by *Caller, userID id.UserID, locked bool) error {
	if _, err := s.moderationTarget(ctx, by, userID, true); err != nil {
		return err
	}
	if err := s.db.SetUserLocked(ctx, userID, locked); err != nil {
		return err
	}
	s.log.Info("account lock changed", "user", userID, "locked", locked, "by", by.UserID)
	return nil
}

// Suspended tells an admin whether an account is suspended.
func (s *Service) Suspended(ctx context.Context, by *Caller, userID id.UserID) (bool, error) {
	u, err := s.moderationTarget(ctx, by, userID, false)
	if err != nil {
		return false, err
	}
	return u.Suspended, nil
}

// SetSuspended suspends or unsuspends an account for an admin.
func (s *Service) SetSuspended(ctx context.Context, by *Caller, userID id.UserID, suspended bool) error {
	if _, err := s.moderationTarget(ctx, by, userID, true); err != nil {
		return err
	}
	if err := s.db.SetUserSuspended(ctx, userID, suspended); err != nil {
		return err
	}
	s.log.Info("account suspension changed", "user", userID, "suspended", suspended, "by", by.UserID)
	return nil
}
