package devicelists

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/federation"
	"github.com/palpo-im/palpo-desktop/server/httpapi"
)

// Router registers authenticated federation routes (federation.Service).
type Router interface {
	HandleAuthed(method, pattern string, h federation.AuthedHandler, opts ...httpapi.RouteOption)
}

// Register serves this server's users' devices and keys to other servers.
func (s *Service) Register(rt Router) {
	const v1 = "/_matrix/federation/v1"
	rt.HandleAuthed(http.MethodGet, v1+"/user/devices/{userId}", s.serveUserDevices)
	rt.HandleAuthed(http.MethodPost, v1+"/user/keys/query", s.serveKeysQuery)
	rt.HandleAuthed(http.MethodPost, v1+"/user/keys/claim", s.serveKeysClaim)
}

// serveUserDevices answers GET /user/devices/{userId}: a local user's
// devices with their keys and names, their master and self-signing keys,
// and the stream ID this list is at.
func (s *Service) serveUserDevices(w http.ResponseWriter, r *http.Request, _ string) error {
	user := id.UserID(r.PathValue("userId"))
	if !s.isLocal(user) {
		return mautrix.MInvalidParam.WithMessage("User is not hosted on this homeserver")
	}
	// The stream ID is read before the keys: a change between the two is
	// then in the answer and announced again after it, which applies
	// twice harmlessly, instead of being missed.
	stream, err := s.db.OutboundDeviceListStream(r.Context(), user)
	if err != nil {
		return err
	}
	keys, err := s.localKeys(r.Context(), user)
	if err != nil {
		return err
	}
	resp := userDevices{UserID: user, StreamID: stream, Devices: []userDevice{}}
	for d, raw := range keys.DeviceKeys[user] {
		k, name := splitDevice(raw)
		resp.Devices = append(resp.Devices, userDevice{DeviceID: d, Keys: k, DisplayName: name})
	}
	slices.SortFunc(resp.Devices, func(a, b userDevice) int { return strings.Compare(string(a.DeviceID), string(b.DeviceID)) })
	resp.MasterKey = keys.MasterKeys[user]
	resp.SelfSigningKey = keys.SelfSigningKeys[user]
	return httpapi.WriteJSON(w, http.StatusOK, resp)
}

// serveKeysQuery answers POST /user/keys/query for this server's users;
// others are left out of the answer.
func (s *Service) serveKeysQuery(w http.ResponseWriter, r *http.Request, _ string) error {
	var req struct {
		DeviceKeys map[id.UserID][]id.DeviceID `json:"device_keys"`
	}
	if err := httpapi.ReadJSON(r, &req); err != nil {
		return err
	}
	if req.DeviceKeys == nil {
		return mautrix.MBadJSON.WithMessage("device_keys is required")
	}
	local := map[id.UserID][]id.DeviceID{}
	for u, devices := range req.DeviceKeys {
		if s.isLocal(u) {
			local[u] = devices
		}
	}
	resp := userKeysQuery{
		DeviceKeys:      map[id.UserID]map[id.DeviceID]json.RawMessage{},
		MasterKeys:      map[id.UserID]json.RawMessage{},
		SelfSigningKeys: map[id.UserID]json.RawMessage{},
	}
	if len(local) > 0 {
		keys, err := s.keys.QueryKeys(r.Context(), "", local)
		if err != nil {
			return err
		}
		resp.DeviceKeys, resp.MasterKeys, resp.SelfSigningKeys = keys.DeviceKeys, keys.MasterKeys, keys.SelfSigningKeys
	}
	return httpapi.WriteJSON(w, http.StatusOK, resp)
}

// serveKeysClaim answers POST /user/keys/claim for this server's users'
// devices: each one-time key is handed out once, as to local clients.
func (s *Service) serveKeysClaim(w http.ResponseWriter, r *http.Request, _ string) error {
	var req struct {
		OneTimeKeys map[id.UserID]map[id.DeviceID]string `json:"one_time_keys"`
	}
	if err := httpapi.ReadJSON(r, &req); err != nil {
		return err
	}
	if req.OneTimeKeys == nil {
		return mautrix.MBadJSON.WithMessage("one_time_keys is required")
	}
	local := map[id.UserID]map[id.DeviceID]string{}
	for u, devices := range req.OneTimeKeys {
		if s.isLocal(u) {
			local[u] = devices
		}
	}
	resp := map[string]any{"one_time_keys": map[id.UserID]any{}}
	if len(local) > 0 {
		keys, err := s.keys.ClaimKeys(r.Context(), local)
		if err != nil {
			return err
		}
		resp["one_time_keys"] = keys.OneTimeKeys
	}
	return httpapi.WriteJSON(w, http.StatusOK, resp)
}
