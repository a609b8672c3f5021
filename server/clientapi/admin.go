package clientapi

import (
	"encoding/json"
	"net/http"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/httpapi"
)

// Server administration (spec: "Server Administration" and "Account
// moderation"): whois for admins and for oneself, and the admin-only
// account lock and suspension switches.
func (a *API) registerAdmin(rt *httpapi.Router) {
	rt.Handle(http.MethodGet, v3+"/admin/whois/{userId}", a.authed(a.whois))
	rt.Handle(http.MethodGet, v1+"/admin/lock/{userId}", a.adminOnly(a.getLock))
	rt.Handle(http.MethodPut, v1+"/admin/lock/{userId}", a.adminOnly(a.putLock))
	rt.Handle(http.MethodGet, v1+"/admin/suspend/{userId}", a.adminOnly(a.getSuspend))
	rt.Handle(http.MethodPut, v1+"/admin/suspend/{userId}", a.adminOnly(a.putSuspend))
}

type whoisConnection struct {
	IP        string `json:"ip"`
	LastSeen  int64  `json:"last_seen"`
	UserAgent string `json:"user_agent"`
}

type whoisSession struct {
	Connections []whoisConnection `json:"connections"`
}

type whoisDevice struct {
	Sessions []whoisSession `json:"sessions"`
}

func (a *API) whois(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	userID := id.UserID(r.PathValue("userId"))
	devices, err := a.accounts.Whois(r.Context(), c, userID)
	if err != nil {
		return err
	}
	out := make(map[id.DeviceID]whoisDevice, len(devices))
	for _, d := range devices {
		sess := whoisSession{Connections: []whoisConnection{}}
		if d.LastSeenTS > 0 {
			sess.Connections = append(sess.Connections, whoisConnection{IP: d.LastSeenIP, LastSeen: d.LastSeenTS, UserAgent: d.LastSeenUserAgent})
		}
		out[d.DeviceID] = whoisDevice{Sessions: []whoisSession{sess}}
	}
	return httpapi.WriteJSON(w, http.StatusOK, struct {
		UserID  id.UserID                   `json:"user_id"`
		Devices map[id.DeviceID]whoisDevice `json:"devices"`
	}{userID, out})
}

// adminOnly is authed for server admins: the spec asks that a non-admin be
// refused before any account lookup, so that these endpoints do not tell
// who exists.
func (a *API) adminOnly(h authedHandler) httpapi.HandlerFunc {
	return a.authed(func(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
		if !c.IsAdmin {
			return accounts.ErrNotAdmin
		}
		return h(w, r, c)
	})
}

// readFlag reads the {"<name>": bool} body of the lock and suspend PUTs.
func readFlag(r *http.Request, name string) (bool, error) {
	var body map[string]json.RawMessage
	if err := httpapi.ReadJSON(r, &body); err != nil {
		return false, err
	}
	raw, ok := body[name]
	if !ok {
		return false, accounts.MMissingParam.WithMessage("Missing %s", name)
	}
	var v bool
	if err := json.Unmarshal(raw, &v); err != nil {
		return false, mautrix.MBadJSON.WithMessage("%s must be a boolean", name)
	}
	return v, nil
}

func (a *API) getLock(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	locked, err := a.accounts.Locked(r.Context(), c, id.UserID(r.PathValue("userId")))
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string]bool{"locked": locked})
}

func (a *API) putLock(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	locked, err := readFlag(r, "locked")
	if err != nil {
		return err
	}
	if err := a.accounts.SetLocked(r.Context(), c, id.UserID(r.PathValue("userId")), locked); err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string]bool{"locked": locked})
}

func (a *API) getSuspend(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	suspended, err := a.accounts.Suspended(r.Context(), c, id.UserID(r.PathValue("userId")))
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string]bool{"suspended": suspended})
}

func (a *API) putSuspend(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	suspended, err := readFlag(r, "suspended")
	if err != nil {
		return err
	}
	if err := a.accounts.SetSuspended(r.Context(), c, id.UserID(r.PathValue("userId")), suspended); err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string]bool{"suspended": suspended})
}
