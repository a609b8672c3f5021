// Package admin serves the admin API (/_synapse/admin/*): the subset of
// Synapse's admin API that a personal server needs (server version,
// shared-secret registration, users, devices, registration tokens), with
// Synapse's request and response shapes so that its tools (synadm,
// synapse-admin, register_new_matrix_user, mautrix's synapseadmin) work
// unchanged. Status Synapse has no counterpart for (federation's queues)
// is under /_palpo/admin/*, with the same admin authentication. Handlers are thin; the rules are in server/accounts, which the
// command line and the desktop app call directly.
package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strconv"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/federation"
	"github.com/palpo-im/palpo-desktop/server/federation/selfcheck"
	"github.com/palpo-im/palpo-desktop/server/httpapi"
	"github.com/palpo-im/palpo-desktop/server/media"
	"github.com/palpo-im/palpo-desktop/server/notices"
	"github.com/palpo-im/palpo-desktop/server/rooms"
)

// Version is the server version /_synapse/admin/v1/server_version reports.
// Package app sets it from its build-time version: the server must not
// import app, and a package variable set once at program start is simpler
// than threading one string through server.New and every caller.
var Version = "0.0.0-unknown"

// Deps is what the admin API needs from the rest of the server.
type Deps struct {
	// ServerName is this server's name (home_server in registrations).
	ServerName string
	// Accounts owns every rule the admin API applies.
	Accounts *accounts.Service
	// Media is the media repository (nil: no media endpoints).
	Media *media.Service
	// Rooms holds the reports users make (nil: no report endpoints).
	Rooms *rooms.Service
	// Notices sends server notices (nil: no send_server_notice).
	Notices *notices.Service
	// Federation reports federation's state and outbound queues (nil: no
	// federation status endpoint).
	Federation func(ctx context.Context) (federation.Status, error)
	// FederationCheck runs the federation self-check (nil: no check
	// endpoint).
	FederationCheck func(ctx context.Context) ([]selfcheck.Result, error)
}

// API holds the admin API's handlers.
type API struct {
	deps     Deps
	accounts *accounts.Service
	shared   *accounts.SharedSecretRegistration
}

// prefix is where Synapse serves its admin API.
const prefix = "/_synapse/admin"

// Register adds every admin endpoint to rt.
func Register(rt *httpapi.Router, deps Deps) *API {
	a := &API{deps: deps, accounts: deps.Accounts, shared: deps.Accounts.NewSharedSecretRegistration()}
	a.registerServer(rt)
	a.registerUsers(rt)
	a.registerDevices(rt)
	a.registerTokens(rt)
	a.registerMedia(rt)
	a.registerReports(rt)
	a.registerNotices(rt)
	a.registerFederation(rt)
	return a
}

// adminHandler serves a request from a server admin.
type adminHandler func(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error

// admin wraps h with access-token authentication and the admin check:
// no token is 401 M_MISSING_TOKEN, a non-admin's token 403 M_FORBIDDEN.
func (a *API) admin(h adminHandler) httpapi.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		c, err := a.accounts.AuthenticateAdmin(r.Context(), httpapi.AccessToken(r), httpapi.ClientIP(r), r.UserAgent())
		if err != nil {
			return err
		}
		return h(w, r, c)
	}
}

// pathUser is the {userId} path parameter, which must be a local user ID.
func (a *API) pathUser(r *http.Request) (id.UserID, error) {
	userID := id.UserID(r.PathValue("userId"))
	return userID, a.accounts.CheckLocalUser(userID)
}

// emptyObject is the {} many admin endpoints answer with.
var emptyObject = struct{}{}

// Query parameters, parsed as Synapse parses them: a bad value is
// 400 M_INVALID_PARAM naming the parameter.

func queryInt(r *http.Request, name string, def int) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, mautrix.MInvalidParam.WithMessage("Query parameter %s must be a string representing a positive integer.", name)
	}
	return n, nil
}

func queryBool(r *http.Request, name string) (*bool, error) {
	v, present := r.URL.Query()[name]
	if !present {
		return nil, nil
	}
	switch v[0] {
	case "true":
		b := true
		return &b, nil
	case "false":
		b := false
		return &b, nil
	}
	return nil, mautrix.MInvalidParam.WithMessage("Boolean query parameter %s must be one of ['true', 'false']", name)
}

// body is a JSON object request body, read field by field so each field's
// type can be checked and absent fields told apart from null ones.
type body map[string]json.RawMessage

func readBody(r *http.Request) (body, error) {
	var b body
	if err := httpapi.ReadJSON(r, &b); err != nil {
		return nil, err
	}
	if b == nil { // the body was JSON null
		return nil, mautrix.MBadJSON.WithMessage("Request body must be a JSON object")
	}
	return b, nil
}

// readOptionalBody is readBody for endpoints where Synapse accepts an empty
// body as {}.
func readOptionalBody(r *http.Request) (body, error) {
	data, err := io.ReadAll(r.Body)
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return nil, err // the router answers M_TOO_LARGE
	}
	if err != nil {
		return nil, mautrix.MBadJSON.WithMessage("Could not read the request body")
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return body{}, nil
	}
	var b body
	if err := httpapi.DecodeJSON(data, &b); err != nil {
		return nil, err
	}
	if b == nil {
		return nil, mautrix.MBadJSON.WithMessage("Request body must be a JSON object")
	}
	return b, nil
}

func isNull(raw json.RawMessage) bool { return string(raw) == "null" }

// str reads an optional string field; absent and null are both nil.
func (b body) str(name string, bad mautrix.RespError) (*string, error) {
	raw, present := b[name]
	if !present || isNull(raw) {
		return nil, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, bad.WithMessage("%s must be a string", name)
	}
	return &s, nil
}

// boolean reads an optional boolean field; absent is nil.
func (b body) boolean(name string, bad mautrix.RespError) (*bool, error) {
	raw, present := b[name]
	if !present {
		return nil, nil
	}
	var v bool
	if isNull(raw) || json.Unmarshal(raw, &v) != nil {
		return nil, bad.WithMessage("%s must be a boolean", name)
	}
	return &v, nil
}

var integerRE = regexp.MustCompile(`^-?[0-9]+$`)

// integer reads an optional integer field: absent or null is (nil, false
// or true). A number with a fraction or exponent is not an integer, as in
// Synapse.
func (b body) integer(name string, bad mautrix.RespError) (v *int64, null bool, err error) {
	raw, present := b[name]
	if !present {
		return nil, false, nil
	}
	if isNull(raw) {
		return nil, true, nil
	}
	if !integerRE.Match(raw) {
		return nil, false, bad.WithMessage("%s must be an integer or null", name)
	}
	n, perr := strconv.ParseInt(string(raw), 10, 64)
	if perr != nil {
		return nil, false, bad.WithMessage("%s is out of range", name)
	}
	return &n, false, nil
}

// intFits narrows an int64 to int for counts such as uses_allowed.
func intFits(v *int64, name string) (*int, error) {
	if v == nil {
		return nil, nil
	}
	if *v > 1<<31-1 || *v < -(1<<31) {
		return nil, mautrix.MInvalidParam.WithMessage("%s is out of range", name)
	}
	n := int(*v)
	return &n, nil
}
