package accounts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/storage"
)

// The admin operations: what the admin API, the command line and the
// desktop app do to other people's accounts. They share these rules so an
// account made one way behaves like one made another.

// ErrNotAdmin is the answer to a non-admin using an admin operation, worded
// as Synapse words it.
var ErrNotAdmin = mautrix.MForbidden.WithMessage("You are not a server admin")

// AuthenticateAdmin resolves an access token to its caller and requires the
// caller to be a server admin.
// The local-control secret (control.go) is accepted here and nowhere else.
func (s *Service) AuthenticateAdmin(ctx context.Context, token, ip, userAgent string) (*Caller, error) {
	if c, ok := s.controlCaller(token); ok {
		return c, nil
	}
	c, err := s.AuthenticateToken(ctx, token, ip, userAgent)
	if err != nil {
		return nil, err
	}
	if !c.IsAdmin {
		return nil, ErrNotAdmin
	}
	return c, nil
}

// User types an admin may give an account; "" is an ordinary user. They are
// Synapse's: they change nothing in Palpo yet but are kept and shown.
var userTypes = map[string]bool{"": true, "bot": true, "support": true}

// CheckLocalUser accepts a full user ID of this server. Admin operations
// take full IDs (as Synapse's admin API does); a localpart alone is the
// command line's business (ResolveUser).
func (s *Service) CheckLocalUser(userID id.UserID) error {
	_, server, err := userID.Parse()
	if err != nil || len(userID) > maxUserIDLength {
		return mautrix.MInvalidParam.WithMessage("Invalid user ID %q", string(userID))
	}
	if server != s.serverName {
		return mautrix.MInvalidParam.WithMessage("Can only manage local users, not %s", string(userID))
	}
	return nil
}

// UserDetails is an account as the admin tools show it.
type UserDetails struct {
	UserID      id.UserID
	DisplayName string // "": none
	AvatarURL   string // "": none
	Admin       bool
	Deactivated bool
	Erased      bool
	UserType    string // "": an ordinary user
	CreatedTS   int64  // milliseconds since the epoch
	LastSeenTS  int64  // 0: never seen
	HasPassword bool
	Locked      bool
	Suspended   bool
}

func detailsOf(u *storage.AdminUser) UserDetails {
	return UserDetails{
		UserID: u.UserID, DisplayName: u.DisplayName, AvatarURL: u.AvatarURL,
		Admin: u.IsAdmin, Deactivated: u.Deactivated, Erased: u.Erased, UserType: u.UserType,
		CreatedTS: u.CreatedTS, LastSeenTS: u.LastSeenTS, HasPassword: u.PasswordHash != "",
		Locked: u.Locked, Suspended: u.Suspended,
	}
}

// GetUserDetails returns an account's details, or M_NOT_FOUND.
func (s *Service) GetUserDetails(ctx context.Context, userID id.UserID) (*UserDetails, error) {
	u, err := s.db.GetAdminUser(ctx, userID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, mautrix.MNotFound.WithMessage("User not found")
	}
	if err != nil {
		return nil, err
	}
	d := detailsOf(u)
	return &d, nil
}

// UserQuery selects a page of users for ListUsers.
type UserQuery struct {
	// Name matches part of a localpart or display name; UserID part of a
	// full user ID (ignored when Name is set).
	Name   string
	UserID string
	// Deactivated and Admins filter when not nil.
	Deactivated *bool
	Admins      *bool
	// OrderBy is a Synapse order ("name", "creation_ts", …; "" for name).
	OrderBy   string
	Backwards bool
	From      int
	Limit     int
}

// DefaultUserPageSize is how many users a page holds unless asked otherwise.
const DefaultUserPageSize = 100

