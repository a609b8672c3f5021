package clientapi

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/httpapi"
	"github.com/palpo-im/palpo-desktop/server/syncer"
)

// The old event stream and snapshots (spec: GET /events and GET
// /initialSync, deprecated by /sync; GET /events?room_id= and GET
// /rooms/{roomId}/initialSync, "Room Previews"). Old clients and the test
// suites still call them; room previews are how a client reads a
// world-readable room without joining.
func (a *API) registerEventStream(rt *httpapi.Router) {
	rt.Handle(http.MethodGet, v3+"/events", a.authed(a.events))
	rt.Handle(http.MethodGet, v3+"/events/{eventId}", a.authed(a.oneEvent))
	rt.Handle(http.MethodGet, v3+"/initialSync", a.authed(a.initialSync))
	rt.Handle(http.MethodGet, v3+"/rooms/{roomId}/initialSync", a.authed(a.roomInitialSync))
}

// defaultEventsTimeout is how long GET /events waits when the client does
// not say (Synapse's default).
const defaultEventsTimeout = 30 * time.Second

func (a *API) events(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	q := r.URL.Query()
	req := &syncer.EventsRequest{User: c.UserID, Device: c.DeviceID}
	var err error
	if req.From, req.Timeout, err = longPollParams(q, "from", defaultEventsTimeout); err != nil {
		return err
	}
	limit, err := limitParam(q, 0)
	if err != nil {
		return err
	}
	req.Limit = limit
	if q.Has("room_id") {
		roomID := id.RoomID(q.Get("room_id"))
		if !strings.HasPrefix(string(roomID), "!") || len(roomID) < 2 {
			return mautrix.MInvalidParam.WithMessage("Invalid room ID")
		}
		req.RoomID = roomID
	}
	resp, err := a.syncEngine.Events(r.Context(), req)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, resp)
}

// oneEvent is the deprecated GET /events/{eventId}: /rooms/{roomId}/event
// without the room.
func (a *API) oneEvent(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	ev, err := a.rooms.GetEventByID(r.Context(), c.UserID, c.DeviceID, id.EventID(r.PathValue("eventId")))
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, ev)
}

func (a *API) initialSync(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	q := r.URL.Query()
	limit, err := limitParam(q, syncer.DefaultSnapshotLimit)
	if err != nil {
		return err
	}
	var archived bool
	switch q.Get("archived") {
	case "", "false":
	case "true":
		archived = true
	default:
		return mautrix.MInvalidParam.WithMessage("archived must be true or false")
	}
	resp, err := a.syncEngine.InitialSync(r.Context(), c.UserID, c.DeviceID, limit, archived)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, resp)
}

func (a *API) roomInitialSync(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	roomID, err := roomIDParam(r)
	if err != nil {
		return err
	}
	limit, err := limitParam(r.URL.Query(), syncer.DefaultSnapshotLimit)
	if err != nil {
		return err
	}
	resp, err := a.syncEngine.RoomInitialSync(r.Context(), c.UserID, c.DeviceID, roomID, limit)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, resp)
}

// limitParam reads a limit query parameter: a non-negative integer, def
// when absent.
func limitParam(q url.Values, def int) (int, error) {
	v := q.Get("limit")
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, mautrix.MInvalidParam.WithMessage("limit must be a non-negative integer")
	}
	return n, nil
}
