package federation

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto/canonicaljson"
	mfed "maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/federation/signutil"

	"github.com/palpo-im/palpo-desktop/server/config"
	"github.com/palpo-im/palpo-desktop/server/httpapi"
)

// AuthedHandler serves a federation endpoint that requires a signed
// request; origin is the verified name of the server that sent it.
type AuthedHandler func(w http.ResponseWriter, r *http.Request, origin string) error

// HandleAuthed registers a route that requires a valid X-Matrix
// Authorization header: signed by a key of its origin, addressed to us,
// from a server allow_servers/deny_servers let in. Failures answer 401
// M_UNAUTHORIZED (403 M_FORBIDDEN for a denied server) before h runs; h
// gets the request with its body intact. The body limit is the router's
// (httpapi.MaxBody to raise it for one route).
func (s *Service) HandleAuthed(method, pattern string, h AuthedHandler, opts ...httpapi.RouteOption) {
	s.router.Handle(method, pattern, func(w http.ResponseWriter, r *http.Request) error {
		origin, err := s.authenticate(r)
		if err != nil {
			return err
		}
		return h(w, r, origin)
	}, opts...)
}

func unauthorized(msg string) error {
	return mfed.MUnauthorized.WithMessage(msg)
}

// signedRequest is the JSON object an X-Matrix signature covers.
type signedRequest struct {
	Method      string          `json:"method"`
	URI         string          `json:"uri"`
	Origin      string          `json:"origin"`
	Destination string          `json:"destination"`
	Content     json.RawMessage `json:"content,omitempty"`
}

// authenticate checks a request's X-Matrix signature and returns its
// origin; the body is read (within the route's limit) and put back.
func (s *Service) authenticate(r *http.Request) (string, error) {
	var headers []mfed.XMatrixAuth
	for _, h := range r.Header.Values("Authorization") {
		if strings.HasPrefix(h, "X-Matrix ") {
			headers = append(headers, mfed.ParseXMatrixAuth(h))
		}
	}
	if len(headers) == 0 {
		return "", unauthorized("Missing X-Matrix Authorization header: this endpoint needs a signed federation request")
	}
	var body []byte
	if r.Body != nil && r.Method != http.MethodGet && r.Method != http.MethodHead {
		var err error
		if body, err = io.ReadAll(r.Body); err != nil {
			return "", err // M_TOO_LARGE past the limit, via the router
		}
		if len(body) > 0 && !json.Valid(body) {
			return "", mautrix.MNotJSON.WithMessage("Content not JSON.")
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	uri := r.RequestURI
	if uri == "" {
		uri = r.URL.RequestURI()
	}
	var lastErr error
	for _, auth := range headers {
		origin, err := s.verifyXMatrix(r, auth, uri, body)
		if err == nil {
			return origin, nil
		}
		lastErr = err
	}
	return "", lastErr
}

func (s *Service) verifyXMatrix(r *http.Request, auth mfed.XMatrixAuth, uri string, body []byte) (string, error) {
	if auth.Origin == "" || auth.KeyID == "" || auth.Signature == "" {
		return "", unauthorized("X-Matrix Authorization header needs origin, key and sig")
	}
	if config.ValidateServerName(auth.Origin) != nil {
		return "", unauthorized("X-Matrix origin is not a valid server name")
	}
	dest := auth.Destination
	if dest == "" {
		// Servers older than spec v1.3 do not send it; they sign our name.
		dest = s.cfg.ServerName
	} else if dest != s.cfg.ServerName {
		return "", unauthorized("X-Matrix destination is not this server")
	}
	if !s.AllowedServer(auth.Origin) {
		return "", mautrix.MForbidden.WithMessage("This server does not federate with " + auth.Origin)
	}
	key, _, err := s.keys.VerifyKey(r.Context(), auth.Origin, auth.KeyID, time.Now())
	if err != nil {
		s.log.Debug("request key not verified", "origin", auth.Origin, "error", err)
		return "", unauthorized("Could not get a valid key " + string(auth.KeyID) + " of " + auth.Origin)
	}
	msg, err := canonicaljson.Marshal(signedRequest{
		Method: r.Method, URI: uri, Origin: auth.Origin, Destination: dest, Content: body,
	})
	if err != nil {
		return "", unauthorized("Request could not be canonicalised for verification")
	}
	if err := signutil.VerifyJSONCanonical(key, auth.Signature, msg); err != nil {
		return "", unauthorized("Request signature does not verify")
	}
	return auth.Origin, nil
}
