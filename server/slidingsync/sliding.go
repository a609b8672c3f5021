// Package slidingsync is simplified sliding sync (MSC4186), the sync
// Element X speaks: the client asks for windows over its room list sorted
// by activity, plus rooms by ID, and gets only what changed since its last
// response on the same connection. It reads what the /sync engine
// (package syncer) reads and wakes on the same notifier; what it adds is
// the room list and the per-connection memory of what was sent.
package slidingsync

import (
	"context"
	"log/slog"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/rooms"
	"github.com/palpo-im/palpo-desktop/server/storage"
	"github.com/palpo-im/palpo-desktop/server/syncer"
)

// Service answers sliding sync requests.
type Service struct {
	db    *storage.DB
	rooms *rooms.Service
	sync  *syncer.Service
	log   *slog.Logger
	conns connections
	now   func() time.Time
}

// New builds the service on the /sync engine's streams and notifier.
func New(db *storage.DB, roomsSvc *rooms.Service, syncEngine *syncer.Service, log *slog.Logger) *Service {
	return &Service{db: db, rooms: roomsSvc, sync: syncEngine, log: log,
		conns: connections{conns: map[connKey]*conn{}}, now: time.Now}
}

// Caller is who syncs.
type Caller struct {
	User   id.UserID
	Device id.DeviceID
}

// MaxTimeout bounds a long-poll.
const MaxTimeout = 5 * time.Minute

// Sync answers one request: at once for a new connection or when there is
// news, otherwise after waiting up to the timeout for some.
func (s *Service) Sync(ctx context.Context, who Caller, req *Request) (*Response, error) {
	if err := req.validate(); err != nil {
		return nil, err
	}
	c, prev, err := s.conns.acquire(connKey{user: who.User, device: who.Device, connID: req.ConnID}, req.Pos, s.now())
	if err != nil {
		return nil, err
	}
	defer c.release()

	presence := req.SetPresence
	if presence == "" {
		presence = syncer.PresenceOnline
	}
	if err := s.sync.SetPresence(ctx, who.User, presence, nil, false); err != nil {
		return nil, err
	}
	var timeout time.Duration
	if req.Timeout != nil && req.Pos != nil {
		timeout = min(time.Duration(*req.Timeout)*time.Millisecond, MaxTimeout)
	}
	deadline := time.Now().Add(timeout)
	// Listen before looking, so a change between the look and the wait
	// still wakes us.
	l := s.sync.Notifier().Listen(who.User)
	defer l.Close()
	for {
		cur, err := s.sync.Current(ctx)
		if err != nil {
			return nil, err
		}
		next := prev.clone()
		b := &builder{s: s, who: who, req: req, prev: prev, next: next, cur: cur}
		release, err := s.sync.BuildSlot(ctx)
		if err != nil {
			return nil, err
		}
		resp, err := b.build(ctx)
		release()
		if err != nil {
			return nil, err
		}
		wait := time.Until(deadline)
		woken := false
		if req.Pos != nil && !b.hasNews(resp) && wait > 0 {
			if woken, err = l.Wait(ctx, wait); err != nil {
				return nil, err
			}
		}
		if !woken {
			resp.Pos = c.commit(next)
			return resp, nil
		}
		l.Rearm()
	}
}

// Connections counts the connections held (for tests and metrics).
func (s *Service) Connections() int { return s.conns.count() }
