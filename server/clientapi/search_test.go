package clientapi_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
)

// srchBodies lists the bodies (or for state, the name or topic) of the
// results, in order.
func srchBodies(resp *mautrix.RespSearch) []string {
	var out []string
	for _, r := range resp.Results {
		for _, k := range []string{"body", "name", "topic"} {
			if s, ok := r.Event.Content.Raw[k].(string); ok {
				out = append(out, s)
				break
			}
		}
	}
	return out
}

func srch(t *testing.T, c *mautrix.Client, req *mautrix.ReqSearch) *mautrix.RespSearch {
	t.Helper()
	resp, err := c.Search(context.Background(), req)
	if err != nil {
		t.Fatalf("search %q: %v", req.SearchTerm, err)
	}
	if resp == nil {
		t.Fatalf("search %q: no room_events in the response", req.SearchTerm)
	}
	return resp
}

// srchRaw posts a raw /search body, with a next_batch query when given.
func srchRaw(c *mautrix.Client, ts *testserver.Server, body, nextBatch string) error {
	u := ts.URL + "/_matrix/client/v3/search"
	if nextBatch != "" {
		u += "?next_batch=" + url.QueryEscape(nextBatch)
	}
	_, err := c.MakeFullRequest(context.Background(), mautrix.FullRequest{Method: http.MethodPost, URL: u, RequestBytes: []byte(body), MaxAttempts: 1})
	return err
}

func TestSearchRankAndRecent(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	roomID := roomCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Walrus club", Topic: "Tusks and other matters"})
	if _, err := bob.JoinRoomByID(context.Background(), roomID); err != nil {
		t.Fatal(err)
	}
	ctxSendTexts(t, alice, roomID, "the walrus sang at dawn by the long grey sea", "a quiet morning", "walrus walrus walrus", "Walruses everywhere")

	// Rank: the densest match first; the room's name matches too; words
	// match as prefixes, case-insensitively.
	resp := srch(t, bob, &mautrix.ReqSearch{SearchTerm: "WALRUS"})
	got := srchBodies(resp)
	if len(got) != 4 || got[0] != "walrus walrus walrus" || !slices.Contains(got, "Walrus club") || !slices.Contains(got, "Walruses everywhere") {
		t.Fatalf("rank results %q", got)
	}
	if resp.Count != 4 || !slices.Equal(resp.Highlights, []string{"walrus"}) || resp.NextBatch != "" {
		t.Fatalf("count %d highlights %v next %q", resp.Count, resp.Highlights, resp.NextBatch)
	}
	for i := 1; i < len(resp.Results); i++ {
		if resp.Results[i].Rank > resp.Results[i-1].Rank || resp.Results[i].Rank <= 0 {
			t.Fatalf("ranks not descending and positive: %v then %v", resp.Results[i-1].Rank, resp.Results[i].Rank)
		}
	}
	if ev := resp.Results[0].Event; ev.RoomID != roomID || ev.Sender != alice.UserID || ev.ID == "" {
		t.Fatalf("result event %+v", ev)
	}

	// Recent, message bodies only: newest first.
	resp = srch(t, bob, &mautrix.ReqSearch{SearchTerm: "walrus", OrderBy: "recent", Keys: []string{"content.body"}})
	if got := srchBodies(resp); !slices.Equal(got, []string{"Walruses everywhere", "walrus walrus walrus", "the walrus sang at dawn by the long grey sea"}) {
		t.Fatalf("recent results %q", got)
	}
	// Topics only; phrases; exclusions; OR.
	if got := srchBodies(srch(t, bob, &mautrix.ReqSearch{SearchTerm: "tusk", Keys: []string{"content.topic"}})); !slices.Equal(got, []string{"Tusks and other matters"}) {
		t.Fatalf("topic search %q", got)
	}
	if got := srchBodies(srch(t, bob, &mautrix.ReqSearch{SearchTerm: `"grey sea"`})); !slices.Equal(got, []string{"the walrus sang at dawn by the long grey sea"}) {
		t.Fatalf("phrase search %q", got)
	}
	if got := srchBodies(srch(t, bob, &mautrix.ReqSearch{SearchTerm: "walrus -dawn -club", OrderBy: "recent"})); !slices.Equal(got, []string{"Walruses everywhere", "walrus walrus walrus"}) {
		t.Fatalf("exclusion search %q", got)
	}
	if got := srchBodies(srch(t, bob, &mautrix.ReqSearch{SearchTerm: "quiet OR everywhere", OrderBy: "recent"})); !slices.Equal(got, []string{"Walruses everywhere", "a quiet morning"}) {
		t.Fatalf("OR search %q", got)
	}
	// Results carry bundled aggregations, as /messages does: an edit.
	orig := ctxSendTexts(t, alice, roomID, "zebra stripes")[0]
	edit, err := alice.SendMessageEvent(context.Background(), roomID, event.EventMessage, map[string]any{
		"msgtype": "m.text", "body": "* zebra spots",
		"m.new_content": map[string]any{"msgtype": "m.text", "body": "zebra spots"},
		"m.relates_to":  map[string]any{"rel_type": "m.replace", "event_id": orig},
	})
	if err != nil {
		t.Fatal(err)
	}
	resp = srch(t, bob, &mautrix.ReqSearch{SearchTerm: "stripes"})
	if len(resp.Results) != 1 || resp.Results[0].Event.Unsigned.Relations.GetLatestEdit() == nil || resp.Results[0].Event.Unsigned.Relations.LatestEdit.ID != edit.EventID {
		t.Fatalf("edited result without its edit bundled: %+v", resp.Results)
	}
	// Nothing searchable, and no match: empty results, not errors.
	for _, term := range []string{"!!!", "giraffe", "-walrus"} {
		if resp := srch(t, bob, &mautrix.ReqSearch{SearchTerm: term}); resp.Count != 0 || len(resp.Results) != 0 {
			t.Fatalf("%q: %+v", term, resp)
		}
	}
}

