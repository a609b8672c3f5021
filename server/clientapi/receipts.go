package clientapi

import (
	"encoding/json"
	"net/http"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/httpapi"
	"github.com/palpo-im/palpo-desktop/server/syncer"
)

// Receipts and read markers (spec: "Receipts", "Read and unread markers").
func (a *API) registerReceipts(rt *httpapi.Router) {
	rt.Handle(http.MethodPost, v3+"/rooms/{roomId}/receipt/{receiptType}/{eventId}", a.authed(a.postReceipt))
	rt.Handle(http.MethodPost, v3+"/rooms/{roomId}/read_markers", a.authed(a.postReadMarkers))
}

func (a *API) postReceipt(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	roomID, err := roomIDParam(r)
	if err != nil {
		return err
	}
	// The body is optional in practice: older clients send none.
	var body map[string]json.RawMessage
	if err := readOptionalJSON(r, &body); err != nil {
		return err
	}
	var threadID string
	if raw, ok := body["thread_id"]; ok {
		// The spec answers M_INVALID_PARAM (not M_BAD_JSON) for a thread_id
		// that is not a string or is empty.
		if json.Unmarshal(raw, &threadID) != nil || threadID == "" {
			return mautrix.MInvalidParam.WithMessage("thread_id must be a non-empty string")
		}
	}
	err = a.syncEngine.SendReceipt(r.Context(), c.UserID, roomID, r.PathValue("receiptType"), id.EventID(r.PathValue("eventId")), threadID)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, struct{}{})
}

func (a *API) postReadMarkers(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	roomID, err := roomIDParam(r)
	if err != nil {
		return err
	}
	var body syncer.ReadMarkers
	if err := httpapi.ReadJSON(r, &body); err != nil {
		return err
	}
	if err := a.syncEngine.SetReadMarkers(r.Context(), c.UserID, roomID, body); err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, struct{}{})
}
