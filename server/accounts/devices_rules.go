package accounts

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"unicode/utf8"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
)

// maxDeviceNameLength is Synapse's limit on device display names, in
// characters: other users see them in device lists, so they stay short.
const maxDeviceNameLength = 100

// truncateDeviceName shortens an initial device name from a login: a
// long name is not worth failing a login for.
func truncateDeviceName(name string) string {
	if utf8.RuneCountInString(name) <= maxDeviceNameLength {
		return name
	}
	return string([]rune(name)[:maxDeviceNameLength])
}

// UpdateDevice answers PUT /devices/{deviceId}: a nil name leaves the
// device as it is, but the device must still exist (clients may only update
// their own existing devices; creating them is for application services).
func (s *Service) UpdateDevice(ctx context.Context, userID id.UserID, deviceID id.DeviceID, name *string) error {
	if name == nil {
		_, err := s.Device(ctx, userID, deviceID)
		return err
	}
	if utf8.RuneCountInString(*name) > maxDeviceNameLength {
		return mautrix.MTooLarge.WithStatus(http.StatusBadRequest).
			WithMessage(fmt.Sprintf("Device display name is too long (at most %d characters)", maxDeviceNameLength))
	}
	return s.RenameDevice(ctx, userID, deviceID, *name)
}

// DeleteDevicesWithAuth answers DELETE /devices/{deviceId} (single true) and
// POST /delete_devices: after the caller proves their password again it
// removes the devices, which revokes their tokens. Unknown device IDs are
// ignored, as the spec asks. The UIA session is bound to this exact list of
// devices, so a password typed to delete one device cannot be replayed to
// delete others.
func (s *Service) DeleteDevicesWithAuth(ctx context.Context, c *Caller, deviceIDs []id.DeviceID, single bool, auth json.RawMessage, ip string) error {
	op := "delete_devices"
	if single {
		op = "delete_device"
	}
	list, err := json.Marshal(deviceIDs)
	if err != nil {
		return err
	}
	sess, err := s.CheckUIA(ctx, UIARequest{
		Auth:      auth,
		Flows:     [][]string{{StagePassword}},
		Operation: op + " " + string(list),
		UserID:    c.UserID,
		IP:        ip,
	})
	if err != nil {
		return err
	}
	if err := s.DeleteDevices(ctx, c.UserID, deviceIDs); err != nil {
		return fmt.Errorf("delete devices of %s: %w", c.UserID, err)
	}
	s.Done(sess)
	return nil
}
