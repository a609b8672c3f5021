package push_test

import (
	"context"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
)

// gwWait bounds every wait for a push gateway request.
const gwWait = 15 * time.Second

// gwNotification is a request a test push gateway received, decoded, with
// the raw notification object for checking which keys are present.
type gwNotification struct {
	EventID           id.EventID     `json:"event_id"`
	RoomID            id.RoomID      `json:"room_id"`
	Type              string         `json:"type"`
	Sender            id.UserID      `json:"sender"`
	SenderDisplayName string         `json:"sender_display_name"`
	RoomName          string         `json:"room_name"`
	UserIsTarget      bool           `json:"user_is_target"`
	Prio              string         `json:"prio"`
	Content           map[string]any `json:"content"`
	Counts            map[string]int `json:"counts"`
	Devices           []struct {
		AppID     string         `json:"app_id"`
		PushKey   string         `json:"pushkey"`
		PushKeyTS int64          `json:"pushkey_ts"`
		Data      map[string]any `json:"data"`
		Tweaks    map[string]any `json:"tweaks"`
	} `json:"devices"`

	raw    map[string]json.RawMessage
	status int // what the gateway answered
}

// keys lists the notification's keys, sorted.
func (n *gwNotification) keys() []string { return slices.Sorted(maps.Keys(n.raw)) }

// pushkey is the pushkey of the notification's one device.
func (n *gwNotification) pushkey(t *testing.T) string {
	t.Helper()
	if len(n.Devices) != 1 {
		t.Fatalf("notification for %d devices, want 1: %v", len(n.Devices), n.raw)
	}
	return n.Devices[0].PushKey
}

// gwGateway is a push gateway on loopback that records every request and
// answers as its respond function says (200 {"rejected": []} by default).
type gwGateway struct {
	t   *testing.T
	srv *httptest.Server
	got chan *gwNotification

	mu      sync.Mutex
	respond func(n *gwNotification) (int, string)
}

func gwStart(t *testing.T) *gwGateway {
	t.Helper()
	g := &gwGateway{t: t, got: make(chan *gwNotification, 100)}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/_matrix/push/v1/notify" || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("push gateway got %s %s (%s)", r.Method, r.URL.Path, r.Header.Get("Content-Type"))
			http.Error(w, `{"errcode":"M_UNRECOGNIZED"}`, http.StatusNotFound)
			return
		}
		body, _ := io.ReadAll(r.Body)
		var req struct {
			Notification json.RawMessage `json:"notification"`
		}
		n := &gwNotification{}
		if err := json.Unmarshal(body, &req); err != nil || json.Unmarshal(req.Notification, n) != nil || json.Unmarshal(req.Notification, &n.raw) != nil {
			t.Errorf("push gateway got a bad body: %s", body)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		g.mu.Lock()
		respond := g.respond
		g.mu.Unlock()
		status, answer := http.StatusOK, `{"rejected":[]}`
		if respond != nil {
			status, answer = respond(n)
		}
		n.status = status
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, answer)
		g.got <- n
	}))
	t.Cleanup(g.srv.Close)
	return g
}

func (g *gwGateway) url() string { return g.srv.URL + "/_matrix/push/v1/notify" }

func (g *gwGateway) setRespond(f func(n *gwNotification) (int, string)) {
	g.mu.Lock()
	g.respond = f
	g.mu.Unlock()
}

// next waits for the gateway's next request.
func (g *gwGateway) next(what string) *gwNotification {
	g.t.Helper()
	select {
	case n := <-g.got:
		return n
	case <-time.After(gwWait):
		g.t.Fatalf("%s: the push gateway got nothing in %s", what, gwWait)
		return nil
	}
}

// nextEvent waits for the gateway's next request and checks it is about
// evID (and was answered 200).
func (g *gwGateway) nextEvent(what string, evID id.EventID) *gwNotification {
	g.t.Helper()
	n := g.next(what)
	if n.EventID != evID {
		g.t.Fatalf("%s: gateway got a notification about %q (%v), want %s", what, n.EventID, n.raw, evID)
	}
	return n
}

// gwPusher registers an http pusher for c at the gateway, with extra data.
func gwPusher(t *testing.T, c *mautrix.Client, g *gwGateway, appID, pushKey string, data map[string]any) {
	t.Helper()
	kind := mautrix.PusherKindHTTP
	d := mautrix.PusherData{"url": g.url()}
	maps.Copy(d, data)
	err := c.SetPusher(context.Background(), &mautrix.Pusher{
		Kind: &kind, AppID: mautrix.PusherAppID(appID), PushKey: pushKey, AppDisplayName: "Test app",
		DeviceDisplayName: "Phone", Language: "en", Data: d,
	})
	if err != nil {
		t.Fatalf("set pusher: %v", err)
	}
}

