package clientapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
)

// Helpers of the to-device tests carry a "td" prefix.

var tdType = event.Type{Type: "org.example.ping", Class: event.ToDeviceEventType}

// tdSend sends one request through mautrix (a fresh transaction ID).
func tdSend(t *testing.T, c *mautrix.Client, msgs map[id.UserID]map[id.DeviceID]*event.Content) {
	t.Helper()
	if _, err := c.SendToDevice(context.Background(), tdType, &mautrix.ReqSendToDevice{Messages: msgs}); err != nil {
		t.Fatalf("send to device: %v", err)
	}
}

// tdContent is a message whose "n" field identifies it.
func tdContent(n string) *event.Content {
	return &event.Content{Raw: map[string]any{"n": n}}
}

// tdGot lists the "n" of every to-device event of a sync response.
func tdGot(resp *mautrix.RespSync) []string {
	var out []string
	for _, ev := range resp.ToDevice.Events {
		n, _ := ev.Content.Raw["n"].(string)
		out = append(out, n)
	}
	return out
}

// tdSince is a client's position after an initial sync (nothing pending
// is acknowledged by it until the next sync uses it).
func tdSince(t *testing.T, c *mautrix.Client) string {
	t.Helper()
	return syncOnce(t, c, "", "", 0).NextBatch
}

func tdExpect(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("%s: got %v, want %v", what, got, want)
	}
}

func TestToDeviceOneDeviceAllDevicesAndManyUsers(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	bob2 := ts.Login("bob", testserver.DefaultPassword)
	carol := ts.RegisterUser("carol")
	sinceBob, sinceBob2, sinceCarol := tdSince(t, bob), tdSince(t, bob2), tdSince(t, carol)

	// One device: only that device gets it.
	tdSend(t, alice, map[id.UserID]map[id.DeviceID]*event.Content{bob.UserID: {bob.DeviceID: tdContent("one")}})
	r := syncOnce(t, bob, sinceBob, "", 0)
	tdExpect(t, "bob's device", tdGot(r), "one")
	ev := r.ToDevice.Events[0]
	if ev.Sender != alice.UserID || ev.Type.Type != tdType.Type {
		t.Fatalf("event: sender %s type %s", ev.Sender, ev.Type.Type)
	}
	sinceBob = r.NextBatch
	r2 := syncOnce(t, bob2, sinceBob2, "", 0)
	tdExpect(t, "bob's other device", tdGot(r2))
	sinceBob2 = r2.NextBatch

	// "*": every device of the user.
	tdSend(t, alice, map[id.UserID]map[id.DeviceID]*event.Content{bob.UserID: {"*": tdContent("all")}})
	r = syncOnce(t, bob, sinceBob, "", 0)
	tdExpect(t, "* to bob", tdGot(r), "all")
	sinceBob = r.NextBatch
	r2 = syncOnce(t, bob2, sinceBob2, "", 0)
	tdExpect(t, "* to bob2", tdGot(r2), "all")
	sinceBob2 = r2.NextBatch

	// Many users in one request, each with their own content.
	tdSend(t, alice, map[id.UserID]map[id.DeviceID]*event.Content{
		bob.UserID:   {bob2.DeviceID: tdContent("for bob2")},
		carol.UserID: {carol.DeviceID: tdContent("for carol")},
	})
	tdExpect(t, "many: bob", tdGot(syncOnce(t, bob, sinceBob, "", 0)))
	tdExpect(t, "many: bob2", tdGot(syncOnce(t, bob2, sinceBob2, "", 0)), "for bob2")
	tdExpect(t, "many: carol", tdGot(syncOnce(t, carol, sinceCarol, "", 0)), "for carol")

	// A client may message its own other devices (verification does).
	tdSend(t, bob, map[id.UserID]map[id.DeviceID]*event.Content{bob.UserID: {bob2.DeviceID: tdContent("self")}})
	r2 = syncOnce(t, bob2, sinceBob2, "", 0)
	tdExpect(t, "to own device", tdGot(r2), "for bob2", "self")
	if r2.ToDevice.Events[1].Sender != bob.UserID {
		t.Fatalf("sender %s", r2.ToDevice.Events[1].Sender)
	}
}

func TestToDeviceWakesLongPoll(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	since := tdSince(t, bob)
	type result struct {
		resp *mautrix.RespSync
		took time.Duration
	}
	ch := make(chan result, 1)
	go func() {
		start := time.Now()
		resp, err := bob.FullSyncRequest(ctx, mautrix.ReqSync{Since: since, Timeout: 20000})
		if err != nil {
			t.Error(err)
		}
		ch <- result{resp, time.Since(start)}
	}()
	waitForWaiters(t, ts, 1)
	tdSend(t, alice, map[id.UserID]map[id.DeviceID]*event.Content{bob.UserID: {bob.DeviceID: tdContent("wake")}})
	r := <-ch
	if r.resp == nil {
		t.Fatal("no sync response")
	}
	tdExpect(t, "woken sync", tdGot(r.resp), "wake")
	if r.took > 10*time.Second {
		t.Fatalf("woken after %v", r.took)
	}
}

