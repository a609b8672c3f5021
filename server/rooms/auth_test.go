package rooms

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

func raw(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// TestAuthRulesRejectBadEvents sends, for room versions 1, 3, 10 and 12, one
// event breaking each auth rule a local client can reach, and checks each is
// refused with M_FORBIDDEN and leaves no trace.
func TestAuthRulesRejectBadEvents(t *testing.T) {
	for _, version := range []id.RoomVersion{id.RoomV1, id.RoomV3, id.RoomV10, id.RoomV12} {
		t.Run("v"+string(version), func(t *testing.T) {
			s := newTestService(t)
			ctx := context.Background()
			admin, mod, member, outsider := id.UserID("@admin:localhost"), id.UserID("@mod:localhost"), id.UserID("@member:localhost"), id.UserID("@outsider:localhost")
			roomID, err := s.CreateRoom(ctx, admin, &CreateRoomRequest{RoomVersion: version, Preset: PresetPublicChat})
			if err != nil {
				t.Fatal(err)
			}
			for _, u := range []id.UserID{mod, member} {
				if _, err := s.ChangeMembership(ctx, MembershipChange{Sender: u, Target: u, RoomID: roomID, Membership: event.MembershipJoin}); err != nil {
					t.Fatal(err)
				}
			}
			pl := map[string]any{"users": map[id.UserID]int{mod: 50}, "state_default": 50, "events_default": 0, "ban": 50, "kick": 50, "invite": 50, "redact": 50,
				"events": map[string]int{"m.room.power_levels": 100}}
			if !version.PrivilegedRoomCreators() {
				pl["users"] = map[id.UserID]int{mod: 50, admin: 100}
			}
			if _, err := s.SetState(ctx, admin, roomID, "m.room.power_levels", "", raw(pl)); err != nil {
				t.Fatal(err)
			}
			before, err := s.db.MaxStreamPos(ctx)
			if err != nil {
				t.Fatal(err)
			}
			cases := []struct {
				name string
				send func() error
			}{
				{"non-member sends a message", func() error {
					_, err := s.Send(ctx, outsider, "D", roomID, "m.room.message", raw(map[string]any{"body": "x"}), "t1")
					return err
				}},
				{"member sets state below state_default", func() error {
					_, err := s.SetState(ctx, member, roomID, "m.room.topic", "", raw(map[string]any{"topic": "x"}))
					return err
				}},
				{"state key of another user", func() error {
					_, err := s.SetState(ctx, mod, roomID, "org.example", string(member), raw(map[string]any{}))
					return err
				}},
				{"mod raises own power above own level", func() error {
					_, err := s.SetState(ctx, mod, roomID, "m.room.power_levels", "", raw(map[string]any{"users": map[id.UserID]int{mod: 100}}))
					return err
				}},
				{"member invites without invite power", func() error {
					// A remote invitee: local ones must have an account here.
					_, err := s.ChangeMembership(ctx, MembershipChange{Sender: member, Target: "@outsider:elsewhere.example", RoomID: roomID, Membership: event.MembershipInvite})
					return err
				}},
				{"member bans", func() error {
					_, err := s.ChangeMembership(ctx, MembershipChange{Sender: member, Target: mod, RoomID: roomID, Membership: event.MembershipBan})
					return err
				}},
				{"mod kicks the admin", func() error {
					_, err := s.ChangeMembership(ctx, MembershipChange{Sender: mod, Target: admin, RoomID: roomID, Membership: event.MembershipLeave})
					return err
				}},
				{"joining on someone else's behalf", func() error {
					_, err := s.ChangeMembership(ctx, MembershipChange{Sender: mod, Target: outsider, RoomID: roomID, Membership: event.MembershipJoin})
					return err
				}},
				{"unknown membership value", func() error {
					key := string(member)
					p, _ := newProto(member, "m.room.member", &key, map[string]any{"membership": "dance"})
					r, _ := s.room(ctx, roomID)
					_, err := s.sendEvents(ctx, r, []*proto{p}, false)
					return err
				}},
				{"member event without a state key that is a user ID", func() error {
					key := "not-a-user"
					p, _ := newProto(admin, "m.room.member", &key, map[string]any{"membership": "join"})
					r, _ := s.room(ctx, roomID)
					_, err := s.sendEvents(ctx, r, []*proto{p}, false)
					return err
				}},
				{"a second create event", func() error {
					key := ""
					p, _ := newProto(admin, "m.room.create", &key, map[string]any{"room_version": version})
					r, _ := s.room(ctx, roomID)
					_, err := s.sendEvents(ctx, r, []*proto{p}, false)
					return err
				}},
			}
			for _, c := range cases {
				err := c.send()
				var re mautrix.RespError
				if !errors.As(err, &re) || re.ErrCode != mautrix.MForbidden.ErrCode {
					t.Errorf("%s: want M_FORBIDDEN, got %v", c.name, err)
				}
			}
			after, err := s.db.MaxStreamPos(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if after != before {
				t.Errorf("rejected events were stored: stream moved from %d to %d", before, after)
			}
			// And the rules do let the allowed versions through.
			if _, err := s.SetState(ctx, mod, roomID, "m.room.topic", "", raw(map[string]any{"topic": "ok"})); err != nil {
				t.Errorf("mod sets topic: %v", err)
			}
			if _, err := s.ChangeMembership(ctx, MembershipChange{Sender: mod, Target: member, RoomID: roomID, Membership: event.MembershipBan}); err != nil {
				t.Errorf("mod bans member: %v", err)
			}
		})
	}
}

// TestPowerLevelsRemovalPanicIsRejection: removing a users entry equal to
// the sender's own level makes mautrix's eventauth panic; it must come back
// as a refusal, not a crash.
func TestPowerLevelsRemovalPanicIsRejection(t *testing.T) {
	s := newTestService(t)
	ctx := context.Background()
	admin, mod, other := id.UserID("@admin:localhost"), id.UserID("@mod:localhost"), id.UserID("@other:localhost")
	roomID, err := s.CreateRoom(ctx, admin, &CreateRoomRequest{RoomVersion: id.RoomV11, Preset: PresetPublicChat})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []id.UserID{mod, other} {
		if _, err := s.ChangeMembership(ctx, MembershipChange{Sender: u, Target: u, RoomID: roomID, Membership: event.MembershipJoin}); err != nil {
			t.Fatal(err)
		}
	}
	pl := map[string]any{"users": map[id.UserID]int{admin: 100, mod: 50, other: 50}, "events": map[string]int{"m.room.power_levels": 50}}
	if _, err := s.SetState(ctx, admin, roomID, "m.room.power_levels", "", raw(pl)); err != nil {
		t.Fatal(err)
	}
	pl["users"] = map[id.UserID]int{admin: 100, mod: 50}
	_, err = s.SetState(ctx, mod, roomID, "m.room.power_levels", "", raw(pl))
	var re mautrix.RespError
	if !errors.As(err, &re) || re.ErrCode != mautrix.MForbidden.ErrCode {
		t.Fatalf("want M_FORBIDDEN, got %v", err)
	}
}
