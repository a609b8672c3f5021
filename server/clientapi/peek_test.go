package clientapi_test

import (
	"context"
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
