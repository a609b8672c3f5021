package server_test

import (
	"errors"

	"maunium.net/go/mautrix"
)

func errorIs(err error, code mautrix.RespError) bool { return errors.Is(err, code) }

func asHTTPError(err error, target *mautrix.HTTPError) bool { return errors.As(err, target) }
