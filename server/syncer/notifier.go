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
}

// Listener is one waiting sync.
type Listener struct {
	n    *Notifier
	user id.UserID
	C    chan struct{} // closed when woken
	once sync.Once
}

// NewNotifier makes a notifier.
func NewNotifier() *Notifier {
	return &Notifier{waiters: map[id.UserID]map[*Listener]struct{}{}}
}

// Listen registers a listener for user; Close it when done.
func (n *Notifier) Listen(user id.UserID) *Listener {
	l := &Listener{n: n, user: user, C: make(chan struct{})}
	n.mu.Lock()
	defer n.mu.Unlock()
	set, ok := n.waiters[user]
	if !ok {
		set = map[*Listener]struct{}{}
		n.waiters[user] = set
	}
	set[l] = struct{}{}
	return l
}

// Close unregisters the listener.
func (l *Listener) Close() {
	l.n.mu.Lock()
	defer l.n.mu.Unlock()
	if set, ok := l.n.waiters[l.user]; ok {
		delete(set, l)
		if len(set) == 0 {
			delete(l.n.waiters, l.user)
		}
	}
}

func (l *Listener) wake() { l.once.Do(func() { close(l.C) }) }

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

// Waiting counts the users with a waiting sync (for tests and metrics).
func (n *Notifier) Waiting() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.waiters)
}
