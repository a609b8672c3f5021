package httpapi

import (
	"errors"
	"io"
	"net/http"
	"os"
	"time"

	"maunium.net/go/mautrix"
)

// errBodyTimeout answers a request whose body stopped arriving in time.
var errBodyTimeout = mautrix.MUnknown.WithStatus(http.StatusRequestTimeout).WithMessage("The request body took too long to arrive")

// timedBody enforces the body timeout through the connection's read
// deadline: set when the handler starts, moved on after each read for a
// streamed body, and cleared at the end of the body so the rest of the
// request (a long-poll) runs without one.
type timedBody struct {
	io.ReadCloser
	rc       *http.ResponseController
	timeout  time.Duration
	streamed bool
}

func newTimedBody(w http.ResponseWriter, body io.ReadCloser, timeout time.Duration, streamed bool) io.ReadCloser {
	rc := http.NewResponseController(w)
	if rc.SetReadDeadline(time.Now().Add(timeout)) != nil {
		return body // a writer without deadlines (a test recorder): nothing to enforce
	}
	return &timedBody{ReadCloser: body, rc: rc, timeout: timeout, streamed: streamed}
}

func (b *timedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	switch {
	case err == io.EOF:
		_ = b.rc.SetReadDeadline(time.Time{})
	case errors.Is(err, os.ErrDeadlineExceeded):
		return n, errBodyTimeout
	case err == nil && n > 0 && b.streamed:
		_ = b.rc.SetReadDeadline(time.Now().Add(b.timeout))
	}
	return n, err
}
