package accounts

import (
	"context"
	"encoding/json"
	"errors"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/storage"
)

// ChangePassword sets a new password. With logoutDevices every other
// device (and its tokens) is removed; keep is the caller's own device.
func (s *Service) ChangePassword(ctx context.Context, userID id.UserID, newPassword string, logoutDevices bool, keep id.DeviceID) error {
	if err := s.CheckPasswordStrength(newPassword); err != nil {
		return err
	}
	hash, err := HashPassword(newPassword)
	if err != nil {
		return err
	}
	if err := s.db.SetPasswordHash(ctx, userID, hash); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return mautrix.MNotFound.WithMessage("User not found")
		}
		return err
	}
	// Browsers signed in to the account pages (package oauth) with the old
	// password are signed out whatever logoutDevices says: they can approve
	// new sessions, which is what a changed password must stop.
	if err := s.db.DeleteBrowserSessions(ctx, userID); err != nil {
		return err
	}
	if logoutDevices {
		if err := s.db.DeleteOtherDevices(ctx, userID, keep); err != nil {
			return err
		}
		s.devicesRemoved(ctx, userID)
	}
	return nil
}

// Deactivate closes an account for good: it leaves every room, loses its
// password, devices and tokens, and with erase its profile too. The user ID
// is never given to anyone else.
func (s *Service) Deactivate(ctx context.Context, userID id.UserID, erase bool) error {
	u, err := s.GetUser(ctx, userID)
	if err != nil {
		return err
	}
	if u.Deactivated {
		return nil
	}
	if s.Rooms != nil {
		if err := s.Rooms.LeaveAllRooms(ctx, userID); err != nil {
			return err
		}
	}
	if err := s.db.SetDeactivated(ctx, userID, true, erase); err != nil {
		return err
	}
	s.devicesRemoved(ctx, userID)
	s.log.Info("account deactivated", "user", userID, "erase", erase)
	return nil
}

// Reactivate reopens a deactivated account (admin only); it needs a new
// password to be set to log in again.
func (s *Service) Reactivate(ctx context.Context, userID id.UserID) error {
	err := s.db.SetDeactivated(ctx, userID, false, false)
	if errors.Is(err, storage.ErrNotFound) {
		return mautrix.MNotFound.WithMessage("User not found")
	}
	return err
}

// SetAdmin grants or removes admin rights.
func (s *Service) SetAdmin(ctx context.Context, userID id.UserID, admin bool) error {
	err := s.db.SetAdmin(ctx, userID, admin)
	if errors.Is(err, storage.ErrNotFound) {
		return mautrix.MNotFound.WithMessage("User not found")
	}
	return err
}

// Profile returns a user's profile fields; M_NOT_FOUND for unknown users.
func (s *Service) Profile(ctx context.Context, userID id.UserID) (map[string]json.RawMessage, error) {
	if _, err := s.GetUser(ctx, userID); err != nil {
		return nil, err
	}
	return s.db.GetProfile(ctx, userID)
}

// SetProfileField sets one profile field (a string, for displayname and
// avatar_url) and tells the rooms service, which updates the user's
// membership events.
func (s *Service) SetProfileField(ctx context.Context, userID id.UserID, field string, value any) error {
	raw, err := json.Marshal(value)
	if err != nil {
		return err
	}
	if value == nil || value == "" {
		err = s.db.DeleteProfileField(ctx, userID, field)
	} else {
		err = s.db.SetProfileField(ctx, userID, field, raw)
	}
	if err != nil {
		return err
	}
	if s.Profiles != nil {
		return s.Profiles.ProfileChanged(ctx, userID)
	}
	return nil
}

// Devices lists a user's devices.
func (s *Service) Devices(ctx context.Context, userID id.UserID) ([]storage.Device, error) {
	return s.db.ListDevices(ctx, userID)
}

// Device returns one of a user's devices, or M_NOT_FOUND (also for another
// user's device: it is not the caller's to see).
func (s *Service) Device(ctx context.Context, userID id.UserID, deviceID id.DeviceID) (*storage.Device, error) {
	d, err := s.db.GetDevice(ctx, userID, deviceID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, mautrix.MNotFound.WithMessage("Device not found")
	}
	return d, err
}

// RenameDevice sets a device's display name.
func (s *Service) RenameDevice(ctx context.Context, userID id.UserID, deviceID id.DeviceID, name string) error {
	err := s.db.SetDeviceDisplayName(ctx, userID, deviceID, name)
	if errors.Is(err, storage.ErrNotFound) {
		return mautrix.MNotFound.WithMessage("Device not found")
	}
	if err == nil {
		s.deviceRenamed(ctx, userID)
	}
	return err
}

// DeleteDevices removes devices and so revokes their tokens.
func (s *Service) DeleteDevices(ctx context.Context, userID id.UserID, deviceIDs []id.DeviceID) error {
	if err := s.db.DeleteDevices(ctx, userID, deviceIDs); err != nil {
		return err
	}
	s.devicesRemoved(ctx, userID)
	return nil
}
