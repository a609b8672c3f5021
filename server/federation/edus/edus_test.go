package edus_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/federation/edus"
	"github.com/palpo-im/palpo-desktop/server/federation/internal/fedtest"
	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
)

const remote = "remote.test"

var bob = id.UserID("@bob:" + remote)

type fixture struct {
	srv    *testserver.Server
	alice  *mautrix.Client
	roomID id.RoomID
	msg    id.EventID
	apply  *edus.Applier
}

// setup makes a room of alice's, with a message, that bob of remote.test
// has joined.
func setup(t *testing.T) *fixture {
	t.Helper()
	srv := testserver.New(t)
	alice := srv.RegisterUser("alice")
	ctx := context.Background()
	resp, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	sent, err := alice.SendText(ctx, resp.RoomID, "hello")
	if err != nil {
		t.Fatal(err)
	}
	fedtest.StoreRemoteMember(t, srv.DB(), resp.RoomID, bob, "join")
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	return &fixture{
		srv: srv, alice: alice, roomID: resp.RoomID, msg: sent.EventID,
		apply: edus.New(srv.DB(), srv.ServerName(), srv.Sync(), srv.Sync().Notifier(), log),
	}
}

func eduOf(t *testing.T, eduType string, content any) json.RawMessage {
	t.Helper()
	raw, err := json.Marshal(map[string]any{"edu_type": eduType, "content": content})
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func (f *fixture) typing(t *testing.T, origin string, user id.UserID, typing bool) error {
	return f.apply.ApplyEDU(context.Background(), origin,
		eduOf(t, "m.typing", map[string]any{"room_id": f.roomID, "user_id": user, "typing": typing}))
}

func (f *fixture) typers() []id.UserID {
	return f.srv.Sync().TypingSince([]id.RoomID{f.roomID}, 0, true)[f.roomID]
}

// sync runs alice's /sync (since "" for an initial one, with a timeout for
// an incremental one) and returns her view of the room's ephemeral events
// and the presence section.
func (f *fixture) sync(t *testing.T, since string) (*mautrix.RespSync, []*event.Event) {
	t.Helper()
	timeout := 0
	if since != "" {
		timeout = 5000
	}
	resp, err := f.alice.SyncRequest(context.Background(), timeout, since, "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	var eph []*event.Event
	if r := resp.Rooms.Join[f.roomID]; r != nil {
		eph = r.Ephemeral.Events
	}
	return resp, eph
}

func TestTyping(t *testing.T) {
	f := setup(t)
	// A server speaks only for its users.
	if err := f.typing(t, "evil.test", bob, true); !errors.Is(err, edus.ErrNotAllowed) {
		t.Errorf("typing for another server's user: %v, want ErrNotAllowed", err)
	}
	// Only a user joined to the room may type in it.
	if err := f.typing(t, remote, "@carol:"+remote, true); !errors.Is(err, edus.ErrNotAllowed) {
		t.Errorf("typing of a user not in the room: %v, want ErrNotAllowed", err)
	}
	if got := f.typers(); len(got) != 0 {
		t.Fatalf("refused typing applied: %v", got)
	}

	first, _ := f.sync(t, "")
	if err := f.typing(t, remote, bob, true); err != nil {
		t.Fatal(err)
	}
	_, eph := f.sync(t, first.NextBatch)
	found := false
	for _, ev := range eph {
		if ev.Type == event.EphemeralEventTyping {
			_ = ev.Content.ParseRaw(ev.Type)
			found = slices.Equal(ev.Content.AsTyping().UserIDs, []id.UserID{bob})
		}
	}
	if !found {
		t.Errorf("alice's sync does not show bob typing: %+v", eph)
	}
	if err := f.typing(t, remote, bob, false); err != nil {
		t.Fatal(err)
	}
	if got := f.typers(); len(got) != 0 {
		t.Errorf("typing=false left %v typing", got)
	}
}

func receiptEDU(roomID id.RoomID, receiptType string, user id.UserID, evID id.EventID) map[id.RoomID]any {
	return map[id.RoomID]any{roomID: map[string]any{receiptType: map[id.UserID]any{
		user: map[string]any{"event_ids": []id.EventID{evID}, "data": map[string]any{"ts": 1700000000000}},
	}}}
}

// readers returns who alice's sync shows having read evID (m.read).
func readers(eph []*event.Event, evID id.EventID) []id.UserID {
	var out []id.UserID
	for _, ev := range eph {
		if ev.Type != event.EphemeralEventReceipt {
			continue
		}
		var c map[id.EventID]map[string]map[id.UserID]json.RawMessage
		if json.Unmarshal(ev.Content.VeryRaw, &c) != nil {
			continue
		}
		for u := range c[evID]["m.read"] {
			out = append(out, u)
		}
	}
	slices.Sort(out)
	return out
}

func TestReceiptShowsInSync(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	first, _ := f.sync(t, "")
	// Refused: another server's user, a user not in the room, a private
	// receipt (never sent between servers), an event of another room.
	bad := []struct {
		origin string
		edu    map[id.RoomID]any
	}{
		{"evil.test", receiptEDU(f.roomID, "m.read", bob, f.msg)},
		{remote, receiptEDU(f.roomID, "m.read", "@carol:"+remote, f.msg)},
		{remote, receiptEDU(f.roomID, "m.read.private", bob, f.msg)},
	}
	for i, b := range bad {
		err := f.apply.ApplyEDU(ctx, b.origin, eduOf(t, "m.receipt", b.edu))
		if i < 2 && !errors.Is(err, edus.ErrNotAllowed) {
			t.Errorf("case %d: %v, want ErrNotAllowed", i, err)
		}
	}
	if err := f.apply.ApplyEDU(ctx, remote, eduOf(t, "m.receipt", receiptEDU(f.roomID, "m.read", bob, f.msg))); err != nil {
		t.Fatal(err)
	}
	_, eph := f.sync(t, first.NextBatch)
	if got := readers(eph, f.msg); !slices.Equal(got, []id.UserID{bob}) {
		t.Errorf("incremental sync shows readers %v, want bob only", got)
	}
	_, eph = f.sync(t, "")
	if got := readers(eph, f.msg); !slices.Equal(got, []id.UserID{bob}) {
		t.Errorf("initial sync shows readers %v, want bob only", got)
	}
}

func TestPresence(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	push := func(origin string, user id.UserID, state string) error {
		return f.apply.ApplyEDU(ctx, origin, eduOf(t, "m.presence", map[string]any{"push": []any{
			map[string]any{"user_id": user, "presence": state, "last_active_ago": 1000, "status_msg": "hi"},
		}}))
	}
	if err := push("evil.test", bob, "online"); !errors.Is(err, edus.ErrNotAllowed) {
		t.Errorf("presence for another server's user: %v", err)
	}
	if err := push(remote, "@dave:"+remote, "online"); !errors.Is(err, edus.ErrNotAllowed) {
		t.Errorf("presence of a user sharing no room here: %v", err)
	}
	if err := push(remote, bob, "sleeping"); err == nil {
		t.Error("unknown presence state accepted")
	}
	if _, err := f.srv.DB().GetPresence(ctx, "@dave:"+remote); err == nil {
		t.Error("refused presence stored")
	}
	if err := push(remote, bob, "online"); err != nil {
		t.Fatal(err)
	}
	resp, _ := f.sync(t, "")
	found := false
	for _, ev := range resp.Presence.Events {
		if ev.Sender == bob {
			_ = ev.Content.ParseRaw(ev.Type)
			p := ev.Content.AsPresence()
			found = p.Presence == event.PresenceOnline && p.StatusMessage == "hi"
		}
	}
	if !found {
		t.Errorf("alice's sync lacks bob's presence: %+v", resp.Presence.Events)
	}
}

func TestMalformedAndUnknownEDUs(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	for _, raw := range []string{`{`, `{"edu_type":"m.typing","content":[]}`, `{"edu_type":"m.receipt","content":{"!r:x":{"m.read":7}}}`, `{"edu_type":"m.presence","content":{"push":{}}}`} {
		if err := f.apply.ApplyEDU(ctx, remote, json.RawMessage(raw)); err == nil {
			t.Errorf("%s accepted", raw)
		}
	}
	if err := f.apply.ApplyEDU(ctx, remote, json.RawMessage(`{"edu_type":"org.example.unknown","content":{}}`)); err != nil {
		t.Errorf("unknown EDU type: %v", err)
	}
}
