package rooms

import (
	"context"
	"maps"
	"slices"
	"testing"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"
)

// TestForkedRoomMerges builds two events on the same parent, as federation
// will when two servers talk at once, and checks that the next event joins
// both forks on top of their resolved state.
func TestForkedRoomMerges(t *testing.T) {
	for _, version := range []id.RoomVersion{id.RoomV11, id.RoomV12} {
		t.Run("v"+string(version), func(t *testing.T) {
			s := newTestService(t)
			ctx := context.Background()
			alice := id.UserID("@alice:localhost")
			roomID, err := s.CreateRoom(ctx, alice, &CreateRoomRequest{RoomVersion: version})
			if err != nil {
				t.Fatal(err)
			}
			r, _ := s.room(ctx, roomID)
			empty := ""
			fork := func(evType string, content any) *Event {
				h, err := s.head(ctx, r)
				if err != nil {
					t.Fatal(err)
				}
				p, _ := newProto(alice, evType, &empty, content)
				evs, err := s.sendEventsOn(ctx, r, []*proto{p}, h)
				if err != nil {
					t.Fatal(err)
				}
				return evs[0]
			}
			// Both forks start from the same head: persist the first, then
			// rebuild the second on the old extremity.
			base, _ := s.head(ctx, r)
			topic := fork(event.StateTopic.Type, map[string]any{"topic": "fork A"})
			p, _ := newProto(alice, event.StateRoomName.Type, &empty, map[string]any{"name": "fork B"})
			name, err := s.sendEventsOn(ctx, r, []*proto{p}, base)
			if err != nil {
				t.Fatal(err)
			}
			ext, _ := s.db.ForwardExtremities(ctx, roomID)
			if len(ext) != 2 {
				t.Fatalf("want a fork with 2 extremities, got %v", ext)
			}
			msgID, err := s.Send(ctx, alice, "D", roomID, "m.room.message", message(1), "t1")
			if err != nil {
				t.Fatalf("send on a forked room: %v", err)
			}
			msg, _ := s.event(ctx, msgID)
			if !slices.Contains(msg.PDU.PrevEvents, topic.ID) || !slices.Contains(msg.PDU.PrevEvents, name[0].ID) {
				t.Fatalf("merge event's prev_events %v lack a fork", msg.PDU.PrevEvents)
			}
			st, err := s.StateBefore(ctx, msg)
			if err != nil {
				t.Fatal(err)
			}
			if st[pdu.StateKey{Type: event.StateTopic.Type}] != topic.ID || st[pdu.StateKey{Type: event.StateRoomName.Type}] != name[0].ID {
				t.Fatalf("merged state lacks a fork's change: %v", st)
			}
			if ext, _ := s.db.ForwardExtremities(ctx, roomID); len(ext) != 1 || ext[0] != msgID {
				t.Fatalf("extremities after merge: %v", ext)
			}
			// The current state is the resolved one.
			cur, err := s.CurrentState(ctx, roomID)
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(cur, st) {
				t.Fatalf("current state %v differs from resolved %v", cur, st)
			}
			// A real conflict: both forks set the topic. Whichever wins, the
			// current state must agree with the resolution.
			base, _ = s.head(ctx, r)
			fork(event.StateTopic.Type, map[string]any{"topic": "X"})
			p, _ = newProto(alice, event.StateTopic.Type, &empty, map[string]any{"topic": "Y"})
			if _, err := s.sendEventsOn(ctx, r, []*proto{p}, base); err != nil {
				t.Fatal(err)
			}
			msgID, err = s.Send(ctx, alice, "D", roomID, "m.room.message", message(2), "t2")
			if err != nil {
				t.Fatal(err)
			}
			msg, _ = s.event(ctx, msgID)
			st, _ = s.StateBefore(ctx, msg)
			cur, _ = s.CurrentState(ctx, roomID)
			if !maps.Equal(cur, st) {
				t.Fatalf("after a conflict, current state %v differs from resolved %v", cur, st)
			}
			// And the room carries on normally.
			if _, err := s.SetState(ctx, alice, roomID, event.StateTopic.Type, "", raw(map[string]any{"topic": "after"})); err != nil {
				t.Fatal(err)
			}
		})
	}
}
