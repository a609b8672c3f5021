package rooms

import (
	"context"
	jsonv1 "encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/storage"
)

// mesh joins rooms services of several servers without HTTP: each one's
// Remote calls the others' services directly, and every event a server
// stores of its own is handed to the other servers in the room, as the
// federation sender would. It tests the rooms layer of federation.
type mesh struct {
	t        *testing.T
	servers  map[string]*Service
	mu       sync.Mutex
	cut      map[string]bool // servers whose outbound deliveries are dropped
	dropped  map[string][]id.EventID
	delivery sync.WaitGroup
}

func newMesh(t *testing.T, names ...string) *mesh {
	m := &mesh{t: t, servers: map[string]*Service{}, cut: map[string]bool{}, dropped: map[string][]id.EventID{}}
	for _, name := range names {
		db, err := storage.Open(context.Background(), filepath.Join(t.TempDir(), "palpo.db"), 4)
		if err != nil {
			t.Fatal(err)
		}
		s := New(db, name, federation.GenerateSigningKey(), slog.New(slog.DiscardHandler))
		s.RemoteKeys = func(_ context.Context, server string, keyID id.KeyID, _ time.Time) (id.SigningKey, time.Time, error) {
			o := m.servers[server]
			if o == nil || o.key.ID != keyID {
				return "", time.Time{}, fmt.Errorf("no key %s of %s", keyID, server)
			}
			return o.key.Pub, time.Now().Add(time.Hour), nil
		}
		s.Remote = meshRemote{m, name}
		s.OnEvent(func(evs []*Event) { m.deliver(name, evs) })
		t.Cleanup(func() {
			m.delivery.Wait()
			s.Close()
			db.Close()
		})
		m.servers[name] = s
	}
	return m
}

// deliver sends a server's own events to the other servers in the room.
func (m *mesh) deliver(from string, evs []*Event) {
	src := m.servers[from]
	for _, ev := range evs {
		if ev.PDU.Sender.Homeserver() != from {
			continue
		}
		servers, _ := src.ServersInRoom(context.Background(), ev.RoomID)
		if ev.PDU.Type == event.StateMember.Type {
			if t := id.UserID(ev.StateKey()).Homeserver(); t != from {
				servers = append(servers, t)
			}
		}
		raws, err := src.rawPDUs(context.Background(), []id.EventID{ev.ID})
		if err != nil || len(raws) == 0 {
			continue
		}
		for _, dest := range servers {
			if dest == from || m.servers[dest] == nil {
				continue
			}
			m.mu.Lock()
			if m.cut[from] {
				m.dropped[from] = append(m.dropped[from], ev.ID)
				m.mu.Unlock()
				continue
			}
			m.mu.Unlock()
			m.delivery.Add(1)
			go func() {
				defer m.delivery.Done()
				_, _ = m.servers[dest].ReceivePDU(context.Background(), from, raws[0])
			}()
		}
	}
}

// settle waits for deliveries in flight.
func (m *mesh) settle() { m.delivery.Wait() }

type meshRemote struct {
	m    *mesh
	self string
}

func (r meshRemote) other(server string) (*Service, error) {
	r.m.mu.Lock()
	defer r.m.mu.Unlock()
	s := r.m.servers[server]
	if s == nil || r.m.cut[r.self] || r.m.cut[server] {
		return nil, fmt.Errorf("cannot reach %s", server)
	}
	return s, nil
}

func (r meshRemote) Event(ctx context.Context, server string, evID id.EventID) (jsonv1.RawMessage, error) {
	o, err := r.other(server)
	if err != nil {
		return nil, err
	}
	return o.EventForServer(ctx, r.self, evID)
}

func (r meshRemote) MissingEvents(ctx context.Context, server string, roomID id.RoomID, earliest, latest []id.EventID, limit int) ([]jsonv1.RawMessage, error) {
	o, err := r.other(server)
	if err != nil {
		return nil, err
	}
	return o.MissingEventsForServer(ctx, r.self, roomID, earliest, latest, limit, 0)
}

