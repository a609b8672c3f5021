package clientapi

import (
	"net/http"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/httpapi"
	"github.com/palpo-im/palpo-desktop/server/rooms"
)

// Room aliases and the published room directory (spec: "Room aliases" and
// "Published room directory").
func (a *API) registerDirectory(rt *httpapi.Router) {
	rt.Handle(http.MethodGet, v3+"/directory/room/{roomAlias}", a.getAlias)
	rt.Handle(http.MethodPut, v3+"/directory/room/{roomAlias}", a.authed(a.putAlias))
	rt.Handle(http.MethodDelete, v3+"/directory/room/{roomAlias}", a.authed(a.deleteAlias))
	rt.Handle(http.MethodGet, v3+"/rooms/{roomId}/aliases", a.authed(a.roomAliases))
	rt.Handle(http.MethodGet, v3+"/directory/list/room/{roomId}", a.getDirectoryVisibility)
	rt.Handle(http.MethodPut, v3+"/directory/list/room/{roomId}", a.authed(a.putDirectoryVisibility))
	rt.Handle(http.MethodGet, v3+"/publicRooms", a.getPublicRooms)
	rt.Handle(http.MethodPost, v3+"/publicRooms", a.authed(a.postPublicRooms))
}

// optionalCaller authenticates a request that may come without a token
// (the spec lets anyone call these endpoints); a token that is sent must
// be valid.
func (a *API) optionalCaller(r *http.Request) (*accounts.Caller, error) {
	if httpapi.AccessToken(r) == "" {
		return nil, nil
	}
	return a.accounts.AuthenticateToken(r.Context(), httpapi.AccessToken(r), httpapi.ClientIP(r), r.UserAgent())
}

func aliasParam(r *http.Request) id.RoomAlias {
	return id.RoomAlias(r.PathValue("roomAlias"))
}

func (a *API) getAlias(w http.ResponseWriter, r *http.Request) error {
	roomID, servers, err := a.rooms.LookupAlias(r.Context(), aliasParam(r))
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, struct {
		RoomID  id.RoomID `json:"room_id"`
		Servers []string  `json:"servers"`
	}{roomID, servers})
}

func (a *API) putAlias(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	alias := aliasParam(r)
	if _, _, err := rooms.ParseAlias(alias); err != nil {
		return err
	}
	var body struct {
		RoomID *id.RoomID `json:"room_id"`
	}
	if err := httpapi.ReadJSON(r, &body); err != nil {
		return err
	}
	if body.RoomID == nil {
		return accounts.MMissingParam.WithMessage("room_id is required")
	}
	if len(*body.RoomID) < 2 || (*body.RoomID)[0] != '!' {
		return mautrix.MInvalidParam.WithMessage("room_id must be a room ID")
	}
	if err := a.rooms.CreateAlias(r.Context(), c.UserID, c.IsAdmin, alias, *body.RoomID); err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, struct{}{})
}

func (a *API) deleteAlias(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	if err := a.rooms.DeleteAlias(r.Context(), c.UserID, c.IsAdmin, aliasParam(r)); err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, struct{}{})
}

func (a *API) roomAliases(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	roomID, err := roomIDParam(r)
	if err != nil {
		return err
	}
	aliases, err := a.rooms.LocalAliases(r.Context(), c.UserID, c.IsAdmin, roomID)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string][]id.RoomAlias{"aliases": aliases})
}

type directoryVisibility struct {
	Visibility *string `json:"visibility"`
}

func (a *API) getDirectoryVisibility(w http.ResponseWriter, r *http.Request) error {
	roomID, err := roomIDParam(r)
	if err != nil {
		return err
	}
	published, err := a.rooms.DirectoryVisibility(r.Context(), roomID)
	if err != nil {
		return err
	}
	v := "private"
	if published {
		v = "public"
	}
	return httpapi.WriteJSON(w, http.StatusOK, directoryVisibility{&v})
}

func (a *API) putDirectoryVisibility(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	roomID, err := roomIDParam(r)
	if err != nil {
		return err
	}
	var body directoryVisibility
	if err := httpapi.ReadJSON(r, &body); err != nil {
		return err
	}
	// The spec's default.
	v := "public"
	if body.Visibility != nil {
		v = *body.Visibility
	}
	if err := a.rooms.SetDirectoryVisibility(r.Context(), c.UserID, c.IsAdmin, roomID, v); err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, struct{}{})
}

// The server parameter names the server whose directory is listed: this
// one's, or another's asked over federation (the rooms service decides).
func (a *API) getPublicRooms(w http.ResponseWriter, r *http.Request) error {
	if _, err := a.optionalCaller(r); err != nil {
		return err
	}
	// third_party_instance_id and include_all_networks are accepted for
	// the GET form too (mautrix sends them): there are no other networks.
	req, err := rooms.PublicRoomsQueryFrom(r.URL.Query())
	if err != nil {
		return err
	}
	page, err := a.rooms.PublicRoomsOn(r.Context(), r.URL.Query().Get("server"), req)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, page)
}

func (a *API) postPublicRooms(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	var body rooms.PublicRoomsBody
	if err := httpapi.ReadJSON(r, &body); err != nil {
		return err
	}
	req := body.Query()
	page, err := a.rooms.PublicRoomsOn(r.Context(), r.URL.Query().Get("server"), req)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, page)
}
