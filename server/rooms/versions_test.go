package rooms

import (
	"bytes"
	"context"
	"encoding/json/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/config"
)

// The config validates default_room_version against its own copy of the
// supported versions; the two lists must not drift apart.
func TestSupportedVersionsMatchConfig(t *testing.T) {
	var fromConfig []id.RoomVersion
	for _, v := range config.RoomVersions {
		fromConfig = append(fromConfig, id.RoomVersion(v))
	}
	if !slices.Equal(fromConfig, SupportedRoomVersions) {
		t.Fatalf("config.RoomVersions %v, rooms.SupportedRoomVersions %v", fromConfig, SupportedRoomVersions)
	}
	if !IsSupportedVersion(id.RoomVersion(config.Default().DefaultRoomVersion)) || config.Default().DefaultRoomVersion != string(DefaultRoomVersion) {
		t.Fatalf("config's default room version %q, rooms' %q", config.Default().DefaultRoomVersion, DefaultRoomVersion)
	}
}

// Events are stored in their room version's format, with hashes and
// signatures that verify and the event ID the version defines: in versions
// 1 and 2 chosen by the server and carried in the event, with prev_events
// and auth_events as [event_id, hashes] pairs naming the referenced events'
// hashes; later, the reference hash.
func TestStoredEventFormat(t *testing.T) {
	for _, version := range []id.RoomVersion{id.RoomV1, id.RoomV2, id.RoomV3, id.RoomV4, id.RoomV11} {
		t.Run("v"+string(version), func(t *testing.T) {
			s := newTestService(t)
			ctx := context.Background()
			alice := id.UserID("@alice:localhost")
			roomID, err := s.CreateRoom(ctx, alice, &CreateRoomRequest{RoomVersion: version})
			if err != nil {
				t.Fatal(err)
			}
			evID, err := s.Send(ctx, alice, "D", roomID, "m.room.message", raw(map[string]any{"body": "x"}), "t1")
			if err != nil {
				t.Fatal(err)
			}
			se, err := s.db.GetEvent(ctx, evID)
			if err != nil {
				t.Fatal(err)
			}
			getKey := func(string, id.KeyID, time.Time) (id.SigningKey, time.Time, error) {
				return s.key.Pub, time.Now().Add(time.Hour), nil
			}
			if !originalFormat(version) {
				var p pdu.PDU
				if err := json.Unmarshal(se.PDU, &p); err != nil {
					t.Fatal(err)
				}
				if got, err := p.GetEventID(version); err != nil || got != evID {
					t.Fatalf("reference hash ID %s, %v; stored as %s", got, err, evID)
				}
				if !p.VerifyContentHash() || p.VerifySignature(version, "localhost", getKey) != nil {
					t.Fatal("content hash or signature does not verify")
				}
				return
			}
			var old pdu.RoomV1PDU
			if err := json.Unmarshal(se.PDU, &old); err != nil {
				t.Fatalf("stored event is not in the original format: %v\n%s", err, se.PDU)
			}
			if old.EventID != evID || !strings.HasSuffix(string(evID), ":localhost") {
				t.Fatalf("event_id %q, stored as %s", old.EventID, evID)
			}
			if !old.VerifyContentHash() || old.VerifySignature(version, "localhost", getKey) != nil {
				t.Fatal("content hash or signature does not verify")
			}
			if len(old.PrevEvents) != 1 || len(old.AuthEvents) != 3 {
				t.Fatalf("prev_events %v, auth_events %v", old.PrevEvents, old.AuthEvents)
			}
			for _, ref := range append(old.PrevEvents, old.AuthEvents...) {
				se, err := s.db.GetEvent(ctx, ref.ID)
				if err != nil {
					t.Fatalf("reference %s: %v", ref.ID, err)
				}
				var target pdu.RoomV1PDU
				if err := json.Unmarshal(se.PDU, &target); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(ref.Hashes.SHA256, target.Hashes.SHA256) {
					t.Errorf("reference to %s carries hash %x, the event has %x", ref.ID, ref.Hashes.SHA256, target.Hashes.SHA256)
				}
			}
			// Read back, it is the same event to the rest of Palpo.
			s.cache = newCache()
			ev, err := s.event(ctx, evID)
			if err != nil || ev.PDU.InternalMeta.EventID != evID || len(ev.PDU.AuthEvents) != 3 || ev.PDU.PrevEvents[0] != old.PrevEvents[0].ID {
				t.Fatalf("loaded %+v, %v", ev, err)
			}
		})
	}
}
