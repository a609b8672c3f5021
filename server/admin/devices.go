package admin

import (
	"net/http"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/httpapi"
	"github.com/palpo-im/palpo-desktop/server/storage"
)

func (a *API) registerDevices(rt *httpapi.Router) {
	rt.Handle(http.MethodGet, prefix+"/v2/users/{userId}/devices", a.admin(a.listDevices))
	rt.Handle(http.MethodGet, prefix+"/v2/users/{userId}/devices/{deviceId}", a.admin(a.getDevice))
	rt.Handle(http.MethodPut, prefix+"/v2/users/{userId}/devices/{deviceId}", a.admin(a.putDevice))
	rt.Handle(http.MethodDelete, prefix+"/v2/users/{userId}/devices/{deviceId}", a.admin(a.deleteDevice))
	rt.Handle(http.MethodPost, prefix+"/v2/users/{userId}/delete_devices", a.admin(a.deleteDevices))
}

// deviceJSON is a device as Synapse's admin API shows it: the client API's
// fields plus the user agent and owner. Unknown values are null.
type deviceJSON struct {
	DeviceID          id.DeviceID `json:"device_id"`
	DisplayName       *string     `json:"display_name"`
	LastSeenIP        *string     `json:"last_seen_ip"`
	LastSeenTS        *int64      `json:"last_seen_ts"`
	LastSeenUserAgent *string     `json:"last_seen_user_agent"`
	UserID            id.UserID   `json:"user_id"`
}

func toDeviceJSON(d *storage.Device) deviceJSON {
	return deviceJSON{
		DeviceID: d.DeviceID, DisplayName: nullable(d.DisplayName), LastSeenIP: nullable(d.LastSeenIP),
		LastSeenTS: nullable(d.LastSeenTS), LastSeenUserAgent: nullable(d.LastSeenUserAgent), UserID: d.UserID,
	}
}

// deviceOwner is the {userId} of a device endpoint: a local user that
// exists (404 M_NOT_FOUND otherwise, deactivated users included).
func (a *API) deviceOwner(r *http.Request) (id.UserID, error) {
	userID, err := a.pathUser(r)
	if err != nil {
		return "", err
	}
	return userID, a.accounts.RequireUser(r.Context(), userID)
}

func (a *API) listDevices(w http.ResponseWriter, r *http.Request, _ *accounts.Caller) error {
	userID, err := a.deviceOwner(r)
	if err != nil {
		return err
	}
	devices, err := a.accounts.Devices(r.Context(), userID)
	if err != nil {
		return err
	}
	out := make([]deviceJSON, len(devices))
	for i := range devices {
		out[i] = toDeviceJSON(&devices[i])
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string]any{"devices": out, "total": len(out)})
}

func (a *API) getDevice(w http.ResponseWriter, r *http.Request, _ *accounts.Caller) error {
	userID, err := a.deviceOwner(r)
	if err != nil {
		return err
	}
	d, err := a.accounts.Device(r.Context(), userID, id.DeviceID(r.PathValue("deviceId")))
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, toDeviceJSON(d))
}

// putDevice renames a device ({display_name}); an empty body changes
// nothing but still needs the device to exist.
func (a *API) putDevice(w http.ResponseWriter, r *http.Request, _ *accounts.Caller) error {
	userID, err := a.deviceOwner(r)
	if err != nil {
		return err
	}
	b, err := readOptionalBody(r)
	if err != nil {
		return err
	}
	name, err := b.str("display_name", mautrix.MBadJSON)
	if err != nil {
		return err
	}
	if err := a.accounts.UpdateDevice(r.Context(), userID, id.DeviceID(r.PathValue("deviceId")), name); err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, emptyObject)
}

// deleteDevice signs a device out; an unknown device is already gone, so it
// succeeds, as in Synapse.
func (a *API) deleteDevice(w http.ResponseWriter, r *http.Request, _ *accounts.Caller) error {
	userID, err := a.deviceOwner(r)
	if err != nil {
		return err
	}
	if err := a.accounts.DeleteDevices(r.Context(), userID, []id.DeviceID{id.DeviceID(r.PathValue("deviceId"))}); err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, emptyObject)
}

func (a *API) deleteDevices(w http.ResponseWriter, r *http.Request, _ *accounts.Caller) error {
	userID, err := a.deviceOwner(r)
	if err != nil {
		return err
	}
	var req struct {
		Devices *[]id.DeviceID `json:"devices"`
	}
	if err := httpapi.ReadJSON(r, &req); err != nil {
		return err
	}
	if req.Devices == nil {
		return accounts.MMissingParam.WithMessage("Missing params: ['devices']")
	}
	if err := a.accounts.DeleteDevices(r.Context(), userID, *req.Devices); err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, emptyObject)
}
