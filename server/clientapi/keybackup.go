package clientapi

import (
	"encoding/json"
	"net/http"

	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/httpapi"
	"github.com/palpo-im/palpo-desktop/server/keybackup"
)

// Server-side key backups (spec: "End-to-End Encryption", "Server-side key
// backups").
func (a *API) registerKeyBackup(rt *httpapi.Router) {
	rt.Handle(http.MethodPost, v3+"/room_keys/version", a.authed(a.createBackupVersion))
	rt.Handle(http.MethodGet, v3+"/room_keys/version", a.authed(a.latestBackupVersion))
	rt.Handle(http.MethodGet, v3+"/room_keys/version/{version}", a.authed(a.getBackupVersion))
	rt.Handle(http.MethodPut, v3+"/room_keys/version/{version}", a.authed(a.updateBackupVersion))
	rt.Handle(http.MethodDelete, v3+"/room_keys/version/{version}", a.authed(a.deleteBackupVersion))
	for _, p := range []string{"/room_keys/keys", "/room_keys/keys/{roomId}", "/room_keys/keys/{roomId}/{sessionId}"} {
		rt.Handle(http.MethodPut, v3+p, a.authed(a.putBackupKeys))
		rt.Handle(http.MethodGet, v3+p, a.authed(a.getBackupKeys))
		rt.Handle(http.MethodDelete, v3+p, a.authed(a.deleteBackupKeys))
	}
}

// backupVersionBody is the body of a version create or update.
type backupVersionBody struct {
	Algorithm string          `json:"algorithm"`
	AuthData  json.RawMessage `json:"auth_data"`
	Version   string          `json:"version"`
}

func (a *API) createBackupVersion(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	var body backupVersionBody
	if err := httpapi.ReadJSON(r, &body); err != nil {
		return err
	}
	version, err := a.keyBackup.CreateVersion(r.Context(), c.UserID, body.Algorithm, body.AuthData)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string]string{"version": version})
}

func (a *API) latestBackupVersion(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	info, err := a.keyBackup.LatestVersion(r.Context(), c.UserID)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, info)
}

func (a *API) getBackupVersion(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	info, err := a.keyBackup.GetVersion(r.Context(), c.UserID, r.PathValue("version"))
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, info)
}

func (a *API) updateBackupVersion(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	var body backupVersionBody
	if err := httpapi.ReadJSON(r, &body); err != nil {
		return err
	}
	if err := a.keyBackup.UpdateVersion(r.Context(), c.UserID, r.PathValue("version"), body.Version, body.Algorithm, body.AuthData); err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, struct{}{})
}

func (a *API) deleteBackupVersion(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	if err := a.keyBackup.DeleteVersion(r.Context(), c.UserID, r.PathValue("version")); err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, struct{}{})
}

// backupKeysTarget reads ?version= (required) and the optional {roomId}
// and {sessionId} of a /room_keys/keys path.
func backupKeysTarget(r *http.Request) (version string, roomID id.RoomID, sessionID id.SessionID, err error) {
	version = r.URL.Query().Get("version")
	if version == "" {
		return "", "", "", accounts.MMissingParam.WithMessage("The version query parameter is required")
	}
	if r.PathValue("roomId") != "" {
		if roomID, err = roomIDParam(r); err != nil {
			return "", "", "", err
		}
	}
	return version, roomID, id.SessionID(r.PathValue("sessionId")), nil
}

func (a *API) putBackupKeys(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	version, roomID, sessionID, err := backupKeysTarget(r)
	if err != nil {
		return err
	}
	// The three paths take the same data at three depths.
	var keys keybackup.Keys
	switch {
	case sessionID != "":
		var k keybackup.SessionKey
		if err := httpapi.ReadJSON(r, &k); err != nil {
			return err
		}
		keys.Rooms = map[id.RoomID]*keybackup.RoomKeys{roomID: {Sessions: map[id.SessionID]*keybackup.SessionKey{sessionID: &k}}}
	case roomID != "":
		var room keybackup.RoomKeys
		if err := httpapi.ReadJSON(r, &room); err != nil {
			return err
		}
		keys.Rooms = map[id.RoomID]*keybackup.RoomKeys{roomID: &room}
	default:
		if err := httpapi.ReadJSON(r, &keys); err != nil {
			return err
		}
	}
	upd, err := a.keyBackup.PutKeys(r.Context(), c.UserID, version, &keys)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, upd)
}

func (a *API) getBackupKeys(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	version, roomID, sessionID, err := backupKeysTarget(r)
	if err != nil {
		return err
	}
	keys, err := a.keyBackup.GetKeys(r.Context(), c.UserID, version, roomID, sessionID)
	if err != nil {
		return err
	}
	switch {
	case sessionID != "":
		return httpapi.WriteJSON(w, http.StatusOK, keys.Rooms[roomID].Sessions[sessionID])
	case roomID != "":
		room := keys.Rooms[roomID]
		if room == nil {
			room = &keybackup.RoomKeys{Sessions: map[id.SessionID]*keybackup.SessionKey{}}
		}
		return httpapi.WriteJSON(w, http.StatusOK, room)
	}
	return httpapi.WriteJSON(w, http.StatusOK, keys)
}

func (a *API) deleteBackupKeys(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	version, roomID, sessionID, err := backupKeysTarget(r)
	if err != nil {
		return err
	}
	upd, err := a.keyBackup.DeleteKeys(r.Context(), c.UserID, version, roomID, sessionID)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, upd)
}