func TestSearchPaging(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	roomID := roomCreate(t, alice, &mautrix.ReqCreateRoom{})
	var want []string
	for i := range 25 {
		want = append(want, fmt.Sprintf("otter %02d", i))
	}
	ctxSendTexts(t, alice, roomID, want...)
	slices.Reverse(want)

	for _, order := range []string{"recent", "rank"} {
		var got []string
		next := ""
		pages := 0
		for {
			resp := srch(t, alice, &mautrix.ReqSearch{SearchTerm: "otter", OrderBy: order, NextBatch: next})
			if resp.Count != 25 {
				t.Fatalf("%s: count %d on page %d", order, resp.Count, pages)
			}
			got = append(got, srchBodies(resp)...)
			pages++
			if resp.NextBatch == "" {
				break
			}
			if pages > 5 {
				t.Fatalf("%s: paging does not end", order)
			}
			next = resp.NextBatch
		}
		if pages != 3 {
			t.Fatalf("%s: %d pages of 10, want 3", order, pages)
		}
		if order == "recent" && !slices.Equal(got, want) {
			t.Fatalf("recent pages %q", got)
		}
		slices.Sort(got)
		if sorted := slices.Sorted(slices.Values(want)); !slices.Equal(got, sorted) {
			t.Fatalf("%s: pages did not cover every match exactly once: %q", order, got)
		}
	}

	// A room_id group's next_batch pages within that room.
	other := roomCreate(t, alice, &mautrix.ReqCreateRoom{})
	ctxSendTexts(t, alice, other, "otter elsewhere")
	resp := srch(t, alice, &mautrix.ReqSearch{SearchTerm: "otter", OrderBy: "recent", Filter: &mautrix.FilterPart{Limit: 5},
		Groupings: mautrix.SearchGroupings{GroupBy: []mautrix.SearchGroup{{Key: "room_id"}}}})
	if resp.Count != 26 || len(resp.Results) != 5 || resp.NextBatch == "" {
		t.Fatalf("grouped first page: count %d, %d results, next %q", resp.Count, len(resp.Results), resp.NextBatch)
	}
	g := resp.Groups["room_id"][string(other)]
	if len(g.Results) != 1 || g.Order != 1 || g.NextBatch == "" {
		t.Fatalf("group of the other room %+v", g)
	}
	inRoom := srch(t, alice, &mautrix.ReqSearch{SearchTerm: "otter", OrderBy: "recent", Filter: &mautrix.FilterPart{Limit: 5}, NextBatch: resp.Groups["room_id"][string(roomID)].NextBatch})
	for _, r := range inRoom.Results {
		if r.Event.RoomID != roomID {
			t.Fatalf("group next_batch left the room: %s", r.Event.RoomID)
		}
	}
	if got := srchBodies(inRoom); !slices.Equal(got, want[4:9]) {
		t.Fatalf("next page within the room %q", got)
	}
}

