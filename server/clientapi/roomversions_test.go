package clientapi_test

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/config"
	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
)

// eventIDFormats are the event IDs of each room version: chosen by the server
// in versions 1 and 2, the reference hash in base64 from 3 and in URL-safe
// base64 from 4.
var eventIDFormats = map[id.RoomVersion]*regexp.Regexp{
	id.RoomV1: regexp.MustCompile(`^\$[A-Za-z0-9]+:localhost$`),
	id.RoomV2: regexp.MustCompile(`^\$[A-Za-z0-9]+:localhost$`),
	id.RoomV3: regexp.MustCompile(`^\$[A-Za-z0-9+/]{43}$`),
}

var urlSafeEventID = regexp.MustCompile(`^\$[A-Za-z0-9_-]{43}$`)

// Rooms of every stable version work end to end through the client API:
// creation, messages and state, a second member, a power level change,
// redactions, and /sync and /messages showing it all.
func TestEveryRoomVersion(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	ctx := context.Background()
	for n := 1; n <= 12; n++ {
		v := id.RoomVersion(strconv.Itoa(n))
		t.Run("v"+string(v), func(t *testing.T) {
			everyRoomVersion(t, ctx, alice, bob, v)
		})
	}
}

func everyRoomVersion(t *testing.T, ctx context.Context, alice, bob *mautrix.Client, v id.RoomVersion) {
	roomID := roomCreate(t, alice, &mautrix.ReqCreateRoom{RoomVersion: v, Preset: "public_chat", Name: "Room v" + string(v)})
	create, err := alice.FullStateEvent(ctx, roomID, event.StateCreate, "")
	if err != nil {
		t.Fatal(err)
	}
	if got := create.Content.AsCreate().RoomVersion; got != v {
		t.Fatalf("create event room_version %q", got)
	}
	if creator := create.Content.Raw["creator"]; v.CreatorInContent() != (creator == alice.UserID.String()) {
		t.Fatalf("create event creator %v", creator)
	}
	format := eventIDFormats[v]
	if format == nil {
		format = urlSafeEventID
	}
	if !format.MatchString(string(create.ID)) {
		t.Fatalf("create event ID %s does not have the format of room version %s", create.ID, v)
	}

	hello, err := alice.SendText(ctx, roomID, "hello v"+string(v))
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	if !format.MatchString(string(hello.EventID)) {
		t.Fatalf("message event ID %s does not have the format of room version %s", hello.EventID, v)
	}
	if v == id.RoomV3 {
		// Version 3 event IDs may hold "/" and "+", which must survive
		// being a path segment.
		for i := 0; !strings.ContainsAny(string(hello.EventID), "/+"); i++ {
			if i == 100 {
				t.Fatal("no event ID with / or + in 100 messages")
			}
			if hello, err = alice.SendText(ctx, roomID, "hello v"+string(v)); err != nil {
				t.Fatalf("send: %v", err)
			}
		}
	}
	if ev, err := bob.GetEvent(ctx, roomID, hello.EventID); err == nil || ev != nil {
		t.Fatalf("bob read an event of a room he is not in: %v", ev)
	}
	if ev, err := alice.GetEvent(ctx, roomID, hello.EventID); err != nil || ev.ID != hello.EventID {
		t.Fatalf("get event %s: %+v, %v", hello.EventID, ev, err)
	}
	if _, err := alice.SendStateEvent(ctx, roomID, event.StateTopic, "", &event.TopicEventContent{Topic: "by alice"}); err != nil {
		t.Fatalf("topic: %v", err)
	}

	if _, err := bob.JoinRoomByID(ctx, roomID); err != nil {
		t.Fatalf("bob joins: %v", err)
	}
	// At level 0 bob may not set the topic, but may redact his own message
	// (in versions 1 and 2 by auth rule 11.2: same server as the event).
	_, err = bob.SendStateEvent(ctx, roomID, event.StateTopic, "", &event.TopicEventContent{Topic: "by bob"})
	roomErr(t, "topic by bob at level 0", err, 403, "M_FORBIDDEN")
	oops, err := bob.SendText(ctx, roomID, "oops")
	if err != nil {
		t.Fatalf("bob sends: %v", err)
	}
	if _, err := bob.RedactEvent(ctx, roomID, oops.EventID); err != nil {
		t.Fatalf("bob redacts his own message: %v", err)
	}

	var pl event.PowerLevelsEventContent
	if err := alice.StateEvent(ctx, roomID, event.StatePowerLevels, "", &pl); err != nil {
		t.Fatal(err)
	}
	pl.SetUserLevel(bob.UserID, 50)
	if _, err := alice.SendStateEvent(ctx, roomID, event.StatePowerLevels, "", &pl); err != nil {
		t.Fatalf("power levels: %v", err)
	}
	if _, err := bob.SendStateEvent(ctx, roomID, event.StateTopic, "", &event.TopicEventContent{Topic: "by bob"}); err != nil {
		t.Fatalf("topic by bob at level 50: %v", err)
	}
	reply, err := bob.SendText(ctx, roomID, "hi alice")
	if err != nil {
		t.Fatalf("bob sends: %v", err)
	}
	if _, err := alice.RedactEvent(ctx, roomID, hello.EventID); err != nil {
		t.Fatalf("alice redacts: %v", err)
	}

	// /sync shows bob the room with everything in its timeline.
	resp := syncOnce(t, bob, "", `{"room":{"timeline":{"limit":50}}}`, 0)
	jr := resp.Rooms.Join[roomID]
	if jr == nil {
		t.Fatalf("bob's sync has no room %s", roomID)
	}
	seen := map[id.EventID]*event.Event{}
	for _, ev := range jr.Timeline.Events {
		seen[ev.ID] = ev
	}
	if ev := seen[reply.EventID]; ev == nil || ev.Content.Raw["body"] != "hi alice" {
		t.Fatalf("sync timeline lacks bob's message: %v", ev)
	}
	if ev := seen[hello.EventID]; ev == nil || len(ev.Content.Raw) != 0 || ev.Unsigned.RedactedBecause == nil {
		t.Fatalf("sync timeline: alice's message not shown redacted: %+v", ev)
	}
	if ev := seen[create.ID]; ev == nil {
		t.Fatal("sync timeline lacks the create event")
	}

	// /messages pages back through the same events.
	msgs, err := alice.Messages(ctx, roomID, "", "", mautrix.DirectionBackward, nil, 100)
	if err != nil {
		t.Fatalf("messages: %v", err)
	}
	var sawCreate, sawOops, sawHello, sawReply bool
	for _, ev := range msgs.Chunk {
		switch ev.ID {
		case create.ID:
			sawCreate = true
		case oops.EventID:
			sawOops = len(ev.Content.Raw) == 0
		case hello.EventID:
			sawHello = len(ev.Content.Raw) == 0
		case reply.EventID:
			sawReply = ev.Content.Raw["body"] == "hi alice"
		}
	}
	if !sawCreate || !sawOops || !sawHello || !sawReply {
		t.Fatalf("messages: create %v, redacted oops %v, redacted hello %v, reply %v", sawCreate, sawOops, sawHello, sawReply)
	}
	var topic event.TopicEventContent
	if err := alice.StateEvent(ctx, roomID, event.StateTopic, "", &topic); err != nil || topic.Topic != "by bob" {
		t.Fatalf("topic %q, %v", topic.Topic, err)
	}
}

