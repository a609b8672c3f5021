package clientapi_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
)

func syncOnce(t *testing.T, c *mautrix.Client, since, filter string, timeout time.Duration) *mautrix.RespSync {
	t.Helper()
	resp, err := c.FullSyncRequest(context.Background(), mautrix.ReqSync{Since: since, FilterID: filter, Timeout: int(timeout.Milliseconds())})
	if err != nil {
		t.Fatalf("sync: %v", err)
	}
	return resp
}

// timelineBodies returns the bodies of the m.room.message events in a
// joined room's timeline.
func timelineBodies(resp *mautrix.RespSync, roomID id.RoomID) []string {
	jr := resp.Rooms.Join[roomID]
	if jr == nil {
		return nil
	}
	var out []string
	for _, ev := range jr.Timeline.Events {
		if ev.Type == event.EventMessage {
			out = append(out, ev.Content.Raw["body"].(string))
		}
	}
	return out
}

func TestSyncInitialAndIncremental(t *testing.T) {
	ts, alice, bob, roomID := pairInRoom(t, "Sync room")
	ctx := context.Background()
	if _, err := alice.SendMessageEvent(ctx, roomID, event.EventMessage, map[string]any{"msgtype": "m.text", "body": "one"}, mautrix.ReqSendEvent{TransactionID: "tx-one"}); err != nil {
		t.Fatal(err)
	}

	first := syncOnce(t, alice, "", "", 0)
	jr := first.Rooms.Join[roomID]
	if jr == nil {
		t.Fatalf("initial sync lacks the room: %+v", first.Rooms)
	}
	if got := timelineBodies(first, roomID); len(got) != 1 || got[0] != "one" {
		t.Fatalf("initial timeline %v", got)
	}
	// The sending device sees its transaction ID.
	for _, ev := range jr.Timeline.Events {
		if ev.Type == event.EventMessage && ev.Unsigned.TransactionID != "tx-one" {
			t.Fatalf("transaction_id %q", ev.Unsigned.TransactionID)
		}
	}
	names := 0
	for _, ev := range append(jr.State.Events, jr.Timeline.Events...) {
		if ev.Type == event.StateRoomName {
			names++
		}
	}
	if names != 1 {
		t.Fatalf("room name appears %d times in state+timeline", names)
	}
	if jr.Summary.JoinedMemberCount == nil || *jr.Summary.JoinedMemberCount != 2 {
		t.Fatalf("summary %+v", jr.Summary)
	}

	// Nothing new: a zero-timeout sync returns no rooms and the same token.
	idle := syncOnce(t, alice, first.NextBatch, "", 0)
	if len(idle.Rooms.Join) != 0 || idle.NextBatch != first.NextBatch {
		t.Fatalf("idle sync: %+v next %s vs %s", idle.Rooms, idle.NextBatch, first.NextBatch)
	}

	// Each message appears exactly once across consecutive syncs.
	since := first.NextBatch
	var seen []string
	for i := range 5 {
		if _, err := bob.SendText(ctx, roomID, fmt.Sprintf("m%d", i)); err != nil {
			t.Fatal(err)
		}
		resp := syncOnce(t, alice, since, "", 0)
		seen = append(seen, timelineBodies(resp, roomID)...)
		since = resp.NextBatch
	}
	if fmt.Sprint(seen) != "[m0 m1 m2 m3 m4]" {
		t.Fatalf("messages across syncs: %v", seen)
	}

	// A since from before a restart still works.
	if _, err := bob.SendText(ctx, roomID, "after restart"); err != nil {
		t.Fatal(err)
	}
	ts.Restart()
	alice.HomeserverURL = mustParse(t, ts.URL)
	resp := syncOnce(t, alice, since, "", 0)
	if got := timelineBodies(resp, roomID); len(got) != 1 || got[0] != "after restart" {
		t.Fatalf("sync across restart: %v", got)
	}
}