func TestSearchVisibility(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	carol := ts.RegisterUser("carol")

	// A room bob left: what he saw before leaving, nothing after.
	left := roomCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if _, err := bob.JoinRoomByID(ctx, left); err != nil {
		t.Fatal(err)
	}
	ctxSendTexts(t, alice, left, "kiwi before bob left")
	if _, err := bob.LeaveRoom(ctx, left); err != nil {
		t.Fatal(err)
	}
	ctxSendTexts(t, alice, left, "kiwi after bob left")
	if got := srchBodies(srch(t, bob, &mautrix.ReqSearch{SearchTerm: "kiwi"})); !slices.Equal(got, []string{"kiwi before bob left"}) {
		t.Fatalf("search in a room bob left: %q", got)
	}
	// Even asking for that room by filter gives nothing more.
	if got := srchBodies(srch(t, bob, &mautrix.ReqSearch{SearchTerm: "kiwi", Filter: &mautrix.FilterPart{Rooms: []id.RoomID{left}}})); !slices.Equal(got, []string{"kiwi before bob left"}) {
		t.Fatalf("filtered search in a room bob left: %q", got)
	}
	// Someone never in the room finds nothing, even naming it.
	if resp := srch(t, carol, &mautrix.ReqSearch{SearchTerm: "kiwi", Filter: &mautrix.FilterPart{Rooms: []id.RoomID{left}}}); len(resp.Results) != 0 || resp.Count != 0 {
		t.Fatalf("outsider found %q (count %d)", srchBodies(resp), resp.Count)
	}
	// A forgotten room is not searched.
	if _, err := bob.ForgetRoom(ctx, left); err != nil {
		t.Fatal(err)
	}
	if resp := srch(t, bob, &mautrix.ReqSearch{SearchTerm: "kiwi"}); len(resp.Results) != 0 {
		t.Fatalf("forgotten room searched: %q", srchBodies(resp))
	}

	// History visibility "joined": nothing from before bob joined.
	hidden := roomCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", InitialState: []*event.Event{{
		Type: event.StateHistoryVisibility, Content: event.Content{Parsed: &event.HistoryVisibilityEventContent{HistoryVisibility: event.HistoryVisibilityJoined}},
	}}})
	ctxSendTexts(t, alice, hidden, "mango before bob joined")
	if _, err := bob.JoinRoomByID(ctx, hidden); err != nil {
		t.Fatal(err)
	}
	ctxSendTexts(t, alice, hidden, "mango after bob joined")
	if got := srchBodies(srch(t, bob, &mautrix.ReqSearch{SearchTerm: "mango"})); !slices.Equal(got, []string{"mango after bob joined"}) {
		t.Fatalf("joined-only history: %q", got)
	}

	// Redacted events never match, not even in the count.
	ids := ctxSendTexts(t, alice, hidden, "papaya to redact", "papaya to keep")
	if _, err := alice.RedactEvent(ctx, hidden, ids[0]); err != nil {
		t.Fatal(err)
	}
	if resp := srch(t, bob, &mautrix.ReqSearch{SearchTerm: "papaya"}); !slices.Equal(srchBodies(resp), []string{"papaya to keep"}) || resp.Count != 1 {
		t.Fatalf("redacted event matched: %q count %d", srchBodies(resp), resp.Count)
	}

	// An ignored user's messages are hidden; their state (the room name)
	// still shows.
	if _, err := alice.SendStateEvent(ctx, hidden, event.StateRoomName, "", map[string]any{"name": "papaya grove"}); err != nil {
		t.Fatal(err)
	}
	if err := bob.SetAccountData(ctx, event.AccountDataIgnoredUserList.Type, &event.IgnoredUserListEventContent{IgnoredUsers: map[id.UserID]event.IgnoredUser{alice.UserID: {}}}); err != nil {
		t.Fatal(err)
	}
	if got := srchBodies(srch(t, bob, &mautrix.ReqSearch{SearchTerm: "papaya"})); !slices.Equal(got, []string{"papaya grove"}) {
		t.Fatalf("ignored user's messages in search: %q", got)
	}
}

