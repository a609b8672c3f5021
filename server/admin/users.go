package admin

import (
	"encoding/json"
	"net/http"
	"strconv"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/httpapi"
)

func (a *API) registerUsers(rt *httpapi.Router) {
	rt.Handle(http.MethodGet, prefix+"/v2/users", a.admin(a.listUsers))
	rt.Handle(http.MethodGet, prefix+"/v2/users/{userId}", a.admin(a.getUser))
	rt.Handle(http.MethodPut, prefix+"/v2/users/{userId}", a.admin(a.putUser))
	rt.Handle(http.MethodPost, prefix+"/v1/deactivate/{userId}", a.admin(a.deactivateUser))
	rt.Handle(http.MethodPost, prefix+"/v1/reset_password/{userId}", a.admin(a.resetPassword))
}

// userJSON is a user in the list, as Synapse shows one. Fields for features
// Palpo does not have (guests, shadow bans) are always false, which is what
// they mean.
type userJSON struct {
	Name         id.UserID `json:"name"`
	IsGuest      bool      `json:"is_guest"`
	Admin        bool      `json:"admin"`
	UserType     *string   `json:"user_type"`
	Deactivated  bool      `json:"deactivated"`
	Erased       bool      `json:"erased"`
	ShadowBanned bool      `json:"shadow_banned"`
	DisplayName  *string   `json:"displayname"`
	AvatarURL    *string   `json:"avatar_url"`
	// CreationTS is in milliseconds here but in seconds in userDetailsJSON,
	// as in Synapse (and the tools built on it).
	CreationTS int64  `json:"creation_ts"`
	LastSeenTS *int64 `json:"last_seen_ts"`
	Locked     bool   `json:"locked"`
}

func nullable[T comparable](v T) *T {
	var zero T
	if v == zero {
		return nil
	}
	return &v
}

func toUserJSON(d *accounts.UserDetails) userJSON {
	return userJSON{
		Name: d.UserID, Admin: d.Admin, UserType: nullable(d.UserType), Deactivated: d.Deactivated, Erased: d.Erased,
		DisplayName: nullable(d.DisplayName), AvatarURL: nullable(d.AvatarURL),
		CreationTS: d.CreatedTS, LastSeenTS: nullable(d.LastSeenTS), Locked: d.Locked,
	}
}

// userDetailsJSON is GET /v2/users/{userId}'s answer.
type userDetailsJSON struct {
	userJSON
	Threepids               []any   `json:"threepids"`
	ExternalIDs             []any   `json:"external_ids"`
	AppserviceID            *string `json:"appservice_id"`
	ConsentServerNoticeSent *string `json:"consent_server_notice_sent"`
	ConsentVersion          *string `json:"consent_version"`
	ConsentTS               *int64  `json:"consent_ts"`
	Suspended               bool    `json:"suspended"`
}

func toUserDetailsJSON(d *accounts.UserDetails) userDetailsJSON {
	out := userDetailsJSON{userJSON: toUserJSON(d), Threepids: []any{}, ExternalIDs: []any{}, Suspended: d.Suspended}
	out.CreationTS = d.CreatedTS / 1000
	return out
}

type userListJSON struct {
	Users     []userJSON `json:"users"`
	NextToken string     `json:"next_token,omitempty"`
	Total     int        `json:"total"`
}

// listUsers answers GET /v2/users. As in Synapse's v2, deactivated users
// are left out unless deactivated=true.
func (a *API) listUsers(w http.ResponseWriter, r *http.Request, _ *accounts.Caller) error {
	from, err := queryInt(r, "from", 0)
	if err != nil {
		return err
	}
	limit, err := queryInt(r, "limit", accounts.DefaultUserPageSize)
	if err != nil {
		return err
	}
	q := accounts.UserQuery{From: from, Limit: limit, Name: r.URL.Query().Get("name"), UserID: r.URL.Query().Get("user_id"), OrderBy: r.URL.Query().Get("order_by")}
	// guests and locked are accepted for compatibility: Palpo has neither.
	for _, name := range []string{"guests", "locked"} {
		if _, err := queryBool(r, name); err != nil {
			return err
		}
	}
	deactivated, err := queryBool(r, "deactivated")
	if err != nil {
		return err
	}
	if deactivated == nil || !*deactivated {
		only := false
		q.Deactivated = &only
	}
	if q.Admins, err = queryBool(r, "admins"); err != nil {
		return err
	}
	switch dir := r.URL.Query().Get("dir"); dir {
	case "", "f":
	case "b":
		q.Backwards = true
	default:
		return mautrix.MInvalidParam.WithMessage("Query parameter dir must be one of ['b', 'f']")
	}
	users, total, err := a.accounts.ListUsers(r.Context(), q)
	if err != nil {
		return err
	}
	out := userListJSON{Users: make([]userJSON, len(users)), Total: total}
	for i := range users {
		out.Users[i] = toUserJSON(&users[i])
	}
	if from+limit < total {
		out.NextToken = strconv.Itoa(from + len(users))
	}
	return httpapi.WriteJSON(w, http.StatusOK, out)
}

