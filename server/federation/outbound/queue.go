package outbound

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/storage"
)

// runQueuer turns the event stream into queue rows whenever nudged, and
// once at start (the events committed while the sender was stopped, or
// whose queueing a crash interrupted). Every destination owed something
// gets a worker.
func (s *Sender) runQueuer() {
	defer s.wg.Done()
	first := true
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.nudge:
		}
		if err := s.catchUp(s.ctx); err != nil {
			if s.ctx.Err() != nil {
				return
			}
			s.log.Warn("federation: queue events", "error", err)
			s.pause(errorPause)
			s.nudgeQueuer()
			continue
		}
		if first {
			// Destinations owed from before (a restart, or a backoff that
			// was running) get their workers, which wait out the backoff.
			names, err := s.db.FederationDestinationsWithWork(s.ctx)
			if err != nil {
				s.log.Warn("federation: list destinations", "error", err)
				s.pause(errorPause)
				s.nudgeQueuer()
				continue
			}
			first = false
			for _, name := range names {
				s.kickWorker(name)
			}
		}
	}
}

// pause waits d or until Stop.
func (s *Sender) pause(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-s.ctx.Done():
	}
}

// catchUp queues, for every accepted event of this server's users past the
// queue position, a row per destination, moving the position with the
// rows in one transaction. A scan that finds nothing to queue (the events
// of rooms with no other server) moves the position in memory only, and
// writes it now and then: after a crash those events are scanned again,
// to the same result, which is cheaper than a commit per local message.
func (s *Sender) catchUp(ctx context.Context) error {
	s.queueMu.Lock()
	defer s.queueMu.Unlock()
	if s.persistedThrough < 0 {
		pos, err := s.db.FederationQueuedThrough(ctx)
		if err != nil {
			return err
		}
		s.persistedThrough, s.queuedThrough = pos, pos
	}
	for {
		after := s.queuedThrough
		evs, through, err := s.db.OwnEventsAfter(ctx, after, s.serverName, catchUpPage)
		if err != nil {
			return err
		}
		if through <= after {
			return nil
		}
		var rows []storage.QueuedPDU
		touched := map[string]bool{}
		for _, ev := range evs {
			dests, err := s.eventDestinations(ctx, ev)
			if err != nil {
				return err
			}
			for _, d := range dests {
				rows = append(rows, storage.QueuedPDU{Destination: d, StreamPos: ev.StreamPos})
				touched[d] = true
			}
		}
		if len(rows) > 0 || through-s.persistedThrough >= positionWriteEvery {
			if err := s.db.QueueFederationPDUs(ctx, rows, through); err != nil {
				return err
			}
			s.persistedThrough = through
		}
		s.queuedThrough = through
		for d := range touched {
			s.kickWorker(d)
		}
	}
}

// eventDestinations are the servers an event of ours goes to: those with a
// member joined to the room when it was sent, and for a kick or ban the
// target's server (it must reach the user it is about, joined or not);
// never this server. An invite is not among them: it reaches the
// invitee's server through /invite, and the same event pushed in a
// transaction to a server not in the room only confuses it (it cannot
// fetch what came before, and a server may then reject the invitee's own
// join).
func (s *Sender) eventDestinations(ctx context.Context, ev storage.OwnEvent) ([]string, error) {
	members, err := s.db.JoinedMembersAt(ctx, ev.RoomID, ev.StreamPos)
	if err != nil {
		return nil, fmt.Errorf("destinations of %s: %w", ev.EventID, err)
	}
	if ev.Type == "m.room.member" && ev.StateKey != nil && ev.Membership != "invite" {
		members = append(members, id.UserID(*ev.StateKey))
	}
	out := s.serversOf(members)
	if origin := ev.Sender.Homeserver(); origin != s.serverName {
		// An event accepted for another server goes to everyone but it.
		out = slices.DeleteFunc(out, func(srv string) bool { return srv == origin })
	}
	return out, nil
}

// roomServers are the servers with a member joined to a room now, but
// this one.
func (s *Sender) roomServers(ctx context.Context, roomID id.RoomID) ([]string, error) {
	members, err := s.db.JoinedMembersAt(ctx, roomID, math.MaxInt64)
	if err != nil {
		return nil, err
	}
	return s.serversOf(members), nil
}

// serversOf returns the distinct servers of users, sorted, without this
// one.
func (s *Sender) serversOf(users []id.UserID) []string {
	set := map[string]bool{}
	for _, u := range users {
		if srv := u.Homeserver(); srv != "" && srv != s.serverName {
			set[srv] = true
		}
	}
	out := make([]string, 0, len(set))
	for srv := range set {
		out = append(out, srv)
	}
	slices.Sort(out)
	return out
}
