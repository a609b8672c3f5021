package clientapi

import (
	"io"
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

// maxSyncTimeout bounds a long-poll; clients ask for 30 s.
const maxSyncTimeout = 5 * time.Minute

// Syncing, filters and account data (spec: "Syncing", "Filtering",
// "Client Config").
func (a *API) registerSync(rt *httpapi.Router) {
	rt.Handle(http.MethodGet, v3+"/sync", a.authed(a.sync))
	rt.Handle(http.MethodPost, v3+"/user/{userId}/filter", a.authed(a.postFilter))
	rt.Handle(http.MethodGet, v3+"/user/{userId}/filter/{filterId}", a.authed(a.getFilter))
	rt.Handle(http.MethodPut, v3+"/user/{userId}/account_data/{type}", a.authed(a.putAccountData))
	rt.Handle(http.MethodGet, v3+"/user/{userId}/account_data/{type}", a.authed(a.getAccountData))
	rt.Handle(http.MethodPut, v3+"/user/{userId}/rooms/{roomId}/account_data/{type}", a.authed(a.putAccountData))
	rt.Handle(http.MethodGet, v3+"/user/{userId}/rooms/{roomId}/account_data/{type}", a.authed(a.getAccountData))
	rt.Handle(http.MethodGet, v3+"/rooms/{roomId}/messages", a.authed(a.messages))
}

func (a *API) messages(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	roomID, err := roomIDParam(r)
	if err != nil {
		return err
	}
	req, err := messagesRequest(r, c, roomID)
	if err != nil {
		// Someone who may not read the room learns that first, as Synapse
		// answers, rather than which parameter was wrong.
		if cerr := a.syncEngine.CheckCanRead(r.Context(), c.UserID, roomID); cerr != nil {
			return cerr
		}
		return err
	}
	resp, err := a.syncEngine.Messages(r.Context(), req)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, resp)
}

// messagesRequest reads the query parameters of /messages.
func messagesRequest(r *http.Request, c *accounts.Caller, roomID id.RoomID) (*syncer.MessagesRequest, error) {
	q := r.URL.Query()
	req := &syncer.MessagesRequest{User: c.UserID, Device: c.DeviceID, RoomID: roomID}
	switch q.Get("dir") {
	case "b":
		req.Backwards = true
	case "f":
	default:
		return nil, mautrix.MInvalidParam.WithMessage("dir must be b or f")
	}
	for name, dst := range map[string]**syncer.Token{"from": &req.From, "to": &req.To} {
		if v := q.Get(name); v != "" {
			t, err := syncer.ParseHistoryToken(v)
			if err != nil {
				return nil, err
			}
			*dst = &t
		}
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 0 {
			return nil, mautrix.MInvalidParam.WithMessage("limit must be a non-negative integer")
		}
		req.Limit = n
	}
	var err error
	if req.Filter, err = eventFilterParam(q); err != nil {
		return nil, err
	}
	return req, nil
}

// eventFilterParam reads the inline RoomEventFilter of /messages and
// /context (nil when absent), refusing one whose IDs are not IDs.
func eventFilterParam(q url.Values) (*mautrix.FilterPart, error) {
	f := q.Get("filter")
	if f == "" {
		return nil, nil
	}
	var part mautrix.FilterPart
	if err := httpapi.DecodeJSON([]byte(f), &part); err != nil {
		return nil, err
	}
	if err := syncer.CheckEventFilter(&part); err != nil {
		return nil, err
	}
	return &part, nil
}

func (a *API) sync(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	q := r.URL.Query()
	req := &syncer.Request{User: c.UserID, Device: c.DeviceID}
	var err error
	if req.Since, req.Timeout, err = longPollParams(q, "since", 0); err != nil {
		return err
	}
	switch q.Get("full_state") {
	case "", "false":
	case "true":
		req.FullState = true
	default:
		return mautrix.MInvalidParam.WithMessage("full_state must be true or false")
	}
	switch q.Get("set_presence") {
	case "", "online", "offline", "unavailable":
		req.SetPresence = q.Get("set_presence")
	default:
		return mautrix.MInvalidParam.WithMessage("set_presence must be online, offline or unavailable")
	}
	filter, err := a.syncEngine.ResolveFilter(r.Context(), c.UserID, q.Get("filter"))
	if err != nil {
		return err
	}
	req.Filter = filter
	resp, err := a.syncEngine.Sync(r.Context(), req)
	if err != nil {
		return err
	}
	// The response marshals itself in its wire form (syncer/wire.go).
	return httpapi.WriteJSON(w, http.StatusOK, resp)
}