func gwSend(t *testing.T, c *mautrix.Client, roomID id.RoomID, content map[string]any) id.EventID {
	t.Helper()
	resp, err := c.SendMessageEvent(context.Background(), roomID, event.EventMessage, content)
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	return resp.EventID
}

func gwText(body string) map[string]any { return map[string]any{"msgtype": "m.text", "body": body} }

// gwRoom makes a room of creator with the others joined.
func gwRoom(t *testing.T, creator *mautrix.Client, name string, others ...*mautrix.Client) id.RoomID {
	t.Helper()
	ctx := context.Background()
	resp, err := creator.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: name})
	if err != nil {
		t.Fatalf("create room: %v", err)
	}
	for _, c := range others {
		if _, err := c.JoinRoomByID(ctx, resp.RoomID); err != nil {
			t.Fatalf("join: %v", err)
		}
	}
	return resp.RoomID
}

func gwPushers(t *testing.T, c *mautrix.Client) []mautrix.Pusher {
	t.Helper()
	resp, err := c.GetPushers(context.Background())
	if err != nil {
		t.Fatalf("get pushers: %v", err)
	}
	return resp.Pushers
}

func TestPushDeliveryOneToOne(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	if err := alice.SetDisplayName(ctx, "Alice Liddell"); err != nil {
		t.Fatal(err)
	}
	roomID := gwRoom(t, alice, "", bob)
	full, idOnly := gwStart(t), gwStart(t)
	before := time.Now().Unix()
	gwPusher(t, bob, full, "org.example.app", "bob-key", map[string]any{"custom": "x"})
	gwPusher(t, bob, idOnly, "org.example.private", "bob-private", map[string]any{"format": "event_id_only"})

	m1 := gwSend(t, alice, roomID, gwText("hello there"))
	n := full.nextEvent("message", m1)
	if n.RoomID != roomID || n.Type != "m.room.message" || n.Sender != alice.UserID || n.SenderDisplayName != "Alice Liddell" || n.Prio != "high" {
		t.Fatalf("notification %v", n.raw)
	}
	if n.Content["body"] != "hello there" || n.Content["msgtype"] != "m.text" {
		t.Fatalf("content %v", n.Content)
	}
	// One unread room; a one-to-one room has no name (the sender's says
	// it), and user_is_target is only for member events.
	if !maps.Equal(n.Counts, map[string]int{"unread": 1}) {
		t.Fatalf("counts %v", n.Counts)
	}
	if want := []string{"content", "counts", "devices", "event_id", "prio", "room_id", "sender", "sender_display_name", "type"}; !slices.Equal(n.keys(), want) {
		t.Fatalf("notification keys %v, want %v", n.keys(), want)
	}
	dev := n.Devices[0]
	if n.pushkey(t) != "bob-key" || dev.AppID != "org.example.app" || dev.PushKeyTS < before || dev.PushKeyTS > time.Now().Unix() {
		t.Fatalf("device %+v", dev)
	}
	if !maps.Equal(dev.Data, map[string]any{"custom": "x"}) {
		t.Fatalf("device data %v: want the pusher's data minus url", dev.Data)
	}
	if !maps.Equal(dev.Tweaks, map[string]any{"sound": "default"}) {
		t.Fatalf("tweaks %v", dev.Tweaks)
	}

	// event_id_only: the IDs, priority and counts, nothing about the
	// message.
	n = idOnly.nextEvent("event_id_only", m1)
	if want := []string{"counts", "devices", "event_id", "prio", "room_id"}; !slices.Equal(n.keys(), want) {
		t.Fatalf("event_id_only keys %v, want %v", n.keys(), want)
	}
	if n.RoomID != roomID || !maps.Equal(n.Counts, map[string]int{"unread": 1}) || n.pushkey(t) != "bob-private" ||
		!maps.Equal(n.Devices[0].Data, map[string]any{"format": "event_id_only"}) || n.Devices[0].Tweaks != nil {
		t.Fatalf("event_id_only notification %v", n.raw)
	}

	// A second message in the same room: still one unread room.
	m2 := gwSend(t, alice, roomID, gwText("are you there?"))
	n = full.nextEvent("second message", m2)
	if !maps.Equal(n.Counts, map[string]int{"unread": 1}) {
		t.Fatalf("counts after two messages %v", n.Counts)
	}
	idOnly.nextEvent("second message, event_id_only", m2)

	// Reading on another device sends the new badge alone.
	if err := bob.SendReceipt(ctx, roomID, m2, event.ReceiptTypeRead, nil); err != nil {
		t.Fatal(err)
	}
	for _, g := range []*gwGateway{full, idOnly} {
		n = g.next("badge update")
		if want := []string{"counts", "devices"}; !slices.Equal(n.keys(), want) || n.Counts["unread"] != 0 {
			t.Fatalf("badge update %v", n.raw)
		}
		if _, ok := n.raw["counts"]; !ok || string(n.raw["counts"]) != `{"unread":0}` {
			t.Fatalf("badge counts %s", n.raw["counts"])
		}
	}

	// An invite notifies its target, with user_is_target and the new
	// room's name, and counts the invite.
	team, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: "Tea party", Invite: []id.UserID{bob.UserID}})
	if err != nil {
		t.Fatal(err)
	}
	n = full.next("invite")
	if n.RoomID != team.RoomID || n.Type != "m.room.member" || !n.UserIsTarget || n.RoomName != "Tea party" || n.Prio != "high" ||
		n.Content["membership"] != "invite" || !maps.Equal(n.Counts, map[string]int{"unread": 1}) {
		t.Fatalf("invite notification %v", n.raw)
	}
}

