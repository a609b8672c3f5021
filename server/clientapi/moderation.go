package clientapi

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/httpapi"
)

// Reporting content and jumping to a date (spec: "Reporting Content" and
// "Room participation: timestamp_to_event").
func (a *API) registerModeration(rt *httpapi.Router) {
	rt.Handle(http.MethodPost, v3+"/rooms/{roomId}/report/{eventId}", a.authed(a.reportEvent))
	rt.Handle(http.MethodPost, v3+"/rooms/{roomId}/report", a.authed(a.reportRoom))
	rt.Handle(http.MethodPost, v3+"/users/{userId}/report", a.authed(a.reportUser))
	rt.Handle(http.MethodGet, v1+"/rooms/{roomId}/timestamp_to_event", a.authed(a.timestampToEvent))
}

// readReportBody reads a report's JSON object, keeping the raw bytes to
// store with the report.
func readReportBody(r *http.Request, v any) ([]byte, error) {
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, httpapi.ReadJSON(r, v)
	}
	if err := httpapi.DecodeJSON(raw, v); err != nil {
		return nil, err
	}
	if !bytes.HasPrefix(bytes.TrimSpace(raw), []byte("{")) {
		return nil, mautrix.MBadJSON.WithMessage("Request body must be a JSON object")
	}
	return raw, nil
}

func (a *API) reportEvent(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	roomID, err := roomIDParam(r)
	if err != nil {
		return err
	}
	// score left the spec in v1.18; older clients still send one, so it is
	// accepted (an integer, as Synapse requires) and kept for the admins.
	var body struct {
		Reason *string          `json:"reason"`
		Score  *json.RawMessage `json:"score"`
	}
	raw, err := readReportBody(r, &body)
	if err != nil {
		return err
	}
	var score *int64
	if body.Score != nil && string(*body.Score) != "null" {
		n, err := strconv.ParseInt(string(*body.Score), 10, 64)
		if err != nil {
			return mautrix.MBadJSON.WithMessage("score must be an integer")
		}
		score = &n
	}
	if err := a.rooms.ReportEvent(r.Context(), c.UserID, roomID, id.EventID(r.PathValue("eventId")), body.Reason, score, raw); err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, struct{}{})
}

// reportReason is the body of room and user reports. The spec marks reason
// required but allows it blank; a missing one is taken as blank, since
// some clients (mautrix-go among them) leave an empty reason out.
type reportReason struct {
	Reason string `json:"reason"`
}

func (a *API) reportRoom(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	roomID, err := roomIDParam(r)
	if err != nil {
		return err
	}
	var body reportReason
	raw, err := readReportBody(r, &body)
	if err != nil {
		return err
	}
	if err := a.rooms.ReportRoom(r.Context(), c.UserID, roomID, body.Reason, raw); err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, struct{}{})
}

func (a *API) reportUser(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	var body reportReason
	raw, err := readReportBody(r, &body)
	if err != nil {
		return err
	}
	if err := a.rooms.ReportUser(r.Context(), c.UserID, id.UserID(r.PathValue("userId")), body.Reason, raw); err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, struct{}{})
}

type timestampResponse struct {
	EventID        id.EventID `json:"event_id"`
	OriginServerTS int64      `json:"origin_server_ts"`
}

func (a *API) timestampToEvent(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	roomID, err := roomIDParam(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	if !q.Has("ts") {
		return accounts.MMissingParam.WithMessage("Missing integer query parameter ts")
	}
	ts, err := strconv.ParseInt(q.Get("ts"), 10, 64)
	if err != nil || ts < 0 {
		return mautrix.MInvalidParam.WithMessage("ts must be a timestamp in milliseconds")
	}
	var backwards bool
	switch q.Get("dir") {
	case "f":
	case "b":
		backwards = true
	case "":
		return accounts.MMissingParam.WithMessage("Missing query parameter dir")
	default:
		return mautrix.MInvalidParam.WithMessage("dir must be f or b")
	}
	ev, err := a.rooms.EventByTimestamp(r.Context(), c.UserID, roomID, ts, backwards)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, timestampResponse{EventID: ev.ID, OriginServerTS: ev.PDU.OriginServerTS})
}
