package accounts

import (
	"context"
	"errors"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/storage"
)

// OpenID tokens (spec: "OpenID"): a user asks for one and hands it to a
// widget, Element Call or an integration manager, which asks this server
// (at /_matrix/federation/v1/openid/userinfo) whose token it is. The token
// proves nothing else: it is not an access token. Tokens are stored hashed
// in the database, so they survive a restart until they expire.

// OpenIDTokenLifetime is how long an OpenID token is valid (Synapse's hour).
const OpenIDTokenLifetime = time.Hour

const openIDTokenPrefix = "poi_"

var errUnknownOpenIDToken = mautrix.MUnknownToken.WithMessage("Access token unknown or expired")

// RequestOpenIDToken mints an OpenID token for the caller, who may only ask
// for one in their own name.
func (s *Service) RequestOpenIDToken(ctx context.Context, c *Caller, userID id.UserID) (string, time.Duration, error) {
	if userID != c.UserID {
		return "", 0, mautrix.MForbidden.WithMessage("You can only request an OpenID token for yourself")
	}
	token := newToken(openIDTokenPrefix)
	now := s.Now()
	if err := s.db.InsertOpenIDToken(ctx, hashToken(token), userID, now.Add(OpenIDTokenLifetime).UnixMilli(), now.UnixMilli()); err != nil {
		return "", 0, err
	}
	return token, OpenIDTokenLifetime, nil
}

// OpenIDUserInfo returns whose unexpired OpenID token this is.
func (s *Service) OpenIDUserInfo(ctx context.Context, token string) (id.UserID, error) {
	if token == "" {
		return "", MMissingParam.WithMessage("Missing access_token")
	}
	userID, err := s.db.LookupOpenIDToken(ctx, hashToken(token), s.nowMS())
	if errors.Is(err, storage.ErrNotFound) {
		return "", errUnknownOpenIDToken
	}
	return userID, err
}
