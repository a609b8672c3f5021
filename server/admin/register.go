package admin

import (
	"net/http"

	"maunium.net/go/mautrix"

	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/httpapi"
)

func (a *API) registerServer(rt *httpapi.Router) {
	rt.Handle(http.MethodGet, prefix+"/v1/server_version", a.serverVersion)
	rt.Handle(http.MethodGet, prefix+"/v1/register", a.registerNonce)
	rt.Handle(http.MethodPost, prefix+"/v1/register", a.sharedSecretRegister)
}

// serverVersion needs no access token, as in Synapse: tools call it to
// recognise the server, and the version is no secret (federation's
// /version tells it too).
func (a *API) serverVersion(w http.ResponseWriter, r *http.Request) error {
	return httpapi.WriteJSON(w, http.StatusOK, map[string]string{"server_version": Version})
}

// registerNonce starts a shared-secret registration. Unlike Synapse, which
// hands out nonces even when the feature is off, it answers "not enabled"
// at once: the caller learns sooner, and nobody can fill memory with
// nonces that can never be used.
func (a *API) registerNonce(w http.ResponseWriter, r *http.Request) error {
	nonce, err := a.shared.Nonce()
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string]string{"nonce": nonce})
}

type sharedSecretResponse struct {
	*accounts.LoginResult
	HomeServer string `json:"home_server"`
}

func (a *API) sharedSecretRegister(w http.ResponseWriter, r *http.Request) error {
	b, err := readBody(r)
	if err != nil {
		return err
	}
	// Missing and mistyped fields are M_BAD_JSON, with Synapse's messages.
	req := accounts.SharedSecretRequest{IP: httpapi.ClientIP(r), UserAgent: r.UserAgent()}
	for _, f := range []struct {
		name string
		dst  *string
	}{{"nonce", &req.Nonce}, {"username", &req.Username}, {"password", &req.Password}, {"mac", &req.MAC}} {
		v, err := b.str(f.name, mautrix.MBadJSON)
		if err != nil {
			return err
		}
		if v == nil {
			return mautrix.MBadJSON.WithMessage("%s must be specified", f.name)
		}
		*f.dst = *v
	}
	for _, f := range []struct {
		name string
		dst  *string
	}{{"displayname", &req.DisplayName}, {"user_type", &req.UserType}} {
		v, err := b.str(f.name, mautrix.MBadJSON)
		if err != nil {
			return err
		}
		if v != nil {
			*f.dst = *v
		}
	}
	// Synapse treats any truthy "admin" as admin (and signs it so); a
	// boolean is what every client sends.
	for _, f := range []struct {
		name string
		dst  *bool
	}{{"admin", &req.Admin}, {"inhibit_login", &req.InhibitLogin}, {"refresh_token", &req.RefreshToken}} {
		raw, present := b[f.name]
		if !present || isNull(raw) {
			continue
		}
		v, err := b.boolean(f.name, mautrix.MBadJSON)
		if err != nil {
			return err
		}
		*f.dst = *v
	}
	res, err := a.shared.Register(r.Context(), req)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, sharedSecretResponse{LoginResult: res, HomeServer: a.deps.ServerName})
}
