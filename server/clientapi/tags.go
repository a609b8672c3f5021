package clientapi

import (
	"encoding/json"
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

// loadTags reads the caller's tags of the room in the path.
func (a *API) loadTags(r *http.Request, c *accounts.Caller) (id.RoomID, map[string]json.RawMessage, error) {
	if err := ownUser(r, c); err != nil {
		return "", nil, err
	}
	roomID, err := roomIDParam(r)
	if err != nil {
		return "", nil, err
	}
	tags, err := a.syncEngine.RoomTags(r.Context(), c.UserID, roomID)
	return roomID, tags, err
}

func (a *API) getTags(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	_, tags, err := a.loadTags(r, c)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, struct {
		Tags map[string]json.RawMessage `json:"tags"`
	}{tags})
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
	roomID, tags, err := a.loadTags(r, c)
	if err != nil {
		return err
	}
	raw, _ := json.Marshal(body)
	tags[tag] = raw
	return a.saveTags(w, r, c, roomID, tags)
}

func (a *API) deleteTag(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	roomID, tags, err := a.loadTags(r, c)
	if err != nil {
		return err
	}
	delete(tags, r.PathValue("tag"))
	return a.saveTags(w, r, c, roomID, tags)
}

func (a *API) saveTags(w http.ResponseWriter, r *http.Request, c *accounts.Caller, roomID id.RoomID, tags map[string]json.RawMessage) error {
	if err := a.syncEngine.SetRoomTags(r.Context(), c.UserID, roomID, tags); err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, struct{}{})
}