func (r meshRemote) StateIDs(ctx context.Context, server string, roomID id.RoomID, evID id.EventID) ([]id.EventID, []id.EventID, error) {
	o, err := r.other(server)
	if err != nil {
		return nil, nil, err
	}
	return o.StateIDsForServer(ctx, r.self, roomID, evID)
}

func (r meshRemote) MakeJoin(ctx context.Context, server string, roomID id.RoomID, user id.UserID, versions []id.RoomVersion) (id.RoomVersion, jsonv1.RawMessage, error) {
	o, err := r.other(server)
	if err != nil {
		return "", nil, err
	}
	return o.MakeJoin(ctx, roomID, user, versions)
}

func (r meshRemote) SendJoin(ctx context.Context, server string, roomID id.RoomID, evID id.EventID, ev jsonv1.RawMessage) (*SendJoinResult, error) {
	o, err := r.other(server)
	if err != nil {
		return nil, err
	}
	return o.SendJoin(ctx, r.self, roomID, evID, ev)
}

func (r meshRemote) QueryDirectory(ctx context.Context, server string, alias id.RoomAlias) (id.RoomID, []string, error) {
	o, err := r.other(server)
	if err != nil {
		return "", nil, err
	}
	roomID, err := o.ResolveAlias(ctx, alias)
	if err != nil {
		return "", nil, err
	}
	servers, err := o.ServersInRoom(ctx, roomID)
	return roomID, servers, err
}

func (r meshRemote) Invite(ctx context.Context, server string, roomID id.RoomID, evID id.EventID, ev jsonv1.RawMessage, version id.RoomVersion, stripped []jsonv1.RawMessage) (jsonv1.RawMessage, error) {
	o, err := r.other(server)
	if err != nil {
		return nil, err
	}
	return o.ReceiveInvite(ctx, r.self, roomID, evID, ev, version, stripped)
}

func (r meshRemote) MakeLeave(ctx context.Context, server string, roomID id.RoomID, user id.UserID) (id.RoomVersion, jsonv1.RawMessage, error) {
	o, err := r.other(server)
	if err != nil {
		return "", nil, err
	}
	return o.MakeLeave(ctx, roomID, user)
}

func (r meshRemote) SendLeave(ctx context.Context, server string, roomID id.RoomID, evID id.EventID, ev jsonv1.RawMessage) error {
	o, err := r.other(server)
	if err != nil {
		return err
	}
	return o.SendLeave(ctx, r.self, roomID, evID, ev)
}

func (r meshRemote) Backfill(ctx context.Context, server string, roomID id.RoomID, from []id.EventID, limit int) ([]jsonv1.RawMessage, error) {
	o, err := r.other(server)
	if err != nil {
		return nil, err
	}
	return o.BackfillForServer(ctx, r.self, roomID, from, limit)
}

func sendText(t *testing.T, s *Service, user id.UserID, roomID id.RoomID, body string) id.EventID {
	t.Helper()
	content, _ := jsonv1.Marshal(map[string]string{"msgtype": "m.text", "body": body})
	evID, err := s.Send(context.Background(), user, "DEV", roomID, "m.room.message", content, "")
	if err != nil {
		t.Fatalf("send %q as %s: %v", body, user, err)
	}
	return evID
}

