package syncer

import (
	"sync"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/rooms"
)

// Lazy-loading room members (spec: "Lazy-loading room members"): a sync
// sends the membership of the timeline's senders. In an incremental sync
// the client already holds the memberships earlier responses sent it, and
// the spec lets the server skip those ("redundant membership events")
// unless the filter sets include_redundant_members. Which membership event
// each device was last sent per room and member is remembered here, in
// memory and bounded: forgetting only means sending one again.

const (
	// maxLazyPerDevice bounds the memberships remembered for one device.
	maxLazyPerDevice = 5000
	// maxLazyDevices bounds the devices remembered.
	maxLazyDevices = 2000
)

type lazyDevice struct {
	user   id.UserID
	device id.DeviceID
}

type lazyMember struct {
	room id.RoomID
	user string
}

type lazySent struct {
	mu      sync.Mutex
	devices map[lazyDevice]map[lazyMember]id.EventID
}

// sent tells whether the device was last sent this membership event.
func (l *lazySent) sent(d lazyDevice, room id.RoomID, user string, evID id.EventID) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.devices[d][lazyMember{room, user}] == evID
}

// record remembers the membership events a response carried.
func (l *lazySent) record(d lazyDevice, room id.RoomID, evs []*event.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := l.devices[d]
	for _, ev := range evs {
		if ev.Type != event.StateMember || ev.StateKey == nil {
			continue
		}
		if m == nil {
			if l.devices == nil || len(l.devices) >= maxLazyDevices {
				l.devices = map[lazyDevice]map[lazyMember]id.EventID{}
			}
			m = map[lazyMember]id.EventID{}
			l.devices[d] = m
		}
		if len(m) >= maxLazyPerDevice {
			clear(m)
		}
		m[lazyMember{room, *ev.StateKey}] = ev.ID
	}
}

// forget drops what a device was sent: a sync without since starts the
// client over.
func (l *lazySent) forget(d lazyDevice) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.devices, d)
}

// lazyState narrows a room's state entries for a lazy-loading sync: every
// non-member entry, and the memberships of the timeline's senders (and,
// with full state, the user's own) as of the timeline's start, leaving
// out in an incremental sync those the device already has unless the
// filter asks for redundant members.
func (s *Service) lazyState(req *Request, roomID id.RoomID, keys, atStart rooms.StateMap, evs []*rooms.Event, full bool) rooms.StateMap {
	out := make(rooms.StateMap, len(keys))
	for k, v := range keys {
		if k.Type != event.StateMember.Type {
			out[k] = v
		}
	}
	want := map[string]bool{}
	if full {
		want[string(req.User)] = true
	}
	for _, ev := range evs {
		want[string(ev.PDU.Sender)] = true
	}
	redundant := full || (req.Filter != nil && req.Filter.Room != nil && req.Filter.Room.State != nil && req.Filter.Room.State.IncludeRedundantMembers)
	dev := lazyDevice{req.User, req.Device}
	for u := range want {
		k := pdu.StateKey{Type: event.StateMember.Type, StateKey: u}
		evID, ok := atStart[k]
		if !ok || (!redundant && s.lazy.sent(dev, roomID, u, evID)) {
			continue
		}
		out[k] = evID
	}
	return out
}
