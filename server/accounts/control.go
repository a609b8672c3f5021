package accounts

import (
	"crypto/subtle"

	"maunium.net/go/mautrix/id"
)

// Local control: the desktop app or `palpo serve` gives the admin tools on
// the same computer a secret (in <data dir>/control.json, readable by the
// owner only) with which they call the admin API of the running server.
// They need it because only the running process may write room events (the
// lock that keeps each room's event graph linear is in-process), so
// deactivating a user, which leaves their rooms, must be done by the server
// itself. The secret is accepted by AuthenticateAdmin only: it is not an
// access token and the client API knows nothing of it.

// controlTokenPrefix marks a control token, as the other prefixes do.
const controlTokenPrefix = "pct_"

// ControlUserID is the identity of a local control caller. The space makes
// it an invalid user ID (even by the historical grammar), so it can never
// be a real account's, and the "cannot demote yourself" and "keep your own
// device" rules never mistake it for the target user.
func (s *Service) ControlUserID() id.UserID {
	return id.UserID("@palpo control:" + s.serverName)
}

// NewControlToken makes a fresh local-control secret (256 random bits),
// replacing any earlier one, and returns it. Only its hash is kept.
func (s *Service) NewControlToken() string {
	token := newToken(controlTokenPrefix)
	hash := hashToken(token)
	s.control.Store(&hash)
	return token
}

// RevokeControlToken stops accepting the local-control secret.
func (s *Service) RevokeControlToken() { s.control.Store(nil) }

// controlCaller returns the local-control caller if token is the current
// control secret, compared in constant time.
func (s *Service) controlCaller(token string) (*Caller, bool) {
	want := s.control.Load()
	if want == nil || token == "" {
		return nil, false
	}
	if subtle.ConstantTimeCompare(hashToken(token), *want) != 1 {
		return nil, false
	}
	return &Caller{UserID: s.ControlUserID(), IsAdmin: true}, true
}