// TestFederatedJoinAndMessages joins a user of b to a room of a in every
// stable room version, and messages then go both ways.
func TestFederatedJoinAndMessages(t *testing.T) {
	for _, v := range SupportedRoomVersions {
		t.Run("v"+string(v), func(t *testing.T) {
			m := newMesh(t, "a.test", "b.test")
			a, b := m.servers["a.test"], m.servers["b.test"]
			ctx := context.Background()
			alice, bob := id.UserID("@alice:a.test"), id.UserID("@bob:b.test")
			roomID, err := a.CreateRoom(ctx, alice, &CreateRoomRequest{RoomVersion: v, Preset: "public_chat"})
			if err != nil {
				t.Fatal(err)
			}
			joinID, err := b.JoinRemote(ctx, bob, roomID, []string{"a.test"}, nil)
			if err != nil {
				t.Fatalf("join: %v", err)
			}
			m.settle()
			for name, s := range m.servers {
				if mem, err := s.MembershipOf(ctx, roomID, bob); err != nil || mem != event.MembershipJoin {
					t.Fatalf("%s: bob's membership = %q, %v", name, mem, err)
				}
			}
			fromAlice := sendText(t, a, alice, roomID, "hello bob")
			m.settle()
			fromBob := sendText(t, b, bob, roomID, "hello alice")
			m.settle()
			for name, s := range m.servers {
				evs, err := s.Events(ctx, []id.EventID{fromAlice, fromBob, joinID})
				if err != nil || len(evs) != 3 {
					t.Fatalf("%s has %d of the 3 events (%v)", name, len(evs), err)
				}
				for _, ev := range evs {
					if ev.Rejected {
						t.Fatalf("%s rejected %s", name, ev.ID)
					}
				}
				// Each server's current state agrees.
				sa, _ := a.CurrentState(ctx, roomID)
				sb, _ := b.CurrentState(ctx, roomID)
				if len(sa) != len(sb) {
					t.Fatalf("current state differs: %d vs %d entries", len(sa), len(sb))
				}
				for k, v := range sa {
					if sb[k] != v {
						t.Fatalf("current state differs at %v: %s vs %s", k, v, sb[k])
					}
				}
			}
		})
	}
}

