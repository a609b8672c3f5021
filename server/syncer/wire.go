package syncer

import (
	"encoding/json"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// The JSON form of a sync response. mautrix's types leave out what is
// zero, which the spec allows for most fields, but clients and the
// Matrix test suites read some of them as Synapse writes them:
//   - device_one_time_keys_count always carries signed_curve25519, even at
//     zero: clients (matrix-rust-sdk among them) only learn their keys ran
//     out, and upload more, from seeing 0;
//   - every room's timeline has its events and limited, even when empty or
//     false (the spec requires events; a client must not guess limited),
//     and its state has its events list;
//   - joined rooms carry unread_thread_notifications, which mautrix has no
//     field for.

// MarshalJSON writes the response in its wire form.
func (r *Response) MarshalJSON() ([]byte, error) {
	return json.Marshal(wireResponse(r.RespSync, r.ThreadCounts))
}

type wireSync struct {
	*mautrix.RespSync
	DeviceOTKCount map[id.KeyAlgorithm]int `json:"device_one_time_keys_count"`
	Rooms          *wireRooms              `json:"rooms,omitempty"`
}

type wireRooms struct {
	Leave  map[id.RoomID]wireLeftRoom             `json:"leave,omitempty"`
	Join   map[id.RoomID]wireJoinedRoom           `json:"join,omitempty"`
	Invite map[id.RoomID]*mautrix.SyncInvitedRoom `json:"invite,omitempty"`
	Knock  map[id.RoomID]*mautrix.SyncKnockedRoom `json:"knock,omitempty"`
}

// The embedded room's own state and timeline fields are shadowed by these
// (a field of the outer struct wins over one of the same JSON name inside).
type wireJoinedRoom struct {
	*mautrix.SyncJoinedRoom
	State                     wireEvents                                  `json:"state"`
	Timeline                  wireTimeline                                `json:"timeline"`
	UnreadThreadNotifications map[string]mautrix.UnreadNotificationCounts `json:"unread_thread_notifications,omitempty"`
}

type wireLeftRoom struct {
	*mautrix.SyncLeftRoom
	State    wireEvents   `json:"state"`
	Timeline wireTimeline `json:"timeline"`
}

type wireEvents struct {
	Events []*event.Event `json:"events"`
}

type wireTimeline struct {
	Events    []*event.Event `json:"events"`
	Limited   bool           `json:"limited"`
	PrevBatch string         `json:"prev_batch,omitempty"`
}

func toWireEvents(evs []*event.Event) wireEvents {
	if evs == nil {
		evs = []*event.Event{}
	}
	return wireEvents{Events: evs}
}

func toWireTimeline(t mautrix.SyncTimeline) wireTimeline {
	return wireTimeline{Events: toWireEvents(t.Events).Events, Limited: t.Limited, PrevBatch: t.PrevBatch}
}

// wireResponse returns the JSON form of a sync response.
func wireResponse(resp *mautrix.RespSync, threads ThreadCounts) any {
	counts := map[id.KeyAlgorithm]int{id.KeyAlgorithmSignedCurve25519: resp.DeviceOTKCount.SignedCurve25519}
	if resp.DeviceOTKCount.Curve25519 > 0 {
		counts[id.KeyAlgorithmCurve25519] = resp.DeviceOTKCount.Curve25519
	}
	w := wireSync{RespSync: resp, DeviceOTKCount: counts}
	if resp.Rooms.IsZero() {
		return w
	}
	w.Rooms = &wireRooms{Invite: resp.Rooms.Invite, Knock: resp.Rooms.Knock}
	if len(resp.Rooms.Join) > 0 {
		w.Rooms.Join = make(map[id.RoomID]wireJoinedRoom, len(resp.Rooms.Join))
		for roomID, jr := range resp.Rooms.Join {
			w.Rooms.Join[roomID] = wireJoinedRoom{SyncJoinedRoom: jr, State: toWireEvents(jr.State.Events),
				Timeline: toWireTimeline(jr.Timeline), UnreadThreadNotifications: threads[roomID]}
		}
	}
	if len(resp.Rooms.Leave) > 0 {
		w.Rooms.Leave = make(map[id.RoomID]wireLeftRoom, len(resp.Rooms.Leave))
		for roomID, lr := range resp.Rooms.Leave {
			w.Rooms.Leave[roomID] = wireLeftRoom{SyncLeftRoom: lr, State: toWireEvents(lr.State.Events), Timeline: toWireTimeline(lr.Timeline)}
		}
	}
	return w
}
