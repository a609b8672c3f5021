package media

import (
	"net/url"
	"strconv"
	"time"

	"maunium.net/go/mautrix"
)

// The query parameters of download and thumbnail requests, read the same
// way for clients and for other servers.

// DefaultTimeout is the spec's default timeout_ms: how long a download
// waits for media whose upload is still pending.
const DefaultTimeout = 20 * time.Second

var errMissingParam = mautrix.RespError{ErrCode: "M_MISSING_PARAM", StatusCode: 400}

// ParseTimeout reads timeout_ms (DefaultTimeout when absent, at most an
// hour).
func ParseTimeout(q url.Values) (time.Duration, error) {
	v := q.Get("timeout_ms")
	if v == "" {
		return DefaultTimeout, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, mautrix.MInvalidParam.WithMessage("timeout_ms must be a non-negative integer")
	}
	return time.Duration(min(n, int64(time.Hour/time.Millisecond))) * time.Millisecond, nil
}

// ParseThumbnailQuery reads a thumbnail request's width, height, method
// ("scale" when absent, as Synapse; Thumbnail checks it), animated and
// timeout_ms; the caller fills in which media.
func ParseThumbnailQuery(q url.Values) (ThumbnailRequest, error) {
	var req ThumbnailRequest
	timeout, err := ParseTimeout(q)
	if err != nil {
		return req, err
	}
	req.Timeout, req.Method = timeout, q.Get("method")
	for _, p := range []struct {
		name string
		dst  *int
	}{{"width", &req.Width}, {"height", &req.Height}} {
		v := q.Get(p.name)
		if v == "" {
			return req, errMissingParam.WithMessage("Missing integer query parameter %s", p.name)
		}
		n, err := strconv.ParseInt(v, 10, 32)
		if err != nil || n < 1 {
			return req, mautrix.MInvalidParam.WithMessage("%s must be a positive integer", p.name)
		}
		*p.dst = int(n)
	}
	if req.Method == "" {
		req.Method = "scale"
	}
	if v, ok := q["animated"]; ok {
		switch v[0] {
		case "true", "false":
			b := v[0] == "true"
			req.Animated = &b
		default:
			return req, mautrix.MInvalidParam.WithMessage("animated must be true or false")
		}
	}
	return req, nil
}
