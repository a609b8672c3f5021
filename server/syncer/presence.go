package syncer

import (
	"context"
	"errors"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/storage"
)

// Presence states.
const (
	PresenceOnline      = "online"
	PresenceUnavailable = "unavailable"
	PresenceOffline     = "offline"
)

// Presence timing: a user whose clients stop syncing for presenceIdle is
// shown offline; currently_active means an action within activeWindow.
const (
	presenceIdle    = 5 * time.Minute
	activeWindow    = 5 * time.Minute
	presenceSweepAt = 30 * time.Second
	presenceRefresh = time.Minute
)

// SetPresence sets a user's presence from PUT /presence (explicit=true) or
// from a sync's set_presence. A change of state or status message takes a
// new stream position and wakes everyone sharing a room with the user;
// staying in the same state only records the time.
func (s *Service) SetPresence(ctx context.Context, user id.UserID, state string, statusMsg *string, explicit bool) error {
	now := time.Now().UnixMilli()
	cur, err := s.db.GetPresence(ctx, user)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	p := &storage.Presence{UserID: user, State: state, LastActiveTS: now, LastSyncTS: now}
	if cur != nil {
		p.StreamID = cur.StreamID
		p.StatusMsg = cur.StatusMsg
		if !explicit {
			p.LastActiveTS = cur.LastActiveTS
			if state == PresenceOnline {
				p.LastActiveTS = now
			}
		}
	}
	if explicit {
		p.StatusMsg = statusMsg
	}
	changed := cur == nil || cur.State != p.State || !sameMsg(cur.StatusMsg, p.StatusMsg)
	// A sync that changes nothing only needs to refresh the "last synced"
	// time now and then (the sweeper's idle limit is minutes), not write
	// on every request.
	if !changed && !explicit && now-cur.LastSyncTS < presenceRefresh.Milliseconds() {
		return nil
	}
	if err := s.db.PutPresence(ctx, p, changed); err != nil {
		return err
	}
	if changed {
		s.wakeSharing(ctx, user)
		if s.Ephemeral != nil {
			s.Ephemeral.PresenceChanged(*p)
		}
	}
	return nil
}

func sameMsg(a, b *string) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func (s *Service) wakeSharing(ctx context.Context, user id.UserID) {
	users, err := s.db.UsersSharingRooms(ctx, user)
	if err != nil {
		s.log.Warn("presence: list users sharing rooms", "user", user, "error", err)
	}
	s.notifier.Wake(append(users, user)...)
}

// GetPresence returns a user's presence as GET /presence shows it: only to
// themselves and to users sharing a room with them (so an unknown user is
// refused like any stranger, as Synapse does). A user who never set any
// presence is offline, with known false: there is no last activity to tell.
func (s *Service) GetPresence(ctx context.Context, viewer, user id.UserID) (c event.PresenceEventContent, known bool, err error) {
	if viewer != user {
		shares, err := s.db.SharesRoom(ctx, viewer, user)
		if err != nil {
			return c, false, err
		}
		if !shares {
			return c, false, mautrix.MForbidden.WithMessage("You are not allowed to see their presence")
		}
	}
	p, err := s.db.GetPresence(ctx, user)
	if errors.Is(err, storage.ErrNotFound) {
		return event.PresenceEventContent{Presence: event.PresenceOffline}, false, nil
	}
	if err != nil {
		return c, false, err
	}
	return presenceContent(p, time.Now()), true, nil
}

func presenceContent(p *storage.Presence, now time.Time) event.PresenceEventContent {
	c := event.PresenceEventContent{
		Presence:      event.Presence(p.State),
		LastActiveAgo: max(0, now.UnixMilli()-p.LastActiveTS),
	}
	c.CurrentlyActive = p.State == PresenceOnline && now.UnixMilli()-p.LastActiveTS < activeWindow.Milliseconds()
	if p.StatusMsg != nil {
		c.StatusMessage = *p.StatusMsg
	}
	return c
}

// presenceEvent is a user's presence as an m.presence event.
func presenceEvent(p *storage.Presence, now time.Time) *event.Event {
	ev := &event.Event{Sender: p.UserID, Type: event.EphemeralEventPresence}
	ev.Content.Parsed = presenceContent(p, now)
	return ev
}

