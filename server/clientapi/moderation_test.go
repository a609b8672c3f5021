package clientapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
	"github.com/palpo-im/palpo-desktop/server/storage"
)

// modPost posts a raw body to a client API path.
func modPost(c *mautrix.Client, ts *testserver.Server, path, body string) error {
	_, err := c.MakeFullRequest(context.Background(), mautrix.FullRequest{
		Method: http.MethodPost, URL: ts.URL + "/_matrix/client/v3" + path, RequestBytes: []byte(body), MaxAttempts: 1,
	})
	return err
}

// modAdmin calls the admin API and decodes the answer into out.
func modAdmin(c *mautrix.Client, ts *testserver.Server, method, path string, out any) error {
	_, err := c.MakeFullRequest(context.Background(), mautrix.FullRequest{
		Method: method, URL: ts.URL + "/_synapse/admin" + path, ResponseJSON: out, MaxAttempts: 1,
	})
	return err
}

func modReportPath(roomID id.RoomID, evID id.EventID) string {
	return "/rooms/" + url.PathEscape(string(roomID)) + "/report/" + url.PathEscape(string(evID))
}

type modEventReport struct {
	ID             int64           `json:"id"`
	ReceivedTS     int64           `json:"received_ts"`
	RoomID         id.RoomID       `json:"room_id"`
	Name           *string         `json:"name"`
	EventID        id.EventID      `json:"event_id"`
	UserID         id.UserID       `json:"user_id"`
	Reason         *string         `json:"reason"`
	Score          *int64          `json:"score"`
	Sender         id.UserID       `json:"sender"`
	CanonicalAlias *string         `json:"canonical_alias"`
	EventJSON      json.RawMessage `json:"event_json"`
}

type modEventReports struct {
	EventReports []modEventReport `json:"event_reports"`
	NextToken    *int             `json:"next_token"`
	Total        int              `json:"total"`
}

