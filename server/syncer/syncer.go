// Package syncer is the /sync engine: stream tokens, the notifier that
// wakes long-polls, and the assembly of a sync response from room events,
// state, account data and ephemeral events. (Named syncer rather than sync
// so it does not shadow the standard library's sync package.)
package syncer

import (
	"context"
	"log/slog"
	"runtime"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/rooms"
	"github.com/palpo-im/palpo-desktop/server/storage"
)

// Service is the sync engine.
type Service struct {
	db       *storage.DB
	rooms    *rooms.Service
	notifier *Notifier
	log      *slog.Logger
	typing   typingState // who is typing where (typing.go)
	lazy     lazySent    // memberships each device was sent (lazy.go)

	// OnReadReceipt, when set, hears that a user's m.read or m.read.private
	// receipt moved (push sends the user's devices their new badge count).
	// Set it before the server serves; it must not block.
	OnReadReceipt func(user id.UserID)

	// Ephemeral, when set, hears of typing, public read receipt and
	// presence changes (federation passes local users' on to other
	// servers). Set it before the server serves.
	Ephemeral EphemeralObserver

	stopSweeper context.CancelFunc

	// builds bounds how many sync responses are assembled at once (see
	// BuildSlot).
	builds chan struct{}
}

// EphemeralObserver hears of ephemeral changes once they are made, for
// every user (local or, applied from federation, remote: an observer
// passing changes on filters by server). Its methods run in the request
// that made the change and must not block for long.
type EphemeralObserver interface {
	// TypingChanged: the user started typing (or typed again, extending
	// the timeout) or stopped, or their timeout ran out.
	TypingChanged(roomID id.RoomID, user id.UserID, typing bool)
	// ReceiptSent: the user's m.read receipt moved (private receipts and
	// read markers are not told).
	ReceiptSent(r storage.Receipt)
	// PresenceChanged: the user's presence state or status message changed.
	PresenceChanged(p storage.Presence)
}

// New builds the sync engine and subscribes it to new room events.
func New(db *storage.DB, roomsSvc *rooms.Service, log *slog.Logger) *Service {
	s := &Service{db: db, rooms: roomsSvc, notifier: NewNotifier(), log: log,
		builds: make(chan struct{}, max(4, 2*runtime.GOMAXPROCS(0)))}
	roomsSvc.OnEvent(s.onRoomEvent)
	roomsSvc.OnCommitted(s.onCommitted)
	return s
}

// onCommitted wakes, as soon as a room's events are committed, the
// long-polls of its members and of the users its membership events name
// (an invited user is not a member yet; a kicked one no longer is). It
// runs on the committer, which must not wait: members not in the cache
// are read, and woken, on a goroutine of their own.
func (s *Service) onCommitted(evs []*rooms.Event) {
	if len(evs) == 0 {
		return
	}
	roomID := evs[0].RoomID
	var targets []id.UserID
	for _, ev := range evs {
		if ev.PDU.Type == event.StateMember.Type {
			targets = append(targets, id.UserID(ev.StateKey()))
		}
	}
	s.notifier.WakeRoom(roomID)
	s.notifier.Wake(targets...)
	if users, ok := s.rooms.CachedJoinedUsers(roomID); ok {
		s.notifier.Wake(users...)
		return
	}
	go s.wakeRoom(context.Background(), roomID)
}

// Start runs the engine's background work (marking idle users offline)
// until Stop.
func (s *Service) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	s.stopSweeper = cancel
	go s.runPresenceSweeper(ctx)
}

// Stop ends the background work.
func (s *Service) Stop() {
	if s.stopSweeper != nil {
		s.stopSweeper()
	}
	s.stopTypingTimers()
}

// Notifier is the engine's notifier, for other services that write
// streams (account data, to-device, typing, receipts).
func (s *Service) Notifier() *Notifier { return s.notifier }

// onRoomEvent stops the typing of users who left (onCommitted has woken
// the long-polls already).
func (s *Service) onRoomEvent(evs []*rooms.Event) {
	for _, ev := range evs {
		s.typingMembershipChanged(ev)
	}
}

// Current returns the newest position of every stream.
func (s *Service) Current(ctx context.Context) (Token, error) {
	p, err := s.db.StreamPositions(ctx)
	if err != nil {
		return Token{}, err
	}
	return Token{
		Events: p.Events, AccountData: p.AccountData, Receipts: p.Receipts,
		Typing: s.typingPosition(), ToDevice: p.ToDevice, DeviceLists: p.DeviceLists, Presence: p.Presence,
	}, nil
}

