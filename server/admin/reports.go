package admin

import (
	"net/http"
	"strconv"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/httpapi"
	"github.com/palpo-im/palpo-desktop/server/rooms"
)

// Event reports, with Synapse's shapes (admin_api/event_reports): what
// users reported with POST /rooms/{roomId}/report/{eventId}.
func (a *API) registerReports(rt *httpapi.Router) {
	if a.deps.Rooms == nil {
		return
	}
	rt.Handle(http.MethodGet, prefix+"/v1/event_reports", a.admin(a.listEventReports))
	rt.Handle(http.MethodGet, prefix+"/v1/event_reports/{reportId}", a.admin(a.getEventReport))
	rt.Handle(http.MethodDelete, prefix+"/v1/event_reports/{reportId}", a.admin(a.deleteEventReport))
}

type eventReportsJSON struct {
	EventReports []*rooms.EventReport `json:"event_reports"`
	NextToken    *int                 `json:"next_token,omitempty"`
	Total        int                  `json:"total"`
}

// defaultReportPage is Synapse's default limit.
const defaultReportPage = 100

func (a *API) listEventReports(w http.ResponseWriter, r *http.Request, _ *accounts.Caller) error {
	from, err := queryInt(r, "from", 0)
	if err != nil {
		return err
	}
	limit, err := queryInt(r, "limit", defaultReportPage)
	if err != nil {
		return err
	}
	qv := r.URL.Query()
	q := rooms.EventReportQuery{
		Reporter: id.UserID(qv.Get("user_id")), RoomID: id.RoomID(qv.Get("room_id")),
		// Synapse names the sender filter event_sender_user_id; earlier
		// documentation said sender_user_id.
		Sender: id.UserID(qv.Get("event_sender_user_id")), From: from, Limit: limit, Newest: true,
	}
	if q.Sender == "" {
		q.Sender = id.UserID(qv.Get("sender_user_id"))
	}
	switch qv.Get("dir") {
	case "", "b":
	case "f":
		q.Newest = false
	default:
		return mautrix.MInvalidParam.WithMessage("Query parameter dir must be one of ['b', 'f']")
	}
	reports, total, err := a.deps.Rooms.EventReports(r.Context(), q)
	if err != nil {
		return err
	}
	out := eventReportsJSON{EventReports: reports, Total: total}
	if from+limit < total {
		next := from + len(reports)
		out.NextToken = &next
	}
	return httpapi.WriteJSON(w, http.StatusOK, out)
}

func reportIDParam(r *http.Request) (int64, error) {
	n, err := strconv.ParseInt(r.PathValue("reportId"), 10, 64)
	if err != nil || n < 0 {
		return 0, mautrix.MInvalidParam.WithMessage("The report_id parameter must be a string representing a positive integer.")
	}
	return n, nil
}

func (a *API) getEventReport(w http.ResponseWriter, r *http.Request, _ *accounts.Caller) error {
	reportID, err := reportIDParam(r)
	if err != nil {
		return err
	}
	rep, err := a.deps.Rooms.GetEventReport(r.Context(), reportID)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, rep)
}

func (a *API) deleteEventReport(w http.ResponseWriter, r *http.Request, _ *accounts.Caller) error {
	reportID, err := reportIDParam(r)
	if err != nil {
		return err
	}
	if err := a.deps.Rooms.DeleteEventReport(r.Context(), reportID); err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, emptyObject)
}
