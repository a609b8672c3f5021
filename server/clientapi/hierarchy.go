package clientapi

import (
	"net/http"
	"strconv"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/httpapi"
	"github.com/palpo-im/palpo-desktop/server/rooms"
)

// Spaces and room previews (spec: "Spaces" and "Room Summaries").
func (a *API) registerHierarchy(rt *httpapi.Router) {
	rt.Handle(http.MethodGet, v1+"/rooms/{roomId}/hierarchy", a.authed(a.hierarchy))
	rt.Handle(http.MethodGet, v1+"/room_summary/{roomIdOrAlias}", a.roomSummary)
}

func (a *API) hierarchy(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	roomID, err := roomIDParam(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	req := rooms.HierarchyQuery{From: q.Get("from"), MaxDepth: -1}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return mautrix.MInvalidParam.WithMessage("limit must be an integer greater than zero")
		}
		req.Limit = n
	}
	if s := q.Get("max_depth"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return mautrix.MInvalidParam.WithMessage("max_depth must be a non-negative integer")
		}
		req.MaxDepth = n
	}
	if s := q.Get("suggested_only"); s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil {
			return mautrix.MInvalidParam.WithMessage("suggested_only must be true or false")
		}
		req.SuggestedOnly = b
	}
	page, err := a.rooms.Hierarchy(r.Context(), c.UserID, roomID, req)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, page)
}

// roomSummary serves GET /room_summary (MSC3266, spec v1.15). Anonymous
// requests see only the rooms anyone may preview, as the spec allows.
func (a *API) roomSummary(w http.ResponseWriter, r *http.Request) error {
	c, err := a.optionalCaller(r)
	if err != nil {
		return err
	}
	var user id.UserID
	if c != nil {
		user = c.UserID
	}
	target := r.PathValue("roomIdOrAlias")
	var roomID id.RoomID
	if len(target) > 0 && target[0] == '#' {
		var err error
		if roomID, _, err = a.rooms.LookupAlias(r.Context(), id.RoomAlias(target)); err != nil {
			return err
		}
	} else if len(target) > 1 && target[0] == '!' {
		roomID = id.RoomID(target)
	} else {
		return mautrix.MInvalidParam.WithMessage("Expected a room ID or a room alias")
	}
	sum, err := a.rooms.Summary(r.Context(), user, roomID)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, sum)
}
