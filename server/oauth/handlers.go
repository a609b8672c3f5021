package oauth

import (
	"io"
	"net/http"
	"strings"

	"github.com/palpo-im/palpo-desktop/server/httpapi"
)

// Paths of the OAuth endpoints and pages. The pages live at short paths a
// person can type: verification_uri is read off a television's screen.
const (
	PathAuthMetadata   = "/_matrix/client/v1/auth_metadata"
	pathAuthMetadataMS = "/_matrix/client/unstable/org.matrix.msc2965/auth_metadata"
	PathRegister       = "/oauth2/register"
	PathAuthorize      = "/oauth2/authorize"
	PathToken          = "/oauth2/token"
	PathRevoke         = "/oauth2/revoke"
	PathDevice         = "/oauth2/device"
	PathAccount        = "/account"
	PathSignIn         = "/account/login"
	PathSignUp         = "/account/register"
	PathSignOut        = "/account/logout"
	PathEndSession     = "/account/sessions/end"
	PathLink           = "/link"
	PathLinkDecide     = "/link/decide"
	PathApprove        = "/account/approve"
)

// Handlers serves the OAuth endpoints and pages.
type Handlers struct {
	svc        *Service
	publicBase string
	serverName string
}

// Register adds the OAuth endpoints and pages to rt. publicBaseURL is
// public_baseurl (""; then each request's own address is the issuer, as
// /.well-known/matrix/client does).
func Register(rt *httpapi.Router, svc *Service, publicBaseURL, serverName string) *Handlers {
	h := &Handlers{svc: svc, publicBase: strings.TrimSuffix(publicBaseURL, "/"), serverName: serverName}
	rt.Handle(http.MethodGet, PathAuthMetadata, h.metadata)
	rt.Handle(http.MethodGet, pathAuthMetadataMS, h.metadata)
	rt.Handle(http.MethodPost, PathRegister, h.registerClient)
	rt.Handle(http.MethodPost, PathToken, h.token)
	rt.Handle(http.MethodPost, PathRevoke, h.revoke)
	rt.Handle(http.MethodPost, PathDevice, h.deviceAuthorization)
	h.registerPages(rt)
	return h
}

// base is the issuer and the endpoints' base URL for a request.
func (h *Handlers) base(r *http.Request) string { return baseURL(h.publicBase, r) }