// legacyPresenceEvent is presenceEvent for the old APIs (/events and
// /initialSync), whose clients read the user from content.user_id (as
// Synapse still sends it).
func legacyPresenceEvent(p *storage.Presence, now time.Time) *event.Event {
	ev := presenceEvent(p, now)
	ev.Content.Raw = map[string]any{"user_id": string(p.UserID)}
	return ev
}

// presenceSection lists the presence changes of the user and of the users
// they share rooms with; in an incremental sync also the current presence
// of the users they came to share a room with, changed or not (as Synapse
// does: a client learns a new room-mate's presence without waiting for it
// to change).
func (s *Service) presenceSection(ctx context.Context, req *Request, since, cur Token, resp *mautrix.RespSync) error {
	from := since.Presence
	if req.Since == nil {
		from = 0
	}
	var changes []storage.Presence
	if from < cur.Presence {
		var err error
		if changes, err = s.db.PresenceChanges(ctx, req.User, from, cur.Presence); err != nil {
			return err
		}
	}
	if req.Since != nil {
		extra, err := s.newlySharing(ctx, req.User, since.Events, cur.Events)
		if err != nil {
			return err
		}
		for _, p := range changes {
			delete(extra, p.UserID)
		}
		if len(extra) > 0 {
			more, err := s.db.PresenceOf(ctx, sortedUsers(extra))
			if err != nil {
				return err
			}
			changes = append(changes, more...)
		}
	}
	var part *mautrix.FilterPart
	if req.Filter != nil {
		part = req.Filter.Presence
	}
	now := time.Now()
	for i := range changes {
		ev := presenceEvent(&changes[i], now)
		if !allows(part, ev) {
			continue
		}
		resp.Presence.Events = append(resp.Presence.Events, ev)
	}
	return nil
}

// newlySharing returns the users who came to share a room with the user in
// the event range (from, to]: the members of rooms the user joined, and
// those who joined, were invited to or knocked on the user's rooms (the
// memberships sharesDevices counts, as Synapse counts them for presence).
func (s *Service) newlySharing(ctx context.Context, user id.UserID, from, to int64) (map[id.UserID]bool, error) {
	out := map[id.UserID]bool{}
	if from >= to {
		return out, nil
	}
	own, err := s.db.OwnMemberDeltas(ctx, user, from, to)
	if err != nil {
		return nil, err
	}
	for _, d := range own {
		if d.After != string(event.MembershipJoin) || d.Before == d.After {
			continue
		}
		members, err := s.rooms.JoinedUsers(ctx, d.RoomID)
		if err != nil {
			return nil, err
		}
		for _, u := range members {
			out[u] = true
		}
	}
	others, err := s.db.RoomMemberDeltas(ctx, user, from, to)
	if err != nil {
		return nil, err
	}
	for _, d := range others {
		if d.Before != d.After && sharesDevices(d.After) {
			out[d.UserID] = true
		}
	}
	delete(out, user)
	return out, nil
}

// SweepPresence marks users offline whose clients stopped syncing before
// now minus the idle time, so the people who share rooms with them see it.
func (s *Service) SweepPresence(ctx context.Context, now time.Time) {
	stale, err := s.db.StalePresence(ctx, now.Add(-presenceIdle).UnixMilli())
	if err != nil {
		s.log.Warn("presence sweep", "error", err)
		return
	}
	for i := range stale {
		p := &stale[i]
		p.State = PresenceOffline
		if err := s.db.PutPresence(ctx, p, true); err != nil {
			s.log.Warn("presence sweep", "user", p.UserID, "error", err)
			continue
		}
		s.wakeSharing(ctx, p.UserID)
		if s.Ephemeral != nil {
			s.Ephemeral.PresenceChanged(*p)
		}
	}
}

// runPresenceSweeper sweeps until ctx ends.
func (s *Service) runPresenceSweeper(ctx context.Context) {
	t := time.NewTicker(presenceSweepAt)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.SweepPresence(ctx, time.Now())
		}
	}
}
