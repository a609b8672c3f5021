package httpapi

import (
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"
)

// CORS headers from the spec's "Web Browser Clients" section, on every
// response, so Element served from another origin can use this server.
var corsHeaders = map[string]string{
	"Access-Control-Allow-Origin":  "*",
	"Access-Control-Allow-Methods": "GET, HEAD, POST, PUT, DELETE, OPTIONS",
	"Access-Control-Allow-Headers": "X-Requested-With, Content-Type, Authorization, Date",
	// Lets browser clients read these on cross-origin media responses.
	"Access-Control-Expose-Headers": "Content-Disposition, Content-Length, Content-Range, ETag",
}

// middleware wraps next in, from the outside in: panic recovery, request
// logging, and CORS (answering preflights without running the endpoint).
// RequestLogMessage is the message of the log line every request writes
// (the desktop app's Logs tab hides those unless asked).
const RequestLogMessage = "request"

func (rt *Router) middleware(next http.Handler) http.Handler {
	return rt.recoverer(rt.logger(cors(next)))
}

func cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		for k, v := range corsHeaders {
			h.Set(k, v)
		}
		if r.Method == http.MethodOptions {
			// The spec forbids running endpoint logic for OPTIONS. Chrome's
			// Private Network Access asks, before a public page may reach a
			// server on localhost or the LAN, whether the server agrees.
			if r.Header.Get("Access-Control-Request-Private-Network") == "true" {
				h.Set("Access-Control-Allow-Private-Network", "true")
			}
			h.Set("Access-Control-Max-Age", "86400")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// statusWriter records the status and size of a response for the log and
// remembers whether headers went out (a panic after that cannot answer).
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(b)
	s.bytes += int64(n)
	return n, err
}

// Flush lets long-lived responses (sync, media) push data early.
func (s *statusWriter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the real writer.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// logger logs one line per request. It logs the path but never the query
// string, which may carry an access_token.
func (rt *Router) logger(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw, ok := w.(*statusWriter)
		if !ok {
			sw = &statusWriter{ResponseWriter: w}
		}
		next.ServeHTTP(sw, r)
		if r.Method == http.MethodOptions {
			return
		}
		rt.log.LogAttrs(r.Context(), slog.LevelInfo, RequestLogMessage,
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.Int("status", sw.status),
			slog.Int64("bytes", sw.bytes),
			slog.Duration("took", time.Since(start)),
			slog.String("remote", r.RemoteAddr),
		)
	})
}

// recoverer turns a panic in a handler into a logged bug and, if nothing was
// sent yet, an M_UNKNOWN 500 answer, instead of a dropped connection.
func (rt *Router) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			p := recover()
			if p == nil {
				return
			}
			if p == http.ErrAbortHandler {
				panic(p)
			}
			rt.log.LogAttrs(r.Context(), slog.LevelError, "panic in handler",
				slog.String("method", r.Method), slog.String("path", r.URL.Path),
				slog.Any("panic", p), slog.String("stack", string(debug.Stack())))
			if sw.status == 0 {
				rt.writeError(sw, r, errInternal)
			}
		}()
		next.ServeHTTP(sw, r)
	})
}
