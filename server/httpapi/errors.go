package httpapi

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"maunium.net/go/mautrix"
)

// Errors every endpoint may answer with.
var (
	ErrUnrecognized     = mautrix.MUnrecognized.WithMessage("Unrecognized request: this endpoint is not implemented by Palpo")
	ErrMethodNotAllowed = mautrix.MUnrecognized.WithMessage("Unrecognized request: this endpoint does not accept that method").WithStatus(http.StatusMethodNotAllowed)
	errInternal         = mautrix.MUnknown.WithMessage("Internal server error").WithStatus(http.StatusInternalServerError)
)

func errTooLarge(limit int64) mautrix.RespError {
	return mautrix.MTooLarge.WithMessage(fmt.Sprintf("Request body is larger than the limit of %d bytes", limit))
}

// BodyError is an error whose response is not a plain Matrix error: the
// user-interactive authentication answer (401 with flows and a session) is
// one. The router writes Body as JSON with Status.
type BodyError interface {
	error
	Status() int
	Body() any
}

// writeError is the one place that writes Matrix error responses. A
// mautrix.RespError goes to the client as it is; anything else is a bug or
// an outage, so it is logged and the client gets a generic M_UNKNOWN that
// leaks no internals.
func (rt *Router) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var resp mautrix.RespError
	var respPtr *mautrix.RespError
	var maxBytes *http.MaxBytesError
	var bodyErr BodyError
	switch {
	case errors.As(err, &bodyErr):
		_ = WriteJSON(w, bodyErr.Status(), bodyErr.Body())
		return
	case errors.As(err, &respPtr) && respPtr != nil:
		resp = *respPtr
	case errors.As(err, &resp):
	case errors.As(err, &maxBytes):
		resp = errTooLarge(maxBytes.Limit)
	case r.Context().Err() != nil && errors.Is(err, r.Context().Err()):
		// The client went away (a long-poll abandoned, a tab closed): not a
		// server failure, and nobody is left to answer.
		rt.log.LogAttrs(r.Context(), slog.LevelDebug, "client gone",
			slog.String("method", r.Method), slog.String("path", r.URL.Path))
		return
	default:
		rt.log.LogAttrs(r.Context(), slog.LevelError, "request failed",
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Any("error", err))
		resp = errInternal
	}
	if resp.StatusCode == 0 {
		resp.StatusCode = http.StatusBadRequest
	}
	// Never pass internal details to clients, even if some code attached them.
	resp.InternalError = ""
	resp.Write(w)
}
