package accounts

import (
	"context"
	"crypto/rand"
	"errors"
	"math/big"
	"strings"

	"github.com/palpo-im/palpo-desktop/server/storage"
)

// Invite codes are registration tokens made to be read out over the phone
// and typed on one: capital letters and digits without the look-alikes
// (0/O, 1/I/L, 2/Z, 5/S, 8/B), in groups of four ("K7QM-3XPD-9HFT").
// Twelve characters from 25 give about 56 bits, far beyond what the rate
// limits let anyone guess.

// inviteCodeChars are the characters of an invite code.
const inviteCodeChars = "34679ACDEFGHJKMNPQRTUVWXY"

const (
	inviteCodeGroups    = 3
	inviteCodeGroupSize = 4
)

// NewInviteCode returns a random invite code such as "K7QM-3XPD-9HFT".
func NewInviteCode() (string, error) {
	var sb strings.Builder
	alphabet := big.NewInt(int64(len(inviteCodeChars)))
	for i := range inviteCodeGroups * inviteCodeGroupSize {
		if i > 0 && i%inviteCodeGroupSize == 0 {
			sb.WriteByte('-')
		}
		n, err := rand.Int(rand.Reader, alphabet)
		if err != nil {
			return "", err
		}
		sb.WriteByte(inviteCodeChars[n.Int64()])
	}
	return sb.String(), nil
}

// normalizeInviteCode turns what a person typed for an invite code
// ("k7qm 3xpd 9hft", "K7QM3XPD9HFT") into the code's own form, or "" when
// it cannot be one.
func normalizeInviteCode(s string) string {
	var sb strings.Builder
	for _, r := range strings.ToUpper(s) {
		switch r {
		case ' ', '-', '.', '_':
			continue
		}
		if !strings.ContainsRune(inviteCodeChars, r) {
			return ""
		}
		sb.WriteRune(r)
	}
	raw := sb.String()
	if len(raw) != inviteCodeGroups*inviteCodeGroupSize {
		return ""
	}
	var out strings.Builder
	for i := 0; i < len(raw); i += inviteCodeGroupSize {
		if i > 0 {
			out.WriteByte('-')
		}
		out.WriteString(raw[i : i+inviteCodeGroupSize])
	}
	return out.String()
}

// findRegistrationToken looks a token up as given and, failing that, as an
// invite code typed loosely (small letters, spaces, no dashes). It returns
// the token's stored text, which the use counts are kept under.
func (s *Service) findRegistrationToken(ctx context.Context, token string) (*storage.RegistrationToken, error) {
	t, err := s.db.GetRegistrationToken(ctx, token)
	if !errors.Is(err, storage.ErrNotFound) {
		return t, err
	}
	if code := normalizeInviteCode(token); code != "" && code != token {
		return s.db.GetRegistrationToken(ctx, code)
	}
	return nil, err
}
