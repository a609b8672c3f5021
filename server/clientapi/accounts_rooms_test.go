package clientapi_test

import (
	"context"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
)

// TestDeactivationLeavesRooms: a deactivated account leaves every room it
// was in, and declines its pending invites.
func TestDeactivationLeavesRooms(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	joined := roomCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	invited := roomCreate(t, alice, &mautrix.ReqCreateRoom{Invite: []id.UserID{bob.UserID}})
	if _, err := bob.JoinRoomByID(ctx, joined); err != nil {
		t.Fatal(err)
	}
	resp := acctPasswordUIA(t, bob, "/_matrix/client/v3/account/deactivate", "bob", testserver.DefaultPassword, map[string]any{})
	if resp.Status != 200 {
		t.Fatalf("deactivate: %d %v", resp.Status, resp.Body)
	}
	for _, roomID := range []id.RoomID{joined, invited} {
		m, err := alice.FullStateEvent(ctx, roomID, event.StateMember, string(bob.UserID))
		if err != nil || m.Content.AsMember().Membership != event.MembershipLeave || m.Sender != bob.UserID {
			t.Fatalf("bob's membership in %s after deactivation: %+v %v", roomID, m, err)
		}
	}
}

// TestProfileChangeUpdatesMemberEvents: a new display name or avatar is sent
// as a new member event in every room the user is in.
func TestProfileChangeUpdatesMemberEvents(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")
	rooms := []id.RoomID{
		roomCreate(t, alice, &mautrix.ReqCreateRoom{}),
		roomCreate(t, alice, &mautrix.ReqCreateRoom{RoomVersion: id.RoomV10}),
	}
	if err := alice.SetDisplayName(ctx, "Alice Liddell"); err != nil {
		t.Fatal(err)
	}
	if err := alice.SetAvatarURL(ctx, id.ContentURI{Homeserver: "localhost", FileID: "abc"}); err != nil {
		t.Fatal(err)
	}
	for _, roomID := range rooms {
		m, err := alice.FullStateEvent(ctx, roomID, event.StateMember, string(alice.UserID))
		if err != nil {
			t.Fatal(err)
		}
		mc := m.Content.AsMember()
		if mc.Membership != event.MembershipJoin || mc.Displayname != "Alice Liddell" || mc.AvatarURL != "mxc://localhost/abc" {
			t.Fatalf("member event in %s: %+v", roomID, mc)
		}
	}
	// A room joined later starts with the new profile.
	later := roomCreate(t, alice, &mautrix.ReqCreateRoom{})
	m, _ := alice.FullStateEvent(ctx, later, event.StateMember, string(alice.UserID))
	if m.Content.AsMember().Displayname != "Alice Liddell" {
		t.Fatalf("new room member event: %+v", m.Content.AsMember())
	}
}
