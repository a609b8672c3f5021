package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
)

// fedPair starts two federating servers with TLS from one test CA.
func fedPair(t *testing.T) (*testserver.Server, *testserver.Server) {
	t.Helper()
	ca := testserver.NewCA(t)
	return testserver.New(t, testserver.Federated(ca)), testserver.New(t, testserver.Federated(ca))
}

// fedRoom is two federating servers and a public room of alice on A that
// bob of B joined.
type fedRoom struct {
	CA         *testserver.CA
	A, B       *testserver.Server
	Alice, Bob *mautrix.Client
	Room       id.RoomID
}

// newFedRoom starts a fedRoom; version "" is the default room version.
func newFedRoom(tb testing.TB, version id.RoomVersion) *fedRoom {
	tb.Helper()
	f := &fedRoom{CA: testserver.NewCA(tb)}
	f.A, f.B = testserver.New(tb, testserver.Federated(f.CA)), testserver.New(tb, testserver.Federated(f.CA))
	f.Alice, f.Bob = f.A.RegisterUser("alice"), f.B.RegisterUser("bob")
	ctx := context.Background()
	room, err := f.Alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", RoomVersion: version})
	if err != nil {
		tb.Fatal(err)
	}
	f.Room = room.RoomID
	if _, err := f.Bob.JoinRoom(ctx, f.Room.String(), &mautrix.ReqJoinRoom{Via: []string{f.A.ServerName()}}); err != nil {
		tb.Fatal(err)
	}
	return f
}

// waitForMessage long-polls c's /sync until a message with body arrives
// in roomID, and returns it.
func waitForMessage(t *testing.T, c *mautrix.Client, roomID id.RoomID, body string) *event.Event {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(20 * time.Second)
	since := ""
	for time.Now().Before(deadline) {
		resp, err := c.SyncRequest(ctx, 5000, since, "", false, event.PresenceOnline)
		if err != nil {
			t.Fatalf("sync: %v", err)
		}
		since = resp.NextBatch
		if jr, ok := resp.Rooms.Join[roomID]; ok {
			for _, ev := range jr.Timeline.Events {
				if ev.Type == event.EventMessage {
					if b, _ := ev.Content.Raw["body"].(string); b == body {
						return ev
					}
				}
			}
		}
	}
	t.Fatalf("%s never saw %q in %s", c.UserID, body, roomID)
	return nil
}

// TestFederationJoinByAliasAndMessages: a user of B joins a room of A by
// its alias, over loopback TLS, and messages go both ways to each side's
// /sync; each server also knows the other's member.
func TestFederationJoinByAliasAndMessages(t *testing.T) {
	a, b := fedPair(t)
	ctx := context.Background()
	alice := a.RegisterUser("alice")
	bob := b.RegisterUser("bob")
	created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", RoomAliasName: "family", Name: "Family"})
	if err != nil {
		t.Fatal(err)
	}
	alias := id.RoomAlias(fmt.Sprintf("#family:%s", a.ServerName()))
	joined, err := bob.JoinRoom(ctx, string(alias), nil)
	if err != nil {
		t.Fatalf("join %s from %s: %v", alias, b.ServerName(), err)
	}
	if joined.RoomID != created.RoomID {
		t.Fatalf("joined %s, want %s", joined.RoomID, created.RoomID)
	}
	if _, err := bob.SendText(ctx, created.RoomID, "hello from b"); err != nil {
		t.Fatal(err)
	}
	waitForMessage(t, alice, created.RoomID, "hello from b")
	// A message from another server notifies like a local one (a room of
	// two is a one-to-one chat: the default rules notify).
	resp, err := alice.SyncRequest(ctx, 0, "", "", false, event.PresenceOnline)
	if err != nil {
		t.Fatal(err)
	}
	if jr := resp.Rooms.Join[created.RoomID]; jr == nil || jr.UnreadNotifications == nil || jr.UnreadNotifications.NotificationCount < 1 {
		t.Fatalf("alice has no notification for bob's message: %+v", jr)
	}
	if _, err := alice.SendText(ctx, created.RoomID, "hello from a"); err != nil {
		t.Fatal(err)
	}
	waitForMessage(t, bob, created.RoomID, "hello from a")
	// A room shared with a user of another server is a mutual room.
	var mutual struct {
		Joined []id.RoomID `json:"joined"`
	}
	u := bob.BuildURLWithQuery(mautrix.ClientURLPath{"v1", "mutual_rooms"}, map[string]string{"user_id": string(alice.UserID)})
	if _, err := bob.MakeRequest(ctx, "GET", u, nil, &mutual); err != nil || len(mutual.Joined) != 1 || mutual.Joined[0] != created.RoomID {
		t.Fatalf("bob's mutual rooms with alice: %v, %v", mutual.Joined, err)
	}
	// Both servers list both members.
	for _, c := range []*mautrix.Client{alice, bob} {
		members, err := c.JoinedMembers(ctx, created.RoomID)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := members.Joined[alice.UserID]; !ok {
			t.Fatalf("%s does not see alice joined", c.UserID)
		}
		if _, ok := members.Joined[bob.UserID]; !ok {
			t.Fatalf("%s does not see bob joined", c.UserID)
		}
	}
}