// pairedRoom makes a room of alice on a.test that bob of b.test joined.
func pairedRoom(t *testing.T, m *mesh, v id.RoomVersion) id.RoomID {
	t.Helper()
	ctx := context.Background()
	a, b := m.servers["a.test"], m.servers["b.test"]
	roomID, err := a.CreateRoom(ctx, "@alice:a.test", &CreateRoomRequest{RoomVersion: v, Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.JoinRemote(ctx, "@bob:b.test", roomID, []string{"a.test"}, nil); err != nil {
		t.Fatalf("join: %v", err)
	}
	m.settle()
	return roomID
}

// forge builds an event of b.test's bob on top of the room's head at b,
// signed by b, after change alters it (before signing when sign is set).
func forge(t *testing.T, b *Service, roomID id.RoomID, evType string, stateKey *string, content any, change func(map[string]any)) jsonv1.RawMessage {
	t.Helper()
	ctx := context.Background()
	r, err := b.room(ctx, roomID)
	if err != nil {
		t.Fatal(err)
	}
	p, err := newProto("@bob:b.test", evType, stateKey, content)
	if err != nil {
		t.Fatal(err)
	}
	h, err := b.head(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	// Built as build does, without b's own auth check.
	content2, _ := canonical(p.Content)
	ev := &pdu.PDU{Type: p.Type, StateKey: p.StateKey, Sender: p.Sender, Content: content2, RoomID: r.ID,
		OriginServerTS: time.Now().UnixMilli(), PrevEvents: h.prevEvents, Depth: h.depth, AuthEvents: []id.EventID{}}
	for _, k := range ev.AuthEventSelection(r.Version) {
		if evID, ok := h.state[k]; ok {
			ev.AuthEvents = append(ev.AuthEvents, evID)
		}
	}
	_, wire, err := b.seal(ctx, r, ev)
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	if err := jsonv1.Unmarshal(wire, &fields); err != nil {
		t.Fatal(err)
	}
	if change != nil {
		change(fields)
	}
	raw, _ := jsonv1.Marshal(fields)
	return raw
}

// TestFederatedBadEvents sends a.test events that must not be accepted:
// a forged signature and an ACL-denied origin are dropped, a wrong content
// hash is redacted, and an event failing the auth rules is rejected.
func TestFederatedBadEvents(t *testing.T) {
	m := newMesh(t, "a.test", "b.test")
	a, b := m.servers["a.test"], m.servers["b.test"]
	ctx := context.Background()
	roomID := pairedRoom(t, m, "")

	// A signature that does not verify.
	raw := forge(t, b, roomID, "m.room.message", nil, map[string]string{"body": "forged"}, func(f map[string]any) {
		sigs := f["signatures"].(map[string]any)["b.test"].(map[string]any)
		for k := range sigs {
			sigs[k] = "AAAA" + sigs[k].(string)[4:]
		}
	})
	if _, err := a.ReceivePDU(ctx, "b.test", raw); err == nil {
		t.Fatal("an event with a forged signature was accepted")
	}
	// Content changed after signing: the hash no longer matches, so the
	// event is stored redacted.
	raw = forge(t, b, roomID, "m.room.message", nil, map[string]string{"body": "original", "msgtype": "m.text"}, func(f map[string]any) {
		f["content"] = map[string]any{"body": "tampered", "msgtype": "m.text"}
	})
	evID, err := a.ReceivePDU(ctx, "b.test", raw)
	if err != nil {
		t.Fatalf("tampered event: %v", err)
	}
	got, err := a.event(ctx, evID)
	if err != nil {
		t.Fatalf("tampered event not stored: %v", err)
	}
	if string(got.PDU.Content) != "{}" {
		t.Fatalf("tampered event kept its content: %s", got.PDU.Content)
	}
	// Power levels bob may not send (he has the default level 0).
	empty := ""
	raw = forge(t, b, roomID, "m.room.name", &empty, map[string]string{"name": "bob's room"}, nil)
	evID, err = a.ReceivePDU(ctx, "b.test", raw)
	if err == nil {
		t.Fatalf("an event failing the auth rules was accepted: %s", evID)
	}
	if name, _ := a.CurrentStateEvent(ctx, roomID, "m.room.name", ""); name != nil && name.ID == evID {
		t.Fatal("the rejected name became current state")
	}
	// An ACL that denies b.test: b's events are dropped.
	acl, _ := jsonv1.Marshal(map[string]any{"allow": []string{"*"}, "deny": []string{"b.test"}})
	if _, err := a.SetState(ctx, "@alice:a.test", roomID, "m.room.server_acl", "", acl); err != nil {
		t.Fatal(err)
	}
	m.settle()
	raw = forge(t, b, roomID, "m.room.message", nil, map[string]string{"body": "denied"}, nil)
	if _, err := a.ReceivePDU(ctx, "b.test", raw); err != ErrServerDenied {
		t.Fatalf("an event from an ACL-denied server: %v", err)
	}
}

// cutOff stops a server's deliveries; heal redelivers what was dropped,
// in order.
func (m *mesh) cutOff(server string) {
	m.mu.Lock()
	m.cut[server] = true
	m.mu.Unlock()
}

func (m *mesh) heal(server string) {
	m.mu.Lock()
	m.cut[server] = false
	dropped := m.dropped[server]
	m.dropped[server] = nil
	m.mu.Unlock()
	src := m.servers[server]
	evs, _ := src.Events(context.Background(), dropped)
	for _, evID := range dropped {
		m.deliver(server, []*Event{evs[evID]})
		m.settle()
	}
}

// inTimeline tells whether a server holds an event in its room's timeline
// (not rejected, not an outlier).
func inTimeline(t *testing.T, s *Service, evID id.EventID) bool {
	t.Helper()
	got, err := s.db.GetEvents(context.Background(), []id.EventID{evID})
	if err != nil {
		t.Fatal(err)
	}
	e, ok := got[evID]
	return ok && !e.Rejected && e.Outlier == 0
}

// TestFederatedGapFilled: b misses events of a; the next one it gets
// brings the missing ones through /get_missing_events.
func TestFederatedGapFilled(t *testing.T) {
	m := newMesh(t, "a.test", "b.test")
	a, b := m.servers["a.test"], m.servers["b.test"]
	roomID := pairedRoom(t, m, "")
	m.cutOff("a.test")
	var missed []id.EventID
	for i := range 3 {
		missed = append(missed, sendText(t, a, "@alice:a.test", roomID, fmt.Sprintf("missed %d", i)))
	}
	m.mu.Lock()
	m.cut["a.test"], m.dropped["a.test"] = false, nil
	m.mu.Unlock()
	last := sendText(t, a, "@alice:a.test", roomID, "after the gap")
	m.settle()
	for _, evID := range append(missed, last) {
		if !inTimeline(t, b, evID) {
			t.Fatalf("b lacks %s in its timeline", evID)
		}
	}
}

// TestFederatedPartitionHealed: during a partition both servers change
// the room's state; once healed, both hold the same current state, chosen
// by state resolution.
func TestFederatedPartitionHealed(t *testing.T) {
	for _, v := range []id.RoomVersion{"10", "12"} {
		t.Run("v"+string(v), func(t *testing.T) {
			m := newMesh(t, "a.test", "b.test")
			a, b := m.servers["a.test"], m.servers["b.test"]
			ctx := context.Background()
			roomID := pairedRoom(t, m, v)
			alice, bob := id.UserID("@alice:a.test"), id.UserID("@bob:b.test")
			pl, _ := jsonv1.Marshal(map[string]any{"users": map[string]int{string(alice): 100, string(bob): 50}, "state_default": 50})
			if v == "12" {
				pl, _ = jsonv1.Marshal(map[string]any{"users": map[string]int{string(bob): 50}, "state_default": 50})
			}
			if _, err := a.SetState(ctx, alice, roomID, "m.room.power_levels", "", pl); err != nil {
				t.Fatal(err)
			}
			m.settle()
			m.cutOff("a.test")
			m.cutOff("b.test")
			name := func(n string) []byte { b, _ := jsonv1.Marshal(map[string]string{"name": n}); return b }
			if _, err := a.SetState(ctx, alice, roomID, "m.room.name", "", name("from a")); err != nil {
				t.Fatal(err)
			}
			// alice takes bob's power away on her side; bob renames on his.
			pl2, _ := jsonv1.Marshal(map[string]any{"users": map[string]int{string(alice): 100}, "state_default": 50})
			if v == "12" {
				pl2, _ = jsonv1.Marshal(map[string]any{"users": map[string]int{}, "state_default": 50})
			}
			if _, err := a.SetState(ctx, alice, roomID, "m.room.power_levels", "", pl2); err != nil {
				t.Fatal(err)
			}
			if _, err := b.SetState(ctx, bob, roomID, "m.room.name", "", name("from b")); err != nil {
				t.Fatal(err)
			}
			if _, err := b.SetState(ctx, bob, roomID, "m.room.topic", "", []byte(`{"topic":"bob's topic"}`)); err != nil {
				t.Fatal(err)
			}
			m.heal("a.test")
			m.heal("b.test")
			// A message on each side joins the forks.
			sendText(t, a, alice, roomID, "healed")
			m.settle()
			sendText(t, b, bob, roomID, "healed too")
			m.settle()
			sa, _ := a.CurrentState(ctx, roomID)
			sb, _ := b.CurrentState(ctx, roomID)
			if len(sa) != len(sb) {
				t.Fatalf("current state differs: %d vs %d entries\na: %v\nb: %v", len(sa), len(sb), sa, sb)
			}
			for k, v := range sa {
				if sb[k] != v {
					t.Fatalf("current state differs at %v: %s vs %s", k, v, sb[k])
				}
			}
			// alice's power change wins over bob's concurrent edits by him:
			// the name is alice's (bob lost the power to rename).
			nameEv, _ := a.CurrentStateEvent(ctx, roomID, "m.room.name", "")
			if nameEv == nil || nameEv.PDU.Sender != alice {
				t.Fatalf("the name after healing is %v", nameEv)
			}
		})
	}
}

// TestFederatedInviteJoinAndReject: alice of a.test invites bob and carol
// of b.test to a private room; b.test holds the invites with the room's
// stripped state; bob joins through the inviter's server, carol rejects.
func TestFederatedInviteJoinAndReject(t *testing.T) {
	for _, v := range []id.RoomVersion{"1", "10", "12"} {
		t.Run("v"+string(v), func(t *testing.T) {
			m := newMesh(t, "a.test", "b.test")
			a, b := m.servers["a.test"], m.servers["b.test"]
			ctx := context.Background()
			alice, bob, carol := id.UserID("@alice:a.test"), id.UserID("@bob:b.test"), id.UserID("@carol:b.test")
			for _, u := range []id.UserID{bob, carol} {
				if err := b.db.CreateUser(ctx, &storage.User{UserID: u, PasswordHash: "x", CreatedTS: 1}); err != nil {
					t.Fatal(err)
				}
			}
			name := "Secret"
			roomID, err := a.CreateRoom(ctx, alice, &CreateRoomRequest{RoomVersion: v, Preset: "private_chat", Name: &name})
			if err != nil {
				t.Fatal(err)
			}
			for _, u := range []id.UserID{bob, carol} {
				if _, err := a.ChangeMembership(ctx, MembershipChange{Sender: alice, Target: u, RoomID: roomID, Membership: event.MembershipInvite}); err != nil {
					t.Fatalf("invite %s: %v", u, err)
				}
			}
			m.settle()
			mem, err := b.MembershipOf(ctx, roomID, bob)
			if err != nil || mem != event.MembershipInvite {
				t.Fatalf("b: bob's membership = %q, %v", mem, err)
			}
			inv, err := b.CurrentStateEvent(ctx, roomID, event.StateMember.Type, string(bob))
			if err != nil || inv == nil {
				t.Fatalf("b has no invite event: %v", err)
			}
			stripped, err := b.StrippedState(ctx, inv)
			if err != nil {
				t.Fatal(err)
			}
			sawName := false
			for _, e := range stripped {
				if e.Type == event.StateRoomName && e.Content.Raw["name"] == "Secret" {
					sawName = true
				}
			}
			if !sawName {
				t.Fatalf("the invite's stripped state lacks the room name: %v", stripped)
			}
			if _, err := b.ChangeMembership(ctx, MembershipChange{Sender: bob, Target: bob, RoomID: roomID, Membership: event.MembershipJoin}); err != nil {
				t.Fatalf("bob joins: %v", err)
			}
			if _, err := b.ChangeMembership(ctx, MembershipChange{Sender: carol, Target: carol, RoomID: roomID, Membership: event.MembershipLeave}); err != nil {
				t.Fatalf("carol rejects: %v", err)
			}
			m.settle()
			for name, s := range m.servers {
				if mem, _ := s.MembershipOf(ctx, roomID, bob); mem != event.MembershipJoin {
					t.Fatalf("%s: bob is %q", name, mem)
				}
				if mem, _ := s.MembershipOf(ctx, roomID, carol); mem != event.MembershipLeave {
					t.Fatalf("%s: carol is %q", name, mem)
				}
			}
			sendText(t, b, bob, roomID, "thanks for the invite")
			m.settle()
			if _, err := a.ChangeMembership(ctx, MembershipChange{Sender: alice, Target: bob, RoomID: roomID, Membership: event.MembershipLeave, Reason: "bye"}); err != nil {
				t.Fatalf("kick: %v", err)
			}
			m.settle()
			for name, s := range m.servers {
				if mem, _ := s.MembershipOf(ctx, roomID, bob); mem != event.MembershipLeave {
					t.Fatalf("%s: kicked bob is %q", name, mem)
				}
			}
		})
	}
}

// TestFederatedBackfill: b joins a room with history; backfill brings the
// history in, stored before the timeline in DAG order, readable by bob.
func TestFederatedBackfill(t *testing.T) {
	m := newMesh(t, "a.test", "b.test")
	a, b := m.servers["a.test"], m.servers["b.test"]
	ctx := context.Background()
	alice, bob := id.UserID("@alice:a.test"), id.UserID("@bob:b.test")
	roomID, err := a.CreateRoom(ctx, alice, &CreateRoomRequest{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	var sent []id.EventID
	for i := range 30 {
		sent = append(sent, sendText(t, a, alice, roomID, fmt.Sprintf("old %d", i)))
	}
	if _, err := b.JoinRemote(ctx, bob, roomID, []string{"a.test"}, nil); err != nil {
		t.Fatal(err)
	}
	m.settle()
	total := 0
	for range 10 {
		n, err := b.Backfill(ctx, roomID, 20)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		total += n
	}
	if total < 30 {
		got, _ := b.Events(ctx, sent)
		for i, evID := range sent {
			if _, ok := got[evID]; !ok {
				t.Logf("missing message %d", i)
			}
		}
		t.Fatalf("backfilled %d events, want the 30 messages and the room's creation", total)
	}
	// In DAG order by stream position, and visible to bob (shared history).
	evs, err := b.Events(ctx, sent)
	if err != nil || len(evs) != len(sent) {
		t.Fatalf("b has %d of %d messages (%v)", len(evs), len(sent), err)
	}
	for i := 1; i < len(sent); i++ {
		if evs[sent[i-1]].StreamPos >= evs[sent[i]].StreamPos {
			t.Fatalf("message %d at %d is not before message %d at %d", i-1, evs[sent[i-1]].StreamPos, i, evs[sent[i]].StreamPos)
		}
		if evs[sent[i]].StreamPos >= 0 {
			t.Fatalf("a backfilled event has stream position %d", evs[sent[i]].StreamPos)
		}
	}
	if ok, err := b.CanSee(ctx, bob, evs[sent[0]]); err != nil || !ok {
		t.Fatalf("bob cannot see backfilled history: %v %v", ok, err)
	}
	// Nothing more once the room's creation is reached.
	if n, err := b.Backfill(ctx, roomID, 20); err != nil || n != 0 {
		t.Fatalf("backfill past the create event: %d, %v", n, err)
	}
}

// TestFederatedRestrictedJoin: bob of b.test, in a room of a.test, joins
// a restricted room that allows that room's members, through a.test,
// which names and signs as the authoriser.
func TestFederatedRestrictedJoin(t *testing.T) {
	for _, v := range []id.RoomVersion{"8", "10", "12"} {
		t.Run("v"+string(v), func(t *testing.T) {
			m := newMesh(t, "a.test", "b.test")
			a, b := m.servers["a.test"], m.servers["b.test"]
			ctx := context.Background()
			alice, bob := id.UserID("@alice:a.test"), id.UserID("@bob:b.test")
			parent := pairedRoom(t, m, v)
			rules, _ := jsonv1.Marshal(map[string]any{"join_rule": "restricted", "allow": []map[string]any{{"type": "m.room_membership", "room_id": parent}}})
			roomID, err := a.CreateRoom(ctx, alice, &CreateRoomRequest{RoomVersion: v, Preset: "private_chat",
				InitialState: []InitialStateEvent{{Type: "m.room.join_rules", Content: rules}}})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := b.JoinRemote(ctx, bob, roomID, []string{"a.test"}, nil); err != nil {
				t.Fatalf("restricted join: %v", err)
			}
			m.settle()
			join, err := a.CurrentStateEvent(ctx, roomID, "m.room.member", string(bob))
			if err != nil || join == nil || join.Membership() != event.MembershipJoin {
				t.Fatalf("a: bob's membership event %v, %v", join, err)
			}
			if _, ok := join.PDU.Signatures["a.test"]; !ok {
				t.Fatal("a.test did not sign the join it authorised")
			}
			// Someone in no allowed room is refused.
			if _, err := b.JoinRemote(ctx, "@mallory:b.test", roomID, []string{"a.test"}, nil); err == nil {
				t.Fatal("a user in no allowed room joined a restricted room")
			}
		})
	}
}

// TestFederatedForkedStateEvent: a state event from another server that
// forks the room (its parent is not this server's latest event) becomes
// current state, resolved over both forks.
func TestFederatedForkedStateEvent(t *testing.T) {
	m := newMesh(t, "a.test", "b.test")
	a, b := m.servers["a.test"], m.servers["b.test"]
	ctx := context.Background()
	alice, bob := id.UserID("@alice:a.test"), id.UserID("@bob:b.test")
	roomID := pairedRoom(t, m, "10")
	pl, _ := jsonv1.Marshal(map[string]any{"users": map[string]int{string(alice): 100, string(bob): 50}, "state_default": 50})
	if _, err := a.SetState(ctx, alice, roomID, "m.room.power_levels", "", pl); err != nil {
		t.Fatal(err)
	}
	m.settle()
	m.cutOff("a.test")
	m.cutOff("b.test")
	sendText(t, a, alice, roomID, "on a's side")
	topicID, err := b.SetState(ctx, bob, roomID, "m.room.topic", "", []byte(`{"topic":"from b"}`))
	if err != nil {
		t.Fatal(err)
	}
	m.heal("b.test")
	m.heal("a.test")
	got, err := a.CurrentStateEvent(ctx, roomID, "m.room.topic", "")
	if err != nil || got == nil || got.ID != topicID {
		t.Fatalf("a's current topic is %v (%v), want %s", got, err, topicID)
	}
	if !inTimeline(t, a, topicID) {
		t.Fatal("the forked topic event is not in a's timeline")
	}
}
