package clientapi

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/httpapi"
	"github.com/palpo-im/palpo-desktop/server/rooms"
)

// Room creation and membership (spec: "Rooms" and "Room membership").
func (a *API) registerRooms(rt *httpapi.Router) {
	rt.Handle(http.MethodPost, v3+"/createRoom", a.authed(a.createRoom))
	rt.Handle(http.MethodPost, v3+"/join/{roomIdOrAlias}", a.authed(a.joinByIDOrAlias))
	rt.Handle(http.MethodPost, v3+"/knock/{roomIdOrAlias}", a.authed(a.knock))
	rt.Handle(http.MethodPost, v3+"/rooms/{roomId}/join", a.authed(a.joinRoom))
	rt.Handle(http.MethodPost, v3+"/rooms/{roomId}/invite", a.authed(a.membershipOf(event.MembershipInvite, false)))
	rt.Handle(http.MethodPost, v3+"/rooms/{roomId}/kick", a.authed(a.membershipOf(event.MembershipLeave, false)))
	rt.Handle(http.MethodPost, v3+"/rooms/{roomId}/ban", a.authed(a.membershipOf(event.MembershipBan, false)))
	rt.Handle(http.MethodPost, v3+"/rooms/{roomId}/unban", a.authed(a.membershipOf(event.MembershipLeave, true)))
	rt.Handle(http.MethodPost, v3+"/rooms/{roomId}/leave", a.authed(a.leave))
	rt.Handle(http.MethodPost, v3+"/rooms/{roomId}/forget", a.authed(a.forget))
	rt.Handle(http.MethodGet, v3+"/joined_rooms", a.authed(a.joinedRooms))
	rt.Handle(http.MethodPost, v3+"/rooms/{roomId}/upgrade", a.authed(a.upgradeRoom))
}

// readOptionalJSON decodes a body that clients may leave empty.
func readOptionalJSON(r *http.Request, v any) error {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return httpapi.ReadJSON(r, v) // reports the body-limit error
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return nil
	}
	return httpapi.DecodeJSON(body, v)
}

// roomIDParam parses the {roomId} path parameter.
func roomIDParam(r *http.Request) (id.RoomID, error) {
	roomID := id.RoomID(r.PathValue("roomId"))
	if !strings.HasPrefix(string(roomID), "!") || len(roomID) < 2 {
		return "", mautrix.MInvalidParam.WithMessage("Invalid room ID")
	}
	return roomID, nil
}

func (a *API) createRoom(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	var req rooms.CreateRoomRequest
	if err := httpapi.ReadJSON(r, &req); err != nil {
		return err
	}
	roomID, err := a.rooms.CreateRoom(r.Context(), c.UserID, &req)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string]id.RoomID{"room_id": roomID})
}

type membershipBody struct {
	UserID id.UserID `json:"user_id"`
	Reason string    `json:"reason"`
}

// resolveRoom accepts a room ID or a local alias.
func (a *API) resolveRoom(r *http.Request, idOrAlias string) (id.RoomID, error) {
	switch {
	case strings.HasPrefix(idOrAlias, "!"):
		return id.RoomID(idOrAlias), nil
	case strings.HasPrefix(idOrAlias, "#"):
		return a.rooms.ResolveAlias(r.Context(), id.RoomAlias(idOrAlias))
	}
	return "", mautrix.MInvalidParam.WithMessage("Expected a room ID or a room alias")
}

// join serves join and knock. Keys of the body other than reason are
// kept in the member event, as Synapse keeps them (the rooms service drops
// those it sets itself).
func (a *API) join(w http.ResponseWriter, r *http.Request, c *accounts.Caller, roomID id.RoomID, membership event.Membership, via []string) error {
	var body map[string]json.RawMessage
	if err := readOptionalJSON(r, &body); err != nil {
		return err
	}
	var reason string
	if raw, ok := body["reason"]; ok {
		if err := json.Unmarshal(raw, &reason); err != nil {
			return mautrix.MBadJSON.WithMessage("reason must be a string")
		}
	}
	_, err := a.rooms.ChangeMembership(r.Context(), rooms.MembershipChange{
		Sender: c.UserID, Target: c.UserID, RoomID: roomID, Membership: membership, Reason: reason, Extra: body, Via: via,
	})
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string]id.RoomID{"room_id": roomID})
}

