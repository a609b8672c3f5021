package push

import (
	"encoding/json"
	"testing"

	"maunium.net/go/mautrix/federation/pdu"

	"github.com/palpo-im/palpo-desktop/server/rooms"
)

func TestReadMarks(t *testing.T) {
	var m readMarks
	k := readMarkKey{"@bob:localhost", "!room:localhost", ""}
	other := readMarkKey{"@bob:localhost", "!room:localhost", "$thread"}
	if !m.sent(k) {
		t.Fatal("a first event in a room needs a read marker")
	}
	if m.sent(k) {
		t.Fatal("a second event with nothing new before it needed a marker")
	}
	if !m.sent(other) {
		t.Fatal("another thread shared the main timeline's mark")
	}
	m.notified(k)
	if !m.sent(k) {
		t.Fatal("an event after a notification needs a marker")
	}
	// An event whose notifications could not be worked out stores no
	// marker either.
	m.sent(k)
	m.forget(k)
	if !m.sent(k) {
		t.Fatal("a forgotten mark was kept")
	}
	// The event that set the mark was not stored: its marker never was.
	m.discarded([]*rooms.Event{{PDU: &pdu.PDU{Sender: k.user, Content: json.RawMessage(`{}`)}, RoomID: k.room}})
	if !m.sent(k) {
		t.Fatal("a mark of a discarded event was kept")
	}
}
