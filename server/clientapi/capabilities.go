package clientapi

import (
	"net/http"

	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/httpapi"
	"github.com/palpo-im/palpo-desktop/server/rooms"
)

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

// roomVersions lists the room versions Palpo creates and joins, all stable as
// the spec rates them.
var roomVersions = func() map[id.RoomVersion]string {
	out := make(map[id.RoomVersion]string, len(rooms.SupportedRoomVersions))
	for _, v := range rooms.SupportedRoomVersions {
		out[v] = "stable"
	}
	return out
}()

func (a *API) capabilities(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	var moderation *accountModerationCapability
	if c.IsAdmin {
		moderation = &accountModerationCapability{Suspend: true, Lock: true}
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string]capabilities{"capabilities": {
		ChangePassword: booleanCapability{true},
		RoomVersions:   roomVersionsCapability{Default: a.rooms.DefaultNewRoomVersion(), Available: roomVersions},
		SetDisplayname: booleanCapability{true},
		SetAvatarURL:   booleanCapability{true},
		// Palpo sends no email or SMS, so no 3PID can be validated.
		ThreePIDChanges: booleanCapability{false},
		GetLoginToken:   booleanCapability{true},

		AccountModeration: moderation,
	}})
}