// ListUsers returns a page of users and how many match in all.
func (s *Service) ListUsers(ctx context.Context, q UserQuery) ([]UserDetails, int, error) {
	if q.From < 0 || q.Limit < 0 {
		return nil, 0, mautrix.MInvalidParam.WithMessage("from and limit must not be negative")
	}
	if _, ok := storage.AdminUserOrders[q.OrderBy]; q.OrderBy != "" && !ok {
		return nil, 0, mautrix.MInvalidParam.WithMessage("Unknown order_by %q", q.OrderBy)
	}
	rows, total, err := s.db.ListAdminUsers(ctx, storage.AdminUserFilter{
		Name: q.Name, UserID: q.UserID, Deactivated: q.Deactivated, Admins: q.Admins,
		OrderBy: q.OrderBy, Backwards: q.Backwards, Offset: q.From, Limit: q.Limit,
	})
	if err != nil {
		return nil, 0, err
	}
	out := make([]UserDetails, len(rows))
	for i := range rows {
		out[i] = detailsOf(&rows[i])
	}
	return out, total, nil
}

// UserChanges is what an admin sets on an account; nil fields stay as they
// are.
type UserChanges struct {
	// Password, when set, replaces the password; LogoutDevices then also
	// signs out every device (except the admin's own when an admin changes
	// their own password).
	Password      *string
	LogoutDevices bool
	// DisplayName and AvatarURL: "" removes them.
	DisplayName *string
	AvatarURL   *string
	Admin       *bool
	// Deactivated true deactivates the account (leaving its rooms, losing
	// its password and devices); false reactivates it, which needs Password
	// too, since a deactivated account has none left.
	Deactivated *bool
	// UserType, when set, replaces the type ("" for an ordinary user).
	UserType *string
	// Locked, when set, locks or unlocks the account (moderation.go).
	Locked *bool
}

// ErrReactivateNeedsPassword: Palpo accounts log in with a password only,
// so an account reactivated without one could not be used.
var ErrReactivateNeedsPassword = MMissingParam.WithMessage("A password is required to reactivate an account")

// validate checks everything about ch that can be checked before changing
// anything, so a bad request changes nothing.
func (s *Service) validateChanges(ch *UserChanges) error {
	if ch.Password != nil {
		if err := s.CheckPasswordStrength(*ch.Password); err != nil {
			return err
		}
	}
	// The profile fields obey the same limits as a user's own changes.
	for key, v := range map[string]*string{storage.ProfileDisplayName: ch.DisplayName, storage.ProfileAvatarURL: ch.AvatarURL} {
		if v == nil {
			continue
		}
		raw, err := json.Marshal(*v)
		if err != nil {
			return err
		}
		if _, err := profileValue(key, raw); err != nil {
			return err
		}
	}
	if ch.UserType != nil && !userTypes[*ch.UserType] {
		return mautrix.MInvalidParam.WithMessage("Invalid user type %q: use \"bot\", \"support\" or null", *ch.UserType)
	}
	return nil
}