// longPollTimeout reads a long-poll's timeout parameter (milliseconds),
// bounded by maxSyncTimeout.
// longPollParams reads a long-poll's stream token (the query parameter
// named tokenParam; nil when absent) and its timeout (def when absent).
func longPollParams(q url.Values, tokenParam string, def time.Duration) (*syncer.Token, time.Duration, error) {
	var since *syncer.Token
	if v := q.Get(tokenParam); v != "" {
		t, err := syncer.ParseToken(v)
		if err != nil {
			return nil, 0, err
		}
		since = &t
	}
	timeout := def
	if v := q.Get("timeout"); v != "" {
		t, err := longPollTimeout(v)
		if err != nil {
			return nil, 0, err
		}
		timeout = t
	}
	return since, timeout, nil
}

func longPollTimeout(v string) (time.Duration, error) {
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil || ms < 0 {
		return 0, mautrix.MInvalidParam.WithMessage("timeout must be a non-negative number of milliseconds")
	}
	return min(time.Duration(ms)*time.Millisecond, maxSyncTimeout), nil
}

// ownUser checks the {userId} path parameter names the caller: filters and
// account data are private.
func ownUser(r *http.Request, c *accounts.Caller) error {
	if id.UserID(r.PathValue("userId")) != c.UserID {
		return mautrix.MForbidden.WithMessage("You can only access your own data")
	}
	return nil
}

func (a *API) postFilter(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	if err := ownUser(r, c); err != nil {
		return err
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var v any
		return httpapi.ReadJSON(r, &v)
	}
	var obj map[string]any
	if err := httpapi.DecodeJSON(body, &obj); err != nil {
		return err
	}
	filterID, err := a.syncEngine.SaveFilter(r.Context(), c.UserID, body)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string]string{"filter_id": filterID})
}

func (a *API) getFilter(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	if err := ownUser(r, c); err != nil {
		return err
	}
	f, err := a.syncEngine.GetFilter(r.Context(), c.UserID, r.PathValue("filterId"))
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(f)
	return nil
}

// accountDataTarget reads {roomId} (absent for global account data) and
// {type}; m.fully_read and m.push_rules are managed by their own APIs.
func accountDataTarget(r *http.Request) (id.RoomID, string, error) {
	roomID := id.RoomID(r.PathValue("roomId"))
	if r.PathValue("roomId") != "" && !strings.HasPrefix(string(roomID), "!") {
		return "", "", mautrix.MInvalidParam.WithMessage("Invalid room ID")
	}
	evType := r.PathValue("type")
	if evType == "" || len(evType) > 255 {
		return "", "", mautrix.MInvalidParam.WithMessage("Invalid account data type")
	}
	return roomID, evType, nil
}

func (a *API) putAccountData(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	if err := ownUser(r, c); err != nil {
		return err
	}
	roomID, evType, err := accountDataTarget(r)
	if err != nil {
		return err
	}
	if evType == "m.fully_read" || evType == "m.push_rules" {
		return mautrix.RespError{ErrCode: "M_BAD_JSON", StatusCode: http.StatusMethodNotAllowed}.
			WithMessage("Cannot set " + evType + " through this API")
	}
	content, err := readContent(r)
	if err != nil {
		return err
	}
	if err := a.syncEngine.SetAccountData(r.Context(), c.UserID, roomID, evType, content); err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, struct{}{})
}

func (a *API) getAccountData(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	if err := ownUser(r, c); err != nil {
		return err
	}
	roomID, evType, err := accountDataTarget(r)
	if err != nil {
		return err
	}
	content, err := a.syncEngine.GetAccountData(r.Context(), c.UserID, roomID, evType)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(content)
	return nil
}