// baseURL is publicBase when set, else the URL r came to.
func baseURL(publicBase string, r *http.Request) string {
	if publicBase != "" {
		return publicBase
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// Account management actions the account page serves (spec v1.18, and the
// names MSC4191 gave them, which clients written before use).
var accountActions = []string{
	"org.matrix.devices_list", "org.matrix.device_view", "org.matrix.device_delete",
	"org.matrix.sessions_list", "org.matrix.session_view", "org.matrix.session_end",
	ActionCrossSigningReset,
}

// ActionCrossSigningReset is the account page action where the person
// approves replacing their cross-signing keys (the m.oauth stage of
// /keys/device_signing/upload).
const ActionCrossSigningReset = "org.matrix.cross_signing_reset"

// AccountURL is the account page for an action, at the address the
// client that made r uses.
func (h *Handlers) AccountURL(r *http.Request, action string) string {
	return h.base(r) + PathAccount + "?action=" + action
}

type serverMetadata struct {
	Issuer                        string   `json:"issuer"`
	AuthorizationEndpoint         string   `json:"authorization_endpoint"`
	TokenEndpoint                 string   `json:"token_endpoint"`
	RegistrationEndpoint          string   `json:"registration_endpoint"`
	RevocationEndpoint            string   `json:"revocation_endpoint"`
	DeviceAuthorizationEndpoint   string   `json:"device_authorization_endpoint"`
	ResponseTypesSupported        []string `json:"response_types_supported"`
	ResponseModesSupported        []string `json:"response_modes_supported"`
	GrantTypesSupported           []string `json:"grant_types_supported"`
	CodeChallengeMethodsSupported []string `json:"code_challenge_methods_supported"`
	PromptValuesSupported         []string `json:"prompt_values_supported"`
	TokenEndpointAuthMethods      []string `json:"token_endpoint_auth_methods_supported"`
	RevocationEndpointAuthMethods []string `json:"revocation_endpoint_auth_methods_supported"`
	AccountManagementURI          string   `json:"account_management_uri"`
	AccountManagementActions      []string `json:"account_management_actions_supported"`
}

// metadata serves GET /auth_metadata (RFC 8414 fields the spec lists).
func (h *Handlers) metadata(w http.ResponseWriter, r *http.Request) error {
	b := h.base(r)
	w.Header().Set("Cache-Control", "public, max-age=3600")
	return httpapi.WriteJSON(w, http.StatusOK, serverMetadata{
		Issuer:                        b + "/",
		AuthorizationEndpoint:         b + PathAuthorize,
		TokenEndpoint:                 b + PathToken,
		RegistrationEndpoint:          b + PathRegister,
		RevocationEndpoint:            b + PathRevoke,
		DeviceAuthorizationEndpoint:   b + PathDevice,
		ResponseTypesSupported:        []string{responseTypeCode},
		ResponseModesSupported:        []string{"query", "fragment"},
		GrantTypesSupported:           []string{GrantAuthorizationCode, GrantRefreshToken, GrantDeviceCode},
		CodeChallengeMethodsSupported: []string{"S256"},
		PromptValuesSupported:         []string{"create"},
		TokenEndpointAuthMethods:      []string{"none"},
		RevocationEndpointAuthMethods: []string{"none"},
		AccountManagementURI:          b + PathAccount,
		AccountManagementActions:      accountActions,
	})
}

// registerClient serves dynamic client registration (RFC 7591 section 3).
func (h *Handlers) registerClient(w http.ResponseWriter, r *http.Request) error {
	if err := h.svc.accounts.CheckClientRegistrationRate(httpapi.ClientIP(r)); err != nil {
		return err
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	c, err := h.svc.RegisterClient(r.Context(), body)
	if err != nil {
		return err
	}
	noStore(w)
	return httpapi.WriteJSON(w, http.StatusCreated, c)
}

// readForm parses a form-encoded POST body; the OAuth endpoints take their
// parameters there only (RFC 6749 section 3.2).
func readForm(r *http.Request) error {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		return oauthError(errInvalidRequest, "The body must be application/x-www-form-urlencoded")
	}
	if err := r.ParseForm(); err != nil {
		return oauthError(errInvalidRequest, "The body is not a valid form")
	}
	return nil
}

func noStore(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
}

func requester(r *http.Request) Requester {
	return Requester{IP: httpapi.ClientIP(r), UserAgent: r.UserAgent()}
}

// token serves the token endpoint for every grant.
func (h *Handlers) token(w http.ResponseWriter, r *http.Request) error {
	if err := readForm(r); err != nil {
		return err
	}
	res, err := h.svc.Token(r.Context(), r.PostForm, requester(r))
	if err != nil {
		return err
	}
	noStore(w)
	return httpapi.WriteJSON(w, http.StatusOK, res)
}

// revoke serves token revocation: 200 and nothing else, known token or not.
func (h *Handlers) revoke(w http.ResponseWriter, r *http.Request) error {
	if err := readForm(r); err != nil {
		return err
	}
	if err := h.svc.Revoke(r.Context(), r.PostForm); err != nil {
		return err
	}
	noStore(w)
	w.WriteHeader(http.StatusOK)
	return nil
}

type deviceAuthorizationResponse struct {
	*DeviceAuthorization
	VerificationURI         string `json:"verification_uri"`
	VerificationURIComplete string `json:"verification_uri_complete"`
}

// deviceAuthorization serves the device authorization endpoint.
func (h *Handlers) deviceAuthorization(w http.ResponseWriter, r *http.Request) error {
	// Each call stores a grant, and needs no account.
	if err := h.svc.accounts.CheckDeviceAuthorizationRate(httpapi.ClientIP(r)); err != nil {
		return err
	}
	if err := readForm(r); err != nil {
		return err
	}
	res, err := h.svc.AuthorizeDevice(r.Context(), r.PostForm)
	if err != nil {
		return err
	}
	link := h.base(r) + PathLink
	noStore(w)
	return httpapi.WriteJSON(w, http.StatusOK, deviceAuthorizationResponse{
		DeviceAuthorization: res, VerificationURI: link, VerificationURIComplete: link + "?user_code=" + res.UserCode,
	})
}