func TestToDeviceDeliveredUntilAcknowledged(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	to := func(n string) map[id.UserID]map[id.DeviceID]*event.Content {
		return map[id.UserID]map[id.DeviceID]*event.Content{bob.UserID: {bob.DeviceID: tdContent(n)}}
	}

	// Sent before bob ever synced: the initial sync has it.
	tdSend(t, alice, to("m1"))
	first := syncOnce(t, bob, "", "", 0)
	tdExpect(t, "initial sync", tdGot(first), "m1")
	s0 := first.NextBatch

	tdSend(t, alice, to("m2"))
	r1 := syncOnce(t, bob, s0, "", 0)
	tdExpect(t, "sync after s0", tdGot(r1), "m2")
	// The client lost that answer and asks again with the same since: the
	// message is still there.
	tdExpect(t, "repeated since", tdGot(syncOnce(t, bob, s0, "", 0)), "m2")
	// The next since acknowledges it: gone for good.
	r2 := syncOnce(t, bob, r1.NextBatch, "", 0)
	tdExpect(t, "after acknowledgement", tdGot(r2))
	if n, err := ts.DB().CountToDevice(ctx, bob.UserID, bob.DeviceID); err != nil || n != 0 {
		t.Fatalf("acknowledged messages still stored: %d %v", n, err)
	}
	tdExpect(t, "old since after acknowledgement", tdGot(syncOnce(t, bob, s0, "", 0)))

	// Consecutive syncs deliver each message once.
	since := r2.NextBatch
	var got []string
	for i := range 3 {
		tdSend(t, alice, to(fmt.Sprintf("c%d", i)))
		r := syncOnce(t, bob, since, "", 0)
		got = append(got, tdGot(r)...)
		since = r.NextBatch
	}
	tdExpect(t, "consecutive syncs", got, "c0", "c1", "c2")
	tdExpect(t, "nothing left", tdGot(syncOnce(t, bob, since, "", 0)))

	// Positions survive a restart: the token stays valid and nothing is
	// delivered twice.
	tdSend(t, alice, to("after restart"))
	ts.Restart()
	bob.HomeserverURL = mustParse(t, ts.URL)
	r := syncOnce(t, bob, since, "", 0)
	tdExpect(t, "after restart", tdGot(r), "after restart")
	tdExpect(t, "after restart, acknowledged", tdGot(syncOnce(t, bob, r.NextBatch, "", 0)))
}

func TestToDeviceManyPendingArriveInBatches(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	since := tdSince(t, bob)
	const total = 250
	for i := range total {
		tdSend(t, alice, map[id.UserID]map[id.DeviceID]*event.Content{bob.UserID: {bob.DeviceID: tdContent(fmt.Sprintf("%03d", i))}})
	}
	var got []string
	var sizes []int
	for range 5 {
		r := syncOnce(t, bob, since, "", 0)
		got = append(got, tdGot(r)...)
		sizes = append(sizes, len(r.ToDevice.Events))
		since = r.NextBatch
	}
	if fmt.Sprint(sizes) != "[100 100 50 0 0]" {
		t.Fatalf("batch sizes %v", sizes)
	}
	for i, n := range got {
		if n != fmt.Sprintf("%03d", i) {
			t.Fatalf("message %d is %s: out of order or repeated", i, n)
		}
	}
	if len(got) != total {
		t.Fatalf("got %d messages", len(got))
	}
}

// tdPut sends a raw PUT /sendToDevice with a chosen transaction ID.
func tdPut(t *testing.T, ts *testserver.Server, c *mautrix.Client, evType, txnID string, body any) sessResp {
	t.Helper()
	token := ""
	if c != nil {
		token = c.AccessToken
	}
	return sessRaw(t, ts, token, http.MethodPut, "/_matrix/client/v3/sendToDevice/"+evType+"/"+txnID, body)
}

