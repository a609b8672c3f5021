package server_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/internal/dendrite"
	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
)

// dendriteRoomVersion is the room version of the rooms Palpo creates for
// Dendrite: Dendrite 0.13.8 knows versions 1 to 11 only, and refuses to
// join a room of a version it does not know (Palpo's default is 12).
const dendriteRoomVersion = "11"

// TestInteropDendriteRooms federates a Palpo and a Dendrite over loopback TLS
// with certificates from one test CA: a room created on each side and joined
// from the other, messages both ways in both rooms, and a profile of the
// other side's user read through each server.
func TestInteropDendriteRooms(t *testing.T) {
	ca := testserver.NewCA(t)
	cert, key := ca.Issue("127.0.0.1")
	d := dendrite.Start(t, dendrite.Options{CertFile: cert, KeyFile: key, TrustedCAFile: ca.CertFile})
	p := testserver.New(t, testserver.Federated(ca))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	alice := d.RegisterUser("alice") // on Dendrite
	bob := p.RegisterUser("bob")     // on Palpo
	if err := alice.SetDisplayName(ctx, "Alice on Dendrite"); err != nil {
		t.Fatal(err)
	}
	if err := bob.SetDisplayName(ctx, "Bob on Palpo"); err != nil {
		t.Fatal(err)
	}

	// Remote profiles: each server asks the other over /query/profile.
	if prof, err := bob.GetProfile(ctx, alice.UserID); err != nil || prof.DisplayName != "Alice on Dendrite" {
		t.Fatalf("Palpo reading Dendrite's profile of %s: %+v, %v", alice.UserID, prof, err)
	}
	if prof, err := alice.GetProfile(ctx, bob.UserID); err != nil || prof.DisplayName != "Bob on Palpo" {
		t.Fatalf("Dendrite reading Palpo's profile of %s: %+v, %v", bob.UserID, prof, err)
	}

	t.Run("room on Dendrite joined from Palpo", func(t *testing.T) {
		room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Name: "made on Dendrite", Preset: "public_chat"})
		if err != nil {
			t.Fatalf("create room on Dendrite: %v", err)
		}
		if _, err := bob.JoinRoom(ctx, room.RoomID.String(), &mautrix.ReqJoinRoom{Via: []string{d.ServerName}}); err != nil {
			t.Fatalf("Palpo joining Dendrite's room: %v", err)
		}
		waitSyncMembership(ctx, t, alice, room.RoomID, bob.UserID, event.MembershipJoin)
		exchangeMessages(ctx, t, room.RoomID, alice, bob)
	})

	t.Run("room on Palpo joined from Dendrite", func(t *testing.T) {
		room, err := bob.CreateRoom(ctx, &mautrix.ReqCreateRoom{Name: "made on Palpo", Preset: "public_chat", RoomVersion: dendriteRoomVersion})
		if err != nil {
			t.Fatalf("create room on Palpo: %v", err)
		}
		if _, err := alice.JoinRoom(ctx, room.RoomID.String(), &mautrix.ReqJoinRoom{Via: []string{p.Config.ServerName}}); err != nil {
			t.Fatalf("Dendrite joining Palpo's room: %v", err)
		}
		waitSyncMembership(ctx, t, bob, room.RoomID, alice.UserID, event.MembershipJoin)
		exchangeMessages(ctx, t, room.RoomID, bob, alice)
	})
}

// exchangeMessages sends a message from each side and waits for the other
// side to see it.
func exchangeMessages(ctx context.Context, t *testing.T, room id.RoomID, a, b *mautrix.Client) {
	t.Helper()
	for _, pair := range [][2]*mautrix.Client{{a, b}, {b, a}} {
		from, to := pair[0], pair[1]
		body := "hello from " + from.UserID.String()
		sent, err := from.SendText(ctx, room, body)
		if err != nil {
			t.Fatalf("%s sending: %v", from.UserID, err)
		}
		waitEvent(ctx, t, to, room, func(ev *event.Event) bool {
			return ev.ID == sent.EventID && ev.Type == event.EventMessage && ev.Content.AsMessage().Body == body
		}, "message "+sent.EventID.String()+" from "+from.UserID.String())
	}
}

func waitSyncMembership(ctx context.Context, t *testing.T, c *mautrix.Client, room id.RoomID, user id.UserID, want event.Membership) {
	t.Helper()
	key := user.String()
	waitEvent(ctx, t, c, room, func(ev *event.Event) bool {
		return ev.Type == event.StateMember && ev.StateKey != nil && *ev.StateKey == key && ev.Content.AsMember().Membership == want
	}, string(want)+" of "+key)
}

// waitEvent long-polls c's /sync until an event of room matches, or fails
// the test when ctx ends.
func waitEvent(ctx context.Context, t *testing.T, c *mautrix.Client, room id.RoomID, match func(*event.Event) bool, what string) {
	t.Helper()
	since := ""
	for {
		resp, err := c.SyncRequest(ctx, 5000, since, "", false, event.PresenceOnline)
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
				t.Fatalf("%s never saw %s in %s", c.UserID, what, room)
			}
			t.Fatalf("%s syncing: %v", c.UserID, err)
		}
		since = resp.NextBatch
		if joined, ok := resp.Rooms.Join[room]; ok {
			for _, evs := range [][]*event.Event{joined.State.Events, joined.Timeline.Events} {
				for _, ev := range evs {
					ev.RoomID = room
					_ = ev.Content.ParseRaw(ev.Type)
					if match(ev) {
						return
					}
				}
			}
		}
	}
}