func TestReportEvent(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	root := ts.RegisterAdmin("root")
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	carol := ts.RegisterUser("carol")
	roomID := roomCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Reports", RoomAliasName: "reports"})
	if _, err := bob.JoinRoomByID(ctx, roomID); err != nil {
		t.Fatal(err)
	}
	ids := ctxSendTexts(t, alice, roomID, "rude one", "rude two", "rude three", "to redact")
	other := roomCreate(t, alice, &mautrix.ReqCreateRoom{})
	elsewhere := ctxSendTexts(t, alice, other, "in another room")

	if err := modPost(bob, ts, modReportPath(roomID, ids[0]), `{"reason":"rude","score":-100}`); err != nil {
		t.Fatalf("report: %v", err)
	}
	if err := bob.ReportEvent(ctx, roomID, ids[1], "also rude"); err != nil {
		t.Fatal(err)
	}
	// Reason and score are optional.
	if err := modPost(bob, ts, modReportPath(roomID, ids[2]), `{}`); err != nil {
		t.Fatal(err)
	}

	if _, err := alice.RedactEvent(ctx, roomID, ids[3]); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		c      *mautrix.Client
		path   string
		body   string
		status int
		code   string
	}{
		{"unknown event", bob, modReportPath(roomID, "$nope"), `{"reason":"x"}`, 404, "M_NOT_FOUND"},
		{"event of another room", bob, modReportPath(roomID, elsewhere[0]), `{"reason":"x"}`, 404, "M_NOT_FOUND"},
		{"redacted event", bob, modReportPath(roomID, ids[3]), `{"reason":"x"}`, 404, "M_NOT_FOUND"},
		{"not a member", carol, modReportPath(roomID, ids[0]), `{"reason":"x"}`, 404, "M_NOT_FOUND"},
		{"unknown room", bob, modReportPath("!nope:localhost", ids[0]), `{"reason":"x"}`, 404, "M_NOT_FOUND"},
		{"bad room ID", bob, modReportPath("nope", ids[0]), `{"reason":"x"}`, 400, "M_INVALID_PARAM"},
		{"malformed", bob, modReportPath(roomID, ids[0]), `{"reason":`, 400, "M_NOT_JSON"},
		{"not an object", bob, modReportPath(roomID, ids[0]), `"rude"`, 400, "M_BAD_JSON"},
		{"reason not a string", bob, modReportPath(roomID, ids[0]), `{"reason":5}`, 400, "M_BAD_JSON"},
		{"score not an integer", bob, modReportPath(roomID, ids[0]), `{"score":-1.5}`, 400, "M_BAD_JSON"},
		{"score a string", bob, modReportPath(roomID, ids[0]), `{"score":"-1"}`, 400, "M_BAD_JSON"},
		{"no token", ts.Client(), modReportPath(roomID, ids[0]), `{}`, 401, "M_MISSING_TOKEN"},
	} {
		roomErr(t, c.name, modPost(c.c, ts, c.path, c.body), c.status, c.code)
	}
	// Having left, bob can no longer report.
	if _, err := bob.LeaveRoom(ctx, roomID); err != nil {
		t.Fatal(err)
	}
	roomErr(t, "reporter left", modPost(bob, ts, modReportPath(roomID, ids[0]), `{}`), 404, "M_NOT_FOUND")

	// The admins see the three reports, newest first by default.
	var list modEventReports
	if err := modAdmin(root, ts, http.MethodGet, "/v1/event_reports", &list); err != nil {
		t.Fatal(err)
	}
	if list.Total != 3 || len(list.EventReports) != 3 || list.NextToken != nil {
		t.Fatalf("reports %+v", list)
	}
	first := list.EventReports[2]
	if first.EventID != ids[0] || first.UserID != bob.UserID || first.Sender != alice.UserID || first.RoomID != roomID ||
		first.Reason == nil || *first.Reason != "rude" || first.Score == nil || *first.Score != -100 ||
		first.Name == nil || *first.Name != "Reports" || first.CanonicalAlias == nil || *first.CanonicalAlias != "#reports:localhost" || first.ReceivedTS == 0 {
		t.Fatalf("first report %+v", first)
	}
	if r := list.EventReports[0]; r.EventID != ids[2] || r.Reason != nil || r.Score != nil {
		t.Fatalf("newest report %+v", r)
	}
	// Paging, oldest first, and filters.
	var page modEventReports
	if err := modAdmin(root, ts, http.MethodGet, "/v1/event_reports?limit=2&dir=f", &page); err != nil {
		t.Fatal(err)
	}
	if len(page.EventReports) != 2 || page.EventReports[0].EventID != ids[0] || page.NextToken == nil || *page.NextToken != 2 {
		t.Fatalf("first page %+v", page)
	}
	var page2 modEventReports
	if err := modAdmin(root, ts, http.MethodGet, fmt.Sprintf("/v1/event_reports?limit=2&dir=f&from=%d", *page.NextToken), &page2); err != nil {
		t.Fatal(err)
	}
	if len(page2.EventReports) != 1 || page2.EventReports[0].EventID != ids[2] || page2.NextToken != nil {
		t.Fatalf("second page %+v", page2)
	}
	for q, want := range map[string]int{
		"user_id=" + url.QueryEscape(string(bob.UserID)):                3,
		"user_id=" + url.QueryEscape(string(carol.UserID)):              0,
		"room_id=" + url.QueryEscape(string(other)):                     0,
		"room_id=" + url.QueryEscape(string(roomID)):                    3,
		"event_sender_user_id=" + url.QueryEscape(string(alice.UserID)): 3,
		"event_sender_user_id=" + url.QueryEscape(string(bob.UserID)):   0,
	} {
		if err := modAdmin(root, ts, http.MethodGet, "/v1/event_reports?"+q, &page); err != nil || page.Total != want {
			t.Fatalf("%s: total %d, %v; want %d", q, page.Total, err, want)
		}
	}
	// One report, with the event.
	var one modEventReport
	if err := modAdmin(root, ts, http.MethodGet, fmt.Sprintf("/v1/event_reports/%d", first.ID), &one); err != nil {
		t.Fatal(err)
	}
	var pdu struct {
		Content struct {
			Body string `json:"body"`
		} `json:"content"`
	}
	if one.EventID != ids[0] || json.Unmarshal(one.EventJSON, &pdu) != nil || pdu.Content.Body != "rude one" {
		t.Fatalf("report details %+v", one)
	}
	// Delete it; then it is gone.
	if err := modAdmin(root, ts, http.MethodDelete, fmt.Sprintf("/v1/event_reports/%d", first.ID), nil); err != nil {
		t.Fatal(err)
	}
	roomErr(t, "deleted report", modAdmin(root, ts, http.MethodGet, fmt.Sprintf("/v1/event_reports/%d", first.ID), nil), 404, "M_NOT_FOUND")
	roomErr(t, "deleted twice", modAdmin(root, ts, http.MethodDelete, fmt.Sprintf("/v1/event_reports/%d", first.ID), nil), 404, "M_NOT_FOUND")
	roomErr(t, "bad report id", modAdmin(root, ts, http.MethodGet, "/v1/event_reports/abc", nil), 400, "M_INVALID_PARAM")
	roomErr(t, "negative report id", modAdmin(root, ts, http.MethodDelete, "/v1/event_reports/-1", nil), 400, "M_INVALID_PARAM")
	roomErr(t, "bad limit", modAdmin(root, ts, http.MethodGet, "/v1/event_reports?limit=-1", nil), 400, "M_INVALID_PARAM")
	roomErr(t, "bad from", modAdmin(root, ts, http.MethodGet, "/v1/event_reports?from=x", nil), 400, "M_INVALID_PARAM")
	roomErr(t, "bad dir", modAdmin(root, ts, http.MethodGet, "/v1/event_reports?dir=up", nil), 400, "M_INVALID_PARAM")
	roomErr(t, "not an admin", modAdmin(bob, ts, http.MethodGet, "/v1/event_reports", nil), 403, "M_FORBIDDEN")
}