func TestToDeviceTransactionIDs(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	alice2 := ts.Login("alice", testserver.DefaultPassword)
	bob := ts.RegisterUser("bob")
	since := tdSince(t, bob)
	body := func(n string) map[string]any {
		return map[string]any{"messages": map[string]any{string(bob.UserID): map[string]any{string(bob.DeviceID): map[string]any{"n": n}}}}
	}
	sessExpect(t, "first send", tdPut(t, ts, alice, "org.example.ping", "txn1", body("a")), 200, "")
	// A retry (even with another body) delivers nothing again.
	sessExpect(t, "retry", tdPut(t, ts, alice, "org.example.ping", "txn1", body("a")), 200, "")
	sessExpect(t, "retry with other content", tdPut(t, ts, alice, "org.example.ping", "txn1", body("b")), 200, "")
	// Another path (event type) or another device makes it a new request.
	sessExpect(t, "other event type", tdPut(t, ts, alice, "org.example.pong", "txn1", body("c")), 200, "")
	sessExpect(t, "other device", tdPut(t, ts, alice2, "org.example.ping", "txn1", body("d")), 200, "")
	r := syncOnce(t, bob, since, "", 0)
	tdExpect(t, "idempotent sends", tdGot(r), "a", "c", "d")
	if r.ToDevice.Events[1].Type.Type != "org.example.pong" {
		t.Fatalf("second event type %s", r.ToDevice.Events[1].Type.Type)
	}
}

func TestToDeviceUnknownRecipientsSkipped(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	since := tdSince(t, bob)
	tdSend(t, alice, map[id.UserID]map[id.DeviceID]*event.Content{
		"@nobody:" + id.UserID(ts.ServerName()): {"*": tdContent("x"), "DEV": tdContent("x")},
		"@someone:elsewhere.example":            {"DEV": tdContent("remote")},
		bob.UserID:                              {"NOSUCHDEVICE": tdContent("x"), bob.DeviceID: tdContent("real")},
	})
	tdExpect(t, "bob", tdGot(syncOnce(t, bob, since, "", 0)), "real")
	if n, err := ts.DB().CountToDevice(ctx, bob.UserID, "NOSUCHDEVICE"); err != nil || n != 0 {
		t.Fatalf("stored for an unknown device: %d %v", n, err)
	}
	// Only unknown recipients: still a success.
	tdSend(t, alice, map[id.UserID]map[id.DeviceID]*event.Content{"@ghost:" + id.UserID(ts.ServerName()): {"*": tdContent("x")}})
}

func TestToDeviceDeletedDeviceDropsPending(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	phone := ts.Login("bob", testserver.DefaultPassword)
	tdSend(t, alice, map[id.UserID]map[id.DeviceID]*event.Content{bob.UserID: {"*": tdContent("pending")}})
	if n, err := ts.DB().CountToDevice(ctx, bob.UserID, phone.DeviceID); err != nil || n != 1 {
		t.Fatalf("pending for the phone: %d %v", n, err)
	}
	r := sessUIA(t, ts, bob, "bob", testserver.DefaultPassword, http.MethodDelete, "/_matrix/client/v3/devices/"+string(phone.DeviceID), nil)
	sessExpect(t, "delete phone", r, 200, "")
	if n, err := ts.DB().CountToDevice(ctx, bob.UserID, phone.DeviceID); err != nil || n != 0 {
		t.Fatalf("pending after deleting the phone: %d %v", n, err)
	}
	// A new login reusing the device ID starts with nothing pending.
	again := ts.Client()
	if _, err := again.Login(ctx, &mautrix.ReqLogin{
		Type:             mautrix.AuthTypePassword,
		Identifier:       mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "bob"},
		Password:         testserver.DefaultPassword,
		DeviceID:         phone.DeviceID,
		StoreCredentials: true,
	}); err != nil {
		t.Fatal(err)
	}
	tdExpect(t, "reused device ID", tdGot(syncOnce(t, again, "", "", 0)))
	// The other device still has its copy.
	tdExpect(t, "bob's other device", tdGot(syncOnce(t, bob, "", "", 0)), "pending")
}

