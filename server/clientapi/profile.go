package clientapi

import (
	"encoding/json"
	"net/http"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/httpapi"
)

// Profiles (spec: profile.yaml). Reading a profile needs no access token,
// as in Synapse's default configuration: display names and avatars are
// public, copied into every room the user joins.
func (a *API) registerProfile(rt *httpapi.Router) {
	rt.Handle(http.MethodGet, v3+"/profile/{userId}", a.getProfile)
	rt.Handle(http.MethodGet, v3+"/profile/{userId}/{keyName}", a.getProfileField)
	rt.Handle(http.MethodPut, v3+"/profile/{userId}/{keyName}", a.authed(a.putProfileField))
	rt.Handle(http.MethodDelete, v3+"/profile/{userId}/{keyName}", a.authed(a.deleteProfileField))
}

// profileUser parses the {userId} of a profile path.
func profileUser(r *http.Request) (id.UserID, error) {
	userID := id.UserID(r.PathValue("userId"))
	if _, _, err := userID.Parse(); err != nil {
		return "", mautrix.MInvalidParam.WithMessage("Invalid user ID " + string(userID))
	}
	return userID, nil
}

// profile fetches a profile: a local user's here, another server's user's
// from that server (with federation off, such a user is as unknown as a
// local user that does not exist).
func (a *API) profile(r *http.Request) (map[string]json.RawMessage, error) {
	userID, err := profileUser(r)
	if err != nil {
		return nil, err
	}
	if userID.Homeserver() != a.deps.ServerName {
		if a.deps.RemoteProfile == nil {
			return nil, mautrix.MNotFound.WithMessage("Profile not found")
		}
		return a.deps.RemoteProfile(r.Context(), userID)
	}
	return a.accounts.Profile(r.Context(), userID)
}

func (a *API) getProfile(w http.ResponseWriter, r *http.Request) error {
	profile, err := a.profile(r)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, profile)
}

func (a *API) getProfileField(w http.ResponseWriter, r *http.Request) error {
	profile, err := a.profile(r)
	if err != nil {
		return err
	}
	key := r.PathValue("keyName")
	value, ok := profile[key]
	if !ok {
		return mautrix.MNotFound.WithMessage("Profile field " + key + " is not set")
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string]json.RawMessage{key: value})
}

func (a *API) putProfileField(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	userID, err := profileUser(r)
	if err != nil {
		return err
	}
	key := r.PathValue("keyName")
	var body map[string]json.RawMessage
	if err := httpapi.ReadJSON(r, &body); err != nil {
		return err
	}
	value, ok := body[key]
	if !ok {
		return accounts.MMissingParam.WithMessage("The body must have the property " + key)
	}
	if err := a.accounts.PutProfileField(r.Context(), c, userID, key, value); err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, struct{}{})
}

func (a *API) deleteProfileField(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	userID, err := profileUser(r)
	if err != nil {
		return err
	}
	if err := a.accounts.RemoveProfileField(r.Context(), c, userID, r.PathValue("keyName")); err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, struct{}{})
}