func TestPushDeliveryGroupAndMention(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	carol := ts.RegisterUser("carol")
	if err := carol.SetDisplayName(ctx, "Carol"); err != nil {
		t.Fatal(err)
	}
	roomID := gwRoom(t, alice, "", bob, carol)
	g := gwStart(t)
	gwPusher(t, bob, g, "org.example.app", "bob-key", nil)

	// A plain message in a group: notify only, so low priority and no
	// tweaks; an unnamed room is named after the other members.
	m1 := gwSend(t, alice, roomID, gwText("morning all"))
	n := g.nextEvent("group message", m1)
	if n.Prio != "low" || len(n.Devices[0].Tweaks) != 0 || n.RoomName != "alice and Carol" {
		t.Fatalf("group notification %v", n.raw)
	}
	if _, err := alice.SendStateEvent(ctx, roomID, event.StateRoomName, "", map[string]any{"name": "Team"}); err != nil {
		t.Fatal(err)
	}
	// A mention highlights: high priority, the highlight tweak.
	m2 := gwSend(t, alice, roomID, map[string]any{"msgtype": "m.text", "body": "bob: look",
		"m.mentions": map[string]any{"user_ids": []id.UserID{bob.UserID}}})
	n = g.nextEvent("mention", m2)
	if n.Prio != "high" || n.RoomName != "Team" || !maps.Equal(n.Devices[0].Tweaks, map[string]any{"sound": "default", "highlight": true}) {
		t.Fatalf("mention notification %v", n.raw)
	}
}

func TestPushDeliveryOnlyNewAndOthersMessages(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	roomID := gwRoom(t, alice, "", bob)
	// A message from before the pusher existed is not pushed.
	gwSend(t, alice, roomID, gwText("before the pusher"))
	g := gwStart(t)
	gwPusher(t, bob, g, "org.example.app", "bob-key", nil)
	gwSend(t, bob, roomID, gwText("my own message"))
	// A pusher delivers in order: had the earlier message or bob's own
	// made a push, it would arrive before alice's reply.
	m := gwSend(t, alice, roomID, gwText("reply"))
	g.nextEvent("first push", m)
}

func TestPushDeliveryRejectedPushkey(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	roomID := gwRoom(t, alice, "", bob)
	g := gwStart(t)
	g.setRespond(func(n *gwNotification) (int, string) {
		if n.Devices[0].PushKey == "stale-key" {
			return http.StatusOK, `{"rejected":["stale-key"]}`
		}
		return http.StatusOK, `{"rejected":[]}`
	})
	gwPusher(t, bob, g, "org.example.app", "stale-key", nil)
	m := gwSend(t, alice, roomID, gwText("hello"))
	g.nextEvent("push to a stale key", m)
	// The pusher goes once the gateway has answered; wait for it.
	deadline := time.Now().Add(gwWait)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for len(gwPushers(t, bob)) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("rejected pusher still listed: %v", gwPushers(t, bob))
		}
		<-tick.C
	}
	// Nothing more goes to the rejected key: the next push is for the new
	// one.
	gwPusher(t, bob, g, "org.example.app", "fresh-key", nil)
	m2 := gwSend(t, alice, roomID, gwText("again"))
	if n := g.nextEvent("after rejection", m2); n.pushkey(t) != "fresh-key" {
		t.Fatalf("push went to %s", n.pushkey(t))
	}
}

