package clientapi

import (
	"encoding/json"
	"net/http"

	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/httpapi"
)

func (a *API) registerAccount(rt *httpapi.Router) {
	rt.Handle(http.MethodGet, v3+"/account/whoami", a.authed(a.whoami))
	rt.Handle(http.MethodPost, v3+"/account/password", a.authed(a.changePassword))
	rt.Handle(http.MethodPost, v3+"/account/deactivate", a.authed(a.deactivate))

	rt.Handle(http.MethodPost, v3+"/account/password/email/requestToken", a.requestThreepidToken(accounts.ThreepidForPasswordReset, accounts.MediumEmail))
	rt.Handle(http.MethodPost, v3+"/account/password/msisdn/requestToken", a.requestThreepidToken(accounts.ThreepidForPasswordReset, accounts.MediumMSISDN))
	rt.Handle(http.MethodPost, v3+"/account/3pid/email/requestToken", a.requestThreepidToken(accounts.ThreepidForAccount, accounts.MediumEmail))
	rt.Handle(http.MethodPost, v3+"/account/3pid/msisdn/requestToken", a.requestThreepidToken(accounts.ThreepidForAccount, accounts.MediumMSISDN))

	rt.Handle(http.MethodGet, v3+"/account/3pid", a.authed(a.threepids))
	rt.Handle(http.MethodPost, v3+"/account/3pid", a.authed(a.postThreepid))
	rt.Handle(http.MethodPost, v3+"/account/3pid/add", a.authed(a.addThreepid))
	rt.Handle(http.MethodPost, v3+"/account/3pid/bind", a.authed(a.bindThreepid))
	rt.Handle(http.MethodPost, v3+"/account/3pid/delete", a.authed(a.deleteThreepid))
	rt.Handle(http.MethodPost, v3+"/account/3pid/unbind", a.authed(a.unbindThreepid))
}

// passwordFlows are the UIA flows of the account endpoints: the user proves
// who they are with their password.
var passwordFlows = [][]string{{accounts.StagePassword}}

type whoamiResponse struct {
	UserID   string `json:"user_id"`
	DeviceID string `json:"device_id,omitempty"`
	IsGuest  bool   `json:"is_guest"`
}

func (a *API) whoami(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	return httpapi.WriteJSON(w, http.StatusOK, whoamiResponse{UserID: c.UserID.String(), DeviceID: c.DeviceID.String()})
}

type changePasswordRequest struct {
	Auth          json.RawMessage `json:"auth"`
	NewPassword   *string         `json:"new_password"`
	LogoutDevices *bool           `json:"logout_devices"`
}

// changePassword serves POST /account/password. Palpo sends no email, so a
// password can only be changed by someone logged in who knows it; the
// spec's token-less reset needs an email stage.
func (a *API) changePassword(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	var req changePasswordRequest
	if err := httpapi.ReadJSON(r, &req); err != nil {
		return err
	}
	// A weak password is refused before the person types their current one.
	if req.NewPassword != nil {
		if err := a.accounts.CheckPasswordStrength(*req.NewPassword); err != nil {
			return err
		}
	}
	sess, err := a.accounts.CheckUIA(r.Context(), accounts.UIARequest{
		Auth:      req.Auth,
		Flows:     passwordFlows,
		Operation: "password",
		UserID:    c.UserID,
		IP:        httpapi.ClientIP(r),
	})
	if err != nil {
		return err
	}
	if req.NewPassword == nil {
		return accounts.MMissingParam.WithMessage("Missing new_password")
	}
	logout := req.LogoutDevices == nil || *req.LogoutDevices // the spec's default is true
	if err := a.accounts.ChangePassword(r.Context(), c.UserID, *req.NewPassword, logout, c.DeviceID); err != nil {
		return err
	}
	a.accounts.Done(sess)
	return httpapi.WriteJSON(w, http.StatusOK, struct{}{})
}

type deactivateRequest struct {
	Auth     json.RawMessage `json:"auth"`
	IDServer string          `json:"id_server"`
	Erase    bool            `json:"erase"`
}