// Request is one /sync call.
type Request struct {
	User      id.UserID
	Device    id.DeviceID
	Since     *Token // nil for an initial sync
	Timeout   time.Duration
	FullState bool
	Filter    *mautrix.Filter
	// SetPresence is the sync's set_presence: online unless the client says
	// otherwise ("" means online).
	SetPresence string

	// ignored is the user's ignore list, read once per response (ignore.go).
	ignored map[id.UserID]bool
	// toDeviceAcked is set once the since token's to-device messages are
	// deleted (todevice.go).
	toDeviceAcked bool
}

// Sync answers a /sync: at once when there is news (or for an initial
// sync), otherwise after waiting up to the timeout for some.
func (s *Service) Sync(ctx context.Context, req *Request) (*Response, error) {
	// Listen before looking, so a change between the look and the wait
	// still wakes us.
	presence := req.SetPresence
	if presence == "" {
		presence = PresenceOnline
	}
	if err := s.SetPresence(ctx, req.User, presence, nil, false); err != nil {
		return nil, err
	}
	l := s.notifier.Listen(req.User)
	defer l.Close()
	deadline := time.Now().Add(req.Timeout)
	for {
		cur, err := s.Current(ctx)
		if err != nil {
			return nil, err
		}
		if req.Since != nil {
			if err := req.Since.Exceeds(cur); err != nil {
				return nil, err
			}
		}
		release, err := s.BuildSlot(ctx)
		if err != nil {
			return nil, err
		}
		resp, err := s.build(ctx, req, cur)
		release()
		if err != nil {
			return nil, err
		}
		if req.Since == nil || req.FullState || !isEmpty(resp.RespSync) || req.Timeout <= 0 {
			return resp, nil
		}
		wait := time.Until(deadline)
		if wait <= 0 {
			return resp, nil
		}
		woken, err := l.Wait(ctx, wait)
		if err != nil {
			return nil, err
		}
		if !woken {
			return resp, nil // the answer carries the newest token either way
		}
		l.Rearm()
	}
}

// BuildSlot waits for a turn to assemble a sync response and returns the
// function that ends it. Building is CPU and memory work: when a thousand
// clients sync at once (all reconnecting after a restart, or all woken by
// one message), building a few at a time finishes as soon on a small
// machine, while building all at once holds every half-built response in
// memory together (hundreds of megabytes).
func (s *Service) BuildSlot(ctx context.Context) (func(), error) {
	select {
	case s.builds <- struct{}{}:
		return func() { <-s.builds }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func isEmpty(r *mautrix.RespSync) bool {
	return r.Rooms.IsZero() && r.AccountData.IsZero() && r.Presence.IsZero() && r.ToDevice.IsZero() && r.DeviceLists.IsZero()
}

// build assembles the response for the range (since, cur].
func (s *Service) build(ctx context.Context, req *Request, cur Token) (*Response, error) {
	resp := &mautrix.RespSync{
		NextBatch:      cur.String(),
		FallbackKeys:   []id.KeyAlgorithm{},
		DeviceOTKCount: mautrix.OTKCount{},
	}
	var since Token
	if req.Since != nil {
		since = *req.Since
	} else {
		// A sync from scratch: the client remembers no membership.
		s.lazy.forget(lazyDevice{req.User, req.Device})
	}
	if err := s.roomsSection(ctx, req, since, cur, resp); err != nil {
		return nil, err
	}
	if err := s.accountDataSection(ctx, req, since, cur, resp); err != nil {
		return nil, err
	}
	if err := s.ephemeralSection(ctx, req, since, cur, resp); err != nil {
		return nil, err
	}
	if err := s.presenceSection(ctx, req, since, cur, resp); err != nil {
		return nil, err
	}
	threads, err := s.unreadCounts(ctx, req, resp)
	if err != nil {
		return nil, err
	}
	if err := s.toDeviceSection(ctx, req, since, cur, resp); err != nil {
		return nil, err
	}
	if err := s.e2eeSection(ctx, req, since, cur, resp); err != nil {
		return nil, err
	}
	return &Response{RespSync: resp, ThreadCounts: threads}, nil
}
