package clientapi_test

import (
	"context"
	"net/url"
	"slices"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
)

// setVisibility sets a room's history visibility.
func setVisibility(t *testing.T, c *mautrix.Client, roomID id.RoomID, visibility string) id.EventID {
	t.Helper()
	resp, err := c.SendStateEvent(context.Background(), roomID, event.StateHistoryVisibility, "", map[string]any{"history_visibility": visibility})
	if err != nil {
		t.Fatal(err)
	}
	return resp.EventID
}

// TestHistoryVisibilityChanges: a change of history visibility is visible
// when the setting before or after it allows (the spec), and a setting the
// server does not know counts as shared.
func TestHistoryVisibilityChanges(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	carol := ts.RegisterUser("carol")
	roomID := roomCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	opened := setVisibility(t, alice, roomID, "world_readable")
	closed := setVisibility(t, alice, roomID, "joined")
	for what, evID := range map[string]id.EventID{"the change that opened the room": opened, "the change that closed it": closed} {
		if _, err := carol.GetEvent(ctx, roomID, evID); err != nil {
			t.Fatalf("%s, to a stranger: %v", what, err)
		}
	}
	setVisibility(t, alice, roomID, "org.example.unknown")
	before := ctxSendTexts(t, alice, roomID, "before bob")[0]
	if _, err := bob.JoinRoomByID(ctx, roomID); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.GetEvent(ctx, roomID, before); err != nil {
		t.Fatalf("unknown visibility is shared: %v", err)
	}
	_, err := carol.GetEvent(ctx, roomID, before)
	roomErr(t, "unknown visibility, stranger", err, 404, "M_NOT_FOUND")
}

// TestRoomPreview: a user who is not in a room reads all of it while its
// history is world-readable (spec: "Room Previews"), and none of it
// otherwise.
func TestRoomPreview(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")
	carol := ts.RegisterUser("carol")
	roomID := roomCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Lobby"})
	msg := ctxSendTexts(t, alice, roomID, "shared history")[0]

	// Shared history is for members only.
	_, err := carol.Messages(ctx, roomID, "", "", mautrix.DirectionBackward, nil, 10)
	roomErr(t, "messages", err, 403, "M_FORBIDDEN")
	_, err = carol.State(ctx, roomID)
	roomErr(t, "state", err, 403, "M_FORBIDDEN")
	var name event.RoomNameEventContent
	roomErr(t, "state event", carol.StateEvent(ctx, roomID, event.StateRoomName, "", &name), 403, "M_FORBIDDEN")
	_, err = carol.GetEvent(ctx, roomID, msg)
	roomErr(t, "event", err, 404, "M_NOT_FOUND")
	_, err = carol.Context(ctx, roomID, msg, nil, 2)
	roomErr(t, "context", err, 403, "M_FORBIDDEN")
	_, err = carol.Members(ctx, roomID)
	roomErr(t, "members", err, 403, "M_FORBIDDEN")
	_, err = isRoomSync(t, ts, carol, roomID, "")
	roomErr(t, "initialSync", err, 403, "M_FORBIDDEN")
	roomErr(t, "events/{eventId}", evGet(t, ts, carol, "/v3/events/"+url.PathEscape(string(msg)), nil), 404, "M_NOT_FOUND")

	opened := setVisibility(t, alice, roomID, "world_readable")
	open := ctxSendTexts(t, alice, roomID, "for everyone")[0]

	msgs, err := carol.Messages(ctx, roomID, "", "", mautrix.DirectionBackward, nil, 10)
	if err != nil {
		t.Fatal(err)
	}
	// Carol sees what was sent while the room was world-readable, and the
	// change that opened it (the spec: the setting before or after a
	// visibility change counts), but not the shared history before it.
	if b := ctxBodies(msgs.Chunk); !slices.Equal(b, []string{"for everyone", "m.room.history_visibility"}) || msgs.Chunk[1].ID != opened {
		t.Fatalf("messages: %v", b)
	}
	if state, err := carol.State(ctx, roomID); err != nil || state[event.StateRoomName][""] == nil {
		t.Fatalf("state: %v %v", state, err)
	}
	if err := carol.StateEvent(ctx, roomID, event.StateRoomName, "", &name); err != nil || name.Name != "Lobby" {
		t.Fatalf("state event: %+v %v", name, err)
	}
	if ev, err := carol.GetEvent(ctx, roomID, open); err != nil || ev.ID != open {
		t.Fatalf("event: %v %v", ev, err)
	}
	var byID event.Event
	if err := evGet(t, ts, carol, "/v3/events/"+url.PathEscape(string(open)), &byID); err != nil || byID.ID != open || byID.RoomID != roomID {
		t.Fatalf("events/{eventId}: %+v %v", byID, err)
	}
	if c, err := carol.Context(ctx, roomID, open, nil, 2); err != nil || c.Event.ID != open {
		t.Fatalf("context: %v %v", c, err)
	}
	if m, err := carol.Members(ctx, roomID); err != nil || len(m.Chunk) != 1 {
		t.Fatalf("members: %v %v", m, err)
	}
	snap, err := isRoomSync(t, ts, carol, roomID, "")
	if err != nil {
		t.Fatal(err)
	}
	// A peeker has no membership; the history before the room opened
	// stays hidden.
	if snap.Membership != "" || slices.Contains(ctxBodies(snap.Messages.Chunk), "shared history") ||
		!slices.Contains(ctxBodies(snap.Messages.Chunk), "for everyone") || isState(snap.State, event.StateRoomName, "") == nil {
		t.Fatalf("initialSync: %q %v %v", snap.Membership, ctxBodies(snap.Messages.Chunk), isTypes(snap.State))
	}
	// Still not a member: she cannot post.
	_, err = carol.SendText(ctx, roomID, "hi")
	roomErr(t, "send", err, 403, "M_FORBIDDEN")

	// Closing the history again: the closing change is still visible, what
	// follows is not, and the room-wide reads close.
	closed := setVisibility(t, alice, roomID, "joined")
	after := ctxSendTexts(t, alice, roomID, "members only")[0]
	if _, err := carol.GetEvent(ctx, roomID, closed); err != nil {
		t.Fatalf("the change that closed the room: %v", err)
	}
	_, err = carol.GetEvent(ctx, roomID, after)
	roomErr(t, "event after closing", err, 404, "M_NOT_FOUND")
	_, err = carol.State(ctx, roomID)
	roomErr(t, "state after closing", err, 403, "M_FORBIDDEN")
	_, err = isRoomSync(t, ts, carol, roomID, "")
	roomErr(t, "initialSync after closing", err, 403, "M_FORBIDDEN")
}