// waitMembership polls a server's view of a user's membership until it is
// want.
func waitMembership(t *testing.T, s *testserver.Server, roomID id.RoomID, user id.UserID, want event.Membership) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(20 * time.Second)
	var got event.Membership
	for time.Now().Before(deadline) {
		var err error
		if got, err = s.Rooms().MembershipOf(ctx, roomID, user); err == nil && got == want {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s sees %s as %q in %s, want %q", s.ServerName(), user, got, roomID, want)
}

// TestFederationInviteKickBanRejoin: across two servers, an invite is
// seen and accepted, a remote profile read, a kick and an unban applied on
// both sides, and a kicked user rejoins; a ban keeps a user out.
func TestFederationInviteKickBanRejoin(t *testing.T) {
	a, b := fedPair(t)
	ctx := context.Background()
	alice := a.RegisterUser("alice")
	bob := b.RegisterUser("bob")
	if err := alice.SetDisplayName(ctx, "Alice A"); err != nil {
		t.Fatal(err)
	}
	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Invite: []id.UserID{bob.UserID}})
	if err != nil {
		t.Fatalf("create with a remote invitee: %v", err)
	}
	// The invite reaches bob's /sync with the room's stripped state.
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := bob.SyncRequest(ctx, 2000, "", "", false, event.PresenceOnline)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := resp.Rooms.Invite[room.RoomID]; ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("bob never saw the invite")
		}
	}
	if _, err := bob.JoinRoomByID(ctx, room.RoomID); err != nil {
		t.Fatalf("accept the invite: %v", err)
	}
	waitMembership(t, a, room.RoomID, bob.UserID, event.MembershipJoin)
	// A remote profile.
	prof, err := bob.GetProfile(ctx, alice.UserID)
	if err != nil || prof.DisplayName != "Alice A" {
		t.Fatalf("alice's profile seen from b: %+v, %v", prof, err)
	}
	// Kick: both servers agree, and bob may come back only when invited.
	if _, err := alice.KickUser(ctx, room.RoomID, &mautrix.ReqKickUser{UserID: bob.UserID, Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	waitMembership(t, b, room.RoomID, bob.UserID, event.MembershipLeave)
	if _, err := bob.JoinRoomByID(ctx, room.RoomID); err == nil {
		t.Fatal("bob rejoined an invite-only room he was kicked from")
	}
	if _, err := alice.InviteUser(ctx, room.RoomID, &mautrix.ReqInviteUser{UserID: bob.UserID}); err != nil {
		t.Fatal(err)
	}
	waitMembership(t, a, room.RoomID, bob.UserID, event.MembershipInvite)
	if _, err := bob.JoinRoomByID(ctx, room.RoomID); err != nil {
		t.Fatalf("rejoin after a new invite: %v", err)
	}
	waitMembership(t, a, room.RoomID, bob.UserID, event.MembershipJoin)
	if _, err := bob.SendText(ctx, room.RoomID, "back again"); err != nil {
		t.Fatal(err)
	}
	waitForMessage(t, alice, room.RoomID, "back again")
	// Ban.
	if _, err := alice.BanUser(ctx, room.RoomID, &mautrix.ReqBanUser{UserID: bob.UserID}); err != nil {
		t.Fatal(err)
	}
	waitMembership(t, b, room.RoomID, bob.UserID, event.MembershipBan)
	if _, err := bob.JoinRoomByID(ctx, room.RoomID); err == nil {
		t.Fatal("a banned user rejoined")
	}
}

// TestFederationMessagesBackfill: bob joins a room with history and pages
// back through /messages past his join: the history comes from alice's
// server, in order, and paging ends at the room's creation.
func TestFederationMessagesBackfill(t *testing.T) {
	a, b := fedPair(t)
	ctx := context.Background()
	alice := a.RegisterUser("alice")
	bob := b.RegisterUser("bob")
	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	const n = 25
	for i := range n {
		if _, err := alice.SendText(ctx, room.RoomID, fmt.Sprintf("history %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := bob.JoinRoom(ctx, room.RoomID.String(), &mautrix.ReqJoinRoom{Via: []string{a.ServerName()}}); err != nil {
		t.Fatal(err)
	}
	var bodies []string
	sawCreate := false
	from := ""
	for page := 0; page < 20; page++ {
		resp, err := bob.Messages(ctx, room.RoomID, from, "", mautrix.DirectionBackward, nil, 10)
		if err != nil {
			t.Fatalf("messages: %v", err)
		}
		for _, ev := range resp.Chunk {
			if ev.Type == event.EventMessage {
				body, _ := ev.Content.Raw["body"].(string)
				bodies = append(bodies, body)
			}
			if ev.Type == event.StateCreate {
				sawCreate = true
			}
		}
		if resp.End == "" {
			break
		}
		from = resp.End
	}
	if len(bodies) != n {
		t.Fatalf("bob paged back through %d messages, want %d: %v", len(bodies), n, bodies)
	}
	for i, body := range bodies {
		if want := fmt.Sprintf("history %d", n-1-i); body != want {
			t.Fatalf("message %d is %q, want %q", i, body, want)
		}
	}
	if !sawCreate {
		t.Fatal("paging back never reached the room's creation")
	}
}

// TestFederationKnock: bob of B knocks on a knock-only room of A; alice
// sees the knock and lets him in with an invite; bob joins.
func TestFederationKnock(t *testing.T) {
	a, b := fedPair(t)
	ctx := context.Background()
	alice := a.RegisterUser("alice")
	bob := b.RegisterUser("bob")
	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", RoomVersion: "11",
		InitialState: []*event.Event{{Type: event.StateJoinRules, Content: event.Content{Parsed: &event.JoinRulesEventContent{JoinRule: event.JoinRuleKnock}}}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.JoinRoom(ctx, room.RoomID.String(), &mautrix.ReqJoinRoom{Via: []string{a.ServerName()}}); err == nil {
		t.Fatal("bob joined a knock-only room uninvited")
	}
	if _, err := bob.KnockRoom(ctx, room.RoomID.String(), &mautrix.ReqKnockRoom{Via: []string{a.ServerName()}, Reason: "let me in"}); err != nil {
		t.Fatalf("knock: %v", err)
	}
	waitMembership(t, a, room.RoomID, bob.UserID, event.MembershipKnock)
	waitMembership(t, b, room.RoomID, bob.UserID, event.MembershipKnock)
	if _, err := alice.InviteUser(ctx, room.RoomID, &mautrix.ReqInviteUser{UserID: bob.UserID}); err != nil {
		t.Fatalf("invite the knocker: %v", err)
	}
	waitMembership(t, b, room.RoomID, bob.UserID, event.MembershipInvite)
	if _, err := bob.JoinRoomByID(ctx, room.RoomID); err != nil {
		t.Fatalf("join after the knock was accepted: %v", err)
	}
	waitMembership(t, a, room.RoomID, bob.UserID, event.MembershipJoin)
}

// blockable is a federation transport that fails every request while
// blocked: a partition between two servers, through the transport seam.
type blockable struct {
	mu      sync.Mutex
	blocked bool
}

func (bl *blockable) set(b bool) {
	bl.mu.Lock()
	bl.blocked = b
	bl.mu.Unlock()
}

func (bl *blockable) choose(string) http.RoundTripper {
	bl.mu.Lock()
	defer bl.mu.Unlock()
	if bl.blocked {
		return failing{}
	}
	return nil
}

type failing struct{}

func (failing) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("partitioned")
}

// sameCurrentState waits until both servers hold the same current state
// of a room.
func sameCurrentState(t *testing.T, a, b *testserver.Server, roomID id.RoomID) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for {
		sa, err1 := a.Rooms().CurrentState(ctx, roomID)
		sb, err2 := b.Rooms().CurrentState(ctx, roomID)
		if err1 == nil && err2 == nil && maps.Equal(sa, sb) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("current states differ:\n%s: %v\n%s: %v", a.ServerName(), sa, b.ServerName(), sb)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestFederationPartitionHealed: while the servers cannot reach each
// other, both change power levels, the name and membership; once the
// partition heals both end with the same current state.
func TestFederationPartitionHealed(t *testing.T) {
	a, b := fedPair(t)
	ctx := context.Background()
	alice := a.RegisterUser("alice")
	bob := b.RegisterUser("bob")
	carol := b.RegisterUser("carol")
	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", RoomVersion: "11",
		PowerLevelOverride: &event.PowerLevelsEventContent{Users: map[id.UserID]int{alice.UserID: 100, bob.UserID: 50}, StateDefaultPtr: ptr(50)}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*mautrix.Client{bob, carol} {
		if _, err := c.JoinRoom(ctx, room.RoomID.String(), &mautrix.ReqJoinRoom{Via: []string{a.ServerName()}}); err != nil {
			t.Fatal(err)
		}
	}
	waitMembership(t, a, room.RoomID, carol.UserID, event.MembershipJoin)
	ab, ba := &blockable{}, &blockable{}
	a.Federation().SetTransport(ab.choose)
	b.Federation().SetTransport(ba.choose)
	ab.set(true)
	ba.set(true)
	// alice demotes bob and renames; bob (still a moderator on his side)
	// sets the topic and kicks carol.
	if _, err := alice.SendStateEvent(ctx, room.RoomID, event.StatePowerLevels, "", &event.PowerLevelsEventContent{Users: map[id.UserID]int{alice.UserID: 100}, StateDefaultPtr: ptr(50)}); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SendStateEvent(ctx, room.RoomID, event.StateRoomName, "", &event.RoomNameEventContent{Name: "alice's"}); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.SendStateEvent(ctx, room.RoomID, event.StateTopic, "", &event.TopicEventContent{Topic: "bob's"}); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SendText(ctx, room.RoomID, "during the partition"); err != nil {
		t.Fatal(err)
	}
	ab.set(false)
	ba.set(false)
	// Each side hearing from the other retries what it owes at once.
	if _, err := bob.SendText(ctx, room.RoomID, "healed"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SendText(ctx, room.RoomID, "healed too"); err != nil {
		t.Fatal(err)
	}
	waitForMessage(t, bob, room.RoomID, "during the partition")
	sameCurrentState(t, a, b, room.RoomID)
}

// TestFederationServerDownAndBack: messages sent while the other server is
// down reach it after it restarts, each once.
func TestFederationServerDownAndBack(t *testing.T) {
	f := newFedRoom(t, "")
	b, alice := f.B, f.Alice
	room := struct{ RoomID id.RoomID }{f.Room}
	ctx := context.Background()
	b.Down()
	const n = 20
	for i := range n {
		if _, err := alice.SendText(ctx, room.RoomID, fmt.Sprintf("while down %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	b.Up()
	bob := b.Login("bob", testserver.DefaultPassword)
	// B's first message tells A it is back.
	if _, err := bob.SendText(ctx, room.RoomID, "back"); err != nil {
		t.Fatal(err)
	}
	waitForMessage(t, bob, room.RoomID, fmt.Sprintf("while down %d", n-1))
	resp, err := bob.Messages(ctx, room.RoomID, "", "", mautrix.DirectionBackward, nil, 100)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, ev := range resp.Chunk {
		if body, _ := ev.Content.Raw["body"].(string); body != "" {
			seen[body]++
		}
	}
	for i := range n {
		if c := seen[fmt.Sprintf("while down %d", i)]; c != 1 {
			t.Fatalf("message %d arrived %d times", i, c)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// TestFederationThreeServers: a room of A joined from B and C; every
// message and state change reaches all three (a join A accepted for C is
// passed on to B), C leaves and rejoins, and all end with one state.
func TestFederationThreeServers(t *testing.T) {
	ca := testserver.NewCA(t)
	a := testserver.New(t, testserver.Federated(ca))
	b := testserver.New(t, testserver.Federated(ca))
	c := testserver.New(t, testserver.Federated(ca))
	ctx := context.Background()
	alice, bob, carol := a.RegisterUser("alice"), b.RegisterUser("bob"), c.RegisterUser("carol")
	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", RoomAliasName: "three"})
	if err != nil {
		t.Fatal(err)
	}
	alias := id.RoomAlias(fmt.Sprintf("#three:%s", a.ServerName()))
	if _, err := bob.JoinRoom(ctx, string(alias), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := carol.JoinRoom(ctx, string(alias), nil); err != nil {
		t.Fatal(err)
	}
	// B learns of carol's join from A, which accepted it for C.
	waitMembership(t, b, room.RoomID, carol.UserID, event.MembershipJoin)
	if _, err := carol.SendText(ctx, room.RoomID, "from c"); err != nil {
		t.Fatal(err)
	}
	waitForMessage(t, bob, room.RoomID, "from c")
	waitForMessage(t, alice, room.RoomID, "from c")
	if _, err := alice.SendStateEvent(ctx, room.RoomID, event.StateRoomName, "", &event.RoomNameEventContent{Name: "three servers"}); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.SendText(ctx, room.RoomID, "from b"); err != nil {
		t.Fatal(err)
	}
	waitForMessage(t, carol, room.RoomID, "from b")
	if _, err := carol.LeaveRoom(ctx, room.RoomID); err != nil {
		t.Fatal(err)
	}
	waitMembership(t, a, room.RoomID, carol.UserID, event.MembershipLeave)
	waitMembership(t, b, room.RoomID, carol.UserID, event.MembershipLeave)
	if _, err := alice.SendText(ctx, room.RoomID, "while carol was away"); err != nil {
		t.Fatal(err)
	}
	if _, err := carol.JoinRoom(ctx, string(alias), nil); err != nil {
		t.Fatalf("rejoin: %v", err)
	}
	waitMembership(t, b, room.RoomID, carol.UserID, event.MembershipJoin)
	if _, err := bob.SendText(ctx, room.RoomID, "welcome back"); err != nil {
		t.Fatal(err)
	}
	waitForMessage(t, carol, room.RoomID, "welcome back")
	sameCurrentState(t, a, b, room.RoomID)
	sameCurrentState(t, a, c, room.RoomID)
}

// TestFederationSenderRestartResends: what A owes B when A stops is sent
// after A starts again, from its persisted queue.
func TestFederationSenderRestartResends(t *testing.T) {
	f := newFedRoom(t, "")
	a, b, alice, bob := f.A, f.B, f.Alice, f.Bob
	room := struct{ RoomID id.RoomID }{f.Room}
	ctx := context.Background()
	block := &blockable{}
	a.Federation().SetTransport(block.choose)
	block.set(true)
	const n = 10
	for i := range n {
		if _, err := alice.SendText(ctx, room.RoomID, fmt.Sprintf("owed %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	// The messages wait in A's queue for B.
	deadline := time.Now().Add(10 * time.Second)
	for {
		dests, err := a.Outbound().Destinations(ctx)
		if err != nil {
			t.Fatal(err)
		}
		queued := 0
		for _, d := range dests {
			if d.Name == b.ServerName() {
				queued = d.Queued
			}
		}
		if queued >= n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("A queued %d messages for B, want %d", queued, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	a.Down()
	a.Up() // a new process would start the same way: no block, the queue on disk
	for i := range n {
		waitForMessage(t, bob, room.RoomID, fmt.Sprintf("owed %d", i))
	}
}

// TestFederationRoomUpgrade: alice on A upgrades a room bob of B is in;
// B sees the tombstone and bob joins the new room through A, as a client
// following the tombstone does.
func TestFederationRoomUpgrade(t *testing.T) {
	a, b := fedPair(t)
	ctx := context.Background()
	alice := a.RegisterUser("alice")
	bob := b.RegisterUser("bob")
	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", RoomVersion: "11"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.JoinRoom(ctx, room.RoomID.String(), &mautrix.ReqJoinRoom{Via: []string{a.ServerName()}}); err != nil {
		t.Fatal(err)
	}
	var up struct {
		ReplacementRoom id.RoomID `json:"replacement_room"`
	}
	if _, err := alice.MakeRequest(ctx, "POST", alice.BuildClientURL("v3", "rooms", room.RoomID, "upgrade"), map[string]string{"new_version": "12"}, &up); err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	// B holds the tombstone pointing at the new room.
	deadline := time.Now().Add(20 * time.Second)
	for {
		ev, err := b.Rooms().CurrentStateEvent(ctx, room.RoomID, event.StateTombstone.Type, "")
		if err == nil && ev != nil {
			var c event.TombstoneEventContent
			if json.Unmarshal(ev.PDU.Content, &c) == nil && c.ReplacementRoom == up.ReplacementRoom {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("B never got the tombstone")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := bob.JoinRoom(ctx, up.ReplacementRoom.String(), &mautrix.ReqJoinRoom{Via: []string{a.ServerName()}}); err != nil {
		t.Fatalf("join the new room: %v", err)
	}
	if _, err := bob.SendText(ctx, up.ReplacementRoom, "in the new room"); err != nil {
		t.Fatal(err)
	}
	waitForMessage(t, alice, up.ReplacementRoom, "in the new room")
}

// TestFederationInvitedJoinSyncsState: bob of B, invited to an encrypted
// room of A, joins it: his next /sync (and an initial one) carry the
// room's whole state, m.room.encryption included, though B knew the room
// only from the invite's stripped state before.
func TestFederationInvitedJoinSyncsState(t *testing.T) {
	a, b := fedPair(t)
	ctx := context.Background()
	alice := a.RegisterUser("alice")
	bob := b.RegisterUser("bob")
	resp, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Invite: []id.UserID{bob.UserID},
		InitialState: []*event.Event{{Type: event.StateEncryption, Content: event.Content{Parsed: &event.EncryptionEventContent{Algorithm: id.AlgorithmMegolmV1}}}}})
	if err != nil {
		t.Fatal(err)
	}
	var since string
	for deadline := time.Now().Add(20 * time.Second); ; {
		s, err := bob.SyncRequest(ctx, 1000, since, "", false, event.PresenceOnline)
		if err != nil {
			t.Fatal(err)
		}
		since = s.NextBatch
		if s.Rooms.Invite[resp.RoomID] != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no invite")
		}
	}
	if _, err := bob.JoinRoomByID(ctx, resp.RoomID); err != nil {
		t.Fatal(err)
	}
	for _, from := range []string{since, ""} {
		s, err := bob.SyncRequest(ctx, 0, from, "", false, event.PresenceOnline)
		if err != nil {
			t.Fatal(err)
		}
		jr := s.Rooms.Join[resp.RoomID]
		if jr == nil {
			t.Fatalf("sync from %q: the room is not joined", from)
		}
		found := false
		for _, e := range append(jr.State.Events, jr.Timeline.Events...) {
			if e.Type == event.StateEncryption {
				found = true
			}
		}
		if !found {
			t.Fatalf("sync from %q: the joined room's state lacks m.room.encryption", from)
		}
	}
}
