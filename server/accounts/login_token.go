package accounts

import (
	"context"
	"encoding/json"
	"time"

	"github.com/palpo-im/palpo-desktop/server/config"
)

// loginTokenRate bounds POST /login/get_token per user. A login token is a
// whole new session, so the spec encourages limits stricter than usual
// (Synapse: one a minute). A small burst lets someone retry a QR sign-in
// that failed without waiting a minute.
var loginTokenRate = config.RateLimit{PerSecond: 1.0 / 60, Burst: 3}

// RequestLoginToken answers POST /login/get_token: after the caller proves
// their password again (the spec says to re-prompt every time, so a UIA
// session never authorises two tokens) it mints a single-use login token.
func (s *Service) RequestLoginToken(ctx context.Context, c *Caller, auth json.RawMessage, ip string) (string, time.Duration, error) {
	// Refuse before asking for the password when the limit is already hit,
	// so nobody types it in only to be told to wait.
	if ok, wait := s.loginTokens.check(string(c.UserID), s.Now()); !ok {
		return "", 0, limitExceeded(wait)
	}
	sess, err := s.CheckUIA(ctx, UIARequest{
		Auth:      auth,
		Flows:     [][]string{{StagePassword}},
		Operation: "get_token",
		UserID:    c.UserID,
		IP:        ip,
	})
	if err != nil {
		return "", 0, err
	}
	defer s.Done(sess)
	if ok, wait := s.loginTokens.take(string(c.UserID), s.Now()); !ok {
		return "", 0, limitExceeded(wait)
	}
	return s.CreateLoginToken(ctx, c.UserID)
}
