// Package clientapi serves the Matrix client-server API
// (/_matrix/client/*): thin handlers, one file per spec module, that parse
// a request, call a service and write JSON.
package clientapi

import (
	"github.com/palpo-im/palpo-desktop/server/httpapi"
)

// Deps is what the client API needs from the rest of the server.
type Deps struct {
	// ServerName is this server's name (the part after ':' in user IDs).
	ServerName string
	// BaseURL returns the URL clients should use; it is a func because the
	// listening port may only be known after the listener is bound.
	BaseURL func() string
}

// API holds the client API's handlers.
type API struct {
	deps Deps
}

// Register adds every client-server endpoint to rt.
func Register(rt *httpapi.Router, deps Deps) *API {
	a := &API{deps: deps}
	a.registerDiscovery(rt)
	return a
}
