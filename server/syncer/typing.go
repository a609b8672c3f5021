package syncer

import (
	"context"
	"slices"
	"sync"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/rooms"
)

// Typing timeouts: what a client gets when it sends none, and the most it
// may ask for (Synapse's values), so a crashed client's "typing…" cannot
// linger.
const (
	DefaultTypingTimeout = 30 * time.Second
	MaxTypingTimeout     = 120 * time.Second
)

// typingState is who is typing where. It lives in memory only, as typing
// notifications are ephemeral: a restart forgets them.
//
// Every change (a user starts, stops, or their timeout expires) takes a new
// position in the typing stream. Positions follow the clock in
// microseconds, and never go back, so after a restart positions start past
// every token handed out before it: a client's old token never looks
// "ahead" of the server. The zero value is ready to use.
type typingState struct {
	mu    sync.Mutex
	pos   int64 // the newest position handed out
	rooms map[id.RoomID]*roomTyping
}

// roomTyping is one room's typing users and when its set last changed.
type roomTyping struct {
	users   map[id.UserID]*typingEntry
	changed int64
}

// typingEntry is one typing user, with the timer that ends it; gen tells a
// timer that fired late (after the user typed again) from a current one.
type typingEntry struct {
	timer *time.Timer
	gen   uint64
}

// position returns the current position; the caller holds mu.
func (t *typingState) position() int64 {
	if t.pos == 0 {
		t.pos = time.Now().UnixMicro()
	}
	return t.pos
}

// bump hands out a new position for a change; the caller holds mu.
func (t *typingState) bump() int64 {
	t.pos = max(t.position()+1, time.Now().UnixMicro())
	return t.pos
}

func (s *Service) typingPosition() int64 {
	s.typing.mu.Lock()
	defer s.typing.mu.Unlock()
	return s.typing.position()
}

// SetTyping starts (for timeout, capped at MaxTypingTimeout) or stops a
// user's typing notification in a room they are joined to, and wakes the
// room's members when the room's typing set changes. Typing again while
// already typing only extends the timeout.
func (s *Service) SetTyping(ctx context.Context, user id.UserID, roomID id.RoomID, typing bool, timeout time.Duration) error {
	m, _, err := s.db.Membership(ctx, roomID, user)
	if err != nil {
		return err
	}
	if m != string(event.MembershipJoin) {
		// The same answer for a room that does not exist: no probing.
		return mautrix.MForbidden.WithMessage("You are not in this room")
	}
	if timeout <= 0 {
		timeout = DefaultTypingTimeout
	}
	timeout = min(timeout, MaxTypingTimeout)
	t := &s.typing
	t.mu.Lock()
	rt := t.rooms[roomID]
	if rt == nil {
		if !typing {
			t.mu.Unlock()
			return nil
		}
		if t.rooms == nil {
			t.rooms = map[id.RoomID]*roomTyping{}
		}
		rt = &roomTyping{users: map[id.UserID]*typingEntry{}}
		t.rooms[roomID] = rt
	}
	e, was := rt.users[user]
	changed := false
	switch {
	case typing && was:
		e.gen++
		e.timer.Stop()
		e.timer = s.typingTimer(roomID, user, e.gen, timeout)
	case typing:
		e = &typingEntry{}
		e.timer = s.typingTimer(roomID, user, e.gen, timeout)
		rt.users[user] = e
		rt.changed = t.bump()
		changed = true
	case was:
		e.timer.Stop()
		delete(rt.users, user)
		rt.changed = t.bump()
		changed = true
	}
	t.mu.Unlock()
	if changed {
		s.wakeRoom(ctx, roomID)
	}
	// Other servers hear every typing=true, not only changes: theirs
	// time out on their own unless refreshed.
	if s.Ephemeral != nil && (typing || changed) {
		s.Ephemeral.TypingChanged(roomID, user, typing)
	}
	return nil
}

func (s *Service) typingTimer(roomID id.RoomID, user id.UserID, gen uint64, timeout time.Duration) *time.Timer {
	return time.AfterFunc(timeout, func() { s.typingExpired(roomID, user, gen) })
}

// typingExpired ends a typing notification whose timeout ran out, unless
// the user typed again meanwhile (a newer generation) or already stopped.
func (s *Service) typingExpired(roomID id.RoomID, user id.UserID, gen uint64) {
	if !s.stopTyping(roomID, user, &gen) {
		return
	}
	s.wakeRoom(context.Background(), roomID)
	if s.Ephemeral != nil {
		s.Ephemeral.TypingChanged(roomID, user, false)
	}
}

// stopTyping removes a typing user, only the given generation when gen is
// set; it reports whether the room's set changed.
func (s *Service) stopTyping(roomID id.RoomID, user id.UserID, gen *uint64) bool {
	t := &s.typing
	t.mu.Lock()
	defer t.mu.Unlock()
	rt := t.rooms[roomID]
	if rt == nil {
		return false
	}
	e, ok := rt.users[user]
	if !ok || (gen != nil && e.gen != *gen) {
		return false
	}
	e.timer.Stop()
	delete(rt.users, user)
	rt.changed = t.bump()
	return true
}

// typingMembershipChanged stops the typing notification of a user who is
// no longer joined to the room (left, kicked, banned): they cannot be
// typing there any more.
func (s *Service) typingMembershipChanged(ev *rooms.Event) {
	if ev.PDU.Type != event.StateMember.Type || ev.Membership() == event.MembershipJoin {
		return
	}
	if s.stopTyping(ev.RoomID, id.UserID(ev.StateKey()), nil) {
		s.wakeRoom(context.Background(), ev.RoomID)
	}
}

// wakeRoom wakes the syncs of a room's joined members and its peekers
// (GET /events?room_id=), for anything new in the room: events, typing,
// receipts.
func (s *Service) wakeRoom(ctx context.Context, roomID id.RoomID) {
	s.notifier.WakeRoom(roomID)
	users, err := s.rooms.JoinedUsers(ctx, roomID)
	if err != nil {
		s.log.Warn("sync notifier: list members", "room", roomID, "error", err)
		return
	}
	s.notifier.Wake(users...)
}

// TypingSince returns, for each of the rooms whose typing set changed after
// position since (every room where someone is typing when all is set), the
// users typing there now, sorted.
func (s *Service) TypingSince(roomIDs []id.RoomID, since int64, all bool) map[id.RoomID][]id.UserID {
	t := &s.typing
	t.mu.Lock()
	defer t.mu.Unlock()
	out := map[id.RoomID][]id.UserID{}
	for _, roomID := range roomIDs {
		rt := t.rooms[roomID]
		if rt == nil {
			continue
		}
		if all && len(rt.users) == 0 {
			continue
		}
		if !all && rt.changed <= since {
			continue
		}
		users := make([]id.UserID, 0, len(rt.users))
		for u := range rt.users {
			users = append(users, u)
		}
		slices.Sort(users)
		out[roomID] = users
	}
	return out
}

// stopTypingTimers stops every expiry timer, so none fires against a closed
// database after shutdown; typing state is in memory and simply goes away.
func (s *Service) stopTypingTimers() {
	t := &s.typing
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, rt := range t.rooms {
		for _, e := range rt.users {
			e.timer.Stop()
		}
	}
	t.rooms = nil
}
