package rooms

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/storage"
)

// roomChain checks a room's events, read back in stream order, form one
// chain: each event's only prev_event is the one stored before it, depths
// rise by one, and the room's one forward extremity is the last. It
// returns the events' IDs.
func roomChain(t *testing.T, s *Service, roomID id.RoomID) []id.EventID {
	t.Helper()
	ctx := context.Background()
	stored, _, err := s.db.RoomEvents(ctx, roomID, 0, 1<<62, 1<<20, false)
	if err != nil {
		t.Fatal(err)
	}
	var ids []id.EventID
	for i, se := range stored {
		ev, err := s.event(ctx, se.EventID)
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 {
			prev, _ := s.event(ctx, stored[i-1].EventID)
			if len(ev.PDU.PrevEvents) != 1 || ev.PDU.PrevEvents[0] != prev.ID || ev.PDU.Depth != prev.PDU.Depth+1 {
				t.Fatalf("event %d of %s: prev_events %v depth %d, want [%s] %d", i, roomID, ev.PDU.PrevEvents, ev.PDU.Depth, prev.ID, prev.PDU.Depth+1)
			}
			if ev.StateBefore != prev.StateAfter {
				t.Fatalf("event %d of %s: state before %d, want the state after the event before it, %d", i, roomID, ev.StateBefore, prev.StateAfter)
			}
		}
		ids = append(ids, ev.ID)
	}
	ext, err := s.db.ForwardExtremities(ctx, roomID)
	if err != nil || len(ext) != 1 || ext[0] != ids[len(ids)-1] {
		t.Fatalf("forward extremities of %s: %v %v, want the last event", roomID, ext, err)
	}
	return ids
}

