package clientapi

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"

	"maunium.net/go/mautrix"

	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/httpapi"
	"github.com/palpo-im/palpo-desktop/server/search"
)

// Server-side search (spec: "Server Side Search").
func (a *API) registerSearch(rt *httpapi.Router) {
	rt.Handle(http.MethodPost, v3+"/search", a.authed(a.search))
}

type searchResponse struct {
	SearchCategories struct {
		RoomEvents *search.Results `json:"room_events"`
	} `json:"search_categories"`
}

func (a *API) search(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	var body struct {
		SearchCategories map[string]json.RawMessage `json:"search_categories"`
	}
	if err := httpapi.ReadJSON(r, &body); err != nil {
		return err
	}
	if body.SearchCategories == nil {
		return accounts.MMissingParam.WithMessage("search_categories is required")
	}
	raw, ok := body.SearchCategories["room_events"]
	if !ok {
		// Categories other than room_events are not in the spec; a request
		// with only those has nothing Palpo can search.
		names := make([]string, 0, len(body.SearchCategories))
		for k := range body.SearchCategories {
			names = append(names, k)
		}
		slices.Sort(names)
		if len(names) == 0 {
			return accounts.MMissingParam.WithMessage("search_categories needs room_events")
		}
		return mautrix.MInvalidParam.WithMessage("Unknown search category " + strings.Join(names, ", ") + "; only room_events is supported")
	}
	var criteria search.Criteria
	if err := httpapi.DecodeJSON(raw, &criteria); err != nil {
		return err
	}
	res, err := a.deps.Search.Search(r.Context(), c.UserID, &criteria, r.URL.Query().Get("next_batch"))
	if err != nil {
		return err
	}
	var resp searchResponse
	resp.SearchCategories.RoomEvents = res
	return httpapi.WriteJSON(w, http.StatusOK, resp)
}
