package clientapi

import (
	"net/http"

	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/httpapi"
)

// OpenID (spec: "OpenID"): tokens a user gives to widgets, Element Call and
// integration managers, and the federation endpoint those services call to
// learn whose token it is. That one endpoint is served on the client
// listener even with federation off (as Synapse can), since the services
// that validate tokens only need to reach this server's public address.
func (a *API) registerOpenID(rt *httpapi.Router) {
	rt.Handle(http.MethodPost, v3+"/user/{userId}/openid/request_token", a.authed(a.requestOpenIDToken))
	rt.Handle(http.MethodGet, "/_matrix/federation/v1/openid/userinfo", a.openIDUserInfo)
}

type openIDTokenResponse struct {
	AccessToken      string `json:"access_token"`
	TokenType        string `json:"token_type"`
	MatrixServerName string `json:"matrix_server_name"`
	ExpiresIn        int64  `json:"expires_in"`
}

func (a *API) requestOpenIDToken(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	// The body is an empty object reserved for later; anything but JSON is
	// still refused.
	var body struct{}
	if err := readOptionalJSON(r, &body); err != nil {
		return err
	}
	token, ttl, err := a.accounts.RequestOpenIDToken(r.Context(), c, id.UserID(r.PathValue("userId")))
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, openIDTokenResponse{
		AccessToken: token, TokenType: "Bearer", MatrixServerName: a.deps.ServerName, ExpiresIn: int64(ttl.Seconds()),
	})
}

func (a *API) openIDUserInfo(w http.ResponseWriter, r *http.Request) error {
	userID, err := a.accounts.OpenIDUserInfo(r.Context(), r.URL.Query().Get("access_token"))
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string]id.UserID{"sub": userID})
}