func TestSyncLongPollWakes(t *testing.T) {
	ts, alice, bob, roomID := pairInRoom(t, "")
	ctx := context.Background()
	since := syncOnce(t, alice, "", "", 0).NextBatch

	type result struct {
		resp *mautrix.RespSync
		took time.Duration
	}
	poll := func(c *mautrix.Client, since string) chan result {
		ch := make(chan result, 1)
		go func() {
			start := time.Now()
			resp, err := c.FullSyncRequest(ctx, mautrix.ReqSync{Since: since, Timeout: 20000})
			if err != nil {
				t.Error(err)
			}
			ch <- result{resp, time.Since(start)}
		}()
		return ch
	}
	// Message: wakes the long-poll well before its timeout.
	ch := poll(alice, since)
	waitForWaiters(t, ts, 1)
	if _, err := bob.SendText(ctx, roomID, "wake up"); err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if got := timelineBodies(r.resp, roomID); len(got) != 1 || r.took > 10*time.Second {
		t.Fatalf("message wake: %v after %v", got, r.took)
	}
	since = r.resp.NextBatch

	// Account data wakes it too.
	ch = poll(alice, since)
	waitForWaiters(t, ts, 1)
	if err := alice.SetAccountData(ctx, "org.example.settings", map[string]any{"theme": "dark"}); err != nil {
		t.Fatal(err)
	}
	r = <-ch
	if len(r.resp.AccountData.Events) != 1 || r.resp.AccountData.Events[0].Type.Type != "org.example.settings" {
		t.Fatalf("account data wake: %+v", r.resp.AccountData)
	}
	// An invite wakes the invitee, who is not in the room yet.
	carol := ts.RegisterUser("carol")
	carolSince := syncOnce(t, carol, "", "", 0).NextBatch
	ch = poll(carol, carolSince)
	waitForWaiters(t, ts, 1)
	if _, err := alice.InviteUser(ctx, roomID, &mautrix.ReqInviteUser{UserID: carol.UserID}); err != nil {
		t.Fatal(err)
	}
	r = <-ch
	inv := r.resp.Rooms.Invite[roomID]
	if inv == nil || len(inv.State.Events) == 0 {
		t.Fatalf("invite: %+v", r.resp.Rooms)
	}
	// A join wakes the room's members: the join changes who they are, so
	// the list is read afresh rather than taken from the cache.
	since = syncOnce(t, alice, since, "", 0).NextBatch // past the invite
	ch = poll(alice, since)
	waitForWaiters(t, ts, 1)
	if _, err := carol.JoinRoomByID(ctx, roomID); err != nil {
		t.Fatal(err)
	}
	r = <-ch
	jr := r.resp.Rooms.Join[roomID]
	if jr == nil || len(jr.Timeline.Events) != 1 || jr.Timeline.Events[0].GetStateKey() != carol.UserID.String() || r.took > 10*time.Second {
		t.Fatalf("join wake after %v: %+v", r.took, r.resp.Rooms.Join)
	}
}