// joinTarget resolves the room of a join or knock by ID or alias, with the
// servers to go through if this server is not in it: the request's via
// (and the deprecated server_name), then an alias's servers.
func (a *API) joinTarget(r *http.Request) (id.RoomID, []string, error) {
	q := r.URL.Query()
	via := append(q["via"], q["server_name"]...)
	idOrAlias := r.PathValue("roomIdOrAlias")
	if strings.HasPrefix(idOrAlias, "#") {
		roomID, servers, err := a.rooms.ResolveAliasServers(r.Context(), id.RoomAlias(idOrAlias))
		return roomID, append(via, servers...), err
	}
	roomID, err := a.resolveRoom(r, idOrAlias)
	return roomID, via, err
}

func (a *API) joinByIDOrAlias(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	roomID, via, err := a.joinTarget(r)
	if err != nil {
		return err
	}
	return a.join(w, r, c, roomID, event.MembershipJoin, via)
}

func (a *API) knock(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	roomID, via, err := a.joinTarget(r)
	if err != nil {
		return err
	}
	return a.join(w, r, c, roomID, event.MembershipKnock, via)
}

func (a *API) joinRoom(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	roomID, err := roomIDParam(r)
	if err != nil {
		return err
	}
	return a.join(w, r, c, roomID, event.MembershipJoin, nil)
}

// readTargetChange reads the room and the {user_id, reason} body of an
// invite, kick, ban or unban.
func readTargetChange(r *http.Request) (id.RoomID, membershipBody, error) {
	var body membershipBody
	roomID, err := roomIDParam(r)
	if err != nil {
		return "", body, err
	}
	if err := httpapi.ReadJSON(r, &body); err != nil {
		return "", body, err
	}
	if _, _, err := body.UserID.ParseAndValidateRelaxed(); err != nil {
		return "", body, mautrix.MInvalidParam.WithMessage("user_id must be a valid user ID")
	}
	return roomID, body, nil
}

// membershipOf serves invite, kick, ban and unban: a change to another
// user. Unban is a leave that only applies to a banned user.
func (a *API) membershipOf(m event.Membership, unban bool) authedHandler {
	return func(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
		roomID, body, err := readTargetChange(r)
		if err != nil {
			return err
		}
		if m == event.MembershipLeave && body.UserID == c.UserID && !unban {
			return mautrix.MForbidden.WithMessage("Use /leave to leave a room")
		}
		if unban {
			current, err := a.rooms.MembershipOf(r.Context(), roomID, body.UserID)
			if err != nil {
				return err
			}
			if current != event.MembershipBan {
				return mautrix.MForbidden.WithMessage(string(body.UserID) + " is not banned")
			}
		}
		_, err = a.rooms.ChangeMembership(r.Context(), rooms.MembershipChange{
			Sender: c.UserID, Target: body.UserID, RoomID: roomID, Membership: m, Reason: body.Reason,
		})
		if err != nil {
			return err
		}
		return httpapi.WriteJSON(w, http.StatusOK, struct{}{})
	}
}

func (a *API) leave(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	roomID, err := roomIDParam(r)
	if err != nil {
		return err
	}
	var body membershipBody
	if err := readOptionalJSON(r, &body); err != nil {
		return err
	}
	_, err = a.rooms.ChangeMembership(r.Context(), rooms.MembershipChange{
		Sender: c.UserID, Target: c.UserID, RoomID: roomID, Membership: event.MembershipLeave, Reason: body.Reason,
	})
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, struct{}{})
}

func (a *API) forget(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	roomID, err := roomIDParam(r)
	if err != nil {
		return err
	}
	if err := a.rooms.Forget(r.Context(), c.UserID, roomID); err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, struct{}{})
}

func (a *API) joinedRooms(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	rs, err := a.rooms.JoinedRooms(r.Context(), c.UserID)
	if err != nil {
		return err
	}
	if rs == nil {
		rs = []id.RoomID{}
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string][]id.RoomID{"joined_rooms": rs})
}

func (a *API) upgradeRoom(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	roomID, err := roomIDParam(r)
	if err != nil {
		return err
	}
	var body struct {
		NewVersion         id.RoomVersion `json:"new_version"`
		AdditionalCreators []id.UserID    `json:"additional_creators"`
	}
	if err := httpapi.ReadJSON(r, &body); err != nil {
		return err
	}
	if body.NewVersion == "" {
		return accounts.MMissingParam.WithMessage("Missing new_version")
	}
	newRoom, err := a.rooms.Upgrade(r.Context(), c.UserID, roomID, body.NewVersion, body.AdditionalCreators)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string]id.RoomID{"replacement_room": newRoom})
}
