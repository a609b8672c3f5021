package rooms

import (
	"context"
	"fmt"
	"testing"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"
)

// bigRoom makes a public room with n members (joined in one batch) and a
// message after them, and returns the room and that message's ID.
func bigRoom(tb testing.TB, s *Service, n int) (id.RoomID, id.EventID) {
	tb.Helper()
	ctx := context.Background()
	admin := id.UserID("@admin:localhost")
	roomID, err := s.CreateRoom(ctx, admin, &CreateRoomRequest{Preset: PresetPublicChat})
	if err != nil {
		tb.Fatal(err)
	}
	r, err := s.room(ctx, roomID)
	if err != nil {
		tb.Fatal(err)
	}
	protos := make([]*proto, 0, n)
	for i := range n {
		u := fmt.Sprintf("@user%05d:localhost", i)
		p, err := newProto(id.UserID(u), event.StateMember.Type, &u, map[string]any{"membership": "join", "displayname": u})
		if err != nil {
			tb.Fatal(err)
		}
		protos = append(protos, p)
	}
	if _, err := s.sendEvents(ctx, r, protos, false); err != nil {
		tb.Fatal(err)
	}
	msg, err := s.Send(ctx, admin, "D", roomID, "m.room.message", message(0), "t0")
	if err != nil {
		tb.Fatal(err)
	}
	return roomID, msg
}

// BenchmarkStateAt10kMembers measures "state at an event" in a room with
// 10,000 members, from a cold cache (the delta chain and its snapshot read
// from SQLite) and warm.
func BenchmarkStateAt10kMembers(b *testing.B) {
	s := newTestService(b)
	ctx := context.Background()
	start := time.Now()
	_, msgID := bigRoom(b, s, 10000)
	b.Logf("10,000 joins persisted in %v", time.Since(start))
	ev, err := s.event(ctx, msgID)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("cold", func(b *testing.B) {
		for range b.N {
			s.cache = newCache()
			ev, _ := s.event(ctx, msgID)
			st, err := s.StateBefore(ctx, ev)
			if err != nil || len(st) < 10000 {
				b.Fatalf("%d entries, %v", len(st), err)
			}
		}
	})
	b.Run("warm", func(b *testing.B) {
		for range b.N {
			st, err := s.StateBefore(ctx, ev)
			if err != nil || st[pdu.StateKey{Type: "m.room.member", StateKey: "@user09999:localhost"}] == "" {
				b.Fatal(err)
			}
		}
	})
	b.Run("send-in-big-room", func(b *testing.B) {
		for i := range b.N {
			if _, err := s.Send(ctx, "@user00001:localhost", "D", ev.RoomID, "m.room.message", message(i), fmt.Sprintf("b%d", i)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("member-change-in-big-room", func(b *testing.B) {
		for i := range b.N {
			u := "@user00002:localhost"
			content := raw(map[string]any{"membership": "join", "displayname": fmt.Sprintf("name %d", i)})
			if _, err := s.SetState(ctx, id.UserID(u), ev.RoomID, "m.room.member", u, content); err != nil {
				b.Fatal(err)
			}
		}
	})
}
