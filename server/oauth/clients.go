package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"

	"maunium.net/go/mautrix"

	"github.com/palpo-im/palpo-desktop/server/httpapi"
	"github.com/palpo-im/palpo-desktop/server/storage"
)

// Client is a registered client's metadata (spec: "Client metadata"), as
// stored and as answered to the registration request. Localized variants
// ("client_name#fr") are not kept, which RFC 7591 allows.
type Client struct {
	ClientID                string   `json:"client_id"`
	ClientIDIssuedAt        int64    `json:"client_id_issued_at,omitempty"`
	ClientName              string   `json:"client_name,omitempty"`
	ClientURI               string   `json:"client_uri"`
	LogoURI                 string   `json:"logo_uri,omitempty"`
	TOSURI                  string   `json:"tos_uri,omitempty"`
	PolicyURI               string   `json:"policy_uri,omitempty"`
	RedirectURIs            []string `json:"redirect_uris,omitempty"`
	ResponseTypes           []string `json:"response_types"`
	GrantTypes              []string `json:"grant_types"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
	ApplicationType         string   `json:"application_type"`
}

// Name is what the pages call the client: its name, or its site's host.
func (c *Client) Name() string {
	if c.ClientName != "" {
		return c.ClientName
	}
	if u, err := url.Parse(c.ClientURI); err == nil && u.Host != "" {
		return u.Host
	}
	return c.ClientID
}

// allows tells whether the client registered a grant type.
func (c *Client) allows(grant string) bool { return slices.Contains(c.GrantTypes, grant) }

// Limits on registered metadata: a registration needs no account, so what
// it may store is bounded.
const (
	maxClientNameLength = 256
	maxURILength        = 2048
	maxRedirectURIs     = 20
)

// Application types.
const (
	appWeb    = "web"
	appNative = "native"
)

// RegisterClient checks a client's metadata (RFC 7591 and the spec's
// rules) and registers it under a new client ID. Errors are *Error with
// invalid_redirect_uri or invalid_client_metadata.
func (s *Service) RegisterClient(ctx context.Context, body []byte) (*Client, error) {
	var c Client
	if err := httpapi.DecodeJSON(body, &c); err != nil {
		// DecodeJSON answers in Matrix's terms (M_NOT_JSON, M_BAD_JSON
		// naming the field); RFC 7591 section 3.2.2 has one error for all.
		msg := "not valid JSON"
		var re mautrix.RespError
		if errors.As(err, &re) {
			msg = re.Err
		}
		return nil, oauthError(errInvalidClientMetadata, "The body must be a JSON object of client metadata: "+msg)
	}
	if err := checkClient(&c); err != nil {
		return nil, err
	}
	c.ClientID = newSecret()[:26]
	c.ClientIDIssuedAt = s.Now().Unix()
	stored, err := json.Marshal(&c)
	if err != nil {
		return nil, err
	}
	if err := s.db.InsertOAuthClient(ctx, c.ClientID, stored, s.Now().UnixMilli()); err != nil {
		return nil, err
	}
	s.log.Info("oauth client registered", "client", c.ClientID, "client_uri", c.ClientURI)
	return &c, nil
}

// Client returns a registered client, or nil when there is none by that ID.
func (s *Service) Client(ctx context.Context, clientID string) (*Client, error) {
	if clientID == "" {
		return nil, nil
	}
	raw, err := s.db.OAuthClient(ctx, clientID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var c Client
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("decode client %s: %w", clientID, err)
	}
	return &c, nil
}

func metadataError(msg string) *Error { return oauthError(errInvalidClientMetadata, msg) }

// checkClient validates and normalises metadata in place.
func checkClient(c *Client) *Error {
	c.ClientID, c.ClientIDIssuedAt = "", 0
	if utf8.RuneCountInString(c.ClientName) > maxClientNameLength {
		return metadataError(fmt.Sprintf("client_name must be at most %d characters", maxClientNameLength))
	}
	if c.ClientURI == "" {
		return metadataError("client_uri is required")
	}
	base, err := parseHTTPURI(c.ClientURI)
	if err != nil || !(base.Scheme == "https" || base.Scheme == "http" && isLoopbackHost(base.Hostname())) {
		return metadataError("client_uri must be an https URL without user name or password (http only on localhost)")
	}
	baseHost := strings.ToLower(base.Hostname())
	for name, v := range map[string]string{"logo_uri": c.LogoURI, "tos_uri": c.TOSURI, "policy_uri": c.PolicyURI} {
		if v == "" {
			continue
		}
		u, err := parseHTTPURI(v)
		if err != nil || u.Scheme != "https" || !hostWithin(u.Hostname(), baseHost) {
			return metadataError(name + " must be an https URL on the host of client_uri or one of its subdomains")
		}
	}
	switch c.ApplicationType {
	case "":
		c.ApplicationType = appWeb
	case appWeb, appNative:
	default:
		return metadataError("application_type must be web or native")
	}
	switch c.TokenEndpointAuthMethod {
	case "":
		c.TokenEndpointAuthMethod = "none"
	case "none":
	default:
		return metadataError("token_endpoint_auth_method must be none: Matrix clients are public clients")
	}
	if c.GrantTypes == nil {
		c.GrantTypes = []string{GrantAuthorizationCode} // RFC 7591's default
	}
	c.GrantTypes = known(c.GrantTypes, GrantAuthorizationCode, GrantRefreshToken, GrantDeviceCode)
	if len(c.GrantTypes) == 0 {
		return metadataError("grant_types must include authorization_code or " + GrantDeviceCode)
	}
	if c.ResponseTypes == nil {
		c.ResponseTypes = []string{responseTypeCode}
	}
	c.ResponseTypes = known(c.ResponseTypes, responseTypeCode)
	if c.allows(GrantAuthorizationCode) {
		if !slices.Contains(c.ResponseTypes, responseTypeCode) {
			return metadataError("response_types must include code to use the authorization_code grant")
		}
		if len(c.RedirectURIs) == 0 {
			return oauthError(errInvalidRedirectURI, "redirect_uris must name at least one URI for the authorization_code grant")
		}
	}
	if len(c.RedirectURIs) > maxRedirectURIs {
		return oauthError(errInvalidRedirectURI, fmt.Sprintf("At most %d redirect_uris", maxRedirectURIs))
	}
	for _, r := range c.RedirectURIs {
		if msg := checkRedirectURI(r, c.ApplicationType, base); msg != "" {
			return oauthError(errInvalidRedirectURI, fmt.Sprintf("Redirect URI %q: %s", r, msg))
		}
	}
	return nil
}

// known keeps the values Palpo understands, once each, in their order: the
// spec asks servers to ignore the others.
func known(vals []string, understood ...string) []string {
	out := []string{}
	for _, v := range vals {
		if slices.Contains(understood, v) && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// parseHTTPURI parses an absolute http(s) URL with a host and no user
// information or fragment.
func parseHTTPURI(raw string) (*url.URL, error) {
	if len(raw) > maxURILength {
		return nil, errors.New("too long")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || u.User != nil || u.Fragment != "" || strings.Contains(raw, "#") {
		return nil, errors.New("not an http(s) URL with a host and no user or fragment")
	}
	return u, nil
}

// hostWithin tells whether host is base or a subdomain of it.
func hostWithin(host, base string) bool {
	host = strings.ToLower(host)
	return host == base || strings.HasSuffix(host, "."+base)
}

func isLoopbackHost(h string) bool {
	return h == "localhost" || h == "127.0.0.1" || h == "::1"
}

// checkRedirectURI applies the spec's "Redirect URI validation" and
// returns what is wrong, or "".
func checkRedirectURI(raw, appType string, base *url.URL) string {
	if len(raw) > maxURILength {
		return "too long"
	}
	if strings.Contains(raw, "#") {
		return "must not have a fragment"
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return "not an absolute URI"
	}
	baseHost := strings.ToLower(base.Hostname())
	switch {
	case u.Scheme == "https":
		if u.User != nil {
			return "must not include a user name or password"
		}
		if !hostWithin(u.Hostname(), baseHost) {
			return "must be on the host of client_uri or one of its subdomains"
		}
		return ""
	case u.Scheme == "http" && appType == appWeb:
		// Only a web client under development on this computer (its
		// client_uri is on localhost) may use plain http.
		if base.Scheme == "http" && u.User == nil && isLoopbackHost(u.Hostname()) && strings.EqualFold(u.Hostname(), base.Hostname()) {
			return ""
		}
		return "web clients must use https"
	case u.Scheme == "http":
		if u.User != nil || !isLoopbackHost(u.Hostname()) {
			return "http is only for the loopback interface (localhost, 127.0.0.1, [::1])"
		}
		if u.Port() != "" {
			return "a loopback redirect URI must not have a port: any port is accepted when authorizing"
		}
		return ""
	case appType == appWeb:
		return "web clients must use https"
	}
	// A native client's private-use scheme: its client_uri's host in
	// reverse-DNS order, and no authority.
	rev := reverseDNS(baseHost)
	scheme := strings.ToLower(u.Scheme)
	if scheme != rev && !strings.HasPrefix(scheme, rev+".") {
		return fmt.Sprintf("a private-use scheme must start with %q, the client_uri host in reverse-DNS order", rev)
	}
	if u.Host != "" || u.User != nil || strings.HasPrefix(strings.TrimPrefix(raw[len(u.Scheme):], ":"), "//") {
		return "a private-use scheme URI must not have an authority (use scheme:/path)"
	}
	return ""
}

func reverseDNS(host string) string {
	labels := strings.Split(host, ".")
	slices.Reverse(labels)
	return strings.Join(labels, ".")
}

// redirectMatches tells whether a redirect_uri of an authorization request
// is one the client registered: exactly, or for a loopback one registered
// without a port, with any port (RFC 8252 section 7.3).
func (c *Client) redirectMatches(requested string) bool {
	if slices.Contains(c.RedirectURIs, requested) {
		return true
	}
	req, err := url.Parse(requested)
	if err != nil || req.Scheme != "http" || req.Port() == "" || req.User != nil || req.Fragment != "" {
		return false
	}
	for _, r := range c.RedirectURIs {
		reg, err := url.Parse(r)
		if err != nil || reg.Scheme != "http" || reg.Port() != "" || !isLoopbackHost(reg.Hostname()) {
			continue
		}
		if reg.Hostname() == req.Hostname() && reg.Path == req.Path && reg.RawQuery == req.RawQuery {
			return true
		}
	}
	return false
}
