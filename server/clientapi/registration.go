package clientapi

import (
	"encoding/json"
	"net/http"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/httpapi"
)

func (a *API) registerRegistration(rt *httpapi.Router) {
	rt.Handle(http.MethodPost, v3+"/register", a.register)
	rt.Handle(http.MethodGet, v3+"/register/available", a.registerAvailable)
	rt.Handle(http.MethodGet, v1+"/register/m.login.registration_token/validity", a.registrationTokenValidity)
	rt.Handle(http.MethodPost, v3+"/register/email/requestToken", a.requestThreepidToken(accounts.ThreepidForRegistration, accounts.MediumEmail))
	rt.Handle(http.MethodPost, v3+"/register/msisdn/requestToken", a.requestThreepidToken(accounts.ThreepidForRegistration, accounts.MediumMSISDN))
}

// errRegistrationDisabled is the spec's answer when nobody may register.
var errRegistrationDisabled = mautrix.MForbidden.WithMessage("Registration is disabled")

type registerRequest struct {
	Auth                     json.RawMessage `json:"auth"`
	Username                 *string         `json:"username"`
	Password                 *string         `json:"password"`
	DeviceID                 id.DeviceID     `json:"device_id"`
	InitialDeviceDisplayName string          `json:"initial_device_display_name"`
	InhibitLogin             bool            `json:"inhibit_login"`
	RefreshToken             bool            `json:"refresh_token"`
}

// register serves POST /register. The user name and password are checked
// before user-interactive auth, as the spec requires for the user name and
// Synapse does for both, so a client learns of a taken name or weak password
// before the person spends an invite token.
func (a *API) register(w http.ResponseWriter, r *http.Request) error {
	ip := httpapi.ClientIP(r)
	// Every request counts, the UIA round trips too: each one without a
	// session starts a new one, which must not be free.
	if err := a.accounts.CheckRegisterRate(ip); err != nil {
		return err
	}
	switch kind := r.URL.Query().Get("kind"); kind {
	case "", "user":
	case "guest":
		return accounts.GuestRegistrationRefused
	default:
		return mautrix.MInvalidParam.WithMessage("kind must be user or guest")
	}
	if !a.accounts.RegistrationEnabled() {
		return errRegistrationDisabled
	}
	var req registerRequest
	if err := httpapi.ReadJSON(r, &req); err != nil {
		return err
	}
	if req.Username != nil {
		*req.Username = accounts.RequestedLocalpart(*req.Username)
		if err := a.accounts.CheckUsernameAvailable(r.Context(), *req.Username); err != nil {
			return err
		}
	}
	if req.Password != nil {
		if err := a.accounts.CheckPasswordStrength(*req.Password); err != nil {
			return err
		}
	}
	sess, err := a.accounts.CheckUIA(r.Context(), accounts.UIARequest{
		Auth:      req.Auth,
		Flows:     a.accounts.RegistrationFlows(),
		Operation: "register",
		IP:        ip,
	})
	if err != nil {
		return err
	}
	if req.Password == nil || *req.Password == "" {
		return accounts.MMissingParam.WithMessage("Missing password")
	}
	acct := accounts.NewAccount{
		Password:          *req.Password,
		RegistrationToken: sess.RegistrationToken,
	}
	if req.Username != nil {
		acct.Localpart = *req.Username
	}
	if !req.InhibitLogin {
		acct.Login = &accounts.SessionParams{
			DeviceID:     req.DeviceID,
			DisplayName:  req.InitialDeviceDisplayName,
			WantsRefresh: req.RefreshToken,
			IP:           ip,
			UserAgent:    r.UserAgent(),
		}
	}
	res, err := a.accounts.CreateAccount(r.Context(), acct)
	if err != nil {
		// The session stays: the client may retry with another user name.
		return err
	}
	a.accounts.Done(sess)
	return httpapi.WriteJSON(w, http.StatusOK, res)
}

func (a *API) registerAvailable(w http.ResponseWriter, r *http.Request) error {
	if err := a.accounts.CheckUsernameQueryRate(httpapi.ClientIP(r)); err != nil {
		return err
	}
	// As Synapse: a closed server tells nobody which names exist.
	if !a.accounts.RegistrationEnabled() {
		return errRegistrationDisabled
	}
	username := r.URL.Query().Get("username")
	if username == "" {
		return accounts.MMissingParam.WithMessage("Missing username")
	}
	if err := a.accounts.CheckUsernameAvailable(r.Context(), username); err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string]bool{"available": true})
}

func (a *API) registrationTokenValidity(w http.ResponseWriter, r *http.Request) error {
	if err := a.accounts.CheckTokenValidityRate(httpapi.ClientIP(r)); err != nil {
		return err
	}
	if !a.accounts.RegistrationEnabled() {
		return mautrix.MForbidden.WithMessage("Registration is not enabled on this homeserver")
	}
	token := r.URL.Query().Get("token")
	if token == "" {
		return accounts.MMissingParam.WithMessage("Missing token")
	}
	valid, err := a.accounts.RegistrationTokenValid(r.Context(), token)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string]bool{"valid": valid})
}

// threepidValidationRequest is the body of every */requestToken endpoint
// (email and msisdn fields together; the medium decides which count). The
// fields Palpo has no use for are decoded anyway, so that a value of the
// wrong type is still answered M_BAD_JSON.
type threepidValidationRequest struct {
	ClientSecret  string `json:"client_secret"`
	Email         string `json:"email"`
	Country       string `json:"country"`
	PhoneNumber   string `json:"phone_number"`
	SendAttempt   *int64 `json:"send_attempt"`
	NextLink      string `json:"next_link"`
	IDServer      string `json:"id_server"`
	IDAccessToken string `json:"id_access_token"`
}

// requestThreepidToken serves the */requestToken endpoints, which need no
// access token; the service checks the body and refuses (nothing can be sent).
func (a *API) requestThreepidToken(purpose accounts.ThreepidPurpose, medium string) httpapi.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var req threepidValidationRequest
		if err := httpapi.ReadJSON(r, &req); err != nil {
			return err
		}
		return a.accounts.RequestThreepidValidation(purpose, accounts.ThreepidValidation{
			Medium:       medium,
			ClientSecret: req.ClientSecret,
			Email:        req.Email,
			Country:      req.Country,
			PhoneNumber:  req.PhoneNumber,
			SendAttempt:  req.SendAttempt,
		})
	}
}
