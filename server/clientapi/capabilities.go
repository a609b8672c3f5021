package clientapi

import (
	"net/http"

	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/httpapi"
)

// DefaultRoomVersion is the version of new rooms: the spec says servers
// SHOULD use room version 12.
const DefaultRoomVersion = id.RoomV12

// RoomVersions are the room versions Palpo creates and joins, with their
// stability as the spec rates them (all stable). Versions 1 to 5 predate
// v6's stricter canonical JSON and auth rules, and rooms still on them are
// rare, so they are not supported. It is kept in this one place so the room
// code checks create, join and upgrade requests against the same list.
var RoomVersions = map[id.RoomVersion]string{
	id.RoomV6:  "stable",
	id.RoomV7:  "stable",
	id.RoomV8:  "stable",
	id.RoomV9:  "stable",
	id.RoomV10: "stable",
	id.RoomV11: "stable",
	id.RoomV12: "stable",
}

func (a *API) registerCapabilities(rt *httpapi.Router) {
	rt.Handle(http.MethodGet, v3+"/capabilities", a.authed(a.capabilities))
}

type booleanCapability struct {
	Enabled bool `json:"enabled"`
}

type roomVersionsCapability struct {
	Default   id.RoomVersion            `json:"default"`
	Available map[id.RoomVersion]string `json:"available"`
}

type capabilities struct {
	ChangePassword  booleanCapability      `json:"m.change_password"`
	RoomVersions    roomVersionsCapability `json:"m.room_versions"`
	SetDisplayname  booleanCapability      `json:"m.set_displayname"`
	SetAvatarURL    booleanCapability      `json:"m.set_avatar_url"`
	ThreePIDChanges booleanCapability      `json:"m.3pid_changes"`
	GetLoginToken   booleanCapability      `json:"m.get_login_token"`
	// AccountModeration is left out for those who may not lock or suspend
	// anyone, as the spec asks.
	AccountModeration *accountModerationCapability `json:"m.account_moderation,omitempty"`
}

type accountModerationCapability struct {
	Suspend bool `json:"suspend"`
	Lock    bool `json:"lock"`
}

func (a *API) capabilities(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	var moderation *accountModerationCapability
	if c.IsAdmin {
		moderation = &accountModerationCapability{Suspend: true, Lock: true}
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string]capabilities{"capabilities": {
		ChangePassword: booleanCapability{true},
		RoomVersions:   roomVersionsCapability{Default: DefaultRoomVersion, Available: RoomVersions},
		SetDisplayname: booleanCapability{true},
		SetAvatarURL:   booleanCapability{true},
		// Palpo sends no email or SMS, so no 3PID can be validated.
		ThreePIDChanges: booleanCapability{false},
		GetLoginToken:   booleanCapability{true},

		AccountModeration: moderation,
	}})
}
