package syncer

import (
	"context"
	"encoding/json"

	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/rooms"
)

// Ignoring users (spec: "Ignoring Users"): a user's m.ignored_user_list
// account data hides the listed users' message events (never their state
// events, so the room looks the same to everyone) from sync timelines,
// /messages, /context and /search, and their invites from sync. The list
// is read on every request, so a change applies at once.

// IgnoredUsers returns the users a user ignores (nil when none). A
// malformed list ignores nobody.
func (s *Service) IgnoredUsers(ctx context.Context, user id.UserID) (map[id.UserID]bool, error) {
	// Cached by storage between writes: every sync and message asks.
	lists, err := s.db.IgnoredUserLists(ctx, []id.UserID{user})
	if err != nil {
		return nil, err
	}
	raw, ok := lists[user]
	if !ok {
		return nil, nil
	}
	var c struct {
		IgnoredUsers map[id.UserID]json.RawMessage `json:"ignored_users"`
	}
	if json.Unmarshal(raw, &c) != nil || len(c.IgnoredUsers) == 0 {
		return nil, nil
	}
	out := make(map[id.UserID]bool, len(c.IgnoredUsers))
	for u := range c.IgnoredUsers {
		out[u] = true
	}
	return out, nil
}

// HiddenByIgnore tells whether an event is hidden from a user who ignores
// the users in ignored: every non-state event those users sent.
func HiddenByIgnore(ignored map[id.UserID]bool, ev *rooms.Event) bool {
	return len(ignored) > 0 && !ev.IsState() && ignored[ev.PDU.Sender]
}
