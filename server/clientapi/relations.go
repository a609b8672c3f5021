package clientapi

import (
	"net/http"
	"strconv"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/httpapi"
	"github.com/palpo-im/palpo-desktop/server/rooms"
	"github.com/palpo-im/palpo-desktop/server/syncer"
)

// Event relationships and threads (spec: "Relationships API", "Querying
// threads in a room"). Pagination tokens are /messages tokens, so a sync's
// next_batch or a /messages start works as from or to.
func (a *API) registerRelations(rt *httpapi.Router) {
	rt.Handle(http.MethodGet, v1+"/rooms/{roomId}/relations/{eventId}", a.authed(a.relations))
	rt.Handle(http.MethodGet, v1+"/rooms/{roomId}/relations/{eventId}/{relType}", a.authed(a.relations))
	rt.Handle(http.MethodGet, v1+"/rooms/{roomId}/relations/{eventId}/{relType}/{eventType}", a.authed(a.relations))
	rt.Handle(http.MethodGet, v1+"/rooms/{roomId}/threads", a.authed(a.threads))
}

type relationsResponse struct {
	Chunk          []*event.Event `json:"chunk"`
	NextBatch      string         `json:"next_batch,omitempty"`
	PrevBatch      string         `json:"prev_batch,omitempty"`
	RecursionDepth *int           `json:"recursion_depth,omitempty"`
}

func (a *API) relations(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	roomID, err := roomIDParam(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	req := &rooms.RelationsRequest{
		User: c.UserID, Device: c.DeviceID, RoomID: roomID, EventID: id.EventID(r.PathValue("eventId")),
		RelType: r.PathValue("relType"), EventType: r.PathValue("eventType"),
	}
	switch q.Get("dir") {
	case "", "b":
		req.Backwards = true
	case "f":
	default:
		return mautrix.MInvalidParam.WithMessage("dir must be b or f")
	}
	if req.From, err = positionParam(q.Get("from")); err != nil {
		return err
	}
	if req.To, err = positionParam(q.Get("to")); err != nil {
		return err
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 0 {
			return mautrix.MInvalidParam.WithMessage("limit must be a non-negative integer")
		}
		req.Limit = n
	}
	// recursion_depth answers any recurse the client gave (the spec: it
	// is present exactly when recurse was supplied): 1 when not recursing.
	var depth *int
	switch q.Get("recurse") {
	case "":
	case "true":
		req.Recurse = true
		d := rooms.RelationsRecursionDepth
		depth = &d
	case "false":
		d := 1
		depth = &d
	default:
		return mautrix.MInvalidParam.WithMessage("recurse must be true or false")
	}
	page, err := a.rooms.Relations(r.Context(), req)
	if err != nil {
		return err
	}
	resp := relationsResponse{Chunk: page.Chunk, RecursionDepth: depth}
	if page.More {
		resp.NextBatch = syncer.Token{Events: page.Next}.String()
	}
	if req.From != nil {
		resp.PrevBatch = q.Get("from")
	}
	return httpapi.WriteJSON(w, http.StatusOK, resp)
}

type threadsResponse struct {
	Chunk     []*event.Event `json:"chunk"`
	NextBatch string         `json:"next_batch,omitempty"`
}

func (a *API) threads(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	roomID, err := roomIDParam(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	req := &rooms.ThreadsRequest{User: c.UserID, RoomID: roomID}
	switch q.Get("include") {
	case "", "all":
	case "participated":
		req.Participated = true
	default:
		return mautrix.MInvalidParam.WithMessage("include must be all or participated")
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 {
			return mautrix.MInvalidParam.WithMessage("limit must be an integer greater than zero")
		}
		req.Limit = n
	}
	if req.From, err = positionParam(q.Get("from")); err != nil {
		return err
	}
	page, err := a.rooms.Threads(r.Context(), req)
	if err != nil {
		return err
	}
	resp := threadsResponse{Chunk: page.Chunk}
	if page.More {
		resp.NextBatch = syncer.Token{Events: page.Next}.String()
	}
	return httpapi.WriteJSON(w, http.StatusOK, resp)
}

// positionParam reads a pagination token's event stream position; nil when
// the parameter is absent, M_INVALID_PARAM when it is not one of our tokens.
func positionParam(v string) (*int64, error) {
	if v == "" {
		return nil, nil
	}
	t, err := syncer.ParseToken(v)
	if err != nil {
		return nil, err
	}
	return &t.Events, nil
}
