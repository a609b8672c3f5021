package accounts

import (
	"context"
	"crypto/rand"
	"errors"
	"math/big"
	"strings"
	"time"

	"maunium.net/go/mautrix"

	"github.com/palpo-im/palpo-desktop/server/storage"
)

// Registration tokens (invites) as the admin tools manage them. The rules
// are Synapse's, so its admin API clients work unchanged.

// RegistrationTokenChars are the characters a registration token may hold
// (the spec's unreserved URI characters).
const RegistrationTokenChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~-"

// Registration token limits.
const (
	MaxRegistrationTokenLength     = 64
	DefaultRegistrationTokenLength = 16
)

// RegistrationTokenInfo is a registration token with its use counts.
type RegistrationTokenInfo struct {
	Token       string
	UsesAllowed *int // nil: unlimited
	// Pending counts registrations that passed the token stage but have
	// not completed yet; each holds one use.
	Pending    int
	Completed  int
	ExpiryTime *int64 // milliseconds since the epoch; nil: never expires
}

// Valid tells whether the token can still be used at nowMS.
func (t *RegistrationTokenInfo) Valid(nowMS int64) bool {
	if t.ExpiryTime != nil && *t.ExpiryTime <= nowMS {
		return false
	}
	return t.UsesAllowed == nil || t.Pending+t.Completed < *t.UsesAllowed
}

func (s *Service) tokenInfo(t *storage.RegistrationToken) RegistrationTokenInfo {
	s.uia.mu.Lock()
	pending := s.uia.pending[t.Token]
	s.uia.mu.Unlock()
	return RegistrationTokenInfo{Token: t.Token, UsesAllowed: t.UsesAllowed, Pending: pending, Completed: t.Completed, ExpiryTime: t.ExpiryTime}
}

// NewRegistrationToken describes a token to create.
type NewRegistrationToken struct {
	// Token is the token's text; empty generates a random one of Length
	// characters (DefaultRegistrationTokenLength when nil).
	Token  string
	Length *int
	// UsesAllowed: nil for unlimited uses.
	UsesAllowed *int
	// ExpiryTime in milliseconds since the epoch; nil never expires.
	ExpiryTime *int64
}

func errTokenParam(msg string, args ...any) error {
	return mautrix.MInvalidParam.WithMessage(msg, args...)
}

// checkTokenLimits validates the fields creation and updates share.
func (s *Service) checkTokenLimits(usesAllowed *int, expiry *int64) error {
	if usesAllowed != nil && *usesAllowed < 0 {
		return errTokenParam("uses_allowed must be a non-negative integer or null")
	}
	if expiry != nil && *expiry < s.nowMS() {
		return errTokenParam("expiry_time must not be in the past")
	}
	return nil
}

