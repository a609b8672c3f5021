package clientapi

import (
	"net/http"

	"maunium.net/go/mautrix"

	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/httpapi"
)

// Small modules clients call at start-up that Palpo has nothing behind yet:
// third-party networks (spec: "Third-party Networks"; there are no bridges
// or application services) and VoIP TURN servers (spec: "Voice over IP";
// none configured).
func (a *API) registerMisc(rt *httpapi.Router) {
	rt.Handle(http.MethodGet, v3+"/thirdparty/protocols", a.authed(a.thirdPartyProtocols))
	rt.Handle(http.MethodGet, v3+"/thirdparty/protocol/{protocol}", a.authed(a.thirdPartyUnknownProtocol))
	rt.Handle(http.MethodGet, v3+"/thirdparty/location/{protocol}", a.authed(a.thirdPartyUnknownProtocol))
	rt.Handle(http.MethodGet, v3+"/thirdparty/user/{protocol}", a.authed(a.thirdPartyUnknownProtocol))
	rt.Handle(http.MethodGet, v3+"/thirdparty/location", a.authed(a.thirdPartyReverse("alias")))
	rt.Handle(http.MethodGet, v3+"/thirdparty/user", a.authed(a.thirdPartyReverse("userid")))
	rt.Handle(http.MethodGet, v3+"/voip/turnServer", a.authed(a.turnServer))
}

// thirdPartyProtocols lists the third-party protocols bridged here: none.
func (a *API) thirdPartyProtocols(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	return httpapi.WriteJSON(w, http.StatusOK, struct{}{})
}

// thirdPartyUnknownProtocol answers the per-protocol lookups: with no
// protocols, every protocol is unknown.
func (a *API) thirdPartyUnknownProtocol(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	return mautrix.MNotFound.WithMessage("Unknown third-party protocol " + r.PathValue("protocol"))
}

// thirdPartyReverse answers the reverse lookups (by alias, by user ID):
// the parameter is required, and nothing is ever found.
func (a *API) thirdPartyReverse(param string) authedHandler {
	return func(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
		if r.URL.Query().Get(param) == "" {
			return mautrix.RespError{ErrCode: "M_MISSING_PARAM", StatusCode: http.StatusBadRequest}.WithMessage("Missing " + param)
		}
		return mautrix.MNotFound.WithMessage("No third-party entities found")
	}
}

// turnServer answers with no TURN server: an empty object, as Synapse
// does when none is configured, which clients take as "use STUN or
// nothing" (a 404 would be an error to them).
func (a *API) turnServer(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	return httpapi.WriteJSON(w, http.StatusOK, struct{}{})
}
