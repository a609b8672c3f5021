package syncer

import (
	"context"
	"sync"
	"time"

	"maunium.net/go/mautrix/id"
)

// Notifier wakes the long-polling syncs of the users a change concerns.
// A sync registers before it looks for news, so nothing that happens
// between its look and its wait is missed.
type Notifier struct {
	mu      sync.Mutex
	waiters map[id.UserID]map[*Listener]struct{}
	// peekers wait on a room they are not in (GET /events?room_id= on a
	// world-readable room): no membership wakes them, the room does.
	peekers map[id.RoomID]map[*Listener]struct{}
}

// Listener is one waiting sync.
type Listener struct {
	n    *Notifier
	user id.UserID
	room id.RoomID     // set for a peeker, instead of user
	C    chan struct{} // closed when woken
	once sync.Once
}

// NewNotifier makes a notifier.
func NewNotifier() *Notifier {
	return &Notifier{waiters: map[id.UserID]map[*Listener]struct{}{}, peekers: map[id.RoomID]map[*Listener]struct{}{}}
}

// Listen registers a listener for user; Close it when done.
func (n *Notifier) Listen(user id.UserID) *Listener {
	l := &Listener{n: n, user: user, C: make(chan struct{})}
	n.mu.Lock()
	defer n.mu.Unlock()
	addListener(n.waiters, user, l)
	return l
}

// ListenRoom registers a listener for every new event of a room; Close it
// when done.
func (n *Notifier) ListenRoom(roomID id.RoomID) *Listener {
	l := &Listener{n: n, room: roomID, C: make(chan struct{})}
	n.mu.Lock()
	defer n.mu.Unlock()
	addListener(n.peekers, roomID, l)
	return l
}

func addListener[K comparable](m map[K]map[*Listener]struct{}, k K, l *Listener) {
	set, ok := m[k]
	if !ok {
		set = map[*Listener]struct{}{}
		m[k] = set
	}
	set[l] = struct{}{}
}

func removeListener[K comparable](m map[K]map[*Listener]struct{}, k K, l *Listener) {
	if set, ok := m[k]; ok {
		delete(set, l)
		if len(set) == 0 {
			delete(m, k)
		}
	}
}

// Close unregisters the listener.
func (l *Listener) Close() {
	l.n.mu.Lock()
	defer l.n.mu.Unlock()
	if l.room != "" {
		removeListener(l.n.peekers, l.room, l)
	} else {
		removeListener(l.n.waiters, l.user, l)
	}
}

func (l *Listener) wake() { l.once.Do(func() { close(l.C) }) }

// Rearm makes a woken listener wait again, still registered: a long-poll
// that found nothing new after a wake goes back to waiting with it.
func (l *Listener) Rearm() {
	l.n.mu.Lock()
	defer l.n.mu.Unlock()
	l.C = make(chan struct{})
	l.once = sync.Once{}
}

// Wait waits until the listener is woken (true), the timeout passes
// (false) or ctx ends (its error).
func (l *Listener) Wait(ctx context.Context, timeout time.Duration) (bool, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-l.C:
		return true, nil
	case <-timer.C:
		return false, nil
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

// Wake wakes every listener of the given users.
func (n *Notifier) Wake(users ...id.UserID) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, u := range users {
		for l := range n.waiters[u] {
			l.wake()
		}
	}
}

// WakeRoom wakes every listener of a room (see ListenRoom).
func (n *Notifier) WakeRoom(roomID id.RoomID) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for l := range n.peekers[roomID] {
		l.wake()
	}
}

// Waiting counts the users with a waiting sync, and the rooms with a
// waiting peeker (for tests and metrics).
func (n *Notifier) Waiting() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.waiters) + len(n.peekers)
}