// A server configured with default_room_version = "10" creates version 10
// rooms when the client asks for no version, says so in its capabilities,
// and still creates the versions clients ask for.
func TestConfiguredDefaultRoomVersion(t *testing.T) {
	ts := testserver.New(t, func(c *config.Config) { c.DefaultRoomVersion = "10" })
	alice := ts.RegisterUser("alice")
	ctx := context.Background()
	caps, err := alice.Capabilities(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if caps.RoomVersions == nil || caps.RoomVersions.Default != "10" {
		t.Fatalf("m.room_versions: %+v", caps.RoomVersions)
	}
	for req, want := range map[id.RoomVersion]id.RoomVersion{"": id.RoomV10, id.RoomV12: id.RoomV12} {
		roomID := roomCreate(t, alice, &mautrix.ReqCreateRoom{RoomVersion: req})
		create, err := alice.FullStateEvent(ctx, roomID, event.StateCreate, "")
		if err != nil {
			t.Fatal(err)
		}
		if c := create.Content.Raw; c["room_version"] != string(want) || (want == id.RoomV10) != (c["creator"] == alice.UserID.String()) {
			t.Fatalf("asked for %q: create content %v, want version %s", req, c, want)
		}
		if want == id.RoomV10 && !strings.HasSuffix(string(roomID), ":localhost") {
			t.Fatalf("v10 room ID %s has no server part", roomID)
		}
	}
}
