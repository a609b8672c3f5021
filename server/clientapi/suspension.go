package clientapi

import (
	"net/http"
	"regexp"

	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/httpapi"
)

// What locked and suspended accounts may do (spec: "Account locking" and
// "Account suspension"). Both are decided here, from the route a request
// matched, so that the rule is one list in one place (and covers the same
// route under every version prefix) rather than a check in every handler.

// routeKey is a request's method and route pattern without the
// /_matrix/client/<version> prefix, such as "POST /createRoom".
func routeKey(r *http.Request) string {
	return r.Method + " " + versionPrefix.ReplaceAllString(r.Pattern, "")
}

var versionPrefix = regexp.MustCompile(`^/_matrix/client/[^/]+`)

// lockedAllowed are the only requests a locked account may make.
var lockedAllowed = map[string]bool{
	"POST /logout":     true,
	"POST /logout/all": true,
}

// authenticate resolves the request's access token, refusing a locked
// account everything but logging out. The route is looked at only for a
// locked account, so other requests pay nothing for the rule.
func (a *API) authenticate(r *http.Request) (*accounts.Caller, error) {
	c, err := a.accounts.AuthenticateTokenAllowLocked(r.Context(), httpapi.AccessToken(r), httpapi.ClientIP(r), r.UserAgent())
	if err != nil {
		return nil, err
	}
	if c.Locked && !lockedAllowed[routeKey(r)] {
		return nil, accounts.ErrLocked
	}
	return c, nil
}

// suspendedForbidden are the writes a suspended account may not make: the
// spec's recommended list (joining, knocking, inviting, sending, changing
// the profile, redacting others' events) and what follows from it
// (creating and upgrading rooms, setting state, moderating others,
// publishing aliases and rooms). Everything else is allowed: reading and
// syncing, leaving and rejecting invites, redacting one's own events,
// devices, keys, key backup, account data, logging out and deactivating.
var suspendedForbidden = map[string]bool{
	"POST /createRoom":                                    true,
	"POST /join/{roomIdOrAlias}":                          true,
	"POST /knock/{roomIdOrAlias}":                         true,
	"POST /rooms/{roomId}/join":                           true,
	"POST /rooms/{roomId}/invite":                         true,
	"POST /rooms/{roomId}/kick":                           true,
	"POST /rooms/{roomId}/ban":                            true,
	"POST /rooms/{roomId}/unban":                          true,
	"POST /rooms/{roomId}/upgrade":                        true,
	"PUT /rooms/{roomId}/send/{eventType}/{txnId}":        true,
	"PUT /rooms/{roomId}/state/{eventType}":               true,
	"PUT /rooms/{roomId}/state/{eventType}/{stateKey...}": true,
	"PUT /profile/{userId}/{keyName}":                     true,
	"DELETE /profile/{userId}/{keyName}":                  true,
	"PUT /directory/room/{roomAlias}":                     true,
	"PUT /directory/list/room/{roomId}":                   true,
}

// joinRoutes are the joins by room ID (or alias).
var joinRoutes = map[string]bool{
	"POST /join/{roomIdOrAlias}": true,
	"POST /rooms/{roomId}/join":  true,
}

// redactRoute may be used by a suspended account on its own events only.
const redactRoute = "PUT /rooms/{roomId}/redact/{eventId}/{txnId}"

// checkSuspended refuses a suspended caller's writes with M_USER_SUSPENDED.
func (a *API) checkSuspended(r *http.Request, c *accounts.Caller) error {
	if !c.Suspended {
		return nil
	}
	key := routeKey(r)
	if joinRoutes[key] && a.deps.Notices != nil {
		// The spec recommends letting a suspended user talk to the
		// server's administrators: joining the notices room is allowed.
		// Only one of the two wildcards is set; an alias is never a
		// notices room, so joins by alias stay forbidden.
		target := id.RoomID(r.PathValue("roomId") + r.PathValue("roomIdOrAlias"))
		notice, err := a.deps.Notices.IsNoticeRoom(r.Context(), c.UserID, target)
		if err != nil || notice {
			return err
		}
	}
	if suspendedForbidden[key] {
		return accounts.ErrSuspended
	}
	if key == redactRoute {
		ev, err := a.rooms.GetEvent(r.Context(), c.UserID, c.DeviceID, id.RoomID(r.PathValue("roomId")), id.EventID(r.PathValue("eventId")))
		if err != nil || ev.Sender != c.UserID {
			return accounts.ErrSuspended
		}
	}
	return nil
}
