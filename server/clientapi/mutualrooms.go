package clientapi

import (
	"encoding/base64"
	"net/http"
	"strings"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/httpapi"
)

func (a *API) registerMutualRooms(rt *httpapi.Router) {
	rt.Handle(http.MethodGet, v1+"/mutual_rooms", a.authed(a.mutualRooms))
}

// mutualRooms lists the rooms the caller shares with another user (spec:
// GET /mutual_rooms). The from token is the last room of the previous page,
// encoded so that clients treat it as opaque.
func (a *API) mutualRooms(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	q := r.URL.Query()
	other := id.UserID(q.Get("user_id"))
	if other == "" {
		return accounts.MMissingParam.WithMessage("user_id is required")
	}
	if _, _, err := other.ParseAndValidateRelaxed(); err != nil {
		return mautrix.MInvalidParam.WithMessage("user_id is not a valid user ID")
	}
	if other == c.UserID {
		return mautrix.MInvalidParam.WithMessage("user_id is your own user ID")
	}
	var after id.RoomID
	if from := q.Get("from"); from != "" {
		raw, err := base64.RawURLEncoding.DecodeString(from)
		if err != nil || !strings.HasPrefix(string(raw), "!") {
			return mautrix.MInvalidParam.WithMessage("Invalid from token")
		}
		after = id.RoomID(raw)
	}
	page, total, more, err := a.rooms.MutualRooms(r.Context(), c.UserID, other, after)
	if err != nil {
		return err
	}
	resp := struct {
		Joined    []id.RoomID `json:"joined"`
		Count     int         `json:"count"`
		NextBatch string      `json:"next_batch,omitempty"`
	}{Joined: page, Count: total}
	if resp.Joined == nil {
		resp.Joined = []id.RoomID{}
	}
	if more {
		resp.NextBatch = base64.RawURLEncoding.EncodeToString([]byte(page[len(page)-1]))
	}
	return httpapi.WriteJSON(w, http.StatusOK, resp)
}