func TestReportRoomAndUser(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	roomID := roomCreate(t, alice, &mautrix.ReqCreateRoom{})
	roomPath := "/rooms/" + url.PathEscape(string(roomID)) + "/report"
	userPath := func(u string) string { return "/users/" + url.PathEscape(u) + "/report" }

	// A room can be reported by someone not in it; a blank or missing
	// reason is accepted (the spec allows blank; mautrix leaves it out).
	if err := bob.ReportRoom(ctx, roomID, "spam room"); err != nil {
		t.Fatal(err)
	}
	if err := bob.ReportRoom(ctx, roomID, ""); err != nil {
		t.Fatal(err)
	}
	if err := bob.ReportUser(ctx, alice.UserID, "spammer"); err != nil {
		t.Fatal(err)
	}
	// Unknown and remote users are accepted and dropped: reports must not
	// tell which users exist.
	for _, u := range []id.UserID{"@nobody:localhost", "@someone:elsewhere.example"} {
		if err := bob.ReportUser(ctx, u, "x"); err != nil {
			t.Fatalf("report %s: %v", u, err)
		}
	}
	for _, c := range []struct {
		name, path, body string
		status           int
		code             string
	}{
		{"unknown room", "/rooms/" + url.PathEscape("!nope:localhost") + "/report", `{"reason":"x"}`, 404, "M_NOT_FOUND"},
		{"bad room ID", "/rooms/nope/report", `{"reason":"x"}`, 400, "M_INVALID_PARAM"},
		{"room malformed", roomPath, `{`, 400, "M_NOT_JSON"},
		{"room reason not a string", roomPath, `{"reason":["x"]}`, 400, "M_BAD_JSON"},
		{"bad user ID", userPath("alice"), `{"reason":"x"}`, 400, "M_INVALID_PARAM"},
		{"user malformed", userPath(string(alice.UserID)), `nope`, 400, "M_NOT_JSON"},
		{"user reason not a string", userPath(string(alice.UserID)), `{"reason":1}`, 400, "M_BAD_JSON"},
		{"user reason too long", userPath(string(alice.UserID)), `{"reason":"` + strings.Repeat("x", 1001) + `"}`, 400, "M_BAD_JSON"},
	} {
		roomErr(t, c.name, modPost(bob, ts, c.path, c.body), c.status, c.code)
	}
	roomErr(t, "no token", modPost(ts.Client(), ts, roomPath, `{"reason":"x"}`), 401, "M_MISSING_TOKEN")

	// What was stored, for the admins.
	rooms, total, err := ts.DB().ListReports(ctx, storage.ReportFilter{Kind: storage.ReportRoom, Limit: 10})
	if err != nil || total != 2 || rooms[0].RoomID != roomID || rooms[0].Reporter != bob.UserID || *rooms[0].Reason != "spam room" || *rooms[1].Reason != "" {
		t.Fatalf("room reports %+v %d %v", rooms, total, err)
	}
	users, total, err := ts.DB().ListReports(ctx, storage.ReportFilter{Kind: storage.ReportUser, Limit: 10})
	if err != nil || total != 1 || users[0].TargetUser != alice.UserID || *users[0].Reason != "spammer" {
		t.Fatalf("user reports %+v %d %v", users, total, err)
	}
}

