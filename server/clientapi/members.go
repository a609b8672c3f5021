package clientapi

import (
	"net/http"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/httpapi"
	"github.com/palpo-im/palpo-desktop/server/rooms"
	"github.com/palpo-im/palpo-desktop/server/syncer"
)

// Member lists (spec: "Room membership", GET /members and /joined_members).
func (a *API) registerMembers(rt *httpapi.Router) {
	rt.Handle(http.MethodGet, v3+"/rooms/{roomId}/members", a.authed(a.members))
	rt.Handle(http.MethodGet, v3+"/rooms/{roomId}/joined_members", a.authed(a.joinedMembers))
}

// membershipParam reads the membership or not_membership query parameter.
func membershipParam(r *http.Request, name string) (event.Membership, error) {
	v := event.Membership(r.URL.Query().Get(name))
	switch v {
	case "", event.MembershipJoin, event.MembershipInvite, event.MembershipKnock, event.MembershipLeave, event.MembershipBan:
		return v, nil
	}
	return "", mautrix.MInvalidParam.WithMessage(name + " must be one of join, invite, knock, leave, ban")
}

func (a *API) members(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	roomID, err := roomIDParam(r)
	if err != nil {
		return err
	}
	var q rooms.MembersQuery
	if q.Membership, err = membershipParam(r, "membership"); err != nil {
		return err
	}
	if q.NotMembership, err = membershipParam(r, "not_membership"); err != nil {
		return err
	}
	// at is a sync or pagination token; only its room event position counts.
	if at := r.URL.Query().Get("at"); at != "" {
		t, err := syncer.ParseToken(at)
		if err != nil {
			return err
		}
		q.At = &t.Events
	}
	evs, err := a.rooms.Members(r.Context(), c.UserID, roomID, q)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string][]*event.Event{"chunk": evs})
}

func (a *API) joinedMembers(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	roomID, err := roomIDParam(r)
	if err != nil {
		return err
	}
	joined, err := a.rooms.JoinedMembers(r.Context(), c.UserID, roomID)
	if err != nil {
		return err
	}
	out := make(map[id.UserID]joinedMember, len(joined))
	for userID, m := range joined {
		out[userID] = joinedMember{DisplayName: nonEmpty(m.DisplayName), AvatarURL: nonEmpty(m.AvatarURL)}
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string]map[id.UserID]joinedMember{"joined": out})
}

// joinedMember is a member in GET /joined_members. Both fields are always
// there, null when the member has none, as Synapse answers: clients read
// them without checking for the key.
type joinedMember struct {
	DisplayName *string `json:"display_name"`
	AvatarURL   *string `json:"avatar_url"`
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
