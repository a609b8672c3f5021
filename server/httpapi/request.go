package httpapi

import (
	"net"
	"net/http"
	"strings"
)

// AccessToken extracts a request's access token: the Authorization header,
// or for old clients and tools the access_token query parameter; "" if none.
func AccessToken(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		if tok, ok := strings.CutPrefix(h, "Bearer "); ok {
			return strings.TrimSpace(tok)
		}
		return ""
	}
	return r.URL.Query().Get("access_token")
}

// ClientIP is the address a request came from. Palpo is reached directly (no
// reverse proxy in front of a desktop app), so forwarded-for headers are not
// trusted: anyone could forge them to dodge rate limits.
func ClientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