func (a *API) deactivate(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	var req deactivateRequest
	if err := httpapi.ReadJSON(r, &req); err != nil {
		return err
	}
	sess, err := a.accounts.CheckUIA(r.Context(), accounts.UIARequest{
		Auth:      req.Auth,
		Flows:     passwordFlows,
		Operation: "deactivate",
		UserID:    c.UserID,
		IP:        httpapi.ClientIP(r),
	})
	if err != nil {
		return err
	}
	if err := a.accounts.Deactivate(r.Context(), c.UserID, req.Erase); err != nil {
		return err
	}
	a.accounts.Done(sess)
	// The spec: "success" when the server has no identifiers to unbind,
	// which is always the case here (Palpo stores no 3PIDs).
	return httpapi.WriteJSON(w, http.StatusOK, map[string]string{"id_server_unbind_result": "success"})
}

// threepids serves GET /account/3pid: Palpo stores no 3PIDs.
func (a *API) threepids(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	return httpapi.WriteJSON(w, http.StatusOK, map[string][]any{"threepids": {}})
}

type threepidCreds struct {
	ClientSecret  string `json:"client_secret"`
	IDServer      string `json:"id_server"`
	IDAccessToken string `json:"id_access_token"`
	SID           string `json:"sid"`
}

// postThreepid serves the deprecated POST /account/3pid, which binds
// through an identity server: the spec's answer when the credentials cannot
// be verified is 403 M_THREEPID_AUTH_FAILED, and Palpo verifies none.
func (a *API) postThreepid(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	var req struct {
		Creds *threepidCreds `json:"three_pid_creds"`
	}
	if err := httpapi.ReadJSON(r, &req); err != nil {
		return err
	}
	if req.Creds == nil {
		return accounts.MMissingParam.WithMessage("Missing three_pid_creds")
	}
	if err := accounts.CheckThreepidCreds(req.Creds.ClientSecret, req.Creds.SID); err != nil {
		return err
	}
	return accounts.MThreepidAuthFailed.WithMessage("The third-party credentials could not be verified: this server works with no identity server")
}

// addThreepid serves POST /account/3pid/add: user-interactive auth as the
// spec says, then the validation session is necessarily unknown.
func (a *API) addThreepid(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	var req struct {
		Auth         json.RawMessage `json:"auth"`
		ClientSecret string          `json:"client_secret"`
		SID          string          `json:"sid"`
	}
	if err := httpapi.ReadJSON(r, &req); err != nil {
		return err
	}
	if err := accounts.CheckThreepidCreds(req.ClientSecret, req.SID); err != nil {
		return err
	}
	sess, err := a.accounts.CheckUIA(r.Context(), accounts.UIARequest{
		Auth:      req.Auth,
		Flows:     passwordFlows,
		Operation: "add_threepid",
		UserID:    c.UserID,
		IP:        httpapi.ClientIP(r),
	})
	if err != nil {
		return err
	}
	if err := a.accounts.AddThreepid(r.Context(), c.UserID, req.ClientSecret, req.SID); err != nil {
		return err
	}
	a.accounts.Done(sess)
	return httpapi.WriteJSON(w, http.StatusOK, struct{}{})
}

// bindThreepid serves POST /account/3pid/bind, which asks this server to
// bind through an identity server: Palpo trusts none.
func (a *API) bindThreepid(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	var req threepidCreds
	if err := httpapi.ReadJSON(r, &req); err != nil {
		return err
	}
	if err := accounts.CheckThreepidCreds(req.ClientSecret, req.SID); err != nil {
		return err
	}
	if req.IDServer == "" || req.IDAccessToken == "" {
		return accounts.MMissingParam.WithMessage("Missing id_server or id_access_token")
	}
	return accounts.MServerNotTrusted.WithMessage("This server works with no identity server")
}

type threepidRequest struct {
	IDServer string `json:"id_server"`
	Medium   string `json:"medium"`
	Address  string `json:"address"`
}

// deleteThreepid serves POST /account/3pid/delete. The account has no such
// 3PID, so there is nothing to remove and no identity server to unbind
// from: 200 with "no-support", as Synapse answers for an unknown 3PID.
func (a *API) deleteThreepid(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	return a.unbindNothing(w, r)
}

// unbindThreepid serves POST /account/3pid/unbind, answered like delete.
func (a *API) unbindThreepid(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	return a.unbindNothing(w, r)
}

func (a *API) unbindNothing(w http.ResponseWriter, r *http.Request) error {
	var req threepidRequest
	if err := httpapi.ReadJSON(r, &req); err != nil {
		return err
	}
	if err := accounts.CheckThreepid(req.Medium, req.Address); err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string]string{"id_server_unbind_result": accounts.UnbindNoSupport})
}
