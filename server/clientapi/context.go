package clientapi

import (
	"net/http"
	"strconv"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/httpapi"
	"github.com/palpo-im/palpo-desktop/server/syncer"
)

// The events around an event (spec: "Event Context").
func (a *API) registerContext(rt *httpapi.Router) {
	rt.Handle(http.MethodGet, v3+"/rooms/{roomId}/context/{eventId}", a.authed(a.eventContext))
}

func (a *API) eventContext(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	roomID, err := roomIDParam(r)
	if err != nil {
		return err
	}
	req := &syncer.ContextRequest{User: c.UserID, Device: c.DeviceID, RoomID: roomID, EventID: id.EventID(r.PathValue("eventId")), Limit: -1}
	q := r.URL.Query()
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 0 {
			return mautrix.MInvalidParam.WithMessage("limit must be a non-negative integer")
		}
		req.Limit = n
	}
	// The filter is inline RoomEventFilter JSON, read as /messages reads it.
	if req.Filter, err = eventFilterParam(q); err != nil {
		return err
	}
	resp, err := a.syncEngine.Context(r.Context(), req)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, resp)
}
