package admin

import (
	"net/http"

	"maunium.net/go/mautrix"

	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/httpapi"
)

func (a *API) registerTokens(rt *httpapi.Router) {
	rt.Handle(http.MethodGet, prefix+"/v1/registration_tokens", a.admin(a.listTokens))
	rt.Handle(http.MethodPost, prefix+"/v1/registration_tokens/new", a.admin(a.newToken))
	rt.Handle(http.MethodGet, prefix+"/v1/registration_tokens/{token}", a.admin(a.getToken))
	rt.Handle(http.MethodPut, prefix+"/v1/registration_tokens/{token}", a.admin(a.putToken))
	rt.Handle(http.MethodDelete, prefix+"/v1/registration_tokens/{token}", a.admin(a.deleteToken))
}

// tokenJSON is a registration token as Synapse shows it.
type tokenJSON struct {
	Token       string `json:"token"`
	UsesAllowed *int   `json:"uses_allowed"`
	Pending     int    `json:"pending"`
	Completed   int    `json:"completed"`
	ExpiryTime  *int64 `json:"expiry_time"`
}

func toTokenJSON(t *accounts.RegistrationTokenInfo) tokenJSON {
	return tokenJSON{Token: t.Token, UsesAllowed: t.UsesAllowed, Pending: t.Pending, Completed: t.Completed, ExpiryTime: t.ExpiryTime}
}

func (a *API) listTokens(w http.ResponseWriter, r *http.Request, _ *accounts.Caller) error {
	valid, err := queryBool(r, "valid")
	if err != nil {
		return err
	}
	list, err := a.accounts.RegistrationTokens(r.Context(), valid)
	if err != nil {
		return err
	}
	out := make([]tokenJSON, len(list))
	for i := range list {
		out[i] = toTokenJSON(&list[i])
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string]any{"registration_tokens": out})
}

// tokenLimits reads uses_allowed and expiry_time, whose bad values are
// M_INVALID_PARAM (as every registration token error is in Synapse).
func tokenLimits(b body) (u accounts.RegistrationTokenUpdate, err error) {
	uses, usesNull, err := b.integer("uses_allowed", mautrix.MInvalidParam)
	if err != nil {
		return u, err
	}
	if uses != nil && *uses < 0 {
		return u, mautrix.MInvalidParam.WithMessage("uses_allowed must be a non-negative integer or null")
	}
	u.SetUsesAllowed = uses != nil || usesNull
	if u.UsesAllowed, err = intFits(uses, "uses_allowed"); err != nil {
		return u, err
	}
	expiry, expiryNull, err := b.integer("expiry_time", mautrix.MInvalidParam)
	if err != nil {
		return u, err
	}
	u.SetExpiryTime = expiry != nil || expiryNull
	u.ExpiryTime = expiry
	return u, nil
}

func (a *API) newToken(w http.ResponseWriter, r *http.Request, _ *accounts.Caller) error {
	b, err := readBody(r)
	if err != nil {
		return err
	}
	var n accounts.NewRegistrationToken
	if raw, present := b["token"]; present {
		tok, err := b.str("token", mautrix.MInvalidParam)
		if err != nil {
			return err
		}
		if tok == nil || *tok == "" || isNull(raw) {
			return mautrix.MInvalidParam.WithMessage("token must not be empty")
		}
		n.Token = *tok
	}
	length, lengthNull, err := b.integer("length", mautrix.MInvalidParam)
	if err != nil {
		return err
	}
	if lengthNull {
		return mautrix.MInvalidParam.WithMessage("length must be an integer")
	}
	if n.Length, err = intFits(length, "length"); err != nil {
		return err
	}
	limits, err := tokenLimits(b)
	if err != nil {
		return err
	}
	n.UsesAllowed, n.ExpiryTime = limits.UsesAllowed, limits.ExpiryTime
	t, err := a.accounts.CreateRegistrationToken(r.Context(), n)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, toTokenJSON(t))
}

func (a *API) getToken(w http.ResponseWriter, r *http.Request, _ *accounts.Caller) error {
	t, err := a.accounts.GetRegistrationToken(r.Context(), r.PathValue("token"))
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, toTokenJSON(t))
}

// putToken changes the fields present in the body; an empty object changes
// nothing and returns the token.
func (a *API) putToken(w http.ResponseWriter, r *http.Request, _ *accounts.Caller) error {
	b, err := readBody(r)
	if err != nil {
		return err
	}
	u, err := tokenLimits(b)
	if err != nil {
		return err
	}
	t, err := a.accounts.UpdateRegistrationToken(r.Context(), r.PathValue("token"), u)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, toTokenJSON(t))
}

func (a *API) deleteToken(w http.ResponseWriter, r *http.Request, _ *accounts.Caller) error {
	if err := a.accounts.DeleteRegistrationToken(r.Context(), r.PathValue("token")); err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, emptyObject)
}
