package todevice

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/storage"
)

// EDUType is the federation EDU that carries send-to-device messages
// (spec: server-server API, "Send-to-device messaging").
const EDUType = "m.direct_to_device"

// maxEDUBytes bounds the messages of one m.direct_to_device EDU: more for
// one server are split into several EDUs, each with its own message_id.
// A transaction holds up to 100 EDUs and receivers cap its body (Palpo at
// 8 MiB), so EDUs must stay well below a hundredth of that. A single
// message larger than this still goes, alone in its EDU.
const maxEDUBytes = 60 << 10

// DirectToDevice is the content of an m.direct_to_device EDU.
type DirectToDevice struct {
	Sender    id.UserID `json:"sender"`
	Type      string    `json:"type"`
	MessageID string    `json:"message_id"`
	// Messages maps recipient user to device ID (or "*") to content.
	Messages map[id.UserID]map[id.DeviceID]json.RawMessage `json:"messages"`
}

// remoteEntry is one message for a user of another server.
type remoteEntry struct {
	user    id.UserID
	device  id.DeviceID
	content json.RawMessage
}

// appendRemote adds a remote user's messages in a stable order; "*" wins
// over explicit devices, as it does for local users.
func appendRemote(out []remoteEntry, user id.UserID, devices map[id.DeviceID]json.RawMessage) []remoteEntry {
	if all, ok := devices["*"]; ok {
		return append(out, remoteEntry{user, "*", all})
	}
	for _, d := range slices.Sorted(maps.Keys(devices)) {
		out = append(out, remoteEntry{user, d, devices[d]})
	}
	return out
}

// remoteEDUs turns the messages for each server into m.direct_to_device
// EDUs queued for it, servers in name order, each server's messages split
// at maxEDUBytes.
func remoteEDUs(req *Request, remote map[string][]remoteEntry) ([]storage.QueuedEDU, error) {
	var out []storage.QueuedEDU
	for _, server := range slices.Sorted(maps.Keys(remote)) {
		var cur *DirectToDevice
		size := 0
		flush := func() error {
			if cur == nil {
				return nil
			}
			raw, err := json.Marshal(cur)
			if err != nil {
				return fmt.Errorf("encode to-device EDU for %s: %w", server, err)
			}
			out = append(out, storage.QueuedEDU{Destination: server, Type: EDUType, Content: raw})
			cur, size = nil, 0
			return nil
		}
		for _, e := range remote[server] {
			n := len(e.user) + len(e.device) + len(e.content) + 8
			if cur != nil && size+n > maxEDUBytes {
				if err := flush(); err != nil {
					return nil, err
				}
			}
			if cur == nil {
				cur = &DirectToDevice{Sender: req.Sender, Type: req.Type, MessageID: newMessageID(),
					Messages: map[id.UserID]map[id.DeviceID]json.RawMessage{}}
				size = 200
			}
			if cur.Messages[e.user] == nil {
				cur.Messages[e.user] = map[id.DeviceID]json.RawMessage{}
			}
			cur.Messages[e.user][e.device] = e.content
			size += n
		}
		if err := flush(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// newMessageID makes a message_id unique for this server's messages (the
// receiver dedupes by origin and message_id): 128 random bits, 22
// characters, within the spec's 32.
func newMessageID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
