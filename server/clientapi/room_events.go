package clientapi

import (
	"io"
	"net/http"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/httpapi"
)

// Sending and reading room events and state (spec: "Events" in the
// client-server API).
func (a *API) registerRoomEvents(rt *httpapi.Router) {
	rt.Handle(http.MethodPut, v3+"/rooms/{roomId}/send/{eventType}/{txnId}", a.authed(a.sendMessage))
	rt.Handle(http.MethodPut, v3+"/rooms/{roomId}/state/{eventType}", a.authed(a.putState))
	rt.Handle(http.MethodPut, v3+"/rooms/{roomId}/state/{eventType}/{stateKey...}", a.authed(a.putState))
	rt.Handle(http.MethodGet, v3+"/rooms/{roomId}/state/{eventType}", a.authed(a.getStateEvent))
	rt.Handle(http.MethodGet, v3+"/rooms/{roomId}/state/{eventType}/{stateKey...}", a.authed(a.getStateEvent))
	rt.Handle(http.MethodGet, v3+"/rooms/{roomId}/state", a.authed(a.getState))
	rt.Handle(http.MethodPut, v3+"/rooms/{roomId}/redact/{eventId}/{txnId}", a.authed(a.redact))
	rt.Handle(http.MethodGet, v3+"/rooms/{roomId}/event/{eventId}", a.authed(a.getEvent))
}

// readContent reads an event content body: the rooms service checks it is
// an object and canonical-JSON safe.
func readContent(r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var v any
		return nil, httpapi.ReadJSON(r, &v)
	}
	var v any
	if err := httpapi.DecodeJSON(body, &v); err != nil {
		return nil, err
	}
	if _, ok := v.(map[string]any); !ok {
		return nil, mautrix.MBadJSON.WithMessage("Content must be a JSON object")
	}
	return body, nil
}

func eventTypeParam(r *http.Request) (string, error) {
	t := r.PathValue("eventType")
	if t == "" || len(t) > 255 {
		return "", mautrix.MInvalidParam.WithMessage("Invalid event type")
	}
	return t, nil
}

// roomAndEventType reads the {roomId} and {eventType} path parameters.
func roomAndEventType(r *http.Request) (id.RoomID, string, error) {
	roomID, err := roomIDParam(r)
	if err != nil {
		return "", "", err
	}
	evType, err := eventTypeParam(r)
	return roomID, evType, err
}

type eventIDResponse struct {
	EventID id.EventID `json:"event_id"`
}

func (a *API) sendMessage(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	roomID, evType, err := roomAndEventType(r)
	if err != nil {
		return err
	}
	txnID := r.PathValue("txnId")
	content, err := readContent(r)
	if err != nil {
		return err
	}
	evID, err := a.rooms.Send(r.Context(), c.UserID, c.DeviceID, roomID, evType, content, txnID)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, eventIDResponse{evID})
}

func (a *API) putState(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	roomID, evType, err := roomAndEventType(r)
	if err != nil {
		return err
	}
	stateKey := r.PathValue("stateKey")
	if len(stateKey) > 255 {
		return mautrix.MInvalidParam.WithMessage("State key is too long")
	}
	content, err := readContent(r)
	if err != nil {
		return err
	}
	evID, err := a.rooms.SetState(r.Context(), c.UserID, roomID, evType, stateKey, content)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, eventIDResponse{evID})
}

func (a *API) getStateEvent(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	roomID, evType, err := roomAndEventType(r)
	if err != nil {
		return err
	}
	ev, err := a.rooms.GetStateEvent(r.Context(), c.UserID, roomID, evType, r.PathValue("stateKey"))
	if err != nil {
		return err
	}
	// ?format=event asks for the whole event instead of only its content.
	if r.URL.Query().Get("format") == "event" {
		return httpapi.WriteJSON(w, http.StatusOK, ev)
	}
	return httpapi.WriteJSON(w, http.StatusOK, ev.Content.VeryRaw)
}

func (a *API) getState(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	roomID, err := roomIDParam(r)
	if err != nil {
		return err
	}
	evs, err := a.rooms.GetState(r.Context(), c.UserID, roomID)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, evs)
}

func (a *API) redact(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	roomID, err := roomIDParam(r)
	if err != nil {
		return err
	}
	var body struct {
		Reason string `json:"reason"`
	}
	if err := readOptionalJSON(r, &body); err != nil {
		return err
	}
	evID, err := a.rooms.Redact(r.Context(), c.UserID, c.DeviceID, roomID, id.EventID(r.PathValue("eventId")), body.Reason, r.PathValue("txnId"))
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, eventIDResponse{evID})
}

func (a *API) getEvent(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	roomID, err := roomIDParam(r)
	if err != nil {
		return err
	}
	ev, err := a.rooms.GetEvent(r.Context(), c.UserID, c.DeviceID, roomID, id.EventID(r.PathValue("eventId")))
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, ev)
}