// modSyncMessages returns the bodies of the messages in a room's sync
// timeline.
func modSyncMessages(resp *mautrix.RespSync, roomID id.RoomID) []string {
	return timelineBodies(resp, roomID)
}

func modIgnore(t *testing.T, c *mautrix.Client, users ...id.UserID) {
	t.Helper()
	list := &event.IgnoredUserListEventContent{IgnoredUsers: map[id.UserID]event.IgnoredUser{}}
	for _, u := range users {
		list.IgnoredUsers[u] = event.IgnoredUser{}
	}
	if err := c.SetAccountData(context.Background(), event.AccountDataIgnoredUserList.Type, list); err != nil {
		t.Fatal(err)
	}
}

func TestIgnoredUsers(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	carol := ts.RegisterUser("carol")
	// alice, whom bob ignores, made the room, so she may set its topic.
	roomID := roomCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	for _, c := range []*mautrix.Client{carol, bob} {
		if _, err := c.JoinRoomByID(ctx, roomID); err != nil {
			t.Fatal(err)
		}
	}
	modIgnore(t, bob, alice.UserID)
	since := syncOnce(t, bob, "", "", 0).NextBatch

	ids := ctxSendTexts(t, alice, roomID, "from alice")
	ctxSendTexts(t, carol, roomID, "from carol 1")
	if _, err := alice.SendStateEvent(ctx, roomID, event.StateTopic, "", map[string]any{"topic": "alice's topic"}); err != nil {
		t.Fatal(err)
	}
	carolIDs := ctxSendTexts(t, carol, roomID, "from carol 2")

	// Sync: alice's message is gone, her state event stays.
	resp := syncOnce(t, bob, since, "", 0)
	if got := modSyncMessages(resp, roomID); !slices.Equal(got, []string{"from carol 1", "from carol 2"}) {
		t.Fatalf("incremental sync timeline %q", got)
	}
	topic := false
	for _, ev := range resp.Rooms.Join[roomID].Timeline.Events {
		topic = topic || ev.Type == event.StateTopic
	}
	if !topic {
		t.Fatal("the ignored user's state event was hidden")
	}
	if got := modSyncMessages(syncOnce(t, bob, "", "", 0), roomID); slices.Contains(got, "from alice") {
		t.Fatalf("initial sync timeline %q", got)
	}
	// Others still see alice.
	if got := modSyncMessages(syncOnce(t, carol, "", "", 0), roomID); !slices.Contains(got, "from alice") {
		t.Fatalf("carol's timeline %q", got)
	}
	// /messages.
	msgs, err := bob.Messages(ctx, roomID, "", "", mautrix.DirectionBackward, nil, 50)
	if err != nil {
		t.Fatal(err)
	}
	if got := ctxBodies(msgs.Chunk); slices.Contains(got, "from alice") || !slices.Contains(got, "from carol 1") || !slices.Contains(got, string(event.StateTopic.Type)) {
		t.Fatalf("/messages %q", got)
	}
	// /context: around carol's message, and of alice's own (hidden).
	cx, err := bob.Context(ctx, roomID, carolIDs[0], nil, 4)
	if err != nil {
		t.Fatal(err)
	}
	if got := ctxBodies(cx.EventsBefore); slices.Contains(got, "from alice") {
		t.Fatalf("/context events_before %q", got)
	}
	_, err = bob.Context(ctx, roomID, ids[0], nil, 4)
	roomErr(t, "context of an ignored user's message", err, 404, "M_NOT_FOUND")

	// Invites from ignored users are not sent; others are.
	fromAlice := roomCreate(t, alice, &mautrix.ReqCreateRoom{Invite: []id.UserID{bob.UserID}})
	fromCarol := roomCreate(t, carol, &mautrix.ReqCreateRoom{Invite: []id.UserID{bob.UserID}})
	resp = syncOnce(t, bob, "", "", 0)
	if _, ok := resp.Rooms.Invite[fromAlice]; ok {
		t.Fatal("invite from an ignored user was sent")
	}
	if _, ok := resp.Rooms.Invite[fromCarol]; !ok {
		t.Fatal("invite from carol missing")
	}

	// Unignoring shows alice's messages again.
	modIgnore(t, bob)
	msgs, err = bob.Messages(ctx, roomID, "", "", mautrix.DirectionBackward, nil, 50)
	if err != nil || !slices.Contains(ctxBodies(msgs.Chunk), "from alice") {
		t.Fatalf("after unignoring: %v %q", err, ctxBodies(msgs.Chunk))
	}
	if _, ok := syncOnce(t, bob, "", "", 0).Rooms.Invite[fromAlice]; !ok {
		t.Fatal("after unignoring, alice's invite is missing")
	}
	// A malformed list ignores nobody.
	if err := bob.SetAccountData(ctx, event.AccountDataIgnoredUserList.Type, map[string]any{"ignored_users": []string{string(alice.UserID)}}); err != nil {
		t.Fatal(err)
	}
	if got := modSyncMessages(syncOnce(t, bob, "", "", 0), roomID); !slices.Contains(got, "from alice") {
		t.Fatalf("malformed ignore list hid messages: %q", got)
	}
}

