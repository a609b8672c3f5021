package clientapi

import (
	"net/http"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/httpapi"
	"github.com/palpo-im/palpo-desktop/server/syncer"
)

// Presence (spec module "Presence").
func (a *API) registerPresence(rt *httpapi.Router) {
	rt.Handle(http.MethodPut, v3+"/presence/{userId}/status", a.authed(a.putPresence))
	rt.Handle(http.MethodGet, v3+"/presence/{userId}/status", a.authed(a.getPresence))
}

func (a *API) putPresence(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	if err := ownUser(r, c); err != nil {
		return err
	}
	var body struct {
		Presence  string  `json:"presence"`
		StatusMsg *string `json:"status_msg"`
	}
	if err := httpapi.ReadJSON(r, &body); err != nil {
		return err
	}
	switch body.Presence {
	case syncer.PresenceOnline, syncer.PresenceUnavailable, syncer.PresenceOffline:
	case "":
		return accounts.MMissingParam.WithMessage("Missing presence")
	default:
		return mautrix.MInvalidParam.WithMessage("presence must be online, unavailable or offline")
	}
	if body.StatusMsg != nil && len(*body.StatusMsg) > 1024 {
		return mautrix.MTooLarge.WithStatus(http.StatusBadRequest).WithMessage("status_msg is longer than 1024 bytes")
	}
	if err := a.syncEngine.SetPresence(r.Context(), c.UserID, body.Presence, body.StatusMsg, true); err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, struct{}{})
}

func (a *API) getPresence(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	user := id.UserID(r.PathValue("userId"))
	if _, _, err := user.ParseAndValidateRelaxed(); err != nil {
		return mautrix.MInvalidParam.WithMessage("Invalid user ID")
	}
	p, known, err := a.syncEngine.GetPresence(r.Context(), c.UserID, user)
	if err != nil {
		return err
	}
	body := map[string]any{"presence": p.Presence}
	if known {
		body["last_active_ago"], body["currently_active"] = p.LastActiveAgo, p.CurrentlyActive
	}
	if p.StatusMessage != "" {
		body["status_msg"] = p.StatusMessage
	}
	return httpapi.WriteJSON(w, http.StatusOK, body)
}
