// Package rooms is the room event graph: it builds, signs and checks PDUs,
// stores them in the DAG with compact state snapshots, and offers the room
// operations of the client API (create, send, state, membership, redaction).
// Local events take the same path federated ones will: every event is a real
// PDU of its room version, authorised by the spec's auth rules.
package rooms

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/storage"
)

// Listener hears about every event persisted, in stream order: the events
// of one room stored in one transaction, so that what a listener writes
// for them (push notifications) is one transaction too. The sync notifier
// is one.
type Listener func(evs []*Event)

// Service is the rooms service.
type Service struct {
	db         *storage.DB
	serverName string
	key        *federation.SigningKey
	log        *slog.Logger

	// Now is the clock for origin_server_ts; tests may replace it.
	Now func() time.Time

	// Profiles fills display names and avatars into member events.
	Profiles ProfileSource

	// LeaveGuard, when set, may refuse a user leaving a room, however the
	// leave is sent (the server notices room's invite cannot be rejected).
	LeaveGuard func(ctx context.Context, user id.UserID, roomID id.RoomID) error

	// DefaultVersion is the version of new rooms whose creator asks for
	// none (config default_room_version); empty means DefaultRoomVersion.
	DefaultVersion id.RoomVersion

	// UserDirectorySearchAll lets the user directory find every local
	// account, not only the users who share a room with the searcher
	// (config user_directory.search_all_users).
	UserDirectorySearchAll bool

	// RemoteKeys gives other servers' signing keys, and Remote reaches
	// other servers (federated.go); both nil while federation is off.
	RemoteKeys KeyFunc
	Remote     Remote
	// Directory reads other servers' room directories and spaces
	// (remote_directory.go); nil while federation is off.
	Directory DirectoryRemote

	locks  roomLocks
	cache  *cache
	listen []Listener
	// discard hears of prepared events that were not stored.
	discard []Listener
	// committed hears of stored events on the committer (OnCommitted).
	committed []Listener

	// Group commit (commit.go).
	committer   *committer
	prepare     []Preparer
	tails       roomTails
	pendingTxns pendingTxns
	recentTxns  recentTxns
	joined      joinedCache
}

// New builds the rooms service.
// Its committer runs until Close.
func New(db *storage.DB, serverName string, key *federation.SigningKey, log *slog.Logger) *Service {
	s := &Service{
		db:         db,
		serverName: serverName,
		key:        key,
		log:        log,
		Now:        time.Now,
		cache:      newCache(),
	}
	s.committer = newCommitter(s)
	s.WhenIdle(s.pruneTxns)
	return s
}

// OnEvent registers a listener for new events. Register listeners before
// the server starts serving.
func (s *Service) OnEvent(l Listener) { s.listen = append(s.listen, l) }

// OnCommitted registers a listener told of each batch of events on the
// committer, as soon as it is committed: before the request that sent them
// wakes, a goroutine switch sooner than OnEvent's listeners. It must be
// quick and must not block (the next commit waits for it); the sync engine
// wakes long-polls with it. OnEvent's listeners still hear of the events.
// Register before the server serves.
func (s *Service) OnCommitted(l Listener) { s.committed = append(s.committed, l) }

// OnDiscard registers a listener for events that were prepared (see
// OnPrepare) but could not be stored; it runs on the committer, so it must
// be quick. Register before the server serves.
func (s *Service) OnDiscard(l Listener) { s.discard = append(s.discard, l) }

// roomLocks serialises event creation per room: an event's prev_events and
// state must be computed and persisted without another event of the same
// room slipping in between. Different rooms proceed in parallel (up to the
// database's single writer).
type roomLocks struct {
	mu    sync.Mutex
	locks map[id.RoomID]*sync.Mutex
}

func (l *roomLocks) lock(roomID id.RoomID) func() {
	l.mu.Lock()
	if l.locks == nil {
		l.locks = map[id.RoomID]*sync.Mutex{}
	}
	m, ok := l.locks[roomID]
	if !ok {
		m = &sync.Mutex{}
		l.locks[roomID] = m
	}
	l.mu.Unlock()
	m.Lock()
	return m.Unlock
}

// Errors the room operations answer with.
var (
	errRoomNotFound = mautrix.MNotFound.WithMessage("Room not found")
	errNotInRoom    = mautrix.MForbidden.WithMessage("You are not in this room")
)

// room is what the service needs to know about a room.
type room struct {
	ID      id.RoomID
	Version id.RoomVersion
}

func (s *Service) room(ctx context.Context, roomID id.RoomID) (*room, error) {
	if r := s.cache.room(roomID); r != nil {
		return r, nil
	}
	r, err := s.db.GetRoom(ctx, roomID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, errRoomNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("load room %s: %w", roomID, err)
	}
	rm := &room{ID: r.RoomID, Version: r.RoomVersion}
	s.cache.putRoom(rm)
	return rm, nil
}

// RoomVersion returns a room's version, or M_NOT_FOUND.
func (s *Service) RoomVersion(ctx context.Context, roomID id.RoomID) (id.RoomVersion, error) {
	r, err := s.room(ctx, roomID)
	if err != nil {
		return "", err
	}
	return r.Version, nil
}
