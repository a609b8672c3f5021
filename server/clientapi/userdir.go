package clientapi

import (
	"net/http"

	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/httpapi"
)

// The user directory (spec: "User directory").
func (a *API) registerUserDirectory(rt *httpapi.Router) {
	rt.Handle(http.MethodPost, v3+"/user_directory/search", a.authed(a.searchUserDirectory))
}

type userDirectoryResult struct {
	UserID      id.UserID `json:"user_id"`
	DisplayName string    `json:"display_name,omitempty"`
	AvatarURL   string    `json:"avatar_url,omitempty"`
}

func (a *API) searchUserDirectory(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	var body struct {
		SearchTerm *string `json:"search_term"`
		Limit      *int    `json:"limit"`
	}
	if err := httpapi.ReadJSON(r, &body); err != nil {
		return err
	}
	if body.SearchTerm == nil {
		return accounts.MMissingParam.WithMessage("search_term is required")
	}
	limit := 10 // the spec's default
	if body.Limit != nil {
		limit = *body.Limit
	}
	users, limited, err := a.rooms.SearchUserDirectory(r.Context(), c.UserID, *body.SearchTerm, limit)
	if err != nil {
		return err
	}
	results := make([]userDirectoryResult, len(users))
	for i, u := range users {
		results[i] = userDirectoryResult{UserID: u.UserID, DisplayName: u.DisplayName, AvatarURL: u.AvatarURL}
	}
	return httpapi.WriteJSON(w, http.StatusOK, struct {
		Results []userDirectoryResult `json:"results"`
		Limited bool                  `json:"limited"`
	}{results, limited})
}
