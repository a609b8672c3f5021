// Package clientapi serves the Matrix client-server API
// (/_matrix/client/*): thin handlers, one file per spec module, that parse
// a request, call a service and write JSON.
package clientapi

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"

	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/config"
	"github.com/palpo-im/palpo-desktop/server/e2ee"
	"github.com/palpo-im/palpo-desktop/server/httpapi"
	"github.com/palpo-im/palpo-desktop/server/keybackup"
	"github.com/palpo-im/palpo-desktop/server/media"
	"github.com/palpo-im/palpo-desktop/server/notices"
	"github.com/palpo-im/palpo-desktop/server/push"
	"github.com/palpo-im/palpo-desktop/server/rooms"
	"github.com/palpo-im/palpo-desktop/server/search"
	"github.com/palpo-im/palpo-desktop/server/slidingsync"
	"github.com/palpo-im/palpo-desktop/server/syncer"
	"github.com/palpo-im/palpo-desktop/server/todevice"
)

// Deps is what the client API needs from the rest of the server.
type Deps struct {
	// ServerName is this server's name (the part after ':' in user IDs).
	ServerName string
	// BaseURL returns the URL clients should use; it is a func because the
	// listening port may only be known after the listener is bound.
	BaseURL func() string
	// PublicBaseURL is public_baseurl ("" when not set): when set, it is
	// what every client is told, whatever address it came by.
	PublicBaseURL string
	// Accounts owns registration, login, devices and profiles.
	Accounts *accounts.Service
	// Rooms owns rooms, their events and membership.
	Rooms *rooms.Service
	// Sync is the /sync engine; it also owns filters and account data.
	Sync *syncer.Service
	// SlidingSync is simplified sliding sync (MSC4186), for Element X.
	SlidingSync *slidingsync.Service
	// Push owns push rules, pushers and notifications.
	Push *push.Service
	// ToDevice sends to-device messages.
	ToDevice *todevice.Service
	// KeyBackup owns server-side key backups.
	KeyBackup *keybackup.Service
	// E2EE owns end-to-end encryption keys and cross-signing.
	E2EE *e2ee.Service
	// Media is the media repository.
	Media *media.Service
	// Search is server-side search.
	Search *search.Service
	// Support is what /.well-known/matrix/support publishes.
	Support config.Support
	// Notices owns the server notices rooms (nil: none), which their
	// users may not reject.
	Notices *notices.Service
	// ApprovalURL is the OAuth account page URL for an account management
	// action, as the client that made r should open it (nil with OAuth
	// off): where an OAuth session's person approves a cross-signing reset.
	// Set exactly when the OAuth 2.0 server (package oauth) runs: /versions
	// then advertises v1.15, and invite pages link to its sign-up page.
	ApprovalURL func(r *http.Request, action string) string
	// RemoteProfile asks another server for its user's profile (nil while
	// federation is off).
	RemoteProfile func(ctx context.Context, user id.UserID) (map[string]json.RawMessage, error)
}

// API holds the client API's handlers.
type API struct {
	deps       Deps
	accounts   *accounts.Service
	rooms      *rooms.Service
	syncEngine *syncer.Service
	toDevice   *todevice.Service
	keyBackup  *keybackup.Service
}

// Register adds every client-server endpoint to rt.
func Register(rt *httpapi.Router, deps Deps) *API {
	a := &API{deps: deps, accounts: deps.Accounts, rooms: deps.Rooms, syncEngine: deps.Sync, toDevice: deps.ToDevice, keyBackup: deps.KeyBackup}
	a.registerDiscovery(rt)
	a.registerRegistration(rt)
	a.registerLogin(rt)
	a.registerAccount(rt)
	a.registerCapabilities(rt)
	a.registerDevices(rt)
	a.registerProfile(rt)
	a.registerRooms(rt)
	a.registerRoomEvents(rt)
	a.registerSync(rt)
	a.registerSlidingSync(rt)
	a.registerPush(rt)
	a.registerMisc(rt)
	a.registerToDevice(rt)
	a.registerKeyBackup(rt)
	a.registerPresence(rt)
	a.registerTags(rt)
	a.registerTyping(rt)
	a.registerReceipts(rt)
	a.registerMembers(rt)
	a.registerContext(rt)
	a.registerKeys(rt)
	a.registerMedia(rt)
	a.registerRelations(rt)
	a.registerDirectory(rt)
	a.registerUserDirectory(rt)
	a.registerHierarchy(rt)
	a.registerSearch(rt)
	a.registerModeration(rt)
	a.registerEventStream(rt)
	a.registerMutualRooms(rt)
	a.registerSupport(rt)
	a.registerAdmin(rt)
	a.registerOpenID(rt)
	// Old clients (matrix-nio before 0.25, weechat-matrix, …) use r0 for
	// every request, and v3 is r0 renamed (/versions still claims r0.6.1).
	// Giving r0 to every v3 route here, after all the modules, means an
	// endpoint added later gets it too without asking.
	rt.Mirror(v3, r0, isV3Only)
	rt.Mirror(mediaV3, mediaR0, isV3Only)
	return a
}

// Path prefixes of the client API's and the content repository's versions.
const (
	v3      = "/_matrix/client/v3"
	v1      = "/_matrix/client/v1"
	r0      = "/_matrix/client/r0"
	mediaV3 = "/_matrix/media/v3"
	mediaV1 = "/_matrix/media/v1"
	mediaR0 = "/_matrix/media/r0"
)

// v3Only lists the v3 endpoints that get no r0 twin. Like Synapse, whose
// r0 set old clients were written against, Palpo serves under r0 even
// endpoints newer than r0.6.1 (knock, refresh, keys/signatures/upload…):
// they are v3's unchanged and harmless to an old client. These few Synapse
// keeps to v3 alone, so no client has ever called them with r0.
var v3Only = []httpapi.Route{
	{Method: http.MethodPost, Path: v3 + "/keys/device_signing/upload"},
	{Method: http.MethodPost, Path: v3 + "/rooms/{roomId}/report"},
	{Method: http.MethodPost, Path: v3 + "/users/{userId}/report"},
	// Asynchronous upload (spec v1.7) pairs with /_matrix/media/v1/create.
	{Method: http.MethodPut, Path: mediaV3 + "/upload/{serverName}/{mediaId}"},
}

func isV3Only(r httpapi.Route) bool { return slices.Contains(v3Only, r) }

// V3Only returns the v3 routes deliberately served without an r0 twin
// (for the test that every other v3 route has one).
func V3Only() []httpapi.Route { return slices.Clone(v3Only) }

// authedHandler serves a request from a logged-in user.
type authedHandler func(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error

// authed wraps h with access-token authentication: the token comes from the
// Authorization header or, for old clients, the access_token query parameter.
// Locked and suspended accounts are held to their limits (suspension.go).
func (a *API) authed(h authedHandler) httpapi.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		c, err := a.authenticate(r)
		if err != nil {
			return err
		}
		if err := a.checkSuspended(r, c); err != nil {
			return err
		}
		return h(w, r, c)
	}
}