// TestGroupCommitConcurrentSenders: senders in one room and in several at
// once share commits, and every room's events still form one exact chain
// with correct state, each sender's answer being its stored event.
func TestGroupCommitConcurrentSenders(t *testing.T) {
	s := newTestService(t)
	ctx := context.Background()
	const senders, perSender = 8, 40
	var roomIDs []id.RoomID
	for range 3 {
		roomID, err := s.CreateRoom(ctx, "@alice:localhost", &CreateRoomRequest{Preset: PresetPublicChat})
		if err != nil {
			t.Fatal(err)
		}
		roomIDs = append(roomIDs, roomID)
	}
	before := s.committer.commits.Load()
	var wg sync.WaitGroup
	errs := make(chan error, senders)
	sent := make([][]id.EventID, senders)
	for i := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Five senders share the first room, the rest the other two;
			// a few state events too.
			roomID := roomIDs[0]
			if i >= 5 {
				roomID = roomIDs[1+i%2]
			}
			for j := range perSender {
				var evID id.EventID
				var err error
				if j%10 == 9 {
					evID, err = s.SetState(ctx, "@alice:localhost", roomID, "com.example.state", fmt.Sprintf("%d-%d", i, j), []byte(`{"n":1}`))
				} else {
					evID, err = s.Send(ctx, "@alice:localhost", id.DeviceID(fmt.Sprint("D", i)), roomID, "m.room.message", message(j), fmt.Sprint("t", j))
				}
				if err != nil {
					errs <- err
					return
				}
				sent[i] = append(sent[i], evID)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	commits := s.committer.commits.Load() - before
	if commits >= senders*perSender {
		t.Errorf("%d events took %d commits: none were shared", senders*perSender, commits)
	}
	t.Logf("%d events in %d commits", senders*perSender, commits)
	all := map[id.EventID]bool{}
	for _, roomID := range roomIDs {
		for _, evID := range roomChain(t, s, roomID) {
			all[evID] = true
		}
		// The current state is the state after the last event.
		ids := roomChain(t, s, roomID)
		last, _ := s.event(ctx, ids[len(ids)-1])
		after, err := s.StateAfter(ctx, last)
		if err != nil {
			t.Fatal(err)
		}
		current, err := s.CurrentState(ctx, roomID)
		if err != nil || len(current) != len(after) {
			t.Fatalf("current state of %s has %d entries (%v), the state after its last event %d", roomID, len(current), err, len(after))
		}
		for k, v := range after {
			if current[k] != v {
				t.Fatalf("current state of %s: %v is %s, after the last event %s", roomID, k, current[k], v)
			}
		}
	}
	for i, ids := range sent {
		for _, evID := range ids {
			if !all[evID] {
				t.Fatalf("sender %d was answered with %s, which is not stored", i, evID)
			}
		}
	}
	// A retry of a transaction answers with its event, whether it comes
	// while the first is queued or after.
	var retry sync.WaitGroup
	got := make([]id.EventID, 4)
	for k := range got {
		retry.Add(1)
		go func() {
			defer retry.Done()
			got[k], _ = s.Send(ctx, "@alice:localhost", "R", roomIDs[0], "m.room.message", message(0), "same")
		}()
	}
	retry.Wait()
	for _, evID := range got {
		if evID == "" || evID != got[0] {
			t.Fatalf("concurrent retries of one transaction gave %v", got)
		}
	}
	roomChain(t, s, roomIDs[0])
}

// TestGroupCommitFailedBatch: when a batch cannot be stored, the events
// built on it while it was queued fail too, nothing of either is stored,
// and the room goes on from what is stored.
func TestGroupCommitFailedBatch(t *testing.T) {
	s := newTestService(t)
	ctx := context.Background()
	roomID, err := s.CreateRoom(ctx, "@alice:localhost", &CreateRoomRequest{})
	if err != nil {
		t.Fatal(err)
	}
	// Hold the committer until both sends are queued, then fail the first.
	held, release := make(chan struct{}), make(chan struct{})
	boom := errors.New("disk on fire")
	setCommitHook(s, func(group []*pendingBatch) map[*pendingBatch]error {
		close(held)
		<-release
		return map[*pendingBatch]error{group[0]: boom}
	})
	results := make(chan error, 2)
	go func() {
		_, err := s.Send(ctx, "@alice:localhost", "D", roomID, "m.room.message", message(1), "one")
		results <- err
	}()
	<-held // the first is taken into a group and held
	go func() {
		_, err := s.SetState(ctx, "@alice:localhost", roomID, event.StateTopic.Type, "", []byte(`{"topic":"built on the failed one"}`))
		results <- err
	}()
	waitQueued(t, s, 1)
	setCommitHook(s, nil)
	close(release)
	for range 2 {
		if err := <-results; err == nil {
			t.Fatal("a send built on a failed batch succeeded")
		}
	}
	ids := roomChain(t, s, roomID)
	evID, err := s.Send(ctx, "@alice:localhost", "D", roomID, "m.room.message", message(2), "two")
	if err != nil {
		t.Fatalf("the room does not go on after a failed batch: %v", err)
	}
	if after := roomChain(t, s, roomID); len(after) != len(ids)+1 || after[len(after)-1] != evID {
		t.Fatalf("room after the failure: %d events, want %d ending in %s", len(after), len(ids)+1, evID)
	}
	if topic, _ := s.CurrentStateEvent(ctx, roomID, event.StateTopic.Type, ""); topic != nil {
		t.Fatalf("the failed topic is in the current state: %s", topic.ID)
	}
}

// waitQueued waits until the committer's queue holds n batches.
func waitQueued(t *testing.T, s *Service, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.committer.mu.Lock()
		got := len(s.committer.queue)
		s.committer.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("committer queue has %d batches, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestJoinedUsersFollowsMembership: the cached joined members change as
// soon as a join or leave has been answered.
func TestJoinedUsersFollowsMembership(t *testing.T) {
	s := newTestService(t)
	ctx := context.Background()
	roomID, err := s.CreateRoom(ctx, "@alice:localhost", &CreateRoomRequest{Preset: PresetPublicChat})
	if err != nil {
		t.Fatal(err)
	}
	want := func(users ...id.UserID) {
		t.Helper()
		got, err := s.JoinedUsers(ctx, roomID)
		if err != nil || !slices.Equal(slices.Sorted(slices.Values(got)), users) {
			t.Fatalf("joined users %v (%v), want %v", got, err, users)
		}
	}
	want("@alice:localhost")
	if _, err := s.ChangeMembership(ctx, MembershipChange{Sender: "@bob:localhost", Target: "@bob:localhost", RoomID: roomID, Membership: event.MembershipJoin}); err != nil {
		t.Fatal(err)
	}
	want("@alice:localhost", "@bob:localhost")
	if _, err := s.ChangeMembership(ctx, MembershipChange{Sender: "@alice:localhost", Target: "@alice:localhost", RoomID: roomID, Membership: event.MembershipLeave}); err != nil {
		t.Fatal(err)
	}
	want("@bob:localhost")
}

// TestCommittedEventReadBeforeFinish: between a commit and the moment its
// requests are woken, a reader that finds a new event in the database (a
// sync) gets it whole, with its stream position and state, not the
// half-made copy the builders share. A sync once missed an invite so.
func TestCommittedEventReadBeforeFinish(t *testing.T) {
	s := newTestService(t)
	ctx := context.Background()
	roomID, err := s.CreateRoom(ctx, "@alice:localhost", &CreateRoomRequest{Preset: PresetPublicChat})
	if err != nil {
		t.Fatal(err)
	}
	var seen *Event
	s.committer.mu.Lock()
	s.committer.testCommitted = func(group []*pendingBatch) {
		evs, err := s.Events(ctx, []id.EventID{group[0].built[0].ID})
		if ev := evs[group[0].built[0].ID]; err == nil && ev != nil {
			c := *ev // as it is now: the builders' copy is completed later
			seen = &c
		}
	}
	s.committer.mu.Unlock()
	evID, err := s.SetState(ctx, "@alice:localhost", roomID, event.StateTopic.Type, "", []byte(`{"topic":"t"}`))
	if err != nil {
		t.Fatal(err)
	}
	if seen == nil || seen.ID != evID || seen.StreamPos == 0 || seen.StateAfter == 0 || seen.StateBefore == 0 {
		t.Fatalf("the committed event read before its request was woken: %+v", seen)
	}
}

// TestOnCommittedHearsFirst: a committed batch's events reach OnCommitted's
// listeners complete (stream position set) before the sender's OnEvent
// listeners hear of them, and a batch that failed reaches neither.
func TestOnCommittedHearsFirst(t *testing.T) {
	s := newTestService(t)
	ctx := context.Background()
	roomID, err := s.CreateRoom(ctx, "@alice:localhost", &CreateRoomRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var heard []string
	hear := func(what string) Listener {
		return func(evs []*Event) {
			mu.Lock()
			defer mu.Unlock()
			for _, ev := range evs {
				if ev.StreamPos == 0 {
					what += " (no stream position)"
				}
				heard = append(heard, what+" "+string(ev.ID))
			}
		}
	}
	s.OnCommitted(hear("committed"))
	s.OnEvent(hear("event"))
	evID, err := s.Send(ctx, "@alice:localhost", "D", roomID, "m.room.message", message(1), "one")
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if want := []string{"committed " + string(evID), "event " + string(evID)}; !slices.Equal(heard, want) {
		t.Fatalf("heard %q, want %q", heard, want)
	}
	heard = nil
	mu.Unlock()

	setCommitHook(s, func(group []*pendingBatch) map[*pendingBatch]error {
		return map[*pendingBatch]error{group[0]: errors.New("disk on fire")}
	})
	if _, err := s.Send(ctx, "@alice:localhost", "D", roomID, "m.room.message", message(2), "two"); err == nil {
		t.Fatal("a failed batch's send succeeded")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(heard) != 0 {
		t.Fatalf("a failed batch was heard of: %q", heard)
	}
}

// TestCommitGroupsShareTheWriter: a room's long batch (queued as many
// chunks at once) goes one chunk a commit, with other rooms' batches
// queued behind it in the first commit; each room's order is kept.
func TestCommitGroupsShareTheWriter(t *testing.T) {
	c := &committer{}
	chunk := func(room id.RoomID, n int) *pendingBatch {
		return &pendingBatch{room: room, events: make([]*storage.NewEvent, n)}
	}
	var big []*pendingBatch
	for range 10 {
		big = append(big, chunk("!big", persistChunk))
	}
	small, other := chunk("!small", 1), chunk("!small", 1)
	c.queue = append(append(big, small), other)
	first := c.take()
	if len(first) != 3 || first[0] != big[0] || first[1] != small || first[2] != other {
		t.Fatalf("first commit holds %d batches, want the big room's first chunk and both small batches", len(first))
	}
	for i := 1; i < len(big); i++ {
		if g := c.take(); len(g) != 1 || g[0] != big[i] {
			t.Fatalf("commit %d: %d batches, want the big room's chunk %d alone", i, len(g), i)
		}
	}
	if g := c.take(); len(g) != 0 {
		t.Fatalf("queue not empty: %d batches", len(g))
	}
}

// TestIdleWork: work registered with WhenIdle runs once the committer has
// stored events and then had nothing to store for a while, and during a
// long run of events without a pause every idleEvery events.
func TestIdleWork(t *testing.T) {
	s := newTestService(t)
	ctx := context.Background()
	var runs atomic.Int64
	s.WhenIdle(func(context.Context) { runs.Add(1) })
	alice := id.UserID("@alice:localhost")
	roomID, err := s.CreateRoom(ctx, alice, &CreateRoomRequest{Preset: PresetPrivateChat})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runs.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("idle work did not run after the room was created and nothing followed")
		}
		time.Sleep(10 * time.Millisecond)
	}

	// Without a pause: events sent back to back, the work runs every
	// idleEvery events (here 10) before the pause at the end.
	s.committer.mu.Lock()
	s.committer.idleEvery = 10 // read by the committer after each commit: set between them
	s.committer.mu.Unlock()
	before := runs.Load()
	for i := range 40 {
		if _, err := s.SendMessages(ctx, alice, roomID, "m.room.message", [][]byte{message(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if n := runs.Load() - before; n < 3 {
		t.Fatalf("idle work ran %d times during 40 events without a pause; want at least 3", n)
	}
}

// setCommitHook sets the committer's test hook (nil: none), which decides
// which batches of a group fail instead of storing them.
func setCommitHook(s *Service, hook func(group []*pendingBatch) map[*pendingBatch]error) {
	s.committer.mu.Lock()
	defer s.committer.mu.Unlock()
	s.committer.testHook = hook
}
