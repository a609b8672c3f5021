// Package httpapi is Palpo's HTTP core: the router, the middleware every
// request passes through (panic recovery, logging, CORS, body limits), JSON
// request decoding, and the one place that turns an error into a Matrix error
// response. The client and federation APIs register their routes on it.
package httpapi

import (
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"
)

// HandlerFunc serves one endpoint. It writes its success response itself
// (usually with WriteJSON) and returns an error otherwise; the router turns
// that error into exactly one Matrix error response.
type HandlerFunc func(w http.ResponseWriter, r *http.Request) error

// Route is one method and path pattern served by the router, in
// net/http.ServeMux pattern syntax ({name} and {name...} wildcards).
type Route struct {
	Method string
	Path   string
}

// RouteOption adjusts how one route is served.
type RouteOption func(*endpoint)

// MaxBody overrides the request body limit for one route; media uploads use
// it to stream bodies far larger than the default limit. Such a body may
// take as long as it needs while it keeps arriving (see SetBodyTimeout).
func MaxBody(limit int64) RouteOption {
	return func(e *endpoint) { e.maxBody, e.streamed = limit, true }
}

type endpoint struct {
	handler  HandlerFunc
	maxBody  int64
	streamed bool
}

// pathHandler dispatches the methods registered for one path pattern, so an
// implemented path with the wrong method gets 405 M_UNRECOGNIZED (the spec's
// answer) rather than ServeMux's plain-text 405.
type pathHandler struct {
	router  *Router
	methods map[string]*endpoint
}

// Router maps Matrix paths to handlers and applies the middleware.
type Router struct {
	mux            *http.ServeMux
	paths          map[string]*pathHandler
	routes         []Route
	log            *slog.Logger
	defaultMaxBody int64
	bodyTimeout    time.Duration
}

// SetBodyTimeout bounds how long a request body may take to arrive: the
// whole body for ordinary routes, the pause between two reads for the
// MaxBody (upload) routes. The timeout is per request and ends with the
// body, unlike http.Server.ReadTimeout, whose deadline would also cut off
// a long-poll (/sync) still running when it passes. 0 disables it.
func (rt *Router) SetBodyTimeout(d time.Duration) { rt.bodyTimeout = d }

// NewRouter returns a router whose request bodies are limited to maxBody
// bytes unless a route says otherwise.
func NewRouter(log *slog.Logger, maxBody int64) *Router {
	rt := &Router{
		mux:            http.NewServeMux(),
		paths:          map[string]*pathHandler{},
		log:            log,
		defaultMaxBody: maxBody,
	}
	// Anything no route matches is an unknown endpoint.
	rt.mux.Handle("/", unknownEndpoint{rt.wrap(func(http.ResponseWriter, *http.Request) error {
		return ErrUnrecognized
	})})
	return rt
}

// unknownEndpoint is the handler of paths no route matches.
type unknownEndpoint struct{ http.Handler }

// Handle registers h for method and pattern. Registering the same method and
// pattern twice panics, as ServeMux does: it is a programming error.
func (rt *Router) Handle(method, pattern string, h HandlerFunc, opts ...RouteOption) {
	e := &endpoint{handler: h, maxBody: rt.defaultMaxBody}
	for _, o := range opts {
		o(e)
	}
	if rt.endpoint(method, pattern) != nil {
		panic("httpapi: duplicate route " + method + " " + pattern)
	}
	rt.add(method, pattern, e)
}

// Mirror serves every route registered so far under the path prefix from
// also under the prefix to, with the same handler and options: an old API
// version whose endpoints live on unchanged in a newer one, such as the
// client API's r0 inside v3. A route for which skip reports true is left
// out (an endpoint the old version never had), and so is one whose twin is
// registered already, which keeps its own handler. Call it after the
// routes under from are registered; later ones are not mirrored.
func (rt *Router) Mirror(from, to string, skip func(Route) bool) {
	for _, r := range rt.Routes() {
		rest, ok := strings.CutPrefix(r.Path, from+"/")
		if !ok || skip(r) {
			continue
		}
		twin := to + "/" + rest
		if rt.endpoint(r.Method, twin) != nil {
			continue
		}
		rt.add(r.Method, twin, rt.endpoint(r.Method, r.Path))
	}
}

// endpoint is what serves method on pattern, or nil.
func (rt *Router) endpoint(method, pattern string) *endpoint {
	if ph, ok := rt.paths[pattern]; ok {
		return ph.methods[method]
	}
	return nil
}

func (rt *Router) add(method, pattern string, e *endpoint) {
	ph, ok := rt.paths[pattern]
	if !ok {
		ph = &pathHandler{router: rt, methods: map[string]*endpoint{}}
		rt.paths[pattern] = ph
		rt.mux.Handle(pattern, ph)
	}
	ph.methods[method] = e
	rt.routes = append(rt.routes, Route{Method: method, Path: pattern})
}

// Routes lists every registered route in registration order.
func (rt *Router) Routes() []Route { return slices.Clone(rt.routes) }

// ServeHTTP runs the middleware and then the matching route.
func (rt *Router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rt.middleware(http.HandlerFunc(rt.route)).ServeHTTP(w, r)
}

// route hands the request to the mux, unless the mux would answer it
// itself: ServeMux redirects (301) a path that is not clean, such as
// //_matrix/client/versions or /_matrix/client/v3/../v3/x, to its cleaned
// form with an HTML body. No Matrix endpoint lives at such a path, and a
// client following the redirect would resend a POST as a GET, so it gets
// the unknown-endpoint error instead.
func (rt *Router) route(w http.ResponseWriter, r *http.Request) {
	switch h, _ := rt.mux.Handler(r); h.(type) {
	case *pathHandler, unknownEndpoint:
		rt.mux.ServeHTTP(w, r)
	default:
		rt.writeError(w, r, ErrUnrecognized)
	}
}

func (ph *pathHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	method := r.Method
	if method == http.MethodHead {
		method = http.MethodGet
	}
	e, ok := ph.methods[method]
	if !ok {
		allowed := make([]string, 0, len(ph.methods))
		for m := range ph.methods {
			allowed = append(allowed, m)
		}
		slices.Sort(allowed)
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		ph.router.wrap(func(http.ResponseWriter, *http.Request) error {
			return ErrMethodNotAllowed
		}).ServeHTTP(w, r)
		return
	}
	if rt := ph.router; rt.bodyTimeout > 0 && r.ContentLength != 0 && r.Body != http.NoBody {
		r.Body = newTimedBody(w, r.Body, rt.bodyTimeout, e.streamed)
	}
	if e.maxBody > 0 {
		if r.ContentLength > e.maxBody {
			// Refuse before reading a byte of a body we will not accept.
			ph.router.writeError(w, r, errTooLarge(e.maxBody))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, e.maxBody)
	}
	ph.router.wrap(e.handler).ServeHTTP(w, r)
}

// wrap adapts a HandlerFunc to http.Handler, sending its error to writeError.
func (rt *Router) wrap(h HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			rt.writeError(w, r, err)
		}
	})
}
