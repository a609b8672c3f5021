package clientapi

import (
	"encoding/json"
	"errors"
	"net/http"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/httpapi"
)

// Room tagging (spec module "Room Tagging"). Tags live in the m.tag room
// account data event, which /sync delivers.
func (a *API) registerTags(rt *httpapi.Router) {
	rt.Handle(http.MethodGet, v3+"/user/{userId}/rooms/{roomId}/tags", a.authed(a.getTags))
	rt.Handle(http.MethodPut, v3+"/user/{userId}/rooms/{roomId}/tags/{tag}", a.authed(a.putTag))
	rt.Handle(http.MethodDelete, v3+"/user/{userId}/rooms/{roomId}/tags/{tag}", a.authed(a.deleteTag))
}

const tagEventType = "m.tag"

type tagContent struct {
	Tags map[string]json.RawMessage `json:"tags"`
}

func (a *API) loadTags(r *http.Request, c *accounts.Caller) (id.RoomID, *tagContent, error) {
	if err := ownUser(r, c); err != nil {
		return "", nil, err
	}
	roomID, err := roomIDParam(r)
	if err != nil {
		return "", nil, err
	}
	tc := &tagContent{Tags: map[string]json.RawMessage{}}
	raw, err := a.syncEngine.GetAccountData(r.Context(), c.UserID, roomID, tagEventType)
	var re mautrix.RespError
	switch {
	case errors.As(err, &re) && re.ErrCode == mautrix.MNotFound.ErrCode:
	case err != nil:
		return "", nil, err
	default:
		if json.Unmarshal(raw, tc) != nil || tc.Tags == nil {
			tc.Tags = map[string]json.RawMessage{}
		}
	}
	return roomID, tc, nil
}

func (a *API) getTags(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	_, tc, err := a.loadTags(r, c)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, tc)
}

func (a *API) putTag(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	var body map[string]json.RawMessage
	if err := httpapi.ReadJSON(r, &body); err != nil {
		return err
	}
	if order, ok := body["order"]; ok {
		var f float64
		if json.Unmarshal(order, &f) != nil || f < 0 || f > 1 {
			return mautrix.MBadJSON.WithMessage("order must be a number between 0 and 1")
		}
	}
	tag := r.PathValue("tag")
	if tag == "" || len(tag) > 255 {
		return mautrix.MInvalidParam.WithMessage("Invalid tag")
	}
	roomID, tc, err := a.loadTags(r, c)
	if err != nil {
		return err
	}
	raw, _ := json.Marshal(body)
	tc.Tags[tag] = raw
	return a.saveTags(w, r, c, roomID, tc)
}

func (a *API) deleteTag(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	roomID, tc, err := a.loadTags(r, c)
	if err != nil {
		return err
	}
	delete(tc.Tags, r.PathValue("tag"))
	return a.saveTags(w, r, c, roomID, tc)
}

func (a *API) saveTags(w http.ResponseWriter, r *http.Request, c *accounts.Caller, roomID id.RoomID, tc *tagContent) error {
	content, err := json.Marshal(tc)
	if err != nil {
		return err
	}
	if err := a.syncEngine.SetAccountData(r.Context(), c.UserID, roomID, tagEventType, content); err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, struct{}{})
}
