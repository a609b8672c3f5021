package push

import (
	"sync"

	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/rooms"
)

// readMarks remembers where a local user's own latest event already marks
// everything read in a room's thread: nothing notified them there since.
// Their next event there then needs no read marker (a push_sent row), and
// knowing that costs no database reads (asking the database was two reads
// per message). What is not remembered is treated as unread: the marker
// is written, which is always right, only sometimes unneeded.
//
// Every change for a key happens while its room's events are built, under
// the room's lock, so the marks follow the room's event order.
type readMarks struct {
	mu   sync.Mutex
	read map[readMarkKey]struct{}
}

type readMarkKey struct {
	user   id.UserID
	room   id.RoomID
	thread string
}

// maxReadMarks bounds the memory: past it everything counts as unread
// again (each key then costs one more marker).
const maxReadMarks = 1 << 16

// sent reports whether the user's event in the room's thread needs a read
// marker, and remembers that after it everything there is read.
func (m *readMarks) sent(k readMarkKey) (needsMarker bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.read[k]; ok {
		return false
	}
	if m.read == nil || len(m.read) >= maxReadMarks {
		m.read = map[readMarkKey]struct{}{}
	}
	m.read[k] = struct{}{}
	return true
}

// notified forgets that the user has read the room's thread: an event
// there notified them.
func (m *readMarks) notified(k readMarkKey) {
	m.mu.Lock()
	delete(m.read, k)
	m.mu.Unlock()
}

// forget forgets a mark whose marker will not be stored.
func (m *readMarks) forget(k readMarkKey) {
	m.mu.Lock()
	delete(m.read, k)
	m.mu.Unlock()
}

// discarded forgets the marks of events that were not stored: their
// markers were never written.
func (m *readMarks) discarded(evs []*rooms.Event) {
	type senderRoom struct {
		user id.UserID
		room id.RoomID
	}
	gone := map[senderRoom]bool{}
	for _, ev := range evs {
		gone[senderRoom{ev.PDU.Sender, ev.RoomID}] = true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for k := range m.read {
		if gone[senderRoom{k.user, k.room}] {
			delete(m.read, k)
		}
	}
}
