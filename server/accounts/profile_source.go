package accounts

import (
	"context"
	"encoding/json"

	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/storage"
)

// MemberProfile returns a user's display name and avatar URL for their
// membership events ("" for unset, and for any failure: a member event
// without a name is better than no event).
func (s *Service) MemberProfile(ctx context.Context, userID id.UserID) (displayName, avatarURL string) {
	p, err := s.db.GetProfile(ctx, userID)
	if err != nil {
		return "", ""
	}
	_ = json.Unmarshal(p[storage.ProfileDisplayName], &displayName)
	_ = json.Unmarshal(p[storage.ProfileAvatarURL], &avatarURL)
	return displayName, avatarURL
}