func (a *API) getUser(w http.ResponseWriter, r *http.Request, _ *accounts.Caller) error {
	userID, err := a.pathUser(r)
	if err != nil {
		return err
	}
	d, err := a.accounts.GetUserDetails(r.Context(), userID)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, toUserDetailsJSON(d))
}

// putUser creates (201) or modifies (200) an account.
func (a *API) putUser(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	userID, err := a.pathUser(r)
	if err != nil {
		return err
	}
	b, err := readBody(r)
	if err != nil {
		return err
	}
	var ch accounts.UserChanges
	if ch.Password, err = b.str("password", mautrix.MInvalidParam); err != nil {
		return err
	}
	logout, err := b.boolean("logout_devices", mautrix.MInvalidParam)
	if err != nil {
		return err
	}
	ch.LogoutDevices = logout == nil || *logout
	if ch.DisplayName, err = b.str("displayname", mautrix.MInvalidParam); err != nil {
		return err
	}
	if raw, present := b["displayname"]; present && isNull(raw) {
		ch.DisplayName = new(string) // null removes the display name, as "" does
	}
	if ch.AvatarURL, err = b.str("avatar_url", mautrix.MInvalidParam); err != nil {
		return err
	}
	if raw, present := b["avatar_url"]; present && isNull(raw) {
		ch.AvatarURL = new(string)
	}
	if ch.Admin, err = b.boolean("admin", mautrix.MBadJSON); err != nil {
		return err
	}
	if ch.Deactivated, err = b.boolean("deactivated", mautrix.MInvalidParam); err != nil {
		return err
	}
	if ch.Locked, err = b.boolean("locked", mautrix.MInvalidParam); err != nil {
		return err
	}
	if raw, present := b["user_type"]; present {
		if ch.UserType, err = b.str("user_type", mautrix.MInvalidParam); err != nil {
			return err
		}
		if isNull(raw) {
			ch.UserType = new(string)
		}
	}
	// Third-party IDs and SSO identities do not exist in Palpo; silently
	// dropping them would make the caller believe they were stored.
	for _, name := range []string{"threepids", "external_ids"} {
		if raw, present := b[name]; present && !isNull(raw) {
			var list []json.RawMessage
			if err := json.Unmarshal(raw, &list); err != nil {
				return mautrix.MInvalidParam.WithMessage("%s must be a list", name)
			}
			if len(list) > 0 {
				return mautrix.MInvalidParam.WithMessage("Palpo does not support %s", name)
			}
		}
	}
	created, d, err := a.accounts.CreateOrModifyUser(r.Context(), c, userID, ch)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	return httpapi.WriteJSON(w, status, toUserDetailsJSON(d))
}

// deactivateUser answers POST /v1/deactivate/{userId} {erase}; the body may
// be empty, as Synapse allows.
func (a *API) deactivateUser(w http.ResponseWriter, r *http.Request, _ *accounts.Caller) error {
	userID, err := a.pathUser(r)
	if err != nil {
		return err
	}
	b, err := readOptionalBody(r)
	if err != nil {
		return err
	}
	erase, err := b.boolean("erase", mautrix.MBadJSON)
	if err != nil {
		return err
	}
	if err := a.accounts.Deactivate(r.Context(), userID, erase != nil && *erase); err != nil {
		return err
	}
	// Palpo binds no third-party IDs at identity servers, so there is
	// nothing to unbind: that counts as success.
	return httpapi.WriteJSON(w, http.StatusOK, map[string]string{"id_server_unbind_result": "success"})
}

// resetPassword answers POST /v1/reset_password/{userId} {new_password,
// logout_devices (default true)}.
func (a *API) resetPassword(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	userID, err := a.pathUser(r)
	if err != nil {
		return err
	}
	b, err := readBody(r)
	if err != nil {
		return err
	}
	password, err := b.str("new_password", mautrix.MBadJSON)
	if err != nil {
		return err
	}
	if password == nil {
		return accounts.MMissingParam.WithMessage("Missing params: ['new_password']")
	}
	logout, err := b.boolean("logout_devices", mautrix.MBadJSON)
	if err != nil {
		return err
	}
	if err := a.accounts.SetPasswordByAdmin(r.Context(), c, userID, *password, logout == nil || *logout); err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, emptyObject)
}
