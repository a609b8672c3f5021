package clientapi

import (
	"encoding/json"
	"net/http"

	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/httpapi"
)

// Session management: login, logout, refresh and login tokens
// (spec: login.yaml, logout.yaml, refresh.yaml, login_token.yaml).
func (a *API) registerLogin(rt *httpapi.Router) {
	rt.Handle(http.MethodGet, v3+"/login", a.loginFlows)
	rt.Handle(http.MethodPost, v3+"/login", a.login)
	rt.Handle(http.MethodPost, v3+"/logout", a.authed(a.logout))
	rt.Handle(http.MethodPost, v3+"/logout/all", a.authed(a.logoutAll))
	rt.Handle(http.MethodPost, v3+"/refresh", a.refresh)
	rt.Handle(http.MethodPost, v1+"/login/get_token", a.authed(a.getLoginToken))
}

func (a *API) loginFlows(w http.ResponseWriter, r *http.Request) error {
	return httpapi.WriteJSON(w, http.StatusOK, struct {
		Flows []accounts.LoginFlow `json:"flows"`
	}{a.accounts.LoginFlows()})
}

type loginResponse struct {
	*accounts.LoginResult
	// HomeServer is deprecated, but older clients still read it.
	HomeServer string `json:"home_server"`
	// WellKnown tells the client the URL to use from now on, as Synapse
	// does: a client that found the server by its address learns the
	// canonical one.
	WellKnown wellKnownResponse `json:"well_known"`
}

func (a *API) login(w http.ResponseWriter, r *http.Request) error {
	var req accounts.LoginRequest
	if err := httpapi.ReadJSON(r, &req); err != nil {
		return err
	}
	res, err := a.accounts.Login(r.Context(), &req, accounts.SessionParams{IP: httpapi.ClientIP(r), UserAgent: r.UserAgent()})
	if err != nil {
		return err
	}
	resp := loginResponse{LoginResult: res, HomeServer: a.deps.ServerName}
	resp.WellKnown.Homeserver.BaseURL = a.deps.BaseURL()
	return httpapi.WriteJSON(w, http.StatusOK, resp)
}

// logout reads no body: the spec defines none, and clients send {} or nothing.
func (a *API) logout(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	if err := a.accounts.Logout(r.Context(), c); err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, struct{}{})
}

func (a *API) logoutAll(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	if err := a.accounts.LogoutAll(r.Context(), c.UserID); err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, struct{}{})
}

type refreshResponse struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	ExpiresInMS  int64  `json:"expires_in_ms"`
}

func (a *API) refresh(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		RefreshToken string `json:"refresh_token"`
	}
	if err := httpapi.ReadJSON(r, &req); err != nil {
		return err
	}
	res, err := a.accounts.Refresh(r.Context(), req.RefreshToken)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, refreshResponse{res.AccessToken, res.RefreshToken, res.ExpiresInMS})
}

func (a *API) getLoginToken(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	var req struct {
		Auth json.RawMessage `json:"auth"`
	}
	if err := httpapi.ReadJSON(r, &req); err != nil {
		return err
	}
	token, ttl, err := a.accounts.RequestLoginToken(r.Context(), c, req.Auth, httpapi.ClientIP(r))
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, struct {
		LoginToken  string `json:"login_token"`
		ExpiresInMS int64  `json:"expires_in_ms"`
	}{token, ttl.Milliseconds()})
}