// waitForWaiters waits until n users have a long-poll registered, so a
// test sends its change only once the sync is really waiting.
func waitForWaiters(t *testing.T, ts *testserver.Server, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for ts.Sync().Notifier().Waiting() < n {
		if time.Now().After(deadline) {
			t.Fatal("sync never started waiting")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestWokenSyncLeavesNoListener: a long-poll woken by something its filter
// hides goes back to waiting, and once it answers nothing of it stays
// registered with the notifier.
func TestWokenSyncLeavesNoListener(t *testing.T) {
	ts, alice, bob, roomID := pairInRoom(t, "quiet")
	ctx := context.Background()
	filter, err := bob.CreateFilter(ctx, &mautrix.Filter{Room: &mautrix.RoomFilter{Ephemeral: &mautrix.FilterPart{NotTypes: []event.Type{event.EphemeralEventTyping}}}})
	if err != nil {
		t.Fatal(err)
	}
	since := syncOnce(t, bob, "", filter.FilterID, 0).NextBatch
	// Catch up until nothing is new (presence, device lists).
	for range 5 {
		resp := syncOnce(t, bob, since, filter.FilterID, 0)
		if resp.NextBatch == since {
			break
		}
		since = resp.NextBatch
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		syncOnce(t, bob, since, filter.FilterID, 1500*time.Millisecond)
	}()
	waitForWaiters(t, ts, 1)
	if _, err := alice.UserTyping(ctx, roomID, true, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	<-done
	deadline := time.Now().Add(5 * time.Second)
	for ts.Sync().Notifier().Waiting() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d listeners left registered after the sync answered", ts.Sync().Notifier().Waiting())
		}
		time.Sleep(time.Millisecond)
	}
}

func TestSyncLimitedAndGapFill(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")
	roomID := roomCreate(t, alice, &mautrix.ReqCreateRoom{})
	since := syncOnce(t, alice, "", "", 0).NextBatch
	for i := range 25 {
		if _, err := alice.SendText(ctx, roomID, fmt.Sprintf("g%02d", i)); err != nil {
			t.Fatal(err)
		}
	}
	resp := syncOnce(t, alice, since, "", 0)
	jr := resp.Rooms.Join[roomID]
	if !jr.Timeline.Limited || len(jr.Timeline.Events) != 10 || jr.Timeline.PrevBatch == "" {
		t.Fatalf("limited timeline: limited=%v n=%d prev=%q", jr.Timeline.Limited, len(jr.Timeline.Events), jr.Timeline.PrevBatch)
	}
	got := timelineBodies(resp, roomID)
	// Fill the gap back to since with /messages: exactly the missing events.
	var gap []string
	from := jr.Timeline.PrevBatch
	for {
		page, err := alice.Messages(ctx, roomID, from, since, mautrix.DirectionBackward, nil, 4)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range page.Chunk {
			if ev.Type == event.EventMessage {
				gap = append([]string{ev.Content.Raw["body"].(string)}, gap...)
			}
		}
		if page.End == "" {
			break
		}
		from = page.End
	}
	all := append(gap, got...)
	for i, b := range all {
		if b != fmt.Sprintf("g%02d", i) {
			t.Fatalf("gap fill gives %v", all)
		}
	}
	if len(all) != 25 {
		t.Fatalf("%d messages after gap fill, want 25: %v", len(all), all)
	}
	// Forward pagination from the start of the gap returns them in order.
	page, err := alice.Messages(ctx, roomID, since, "", mautrix.DirectionForward, nil, 3)
	if err != nil || len(page.Chunk) != 3 || page.Chunk[0].Content.Raw["body"] != "g00" || page.End == "" {
		t.Fatalf("forward page: %+v %v", page, err)
	}
}

func TestSyncFilters(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	roomA := roomCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	roomB := roomCreate(t, alice, &mautrix.ReqCreateRoom{})
	// carol is a member who sends nothing: lazy loading must leave her out.
	carol := ts.RegisterUser("carol")
	for _, c := range []*mautrix.Client{carol, bob} { // carol first: in the state before bob
		if _, err := c.JoinRoomByID(ctx, roomA); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		bob.SendText(ctx, roomA, fmt.Sprintf("b%d", i))
		alice.SendText(ctx, roomA, fmt.Sprintf("a%d", i))
	}
	alice.SendMessageEvent(ctx, roomA, event.NewEventType("org.example.custom"), map[string]any{})
	filter := &mautrix.Filter{Room: &mautrix.RoomFilter{
		NotRooms: []id.RoomID{roomB},
		Timeline: &mautrix.FilterPart{Limit: 4, Senders: []id.UserID{bob.UserID}, Types: []event.Type{{Type: "m.room.*"}}},
		State:    &mautrix.FilterPart{LazyLoadMembers: true},
	}}
	created, err := alice.CreateFilter(ctx, filter)
	if err != nil {
		t.Fatal(err)
	}
	resp := syncOnce(t, alice, "", created.FilterID, 0)
	if _, ok := resp.Rooms.Join[roomB]; ok {
		t.Fatal("not_rooms ignored")
	}
	jr := resp.Rooms.Join[roomA]
	for _, ev := range jr.Timeline.Events {
		if ev.Sender != bob.UserID || ev.Type.Type == "org.example.custom" {
			t.Fatalf("filter let through %s from %s", ev.Type.Type, ev.Sender)
		}
	}
	if len(jr.Timeline.Events) != 4 {
		t.Fatalf("limit 4 gave %d events", len(jr.Timeline.Events))
	}
	// Lazy loading: member events only for the timeline's senders and
	// alice, in state (or in the timeline itself: bob's join is there).
	for _, ev := range jr.State.Events {
		if ev.Type == event.StateMember && id.UserID(*ev.StateKey) != bob.UserID && id.UserID(*ev.StateKey) != alice.UserID {
			t.Fatalf("lazy loading sent member %s", *ev.StateKey)
		}
	}
	sawBob := false
	for _, ev := range append(jr.State.Events, jr.Timeline.Events...) {
		sawBob = sawBob || (ev.Type == event.StateMember && id.UserID(*ev.StateKey) == bob.UserID)
	}
	if !sawBob {
		t.Fatal("lazy loading left out the timeline's sender")
	}
	// Inline filter JSON works too.
	inline := `{"room":{"timeline":{"limit":1}}}`
	raw, err := alice.MakeRequest(ctx, http.MethodGet, ts.URL+"/_matrix/client/v3/sync?filter="+url.QueryEscape(inline), nil, nil)
	if err != nil || len(raw) == 0 {
		t.Fatalf("inline filter: %v", err)
	}
	// Stored filters round-trip and are private.
	got, err := alice.MakeRequest(ctx, http.MethodGet, ts.URL+"/_matrix/client/v3/user/"+string(alice.UserID)+"/filter/"+created.FilterID, nil, nil)
	if err != nil || len(got) == 0 {
		t.Fatalf("get filter: %v", err)
	}
	_, err = bob.MakeRequest(ctx, http.MethodGet, ts.URL+"/_matrix/client/v3/user/"+string(alice.UserID)+"/filter/"+created.FilterID, nil, nil)
	roomErr(t, "someone else's filter", err, 403, "M_FORBIDDEN")
	_, err = bob.FullSyncRequest(ctx, mautrix.ReqSync{FilterID: created.FilterID + "9"})
	roomErr(t, "unknown filter ID", err, 400, "M_INVALID_PARAM")
	_, err = alice.MakeRequest(ctx, http.MethodGet, ts.URL+"/_matrix/client/v3/sync?filter="+url.QueryEscape(`{"room":`), nil, nil)
	roomErr(t, "bad inline filter", err, 400, "M_BAD_JSON")
	_, err = alice.MakeFullRequest(ctx, mautrix.FullRequest{Method: http.MethodPost, URL: ts.URL + "/_matrix/client/v3/user/" + string(alice.UserID) + "/filter", RequestBytes: []byte(`{"room": {"timeline": {"limit": "ten"}}}`)})
	roomErr(t, "bad filter body", err, 400, "M_BAD_JSON")
}

// Room and user IDs in a filter must be IDs (400 M_BAD_JSON, as Synapse's
// filter schema answers), whether the filter is stored or inline; room v12
// IDs, which have no server name, are IDs.
func TestFilterBadIDs(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	path := "/_matrix/client/v3/user/" + url.PathEscape(string(alice.UserID)) + "/filter"
	for _, tc := range []struct{ what, body string }{
		{"rooms", `{"room": {"rooms": ["lobby"]}}`},
		{"not_rooms", `{"room": {"not_rooms": [""]}}`},
		{"timeline rooms", `{"room": {"timeline": {"rooms": ["#alias:localhost"]}}}`},
		{"state not_rooms", `{"room": {"state": {"not_rooms": ["! x"]}}}`},
		{"senders", `{"room": {"timeline": {"senders": ["alice"]}}}`},
		{"not_senders", `{"presence": {"not_senders": ["@:localhost"]}}`},
		{"account_data senders", `{"account_data": {"senders": ["@alice"]}}`},
		{"ephemeral not_senders", `{"room": {"ephemeral": {"not_senders": ["!room:localhost"]}}}`},
	} {
		acctExpect(t, tc.what, acctDo(t, alice, http.MethodPost, path, tc.body), http.StatusBadRequest, "M_BAD_JSON")
		r := acctDo(t, alice, http.MethodGet, "/_matrix/client/v3/sync?timeout=0&filter="+url.QueryEscape(tc.body), nil)
		acctExpect(t, tc.what+" inline", r, http.StatusBadRequest, "M_BAD_JSON")
	}
	good := `{"room": {"rooms": ["!abc:localhost", "!OpaqueV12RoomIdWithoutServer"], "timeline": {"senders": ["@alice:localhost"], "not_senders": ["@bob:example.org"]}}}`
	acctExpect(t, "good IDs", acctDo(t, alice, http.MethodPost, path, good), http.StatusOK, "")
}

func TestSyncBadTokens(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	for _, since := range []string{"garbage", "s", "s1_x", "s-1", "s999999999"} {
		_, err := alice.FullSyncRequest(context.Background(), mautrix.ReqSync{Since: since})
		roomErr(t, "since "+since, err, 400, "M_INVALID_PARAM")
	}
	_, err := alice.MakeRequest(context.Background(), http.MethodGet, ts.URL+"/_matrix/client/v3/sync?timeout=soon", nil, nil)
	roomErr(t, "bad timeout", err, 400, "M_INVALID_PARAM")
	_, err = ts.Client().FullSyncRequest(context.Background(), mautrix.ReqSync{})
	roomErr(t, "no token", err, 401, "M_MISSING_TOKEN")
}

func TestSyncLeaveAndAccountData(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	roomID := roomCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	bob.JoinRoomByID(ctx, roomID)
	since := syncOnce(t, bob, "", "", 0).NextBatch
	if err := bob.SetRoomAccountData(ctx, roomID, "org.example.room", map[string]any{"pinned": true}); err != nil {
		t.Fatal(err)
	}
	resp := syncOnce(t, bob, since, "", 0)
	if jr := resp.Rooms.Join[roomID]; jr == nil || len(jr.AccountData.Events) != 1 {
		t.Fatalf("room account data: %+v", resp.Rooms.Join[roomID])
	}
	var got map[string]any
	if err := bob.GetAccountData(ctx, "org.example.none", &got); err == nil {
		t.Fatal("missing account data returned")
	} else {
		roomErr(t, "missing account data", err, 404, "M_NOT_FOUND")
	}
	since = resp.NextBatch
	if _, err := alice.KickUser(ctx, roomID, &mautrix.ReqKickUser{UserID: bob.UserID}); err != nil {
		t.Fatal(err)
	}
	resp = syncOnce(t, bob, since, "", 0)
	lr := resp.Rooms.Leave[roomID]
	if lr == nil || len(lr.Timeline.Events) == 0 || lr.Timeline.Events[len(lr.Timeline.Events)-1].Content.Raw["membership"] != "leave" {
		t.Fatalf("leave section: %+v %+v", resp.Rooms, lr)
	}
	if _, ok := resp.Rooms.Join[roomID]; ok {
		t.Fatal("left room still in join")
	}
	// Afterwards the room is gone from incremental syncs and, without
	// include_leave, from initial ones.
	if again := syncOnce(t, bob, resp.NextBatch, "", 0); len(again.Rooms.Leave)+len(again.Rooms.Join) != 0 {
		t.Fatalf("left room keeps coming: %+v", again.Rooms)
	}
	if initial := syncOnce(t, bob, "", "", 0); initial.Rooms.Leave[roomID] != nil {
		t.Fatal("initial sync without include_leave shows the left room")
	}
	err := bob.SetAccountData(ctx, "m.fully_read", map[string]any{})
	roomErr(t, "m.fully_read via account data", err, 405, "M_BAD_JSON")
	_, err = bob.MakeFullRequest(ctx, mautrix.FullRequest{Method: http.MethodPut, URL: ts.URL + "/_matrix/client/v3/user/" + string(alice.UserID) + "/account_data/x", RequestJSON: map[string]any{}})
	roomErr(t, "someone else's account data", err, 403, "M_FORBIDDEN")
}

// TestSyncLazyMembersIncremental checks lazy-loading across syncs: a
// sender the client has not been sent the membership of gets it with
// their first message, even in a small incremental sync; it is not sent
// again with the next message (a redundant membership) unless the filter
// sets include_redundant_members; and a sync from scratch starts over.
func TestSyncLazyMembersIncremental(t *testing.T) {
	_, alice, bob, roomID := pairInRoom(t, "")
	ctx := context.Background()
	members := func(resp *mautrix.RespSync) []id.UserID {
		var out []id.UserID
		if jr := resp.Rooms.Join[roomID]; jr != nil {
			for _, ev := range jr.State.Events {
				if ev.Type == event.StateMember {
					out = append(out, id.UserID(*ev.StateKey))
				}
			}
		}
		return out
	}
	for _, redundant := range []bool{false, true} {
		for i := range 6 { // bob's messages out of the initial timeline
			alice.SendText(ctx, roomID, fmt.Sprintf("filler %d", i))
		}
		filter, err := alice.CreateFilter(ctx, &mautrix.Filter{Room: &mautrix.RoomFilter{
			Timeline: &mautrix.FilterPart{Limit: 5},
			State:    &mautrix.FilterPart{LazyLoadMembers: true, IncludeRedundantMembers: redundant},
		}})
		if err != nil {
			t.Fatal(err)
		}
		first := syncOnce(t, alice, "", filter.FilterID, 0)
		if got := members(first); slices.Contains(got, bob.UserID) {
			t.Fatalf("bob has not spoken in the timeline, yet his membership came: %v", got)
		}
		bob.SendText(ctx, roomID, "hello from bob")
		second := syncOnce(t, alice, first.NextBatch, filter.FilterID, 0)
		if got := members(second); !slices.Contains(got, bob.UserID) {
			t.Fatalf("redundant=%v: bob's first message came without his membership: %v", redundant, got)
		}
		bob.SendText(ctx, roomID, "bob again")
		third := syncOnce(t, alice, second.NextBatch, filter.FilterID, 0)
		if got := members(third); slices.Contains(got, bob.UserID) != redundant {
			t.Fatalf("include_redundant_members=%v: bob's membership in the next sync: %v", redundant, got)
		}
	}
}

// rawSync is a sync answer as JSON, to see what mautrix's types hide (a
// count of zero, a false flag, an empty list). filter is a filter ID or
// inline filter JSON ("" for none).
func rawSync(t *testing.T, c *mautrix.Client, since, filter string) map[string]any {
	t.Helper()
	q := url.Values{"timeout": {"0"}}
	if since != "" {
		q.Set("since", since)
	}
	if filter != "" {
		q.Set("filter", filter)
	}
	r := acctDo(t, c, "GET", "/_matrix/client/v3/sync?"+q.Encode(), nil)
	acctExpect(t, "sync", r, 200, "")
	return r.Body
}

// syncRoomJSON is a room's entry in a raw sync answer's rooms.<section>
// ("join", "leave", ...), or nil.
func syncRoomJSON(body map[string]any, section string, roomID id.RoomID) map[string]any {
	rooms, _ := body["rooms"].(map[string]any)
	sec, _ := rooms[section].(map[string]any)
	room, _ := sec[string(roomID)].(map[string]any)
	return room
}

// syncEventsJSON is the events list of a raw room entry's part
// ("timeline", "state").
func syncEventsJSON(room map[string]any, part string) []map[string]any {
	p, _ := room[part].(map[string]any)
	list, _ := p["events"].([]any)
	out := make([]map[string]any, 0, len(list))
	for _, ev := range list {
		m, _ := ev.(map[string]any)
		out = append(out, m)
	}
	return out
}

// TestSyncTimelineLimited checks timeline.limited as a client reads it:
// always in the JSON of joined and left rooms, and true exactly when the
// timeline left out events the filter would have let through (sytest's
// "A filtered timeline reaches its limit" and its neighbours).
func TestSyncTimelineLimited(t *testing.T) {
	_, alice, bob, roomID := pairInRoom(t, "")
	ctx := context.Background()
	expect := func(what string, room map[string]any, want bool, wantEvents int) {
		t.Helper()
		tl, _ := room["timeline"].(map[string]any)
		got, present := tl["limited"]
		evs, hasEvents := tl["events"].([]any)
		if !present || got != want || !hasEvents || (wantEvents >= 0 && len(evs) != wantEvents) {
			t.Fatalf("%s: limited=%v (present %v), %d events (present %v); want limited=%v with %d events: %v",
				what, got, present, len(evs), hasEvents, want, wantEvents, room)
		}
	}
	if _, err := alice.SendText(ctx, roomID, "my message"); err != nil {
		t.Fatal(err)
	}
	for i := range 11 {
		if _, err := alice.SendMessageEvent(ctx, roomID, event.NewEventType("org.example.filler"), map[string]any{"n": i}); err != nil {
			t.Fatal(err)
		}
	}
	const all, two = `{"room":{"timeline":{"limit":100}}}`, `{"room":{"timeline":{"limit":2}}}`
	expect("one message, the rest filtered out", syncRoomJSON(rawSync(t, alice, "", `{"room":{"timeline":{"limit":1,"types":["m.room.message"]}}}`), "join", roomID), false, 1)
	expect("initial sync cut by its limit", syncRoomJSON(rawSync(t, alice, "", two), "join", roomID), true, 2)
	first := rawSync(t, alice, "", all)
	expect("initial sync of the whole history", syncRoomJSON(first, "join", roomID), false, -1)
	bobSince := rawSync(t, bob, "", all)["next_batch"].(string)

	since := first["next_batch"].(string)
	if _, err := alice.SendText(ctx, roomID, "one more"); err != nil {
		t.Fatal(err)
	}
	next := rawSync(t, alice, since, all)
	expect("incremental sync", syncRoomJSON(next, "join", roomID), false, 1)
	for i := range 5 {
		if _, err := alice.SendText(ctx, roomID, fmt.Sprintf("gap %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	expect("incremental sync with a gap", syncRoomJSON(rawSync(t, alice, next["next_batch"].(string), two), "join", roomID), true, 2)

	// Left rooms: bob's view ends with his leave, after the same messages.
	if _, err := bob.LeaveRoom(ctx, roomID); err != nil {
		t.Fatal(err)
	}
	expect("left room, incremental", syncRoomJSON(rawSync(t, bob, bobSince, all), "leave", roomID), false, 7)
	expect("left room, incremental with a gap", syncRoomJSON(rawSync(t, bob, bobSince, two), "leave", roomID), true, 2)
	expect("left room, initial", syncRoomJSON(rawSync(t, bob, "", `{"room":{"include_leave":true,"timeline":{"limit":100}}}`), "leave", roomID), false, -1)
	expect("left room, initial cut by its limit", syncRoomJSON(rawSync(t, bob, "", `{"room":{"include_leave":true,"timeline":{"limit":2}}}`), "leave", roomID), true, 2)
}

// TestSyncRejectedInvite: an invite the invitee rejects ends in the leave
// section, with the rejection in the timeline: in the next incremental
// sync, and in an initial sync with include_leave. Nothing from before the
// invite leaks into it (the room is not world-readable).
func TestSyncRejectedInvite(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	roomID := roomCreate(t, alice, &mautrix.ReqCreateRoom{Name: "Secret"})
	if _, err := alice.SendText(ctx, roomID, "private"); err != nil {
		t.Fatal(err)
	}
	const includeLeave = `{"room":{"include_leave":true}}`
	since := rawSync(t, bob, "", includeLeave)["next_batch"].(string)
	if _, err := alice.InviteUser(ctx, roomID, &mautrix.ReqInviteUser{UserID: bob.UserID}); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.LeaveRoom(ctx, roomID); err != nil {
		t.Fatal(err)
	}
	check := func(what string, body map[string]any) {
		t.Helper()
		room := syncRoomJSON(body, "leave", roomID)
		if room == nil {
			t.Fatalf("%s: the rejected invite is not in rooms.leave: %v", what, body["rooms"])
		}
		tl := syncEventsJSON(room, "timeline")
		if len(tl) == 0 {
			t.Fatalf("%s: no timeline: %v", what, room)
		}
		last := tl[len(tl)-1]
		content, _ := last["content"].(map[string]any)
		if last["type"] != "m.room.member" || last["state_key"] != string(bob.UserID) || content["membership"] != "leave" {
			t.Fatalf("%s: the timeline does not end with bob's rejection: %v", what, tl)
		}
		for _, ev := range append(tl, syncEventsJSON(room, "state")...) {
			if ev["type"] == "m.room.message" {
				t.Fatalf("%s: a message from before the invite leaked: %v", what, ev)
			}
		}
	}
	check("incremental sync", rawSync(t, bob, since, includeLeave))
	check("initial sync with include_leave", rawSync(t, bob, "", includeLeave))
	// With membership events filtered out of the timeline, the rejection
	// is in the state (the room as the user left it).
	const noMembersTimeline = `{"room":{"include_leave":true,"timeline":{"not_types":["m.room.member"]}}}`
	for _, from := range []string{since, ""} {
		room := syncRoomJSON(rawSync(t, bob, from, noMembersTimeline), "leave", roomID)
		found := false
		for _, ev := range syncEventsJSON(room, "state") {
			content, _ := ev["content"].(map[string]any)
			found = found || (ev["type"] == "m.room.member" && ev["state_key"] == string(bob.UserID) && content["membership"] == "leave")
		}
		if !found {
			t.Fatalf("since %q, timeline without members: the rejection is not in the state: %v", from, room)
		}
	}
	if room := syncRoomJSON(rawSync(t, bob, "", ""), "leave", roomID); room != nil {
		t.Fatalf("initial sync without include_leave lists the rejected invite: %v", room)
	}
}

// TestSyncForgottenRoom follows Synapse: a room left and forgotten between
// two syncs is still in the next incremental sync's leave section (the
// leave happened in its range), but an initial sync, even with
// include_leave, no longer shows it (sytest "Forgetting room does not show
// up in v2 /sync").
func TestSyncForgottenRoom(t *testing.T) {
	_, alice, bob, roomID := pairInRoom(t, "")
	ctx := context.Background()
	since := syncOnce(t, bob, "", "", 0).NextBatch
	if _, err := alice.SendText(ctx, roomID, "before the leave"); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.LeaveRoom(ctx, roomID); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.ForgetRoom(ctx, roomID); err != nil {
		t.Fatal(err)
	}
	resp := syncOnce(t, bob, since, "", 0)
	lr := resp.Rooms.Leave[roomID]
	if lr == nil || len(lr.Timeline.Events) == 0 || lr.Timeline.Events[len(lr.Timeline.Events)-1].Content.Raw["membership"] != "leave" {
		t.Fatalf("incremental sync over the leave and forget: %+v", resp.Rooms)
	}
	if again := syncOnce(t, bob, resp.NextBatch, "", 0); again.Rooms.Leave[roomID] != nil {
		t.Fatal("the forgotten room came again in the next incremental sync")
	}
	if room := syncRoomJSON(rawSync(t, bob, "", `{"room":{"include_leave":true}}`), "leave", roomID); room != nil {
		t.Fatalf("initial sync with include_leave shows the forgotten room: %v", room)
	}
}

// TestSyncLeftRoomFilter: a left room in an initial sync with include_leave
// (and in the incremental sync over the leave) honours the filter like a
// joined room: the state and timeline filters' types and limit, and the
// room filter (sytest "Archived rooms only contain history from before the
// user left").
func TestSyncLeftRoomFilter(t *testing.T) {
	_, alice, bob, roomID := pairInRoom(t, "")
	ctx := context.Background()
	madeUp := event.Type{Type: "org.example.state", Class: event.StateEventType}
	const filter = `{"room":{"include_leave":true,"timeline":{"types":["m.room.message","org.example.state"]},"state":{"types":["org.example.state"]}}}`
	since := rawSync(t, bob, "", filter)["next_batch"].(string)
	send := func(body string) {
		t.Helper()
		if _, err := alice.SendText(ctx, roomID, body); err != nil {
			t.Fatal(err)
		}
		if _, err := alice.SendStateEvent(ctx, roomID, madeUp, "", map[string]any{"v": body}); err != nil {
			t.Fatal(err)
		}
	}
	send("before")
	if _, err := bob.LeaveRoom(ctx, roomID); err != nil {
		t.Fatal(err)
	}
	send("after")
	for _, from := range []string{"", since} {
		room := syncRoomJSON(rawSync(t, bob, from, filter), "leave", roomID)
		if room == nil {
			t.Fatalf("since %q: no leave entry", from)
		}
		if st := syncEventsJSON(room, "state"); len(st) != 0 {
			t.Fatalf("since %q: state the filter excludes: %v", from, st)
		}
		tl := syncEventsJSON(room, "timeline")
		if len(tl) != 2 || tl[0]["type"] != "m.room.message" || tl[1]["type"] != madeUp.Type {
			t.Fatalf("since %q: timeline %v, want the message and state from before the leave", from, tl)
		}
		if c, _ := tl[0]["content"].(map[string]any); c["body"] != "before" {
			t.Fatalf("since %q: timeline %v holds events from after the leave", from, tl)
		}
	}
	// A timeline limit of 0: no timeline, and the state as bob left the
	// room, his leave included.
	for _, from := range []string{"", since} {
		room := syncRoomJSON(rawSync(t, bob, from, `{"room":{"include_leave":true,"timeline":{"limit":0}}}`), "leave", roomID)
		if tl := syncEventsJSON(room, "timeline"); len(tl) != 0 {
			t.Fatalf("since %q, limit 0: timeline %v", from, tl)
		}
		var left, before bool
		for _, ev := range syncEventsJSON(room, "state") {
			content, _ := ev["content"].(map[string]any)
			left = left || (ev["type"] == "m.room.member" && ev["state_key"] == string(bob.UserID) && content["membership"] == "leave")
			before = before || (ev["type"] == madeUp.Type && content["v"] == "before")
			if ev["type"] == madeUp.Type && content["v"] != "before" {
				t.Fatalf("since %q, limit 0: state from after the leave: %v", from, ev)
			}
		}
		if !left || !before {
			t.Fatalf("since %q, limit 0: state lacks the leave (%v) or the state before it (%v): %v", from, left, before, room)
		}
	}
	// State not_types and the timeline limit.
	room := syncRoomJSON(rawSync(t, bob, "", `{"room":{"include_leave":true,"timeline":{"limit":1},"state":{"not_types":["m.room.member"]}}}`), "leave", roomID)
	for _, ev := range syncEventsJSON(room, "state") {
		if ev["type"] == "m.room.member" {
			t.Fatalf("state not_types let a member event through: %v", ev)
		}
	}
	if tl := syncEventsJSON(room, "timeline"); len(tl) != 1 || tl[0]["type"] != "m.room.member" {
		t.Fatalf("timeline limit 1: %v", tl)
	}
	// A room the room filter leaves out is not listed.
	if room := syncRoomJSON(rawSync(t, bob, "", `{"room":{"include_leave":true,"not_rooms":["`+string(roomID)+`"]}}`), "leave", roomID); room != nil {
		t.Fatalf("not_rooms ignored for a left room: %v", room)
	}
}

// TestSyncJoinAndLeaveInOneBatch: a room the user joined and left between
// two syncs is new to the client, so its leave entry carries the room's
// whole state (as the filter lets through), not a delta (sytest "When
// user joins and leaves a room in the same batch, the full state is still
// included in the next sync").
func TestSyncJoinAndLeaveInOneBatch(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	roomID := roomCreate(t, alice, &mautrix.ReqCreateRoom{})
	madeUp := event.Type{Type: "org.example.state", Class: event.StateEventType}
	if _, err := alice.SendStateEvent(ctx, roomID, madeUp, "", map[string]any{"v": 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.InviteUser(ctx, roomID, &mautrix.ReqInviteUser{UserID: bob.UserID}); err != nil {
		t.Fatal(err)
	}
	const filter = `{"room":{"include_leave":true,"timeline":{"types":[]},"state":{"types":["org.example.state"]}}}`
	since := rawSync(t, bob, "", filter)["next_batch"].(string)
	if _, err := bob.JoinRoomByID(ctx, roomID); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.LeaveRoom(ctx, roomID); err != nil {
		t.Fatal(err)
	}
	room := syncRoomJSON(rawSync(t, bob, since, filter), "leave", roomID)
	st := syncEventsJSON(room, "state")
	if len(st) != 1 || st[0]["type"] != madeUp.Type {
		t.Fatalf("state of a room joined and left in one batch: %v", room)
	}
}

// TestSyncOnlyRoomsWithNews: an incremental sync carries the rooms with
// events in its range (a message, a state change) and not the others; a
// full_state sync carries every room again.
func TestSyncOnlyRoomsWithNews(t *testing.T) {
	_, alice, bob, roomA := pairInRoom(t, "A")
	ctx := context.Background()
	roomB := sharedRoom(t, alice, bob, "B")
	roomC := sharedRoom(t, alice, bob, "C")
	rooms := func(resp *mautrix.RespSync) []id.RoomID {
		var out []id.RoomID
		for r := range resp.Rooms.Join {
			out = append(out, r)
		}
		slices.Sort(out)
		return out
	}
	want := func(step string, got []id.RoomID, ids ...id.RoomID) {
		t.Helper()
		slices.Sort(ids)
		if !slices.Equal(got, ids) {
			t.Fatalf("%s: rooms %v, want %v", step, got, ids)
		}
	}
	first := syncOnce(t, alice, "", "", 0)
	want("initial", rooms(first), roomA, roomB, roomC)

	if _, err := bob.SendText(ctx, roomB, "in B"); err != nil {
		t.Fatal(err)
	}
	second := syncOnce(t, alice, first.NextBatch, "", 0)
	want("a message in B", rooms(second), roomB)
	if got := timelineBodies(second, roomB); len(got) != 1 || got[0] != "in B" {
		t.Fatalf("B's timeline %v", got)
	}

	if _, err := alice.SendStateEvent(ctx, roomC, event.StateTopic, "", map[string]any{"topic": "news"}); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.SendText(ctx, roomA, "in A"); err != nil {
		t.Fatal(err)
	}
	third := syncOnce(t, alice, second.NextBatch, "", 0)
	want("a topic in C and a message in A", rooms(third), roomA, roomC)
	if evs := third.Rooms.Join[roomC].Timeline.Events; len(evs) != 1 || evs[0].Type != event.StateTopic {
		t.Fatalf("C's timeline %+v", evs)
	}

	full, err := alice.FullSyncRequest(ctx, mautrix.ReqSync{Since: third.NextBatch, FullState: true})
	if err != nil {
		t.Fatal(err)
	}
	want("full state", rooms(full), roomA, roomB, roomC)
}