func TestServerACLContent(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")
	roomID := roomCreate(t, alice, &mautrix.ReqCreateRoom{})
	put := func(body string) error {
		_, err := alice.MakeFullRequest(ctx, mautrix.FullRequest{
			Method: http.MethodPut, URL: ts.URL + "/_matrix/client/v3/rooms/" + url.PathEscape(string(roomID)) + "/state/m.room.server_acl/",
			RequestBytes: []byte(body), MaxAttempts: 1,
		})
		return err
	}
	for _, c := range []struct {
		name, body string
		code       string
	}{
		{"allow not a list", `{"allow":"*"}`, "M_BAD_JSON"},
		{"allow entries not strings", `{"allow":["*",1]}`, "M_BAD_JSON"},
		{"deny an object", `{"allow":["*"],"deny":{}}`, "M_BAD_JSON"},
		{"allow null", `{"allow":null}`, "M_BAD_JSON"},
		{"allow_ip_literals not a boolean", `{"allow":["*"],"allow_ip_literals":"no"}`, "M_BAD_JSON"},
		{"denies this server by omission", `{}`, "M_INVALID_PARAM"},
		{"denies this server by name", `{"allow":["*"],"deny":["LOCAL*"]}`, "M_INVALID_PARAM"},
	} {
		roomErr(t, c.name, put(c.body), 400, c.code)
	}
	if err := put(`{"allow":["*"],"deny":["evil.example","*.evil.example"],"allow_ip_literals":false}`); err != nil {
		t.Fatalf("valid ACL refused: %v", err)
	}
	// Federation (to come) asks the rooms service.
	for server, want := range map[string]bool{
		"localhost": true, "good.example:8448": true, "evil.example": false, "EVIL.example:443": false,
		"a.evil.example": false, "1.2.3.4": false, "[::1]:8448": false,
	} {
		if got, err := ts.Rooms().ServerAllowed(ctx, roomID, server); err != nil || got != want {
			t.Fatalf("ServerAllowed(%s) = %v, %v; want %v", server, got, err, want)
		}
	}
	// createRoom's initial_state is checked the same way.
	_, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{InitialState: []*event.Event{{
		Type: event.StateServerACL, Content: event.Content{Raw: map[string]any{"allow": "*"}},
	}}})
	roomErr(t, "bad ACL in initial_state", err, 400, "M_BAD_JSON")
}