func TestPushDeliveryRetriesInOrder(t *testing.T) {
	ts := testserver.New(t)
	ts.Push().SetDeliveryBackoff(time.Millisecond, 20*time.Millisecond)
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	roomID := gwRoom(t, alice, "", bob)
	g := gwStart(t)
	var mu sync.Mutex
	calls := 0
	var badRequest id.EventID
	g.setRespond(func(n *gwNotification) (int, string) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		switch {
		case calls <= 2:
			return http.StatusServiceUnavailable, `{}`
		case n.EventID == badRequest:
			return http.StatusBadRequest, `{"errcode":"M_BAD_JSON"}`
		}
		return http.StatusOK, `{"rejected":[]}`
	})
	gwPusher(t, bob, g, "org.example.app", "bob-key", nil)
	m1 := gwSend(t, alice, roomID, gwText("one"))
	m2 := gwSend(t, alice, roomID, gwText("two"))
	// m1 fails twice and is retried; m2 waits behind it.
	for i, want := range []struct {
		ev     id.EventID
		status int
	}{{m1, 503}, {m1, 503}, {m1, 200}, {m2, 200}} {
		n := g.next("retry")
		if n.EventID != want.ev || n.status != want.status {
			t.Fatalf("request %d: %s answered %d, want %s answered %d", i, n.EventID, n.status, want.ev, want.status)
		}
	}
	// A 4xx other than a rejection drops that notification: it is not
	// retried, and the next one follows.
	mu.Lock()
	m3 := gwSend(t, alice, roomID, gwText("three"))
	badRequest = m3
	mu.Unlock()
	if n := g.nextEvent("refused", m3); n.status != http.StatusBadRequest {
		t.Fatalf("m3 answered %d", n.status)
	}
	m4 := gwSend(t, alice, roomID, gwText("four"))
	g.nextEvent("after a refused notification", m4)
}

func TestPushDeliveryResumesAfterRestart(t *testing.T) {
	ts := testserver.New(t)
	ts.Push().SetDeliveryBackoff(time.Millisecond, 5*time.Millisecond)
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	roomID := gwRoom(t, alice, "", bob)
	g := gwStart(t)
	gwPusher(t, bob, g, "org.example.app", "bob-key", nil)
	m0 := gwSend(t, alice, roomID, gwText("delivered before"))
	g.nextEvent("before restart", m0)

	// The gateway goes down; a message waits for it across a restart.
	var mu sync.Mutex
	down := true
	g.setRespond(func(n *gwNotification) (int, string) {
		mu.Lock()
		defer mu.Unlock()
		if down {
			return http.StatusBadGateway, `{}`
		}
		return http.StatusOK, `{"rejected":[]}`
	})
	m1 := gwSend(t, alice, roomID, gwText("sent while the gateway is down"))
	if n := g.nextEvent("gateway down", m1); n.status != http.StatusBadGateway {
		t.Fatalf("answered %d", n.status)
	}
	ts.Restart()
	mu.Lock()
	down = false
	mu.Unlock()
	// Drain the attempts made before the restart; the first delivered one
	// must be m1 (m0 is not sent again), then nothing else.
	for {
		n := g.next("after restart")
		if n.EventID != m1 {
			t.Fatalf("after restart the gateway got %s, want %s", n.EventID, m1)
		}
		if n.status == http.StatusOK {
			break
		}
	}
	alice2 := ts.Login("alice", testserver.DefaultPassword)
	m2 := gwSend(t, alice2, roomID, gwText("after restart"))
	g.nextEvent("next message after restart", m2)
}

func TestPushersGoWithTheirDevice(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	bob := ts.RegisterUser("bob")
	phone := ts.Login("bob", testserver.DefaultPassword)
	g := gwStart(t)
	gwPusher(t, bob, g, "org.example.app", "laptop-key", nil)
	gwPusher(t, phone, g, "org.example.app", "phone-key", nil)
	if got := gwPushers(t, bob); len(got) != 2 {
		t.Fatalf("pushers %v", got)
	}
	if _, err := phone.Logout(ctx); err != nil {
		t.Fatal(err)
	}
	got := gwPushers(t, bob)
	if len(got) != 1 || got[0].PushKey != "laptop-key" {
		t.Fatalf("after the phone signed out, pushers %v", got)
	}
	// Deleting a device (what DELETE /devices does once its interactive
	// auth passed) removes its pushers too.
	tablet := ts.Login("bob", testserver.DefaultPassword)
	gwPusher(t, tablet, g, "org.example.app", "tablet-key", nil)
	if err := ts.Accounts().DeleteDevices(ctx, bob.UserID, []id.DeviceID{tablet.DeviceID}); err != nil {
		t.Fatal(err)
	}
	got = gwPushers(t, bob)
	if len(got) != 1 || got[0].PushKey != "laptop-key" {
		t.Fatalf("after deleting the tablet, pushers %v", got)
	}
}