func TestSearchFilterContextGroupsState(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	if err := alice.SetDisplayName(ctx, "Alice A."); err != nil {
		t.Fatal(err)
	}
	r1 := roomCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "First"})
	r2 := roomCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Second"})
	for _, r := range []id.RoomID{r1, r2} {
		if _, err := bob.JoinRoomByID(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	ctxSendTexts(t, alice, r1, "c1", "c2", "lemon one", "c3", "c4")
	ctxSendTexts(t, bob, r1, "lemon two")
	ctxSendTexts(t, alice, r2, "lemon three")
	if _, err := alice.SendMessageEvent(ctx, r2, event.EventMessage, map[string]any{"msgtype": "m.image", "body": "lemon.png", "url": "mxc://localhost/x"}); err != nil {
		t.Fatal(err)
	}

	// Filters: rooms, not_rooms, senders, not_senders, types, contains_url.
	for _, c := range []struct {
		f    mautrix.FilterPart
		want []string
	}{
		{mautrix.FilterPart{Rooms: []id.RoomID{r2}}, []string{"lemon.png", "lemon three"}},
		{mautrix.FilterPart{NotRooms: []id.RoomID{r2}}, []string{"lemon two", "lemon one"}},
		{mautrix.FilterPart{Senders: []id.UserID{bob.UserID}}, []string{"lemon two"}},
		{mautrix.FilterPart{NotSenders: []id.UserID{bob.UserID}, Rooms: []id.RoomID{r1}}, []string{"lemon one"}},
		{mautrix.FilterPart{NotTypes: []event.Type{event.EventMessage}}, nil},
		{mautrix.FilterPart{Types: []event.Type{{Type: "m.room.*"}}, Limit: 1}, []string{"lemon.png"}},
		{mautrix.FilterPart{ContainsURL: new(true)}, []string{"lemon.png"}},
	} {
		f := c.f
		if got := srchBodies(srch(t, bob, &mautrix.ReqSearch{SearchTerm: "lemon", OrderBy: "recent", Filter: &f})); !slices.Equal(got, c.want) {
			t.Fatalf("filter %+v: %q, want %q", c.f, got, c.want)
		}
	}

	// Context, with profiles; groups by room and sender; state.
	resp := srch(t, bob, &mautrix.ReqSearch{
		SearchTerm: "lemon", OrderBy: "recent", Filter: &mautrix.FilterPart{Rooms: []id.RoomID{r1}},
		EventContext: mautrix.SearchEventContext{BeforeLimit: 2, AfterLimit: 3, IncludeProfile: true},
		IncludeState: true,
		Groupings:    mautrix.SearchGroupings{GroupBy: []mautrix.SearchGroup{{Key: "room_id"}, {Key: "sender"}}},
	})
	if got := srchBodies(resp); !slices.Equal(got, []string{"lemon two", "lemon one"}) {
		t.Fatalf("results %q", got)
	}
	one := resp.Results[1].Context
	if one == nil || !slices.Equal(ctxBodies(one.EventsBefore), []string{"c2", "c1"}) || !slices.Equal(ctxBodies(one.EventsAfter), []string{"c3", "c4", "lemon two"}) {
		t.Fatalf("context of lemon one: %+v", one)
	}
	if one.Start == "" || one.End == "" {
		t.Fatalf("context tokens %q %q", one.Start, one.End)
	}
	// The tokens page on with /messages from the edges of the context.
	msgs, err := bob.Messages(ctx, r1, one.Start, "", mautrix.DirectionBackward, nil, 1)
	if err != nil || len(msgs.Chunk) != 1 || msgs.Chunk[0].Type == event.EventMessage {
		t.Fatalf("messages before the context: %v %+v", err, msgs)
	}
	var profiles struct {
		SearchCategories struct {
			RoomEvents struct {
				Results []struct {
					Context struct {
						ProfileInfo map[id.UserID]map[string]any `json:"profile_info"`
					} `json:"context"`
				} `json:"results"`
			} `json:"room_events"`
		} `json:"search_categories"`
	}
	_, err = bob.MakeRequest(ctx, http.MethodPost, ts.URL+"/_matrix/client/v3/search", map[string]any{"search_categories": map[string]any{"room_events": map[string]any{
		"search_term": "lemon one", "event_context": map[string]any{"before_limit": 0, "after_limit": 0, "include_profile": true},
	}}}, &profiles)
	if err != nil || len(profiles.SearchCategories.RoomEvents.Results) != 1 {
		t.Fatalf("profile search: %v %+v", err, profiles)
	}
	pi := profiles.SearchCategories.RoomEvents.Results[0].Context.ProfileInfo
	if len(pi) != 1 || pi[alice.UserID]["displayname"] != "Alice A." {
		t.Fatalf("profile_info %+v", pi)
	}
	rooms := resp.Groups["room_id"]
	if len(rooms) != 1 || !slices.Equal(rooms[string(r1)].Results, []string{string(resp.Results[0].Event.ID), string(resp.Results[1].Event.ID)}) {
		t.Fatalf("room groups %+v", rooms)
	}
	senders := resp.Groups["sender"]
	if len(senders) != 2 || senders[string(bob.UserID)].Order != 1 || senders[string(alice.UserID)].Order != 2 {
		t.Fatalf("sender groups %+v", senders)
	}
	if st := resp.State[r1]; len(st) == 0 || resp.State[r2] != nil {
		t.Fatalf("state: %d events for r1, r2 present %v", len(st), resp.State[r2] != nil)
	}
	foundName := false
	for _, ev := range resp.State[r1] {
		if ev.Type == event.StateRoomName && ev.Content.Raw["name"] == "First" {
			foundName = true
		}
	}
	if !foundName {
		t.Fatal("include_state lacks the room name")
	}
}

// TestSearchUpgradedRoom checks that a search limited to a room also
// searches the room it replaced.
func TestSearchUpgradedRoom(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	old := roomCreate(t, alice, &mautrix.ReqCreateRoom{RoomVersion: id.RoomV11})
	ctxSendTexts(t, alice, old, "plum in the old room")
	var up struct {
		ReplacementRoom id.RoomID `json:"replacement_room"`
	}
	if _, err := alice.MakeRequest(context.Background(), http.MethodPost, ts.URL+"/_matrix/client/v3/rooms/"+url.PathEscape(string(old))+"/upgrade", map[string]any{"new_version": "12"}, &up); err != nil {
		t.Fatal(err)
	}
	ctxSendTexts(t, alice, up.ReplacementRoom, "plum in the new room")
	got := srchBodies(srch(t, alice, &mautrix.ReqSearch{SearchTerm: "plum", OrderBy: "recent", Filter: &mautrix.FilterPart{Rooms: []id.RoomID{up.ReplacementRoom}}}))
	if !slices.Equal(got, []string{"plum in the new room", "plum in the old room"}) {
		t.Fatalf("search in the upgraded room: %q", got)
	}
}

func TestSearchBadInput(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	roomID := roomCreate(t, alice, &mautrix.ReqCreateRoom{})
	ctxSendTexts(t, alice, roomID, "quince")
	for _, c := range []struct {
		name, body, next string
		status           int
		code             string
	}{
		{"malformed", `{"search_categories":`, "", 400, "M_NOT_JSON"},
		{"not an object", `[1]`, "", 400, "M_BAD_JSON"},
		{"no categories", `{}`, "", 400, "M_MISSING_PARAM"},
		{"empty categories", `{"search_categories":{}}`, "", 400, "M_MISSING_PARAM"},
		{"unknown category", `{"search_categories":{"people":{"search_term":"x"}}}`, "", 400, "M_INVALID_PARAM"},
		{"categories not an object", `{"search_categories":[]}`, "", 400, "M_BAD_JSON"},
		{"no search_term", `{"search_categories":{"room_events":{}}}`, "", 400, "M_MISSING_PARAM"},
		{"search_term not a string", `{"search_categories":{"room_events":{"search_term":5}}}`, "", 400, "M_BAD_JSON"},
		{"bad order_by", `{"search_categories":{"room_events":{"search_term":"q","order_by":"oldest"}}}`, "", 400, "M_INVALID_PARAM"},
		{"bad key", `{"search_categories":{"room_events":{"search_term":"q","keys":["content.url"]}}}`, "", 400, "M_INVALID_PARAM"},
		{"bad group", `{"search_categories":{"room_events":{"search_term":"q","groupings":{"group_by":[{"key":"type"}]}}}}`, "", 400, "M_INVALID_PARAM"},
		{"negative context", `{"search_categories":{"room_events":{"search_term":"q","event_context":{"before_limit":-1}}}}`, "", 400, "M_INVALID_PARAM"},
		{"context limit not a number", `{"search_categories":{"room_events":{"search_term":"q","event_context":{"after_limit":"5"}}}}`, "", 400, "M_BAD_JSON"},
		{"negative filter limit", `{"search_categories":{"room_events":{"search_term":"q","filter":{"limit":-3}}}}`, "", 400, "M_INVALID_PARAM"},
		{"filter of the wrong type", `{"search_categories":{"room_events":{"search_term":"q","filter":{"rooms":"!a:b"}}}}`, "", 400, "M_BAD_JSON"},
		{"garbage next_batch", `{"search_categories":{"room_events":{"search_term":"q"}}}`, "not a token!", 400, "M_INVALID_PARAM"},
		{"forged next_batch", `{"search_categories":{"room_events":{"search_term":"q"}}}`, "cmFuawpzZW5kZXIKQGE6YgoxMAow", 400, "M_INVALID_PARAM"},
		{"next_batch of another order", `{"search_categories":{"room_events":{"search_term":"q","order_by":"recent"}}}`, "cmFuawphbGwKCjEwCjA", 400, "M_INVALID_PARAM"},
	} {
		roomErr(t, c.name, srchRaw(alice, ts, c.body, c.next), c.status, c.code)
	}
	// The rank token used above is valid for a rank search.
	if err := srchRaw(alice, ts, `{"search_categories":{"room_events":{"search_term":"q"}}}`, "cmFuawphbGwKCjEwCjA"); err != nil {
		t.Fatalf("valid rank token refused: %v", err)
	}
	// Unknown categories beside room_events are ignored.
	if err := srchRaw(alice, ts, `{"search_categories":{"room_events":{"search_term":"quince"},"people":{}}}`, ""); err != nil {
		t.Fatalf("extra category refused: %v", err)
	}
	anon := ts.Client()
	roomErr(t, "no token", srchRaw(anon, ts, `{"search_categories":{"room_events":{"search_term":"q"}}}`, ""), 401, "M_MISSING_TOKEN")
	anon.AccessToken = "nope"
	roomErr(t, "bad token", srchRaw(anon, ts, `{"search_categories":{"room_events":{"search_term":"q"}}}`, ""), 401, "M_UNKNOWN_TOKEN")
}
