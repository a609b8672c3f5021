package storage

import (
	"context"
	"maps"
	"sync"

	"maunium.net/go/mautrix/id"
)

// UnreadCounts are a user's unread notifications in one room: in the main
// timeline, and per thread root for threads with any.
type UnreadCounts struct {
	Main    NotificationCounts
	Threads map[string]NotificationCounts
}

// UnreadNotifications counts a user's unread notifications in a room
// (UserReadPositions, then UnreadPushActions). Every sync asks it for each
// room with news, and counting reads every notification after the read
// position, the room's other members' included: a member away for a week
// from a busy room paid for that week on every sync. So counts are kept
// in memory (unreadCache) and a message's commit adds its notifications
// to them. The caller gets its own copy.
func (db *DB) UnreadNotifications(ctx context.Context, roomID id.RoomID, userID id.UserID) (UnreadCounts, error) {
	key := unreadKey{userID, roomID}
	if c, ok := db.unread.get(key); ok {
		return c, nil
	}
	seq := db.unread.sequence()
	rp, err := db.UserReadPositions(ctx, roomID, userID)
	if err != nil {
		return UnreadCounts{}, err
	}
	main, threads, err := db.UnreadPushActions(ctx, roomID, userID, rp)
	if err != nil {
		return UnreadCounts{}, err
	}
	c := UnreadCounts{Main: main, Threads: threads}
	db.unread.put(key, c, seq)
	return c.clone(), nil
}

func (c UnreadCounts) clone() UnreadCounts {
	c.Threads = maps.Clone(c.Threads)
	return c
}

// unreadCache keeps users' unread counts per room. What they are counted
// from changes in these ways, each of which keeps the cache right:
//   - notifications (push_actions) and a sender's own read marker
//     (push_sent) are stored only with their event, by PersistBatches:
//     its commit adds the notifications to the cached counts and marks
//     the thread read for its sender (eventsCommitted);
//   - a receipt moves its user's read position in its room: PutReceipt
//     drops those counts (drop);
//   - a backfilled event may replace an outlier a receipt names, moving
//     that receipt's position: such a commit drops everything, as every
//     other write does (invalidate, called by wrote).
//
// Counts read from the database are stored only if nothing of the above
// happened while they were read (seq), and never while a commit of events
// is in flight (committing): counts read after its commit but before its
// notifications are added would have them twice.
type unreadCache struct {
	mu         sync.Mutex
	seq        uint64
	committing int
	m          map[unreadKey]*UnreadCounts
}

type unreadKey struct {
	user id.UserID
	room id.RoomID
}

// maxCachedUnread bounds the cache: users times their rooms with news.
const maxCachedUnread = 8192

func (c *unreadCache) get(k unreadKey) (UnreadCounts, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok {
		return UnreadCounts{}, false
	}
	return e.clone(), true
}

// sequence is read before counting from the database.
func (c *unreadCache) sequence() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seq
}

// put stores counts read from the database after sequence returned seq.
func (c *unreadCache) put(k unreadKey, counts UnreadCounts, seq uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seq != seq || c.committing > 0 {
		return
	}
	if c.m == nil || len(c.m) >= maxCachedUnread {
		c.m = map[unreadKey]*UnreadCounts{}
	}
	c.m[k] = &counts
}

// invalidate drops every count; wrote calls it after every write but event
// persistence.
func (c *unreadCache) invalidate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	c.m = nil
}

// drop forgets one user's counts in one room, after a write that moved
// their read position there.
func (c *unreadCache) drop(user id.UserID, room id.RoomID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	delete(c.m, unreadKey{user, room})
}

// commitStarting is called before a commit of events, and eventsCommitted
// or (when nothing was stored) commitFailed after it.
func (c *unreadCache) commitStarting() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	c.committing++
}

// commitFailed ends a commit that stored nothing, dropping every count.
func (c *unreadCache) commitFailed() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	c.committing--
	c.m = nil
}

// eventsCommitted applies the committed batches' notifications and read
// markers to the cached counts and ends the commit.
func (c *unreadCache) eventsCommitted(batches []*EventBatch) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	c.committing--
	for _, b := range batches {
		if b.Err != nil {
			continue
		}
		for _, ev := range b.Events {
			if ev.Backfilled {
				c.m = nil
				return
			}
			if !ev.pushStored {
				continue
			}
			// A new event is after every read position (receipts and
			// read markers name stored events), so its notifications
			// are unread.
			for _, a := range ev.PushActions {
				if e := c.m[unreadKey{a.UserID, a.RoomID}]; e != nil {
					e.add(a)
				}
			}
			for _, s := range ev.PushSent {
				if e := c.m[unreadKey{s.UserID, s.RoomID}]; e != nil {
					e.readThread(s.ThreadID)
				}
			}
		}
	}
}

// readThread records the user's own event in thread ("" for the main
// timeline): they have read the thread up to it. Every notification
// counted so far is older (those read from the database predate the
// commit, the others came before the event in stream order), so none is
// left unread there.
func (c *UnreadCounts) readThread(thread string) {
	if thread == "" {
		c.Main = NotificationCounts{}
		return
	}
	delete(c.Threads, thread)
}

// add counts one unread notification.
func (c *UnreadCounts) add(a PushAction) {
	n := c.Main
	if a.ThreadID != "" {
		n = c.Threads[a.ThreadID]
	}
	if a.Notify {
		n.Notify++
	}
	if a.Highlight {
		n.Highlight++
	}
	if a.ThreadID == "" {
		c.Main = n
		return
	}
	if c.Threads == nil {
		c.Threads = map[string]NotificationCounts{}
	}
	c.Threads[a.ThreadID] = n
}
