package edus

import (
	"context"
	"encoding/json"
)

// Device list EDUs: the cache of remote users' devices is the
// federation/devicelists service's, which applies them.
const (
	TypeDeviceListUpdate = "m.device_list_update"
	TypeSigningKeyUpdate = "m.signing_key_update"
)

// DeviceListApplier applies m.device_list_update and m.signing_key_update
// (federation/devicelists.Service).
type DeviceListApplier interface {
	ApplyDeviceListUpdate(ctx context.Context, origin string, raw json.RawMessage) error
	ApplySigningKeyUpdate(ctx context.Context, origin string, raw json.RawMessage) error
}

func (a *Applier) applyDeviceLists(ctx context.Context, origin, eduType string, raw json.RawMessage) error {
	if a.DeviceLists == nil {
		return nil
	}
	if eduType == TypeSigningKeyUpdate {
		return a.DeviceLists.ApplySigningKeyUpdate(ctx, origin, raw)
	}
	return a.DeviceLists.ApplyDeviceListUpdate(ctx, origin, raw)
}