func TestTimestampToEvent(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	var now atomic.Int64
	now.Store(1_000_000)
	ts.Rooms().Now = func() time.Time { return time.UnixMilli(now.Load()) }
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	carol := ts.RegisterUser("carol")
	roomID := roomCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", InitialState: []*event.Event{{
		Type: event.StateHistoryVisibility, Content: event.Content{Parsed: &event.HistoryVisibilityEventContent{HistoryVisibility: event.HistoryVisibilityJoined}},
	}}})
	var ids []id.EventID
	for i, body := range []string{"a", "b", "c"} {
		now.Store(int64(2+i) * 1_000_000)
		ids = append(ids, ctxSendTexts(t, alice, roomID, body)[0])
	}
	find := func(c *mautrix.Client, ts int64, dir mautrix.Direction) (*mautrix.RespTimestampToEvent, error) {
		return c.TimestampToEvent(ctx, roomID, time.UnixMilli(ts), dir)
	}
	for _, c := range []struct {
		ts   int64
		dir  mautrix.Direction
		want id.EventID
	}{
		{2_500_000, mautrix.DirectionForward, ids[1]},
		{2_500_000, mautrix.DirectionBackward, ids[0]},
		{3_000_000, mautrix.DirectionForward, ids[1]},
		{3_000_000, mautrix.DirectionBackward, ids[1]},
		{9_000_000, mautrix.DirectionBackward, ids[2]},
	} {
		resp, err := find(alice, c.ts, c.dir)
		if err != nil || resp.EventID != c.want || resp.Timestamp.UnixMilli() > c.ts && c.dir == mautrix.DirectionBackward {
			t.Fatalf("ts %d dir %c: %+v %v; want %s", c.ts, c.dir, resp, err, c.want)
		}
	}
	// From the very start forwards: the room's create event.
	resp, err := find(alice, 0, mautrix.DirectionForward)
	if err != nil || resp.Timestamp.UnixMilli() != 1_000_000 {
		t.Fatalf("first event: %+v %v", resp, err)
	}
	_, err = find(alice, 9_000_000, mautrix.DirectionForward)
	roomErr(t, "nothing after", err, 404, "M_NOT_FOUND")
	_, err = find(alice, 999_999, mautrix.DirectionBackward)
	roomErr(t, "nothing before", err, 404, "M_NOT_FOUND")

	// History visibility: bob joins later and cannot land on earlier events.
	now.Store(6_000_000)
	if _, err := bob.JoinRoomByID(ctx, roomID); err != nil {
		t.Fatal(err)
	}
	// Backwards, the messages before his join are skipped; the room's first
	// events, sent before the visibility was set, are shared with him.
	if resp, err := find(bob, 4_500_000, mautrix.DirectionBackward); err != nil || resp.Timestamp.UnixMilli() != 1_000_000 {
		t.Fatalf("bob backwards skips hidden messages: %+v %v", resp, err)
	}
	if resp, err := find(bob, 4_500_000, mautrix.DirectionForward); err != nil || resp.Timestamp.UnixMilli() != 6_000_000 {
		t.Fatalf("bob forwards lands on his join: %+v %v", resp, err)
	}
	// Someone never in the room may not look.
	_, err = find(carol, 2_500_000, mautrix.DirectionForward)
	roomErr(t, "not a member", err, 403, "M_FORBIDDEN")
	_, err = alice.TimestampToEvent(ctx, "!nope:localhost", time.UnixMilli(0), mautrix.DirectionForward)
	roomErr(t, "unknown room", err, 404, "M_NOT_FOUND")

	get := func(c *mautrix.Client, room, query string) error {
		_, err := c.MakeFullRequest(ctx, mautrix.FullRequest{Method: http.MethodGet, URL: ts.URL + "/_matrix/client/v1/rooms/" + url.PathEscape(room) + "/timestamp_to_event?" + query, MaxAttempts: 1})
		return err
	}
	for _, c := range []struct {
		name, room, query string
		status            int
		code              string
	}{
		{"no ts", string(roomID), "dir=f", 400, "M_MISSING_PARAM"},
		{"ts not a number", string(roomID), "ts=yesterday&dir=f", 400, "M_INVALID_PARAM"},
		{"negative ts", string(roomID), "ts=-5&dir=f", 400, "M_INVALID_PARAM"},
		{"no dir", string(roomID), "ts=5", 400, "M_MISSING_PARAM"},
		{"bad dir", string(roomID), "ts=5&dir=up", 400, "M_INVALID_PARAM"},
		{"bad room ID", "nope", "ts=5&dir=f", 400, "M_INVALID_PARAM"},
	} {
		roomErr(t, c.name, get(alice, c.room, c.query), c.status, c.code)
	}
	roomErr(t, "no token", get(ts.Client(), string(roomID), "ts=5&dir=f"), 401, "M_MISSING_TOKEN")
}
