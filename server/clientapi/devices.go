package clientapi

import (
	"encoding/json"
	"net/http"

	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/httpapi"
	"github.com/palpo-im/palpo-desktop/server/storage"
)

// Device management (spec: device_management.yaml).
func (a *API) registerDevices(rt *httpapi.Router) {
	rt.Handle(http.MethodGet, v3+"/devices", a.authed(a.listDevices))
	rt.Handle(http.MethodGet, v3+"/devices/{deviceId}", a.authed(a.getDevice))
	rt.Handle(http.MethodPut, v3+"/devices/{deviceId}", a.authed(a.updateDevice))
	rt.Handle(http.MethodDelete, v3+"/devices/{deviceId}", a.authed(a.deleteDevice))
	rt.Handle(http.MethodPost, v3+"/delete_devices", a.authed(a.deleteDevices))
}

// clientDevice is the spec's Device object; absent fields are left out.
type clientDevice struct {
	DeviceID    id.DeviceID `json:"device_id"`
	DisplayName string      `json:"display_name,omitempty"`
	LastSeenIP  string      `json:"last_seen_ip,omitempty"`
	LastSeenTS  int64       `json:"last_seen_ts,omitempty"`
}

func toClientDevice(d *storage.Device) clientDevice {
	return clientDevice{DeviceID: d.DeviceID, DisplayName: d.DisplayName, LastSeenIP: d.LastSeenIP, LastSeenTS: d.LastSeenTS}
}

func (a *API) listDevices(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	devices, err := a.accounts.Devices(r.Context(), c.UserID)
	if err != nil {
		return err
	}
	out := make([]clientDevice, 0, len(devices))
	for i := range devices {
		out = append(out, toClientDevice(&devices[i]))
	}
	return httpapi.WriteJSON(w, http.StatusOK, struct {
		Devices []clientDevice `json:"devices"`
	}{out})
}

func (a *API) getDevice(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	d, err := a.accounts.Device(r.Context(), c.UserID, id.DeviceID(r.PathValue("deviceId")))
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, toClientDevice(d))
}

func (a *API) updateDevice(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	var req struct {
		DisplayName *string `json:"display_name"`
	}
	if err := httpapi.ReadJSON(r, &req); err != nil {
		return err
	}
	if err := a.accounts.UpdateDevice(r.Context(), c.UserID, id.DeviceID(r.PathValue("deviceId")), req.DisplayName); err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, struct{}{})
}

type deleteDevicesRequest struct {
	Devices *[]id.DeviceID  `json:"devices"`
	Auth    json.RawMessage `json:"auth"`
}

func (a *API) deleteDevice(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	var req deleteDevicesRequest
	// Old clients send DELETE without a body; Synapse takes that as {} (the
	// first, unauthenticated step of UIA), and so do we.
	if r.ContentLength != 0 {
		if err := httpapi.ReadJSON(r, &req); err != nil {
			return err
		}
	}
	deviceID := id.DeviceID(r.PathValue("deviceId"))
	if err := a.accounts.DeleteDevicesWithAuth(r.Context(), c, []id.DeviceID{deviceID}, true, req.Auth, httpapi.ClientIP(r)); err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, struct{}{})
}

func (a *API) deleteDevices(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	var req deleteDevicesRequest
	if err := httpapi.ReadJSON(r, &req); err != nil {
		return err
	}
	if req.Devices == nil {
		return accounts.MMissingParam.WithMessage("Missing devices")
	}
	if err := a.accounts.DeleteDevicesWithAuth(r.Context(), c, *req.Devices, false, req.Auth, httpapi.ClientIP(r)); err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, struct{}{})
}
