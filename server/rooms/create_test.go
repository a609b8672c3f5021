package rooms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/storage"
)

// TestLongInitialStateGroups creates a room with a long initial_state (more
// events than a persist chunk, keys set twice, past several powers of two)
// and checks, from a fresh service that must read every group back from
// its deltas, that the state after each event is exactly what the events
// before it set, and that no group sits on a long delta chain.
func TestLongInitialStateGroups(t *testing.T) {
	ctx := context.Background()
	db, err := storage.Open(ctx, filepath.Join(t.TempDir(), "palpo.db"), 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	key := federation.GenerateSigningKey()
	creator := New(db, "localhost", key, slog.New(slog.DiscardHandler))
	const n = 3*persistChunk + 17
	req := &CreateRoomRequest{Invite: []id.UserID{"@bob:remote.example", "@carol:remote.example"}}
	for i := range n {
		// Every seventh entry sets an earlier key again: the later one wins.
		k := i
		if i%7 == 6 {
			k = i / 2
		}
		content, _ := json.Marshal(map[string]int{"i": i})
		req.InitialState = append(req.InitialState, InitialStateEvent{Type: "com.example.state", StateKey: fmt.Sprintf("k%d", k), Content: content})
	}
	roomID, err := creator.CreateRoom(ctx, "@alice:localhost", req)
	if err != nil {
		t.Fatal(err)
	}

	fresh := New(db, "localhost", key, slog.New(slog.DiscardHandler))
	// Walk the room's single chain of events back from its head.
	var chain []*Event
	ext, err := db.ForwardExtremities(ctx, roomID)
	if err != nil || len(ext) != 1 {
		t.Fatalf("forward extremities %v, %v", ext, err)
	}
	for next := ext[0]; ; {
		evs, err := fresh.Events(ctx, []id.EventID{next})
		if err != nil || evs[next] == nil {
			t.Fatalf("load %s: %v", next, err)
		}
		ev := evs[next]
		chain = append(chain, ev)
		if len(ev.PDU.PrevEvents) == 0 {
			break
		}
		next = ev.PDU.PrevEvents[0]
	}
	slices.Reverse(chain)
	if want := n + 8; len(chain) != want { // create, join, power levels, 3 preset events, n, 2 invites
		t.Fatalf("room has %d events, want %d", len(chain), want)
	}
	want := StateMap{}
	maxChain := 0
	for i, ev := range chain {
		if ev.PDU.StateKey != nil {
			want[pdu.StateKey{Type: ev.PDU.Type, StateKey: *ev.PDU.StateKey}] = ev.ID
		}
		got, err := fresh.StateAfter(ctx, ev)
		if err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(got, want) {
			t.Fatalf("state after event %d (%s) has %d entries, want %d", i, ev.PDU.Type, len(got), len(want))
		}
		chainLen, err := db.ChainLen(ctx, ev.StateAfter)
		if err != nil {
			t.Fatal(err)
		}
		maxChain = max(maxChain, chainLen)
	}
	if maxChain > 12 {
		t.Errorf("a state group of the new room sits on %d deltas; want at most log2(%d)+2", maxChain, n)
	}
	current, err := fresh.CurrentState(ctx, roomID)
	if err != nil || !maps.Equal(current, want) {
		t.Errorf("current state has %d entries (%v), want %d", len(current), err, len(want))
	}
	// The next event builds on the batch's last group.
	if _, err := fresh.SetState(ctx, "@alice:localhost", roomID, "com.example.state", "after", []byte(`{"after":true}`)); err != nil {
		t.Fatal(err)
	}
}

// TestCreateRoomListCaps: the invite and initial_state lists are capped
// with M_INVALID_PARAM, before anything is built.
func TestCreateRoomListCaps(t *testing.T) {
	s := newTestService(t)
	ctx := context.Background()
	tooMany := &CreateRoomRequest{}
	for i := range maxCreateRoomList + 1 {
		tooMany.Invite = append(tooMany.Invite, id.NewUserID(fmt.Sprintf("u%d", i), "localhost"))
	}
	var re mautrix.RespError
	if _, err := s.CreateRoom(ctx, "@alice:localhost", tooMany); !errors.As(err, &re) || re.ErrCode != mautrix.MInvalidParam.ErrCode {
		t.Errorf("%d invites: %v, want M_INVALID_PARAM", len(tooMany.Invite), err)
	}
	tooMany = &CreateRoomRequest{}
	for i := range maxCreateRoomList + 1 {
		tooMany.InitialState = append(tooMany.InitialState, InitialStateEvent{Type: event.StateTopic.Type, StateKey: fmt.Sprint(i), Content: []byte(`{}`)})
	}
	if _, err := s.CreateRoom(ctx, "@alice:localhost", tooMany); !errors.As(err, &re) || re.ErrCode != mautrix.MInvalidParam.ErrCode {
		t.Errorf("%d initial_state events: %v, want M_INVALID_PARAM", len(tooMany.InitialState), err)
	}
}