func TestToDeviceSizeLimits(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	since := tdSince(t, bob)
	devices := func(n int) map[string]any {
		m := map[string]any{}
		for i := range n {
			m[fmt.Sprintf("D%05d", i)] = map[string]any{}
		}
		return m
	}
	// 10,000 messages is the most one request may carry.
	sessExpect(t, "10,000 messages", tdPut(t, ts, alice, "org.example.ping", "max", map[string]any{
		"messages": map[string]any{string(bob.UserID): devices(10000)}}), 200, "")
	sessExpect(t, "10,001 messages", tdPut(t, ts, alice, "org.example.ping", "over", map[string]any{
		"messages": map[string]any{string(bob.UserID): devices(10000), string(alice.UserID): devices(1)}}), 413, "M_TOO_LARGE")
	// "*" counts every device it reaches: bob has two, so 9,999 explicit
	// messages plus "*" to bob is one too many.
	ts.Login("bob", testserver.DefaultPassword)
	sessExpect(t, `"*" expanding past the limit`, tdPut(t, ts, alice, "org.example.ping", "star", map[string]any{
		"messages": map[string]any{string(alice.UserID): devices(9999), string(bob.UserID): map[string]any{"*": map[string]any{"n": "star"}}}}), 413, "M_TOO_LARGE")
	// "*" to users without devices still counts, so a request cannot make
	// the server look up devices for a million users.
	users := map[string]any{}
	for i := range 10001 {
		users[fmt.Sprintf("@nobody%05d:%s", i, ts.ServerName())] = map[string]any{"*": map[string]any{}}
	}
	sessExpect(t, `"*" to 10,001 users`, tdPut(t, ts, alice, "org.example.ping", "users", map[string]any{"messages": users}), 413, "M_TOO_LARGE")
	// A body over the route's limit (1 MiB by default).
	big := map[string]any{"messages": map[string]any{string(bob.UserID): map[string]any{
		string(bob.DeviceID): map[string]any{"pad": strings.Repeat("x", 1100000)}}}}
	sessExpect(t, "oversized body", tdPut(t, ts, alice, "org.example.ping", "big", big), 413, "M_TOO_LARGE")
	// Nothing of the refused requests arrived (the accepted one went to
	// devices bob does not have).
	tdExpect(t, "after refusals", tdGot(syncOnce(t, bob, since, "", 0)))
	// A refused request did not use up its transaction ID.
	sessExpect(t, "retry of a refused request", tdPut(t, ts, alice, "org.example.ping", "big", map[string]any{
		"messages": map[string]any{string(bob.UserID): map[string]any{string(bob.DeviceID): map[string]any{"n": "small"}}}}), 200, "")
	tdExpect(t, "retried", tdGot(syncOnce(t, bob, since, "", 0)), "small")
}

func TestToDeviceBadInput(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	since := tdSince(t, bob)
	to := func(v any) map[string]any {
		return map[string]any{"messages": map[string]any{string(bob.UserID): map[string]any{string(bob.DeviceID): v}}}
	}
	cases := []struct {
		what    string
		body    any
		status  int
		errcode string
	}{
		{"malformed JSON", `{"messages": {`, 400, "M_NOT_JSON"},
		{"empty body", ``, 400, "M_NOT_JSON"},
		{"not an object", `[]`, 400, "M_BAD_JSON"},
		{"messages missing", map[string]any{}, 400, "M_MISSING_PARAM"},
		{"messages not an object", map[string]any{"messages": []any{}}, 400, "M_BAD_JSON"},
		{"devices not an object", map[string]any{"messages": map[string]any{string(bob.UserID): "x"}}, 400, "M_BAD_JSON"},
		{"devices null", map[string]any{"messages": map[string]any{string(bob.UserID): nil}}, 400, "M_BAD_JSON"},
		{"content a string", to("x"), 400, "M_BAD_JSON"},
		{"content an array", to([]any{1}), 400, "M_BAD_JSON"},
		{"content null", to(nil), 400, "M_BAD_JSON"},
		{"invalid user ID", map[string]any{"messages": map[string]any{"bob": map[string]any{"D": map[string]any{}}}}, 400, "M_INVALID_PARAM"},
	}
	for i, c := range cases {
		sessExpect(t, c.what, tdPut(t, ts, alice, "org.example.ping", fmt.Sprintf("bad%d", i), c.body), c.status, c.errcode)
	}
	sessExpect(t, "no token", tdPut(t, ts, nil, "org.example.ping", "t", to(map[string]any{})), 401, "M_MISSING_TOKEN")
	bad := &mautrix.Client{AccessToken: "nonsense"}
	sessExpect(t, "bad token", tdPut(t, ts, bad, "org.example.ping", "t", to(map[string]any{})), 401, "M_UNKNOWN_TOKEN")
	sessExpect(t, "event type too long", tdPut(t, ts, alice, strings.Repeat("t", 256), "t", to(map[string]any{})), 400, "M_INVALID_PARAM")
	sessExpect(t, "wrong method", sessRaw(t, ts, alice.AccessToken, http.MethodPost, "/_matrix/client/v3/sendToDevice/x/y", to(map[string]any{})), 405, "M_UNRECOGNIZED")
	// None of it was delivered, and the content bob does get is exactly
	// what was sent.
	content := map[string]any{"nested": map[string]any{"list": []any{1.0, "two", nil}, "u": "\u00e9"}}
	sessExpect(t, "good send", tdPut(t, ts, alice, "org.example.ping", "good", to(content)), 200, "")
	r := syncOnce(t, bob, since, "", 0)
	if len(r.ToDevice.Events) != 1 {
		t.Fatalf("delivered %d messages", len(r.ToDevice.Events))
	}
	want, _ := json.Marshal(content)
	got, _ := json.Marshal(r.ToDevice.Events[0].Content.Raw)
	if string(got) != string(want) {
		t.Fatalf("content %s, want %s", got, want)
	}
}