// CreateOrModifyUser creates the account userID with ch, or changes an
// existing one. by is the admin asking (nil for the owner at the command
// line); an admin may not remove their own admin rights, so a server always
// keeps one admin who can undo mistakes. It reports whether the account was
// created.
func (s *Service) CreateOrModifyUser(ctx context.Context, by *Caller, userID id.UserID, ch UserChanges) (bool, *UserDetails, error) {
	if err := s.CheckLocalUser(userID); err != nil {
		return false, nil, err
	}
	if err := s.validateChanges(&ch); err != nil {
		return false, nil, err
	}
	u, err := s.db.GetUser(ctx, userID)
	if errors.Is(err, storage.ErrNotFound) {
		d, err := s.createByAdmin(ctx, userID, ch)
		return err == nil, d, err
	}
	if err != nil {
		return false, nil, err
	}
	if ch.Admin != nil && !*ch.Admin && u.IsAdmin && by != nil && by.UserID == userID {
		return false, nil, mautrix.MInvalidParam.WithMessage("You may not demote yourself.")
	}
	reactivate := ch.Deactivated != nil && !*ch.Deactivated && u.Deactivated
	deactivate := ch.Deactivated != nil && *ch.Deactivated && !u.Deactivated
	if reactivate && ch.Password == nil {
		return false, nil, ErrReactivateNeedsPassword
	}
	if ch.DisplayName != nil {
		if err := s.SetProfileField(ctx, userID, storage.ProfileDisplayName, *ch.DisplayName); err != nil {
			return false, nil, err
		}
	}
	if ch.AvatarURL != nil {
		if err := s.SetProfileField(ctx, userID, storage.ProfileAvatarURL, *ch.AvatarURL); err != nil {
			return false, nil, err
		}
	}
	if ch.Admin != nil && *ch.Admin != u.IsAdmin {
		if err := s.SetAdmin(ctx, userID, *ch.Admin); err != nil {
			return false, nil, err
		}
	}
	if ch.UserType != nil {
		if err := s.db.SetUserType(ctx, userID, *ch.UserType); err != nil {
			return false, nil, err
		}
	}
	if reactivate {
		if err := s.Reactivate(ctx, userID); err != nil {
			return false, nil, err
		}
	}
	// Deactivation wipes the password, so setting one first would be
	// pointless.
	if ch.Password != nil && !deactivate {
		if err := s.SetPasswordByAdmin(ctx, by, userID, *ch.Password, ch.LogoutDevices); err != nil {
			return false, nil, err
		}
	}
	if deactivate {
		if err := s.Deactivate(ctx, userID, false); err != nil {
			return false, nil, err
		}
	}
	if err := s.applyLock(ctx, userID, ch.Locked); err != nil {
		return false, nil, err
	}
	d, err := s.GetUserDetails(ctx, userID)
	return false, d, err
}

func (s *Service) createByAdmin(ctx context.Context, userID id.UserID, ch UserChanges) (*UserDetails, error) {
	localpart := userID.Localpart()
	a := NewAccount{Localpart: localpart, ByAdmin: true}
	if ch.Password != nil {
		a.Password = *ch.Password
	}
	if ch.Admin != nil {
		a.Admin = *ch.Admin
	}
	if ch.DisplayName != nil {
		a.DisplayName = *ch.DisplayName
	}
	if _, err := s.CreateAccount(ctx, a); err != nil {
		return nil, err
	}
	if ch.UserType != nil && *ch.UserType != "" {
		if err := s.db.SetUserType(ctx, userID, *ch.UserType); err != nil {
			return nil, fmt.Errorf("set type of new user %s: %w", userID, err)
		}
	}
	if ch.AvatarURL != nil && *ch.AvatarURL != "" {
		if err := s.SetProfileField(ctx, userID, storage.ProfileAvatarURL, *ch.AvatarURL); err != nil {
			return nil, err
		}
	}
	if err := s.applyLock(ctx, userID, ch.Locked); err != nil {
		return nil, err
	}
	return s.GetUserDetails(ctx, userID)
}

// RequireUser answers M_NOT_FOUND unless userID is an account of this
// server (deactivated ones included).
func (s *Service) RequireUser(ctx context.Context, userID id.UserID) error {
	if err := s.CheckLocalUser(userID); err != nil {
		return err
	}
	_, err := s.GetUser(ctx, userID)
	return err
}

// SetPasswordByAdmin sets a user's password. With logoutDevices every
// device is signed out, except the admin's own when admins change their own
// password (they keep the session they are using). by is nil for the owner
// at the command line.
func (s *Service) SetPasswordByAdmin(ctx context.Context, by *Caller, userID id.UserID, password string, logoutDevices bool) error {
	if err := s.RequireUser(ctx, userID); err != nil {
		return err
	}
	var keep id.DeviceID
	if by != nil && by.UserID == userID {
		keep = by.DeviceID
	}
	return s.ChangePassword(ctx, userID, password, logoutDevices, keep)
}

// applyLock sets the lock Synapse's user API asks for (nil: unchanged).
// Unlike the spec's /admin/lock, that API may lock any account, as in
// Synapse.
func (s *Service) applyLock(ctx context.Context, userID id.UserID, locked *bool) error {
	if locked == nil {
		return nil
	}
	return s.db.SetUserLocked(ctx, userID, *locked)
}