// CreateRegistrationToken creates an invite; M_INVALID_PARAM for a bad or
// already existing token.
func (s *Service) CreateRegistrationToken(ctx context.Context, n NewRegistrationToken) (*RegistrationTokenInfo, error) {
	if n.Token != "" {
		if len(n.Token) > MaxRegistrationTokenLength {
			return nil, errTokenParam("token must not be longer than %d characters", MaxRegistrationTokenLength)
		}
		if strings.Trim(n.Token, RegistrationTokenChars) != "" {
			return nil, errTokenParam("token must consist only of the characters A-Z, a-z, 0-9, '.', '_', '~' and '-'")
		}
	}
	length := DefaultRegistrationTokenLength
	if n.Length != nil {
		length = *n.Length
	}
	if n.Token == "" && (length < 1 || length > MaxRegistrationTokenLength) {
		return nil, errTokenParam("length must be greater than zero and not greater than %d", MaxRegistrationTokenLength)
	}
	if err := s.checkTokenLimits(n.UsesAllowed, n.ExpiryTime); err != nil {
		return nil, err
	}
	// A generated token may collide with an existing one (short lengths
	// make that likely); try a few times, as Synapse does.
	for range 5 {
		t := &storage.RegistrationToken{Token: n.Token, UsesAllowed: n.UsesAllowed, ExpiryTime: n.ExpiryTime, CreatedTS: s.nowMS()}
		if t.Token == "" {
			var err error
			if t.Token, err = randomToken(length); err != nil {
				return nil, err
			}
		}
		err := s.db.CreateRegistrationToken(ctx, t)
		if errors.Is(err, storage.ErrTokenExists) {
			if n.Token != "" {
				return nil, errTokenParam("Token already exists: %s", n.Token)
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		// The token itself is an invite, so it stays out of the log.
		info := s.tokenInfo(t)
		var uses, expiry any = "unlimited", "never"
		if info.UsesAllowed != nil {
			uses = *info.UsesAllowed
		}
		if info.ExpiryTime != nil {
			expiry = time.UnixMilli(*info.ExpiryTime).UTC()
		}
		s.log.Info("invite code (registration token) created", "uses_allowed", uses, "expires", expiry)
		return &info, nil
	}
	return nil, mautrix.MUnknown.WithMessage("Could not generate an unused token; ask for a longer one")
}

func randomToken(length int) (string, error) {
	var sb strings.Builder
	alphabet := big.NewInt(int64(len(RegistrationTokenChars)))
	for range length {
		n, err := rand.Int(rand.Reader, alphabet)
		if err != nil {
			return "", err
		}
		sb.WriteByte(RegistrationTokenChars[n.Int64()])
	}
	return sb.String(), nil
}

// RegistrationTokens lists the tokens, oldest first; with valid set, only
// the tokens that can (true) or can no longer (false) be used.
func (s *Service) RegistrationTokens(ctx context.Context, valid *bool) ([]RegistrationTokenInfo, error) {
	list, err := s.db.ListRegistrationTokens(ctx)
	if err != nil {
		return nil, err
	}
	now := s.nowMS()
	out := []RegistrationTokenInfo{}
	for i := range list {
		info := s.tokenInfo(&list[i])
		if valid == nil || info.Valid(now) == *valid {
			out = append(out, info)
		}
	}
	return out, nil
}

func errNoSuchToken(token string) error {
	return mautrix.MNotFound.WithMessage("No such registration token: %s", token)
}

// GetRegistrationToken returns one token, or M_NOT_FOUND.
func (s *Service) GetRegistrationToken(ctx context.Context, token string) (*RegistrationTokenInfo, error) {
	t, err := s.db.GetRegistrationToken(ctx, token)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, errNoSuchToken(token)
	}
	if err != nil {
		return nil, err
	}
	info := s.tokenInfo(t)
	return &info, nil
}

// RegistrationTokenUpdate changes a token; fields whose Set flag is false
// keep their value.
type RegistrationTokenUpdate struct {
	SetUsesAllowed bool
	UsesAllowed    *int
	SetExpiryTime  bool
	ExpiryTime     *int64
}

// UpdateRegistrationToken changes a token's limits and returns it.
func (s *Service) UpdateRegistrationToken(ctx context.Context, token string, u RegistrationTokenUpdate) (*RegistrationTokenInfo, error) {
	var uses *int
	var expiry *int64
	if u.SetUsesAllowed {
		uses = u.UsesAllowed
	}
	if u.SetExpiryTime {
		expiry = u.ExpiryTime
	}
	if err := s.checkTokenLimits(uses, expiry); err != nil {
		return nil, err
	}
	t, err := s.db.PatchRegistrationToken(ctx, token, storage.RegistrationTokenPatch{
		SetUsesAllowed: u.SetUsesAllowed, UsesAllowed: u.UsesAllowed,
		SetExpiryTime: u.SetExpiryTime, ExpiryTime: u.ExpiryTime,
	})
	if errors.Is(err, storage.ErrNotFound) {
		return nil, errNoSuchToken(token)
	}
	if err != nil {
		return nil, err
	}
	info := s.tokenInfo(t)
	return &info, nil
}

// DeleteRegistrationToken removes a token. A registration that already
// passed the token stage with it fails when it completes.
func (s *Service) DeleteRegistrationToken(ctx context.Context, token string) error {
	// An invite code may be typed however registration accepts it.
	if t, err := s.findRegistrationToken(ctx, token); err == nil {
		token = t.Token
	}
	err := s.db.DeleteRegistrationToken(ctx, token)
	if errors.Is(err, storage.ErrNotFound) {
		return errNoSuchToken(token)
	}
	if err == nil {
		s.log.Info("invite code (registration token) revoked")
	}
	return err
}
