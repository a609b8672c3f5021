package clientapi_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
)

type thrResp struct {
	Chunk     []*event.Event `json:"chunk"`
	NextBatch string         `json:"next_batch"`
}

// thrList calls GET /threads with a raw query.
func thrList(c *mautrix.Client, ts *testserver.Server, roomID id.RoomID, query string) (*thrResp, error) {
	u := ts.URL + relPath(roomID, "threads")
	if query != "" {
		u += "?" + query
	}
	var resp thrResp
	_, err := c.MakeRequest(context.Background(), http.MethodGet, u, nil, &resp)
	return &resp, err
}

func thrMust(t *testing.T, c *mautrix.Client, ts *testserver.Server, roomID id.RoomID, query string) *thrResp {
	t.Helper()
	resp, err := thrList(c, ts, roomID, query)
	if err != nil {
		t.Fatalf("threads %q: %v", query, err)
	}
	return resp
}

// thrSummary checks one root's m.thread aggregation.
func thrSummary(t *testing.T, what string, ev *event.Event, latest id.EventID, count int, participated bool) {
	t.Helper()
	th := ev.Unsigned.Relations.GetThread()
	if th == nil || th.LatestEvent == nil {
		t.Fatalf("%s: no thread summary on %s", what, ev.ID)
	}
	if th.LatestEvent.ID != latest || th.Count != count || th.CurrentUserParticipated != participated {
		t.Fatalf("%s: summary of %s is latest %s count %d participated %v; want %s %d %v",
			what, ev.ID, th.LatestEvent.ID, th.Count, th.CurrentUserParticipated, latest, count, participated)
	}
}

func TestThreadsList(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	carol := ts.RegisterUser("carol")
	roomID := roomCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	for _, c := range []*mautrix.Client{bob, carol} {
		if _, err := c.JoinRoomByID(ctx, roomID); err != nil {
			t.Fatal(err)
		}
	}
	root1 := relText(t, alice, roomID, "alice's topic", nil)
	root2 := relText(t, bob, roomID, "bob's topic", nil)
	relText(t, alice, roomID, "no thread here", nil)
	t1a := relText(t, bob, roomID, "bob on alice's topic", relTo("m.thread", root1))
	t2a := relText(t, alice, roomID, "alice on bob's topic", relTo("m.thread", root2))
	t1b := relText(t, bob, roomID, "bob again", relTo("m.thread", root1))
	// Neither a reaction to a reply nor an edit of a reply is a reply.
	relReact(t, carol, roomID, t1b, "👍")
	edit := relEdit(t, alice, roomID, t2a, "alice on bob's topic, edited")

	all := thrMust(t, alice, ts, roomID, "")
	if got := relIDs(all.Chunk); !slices.Equal(got, []id.EventID{root1, root2}) || all.NextBatch != "" {
		t.Fatalf("threads, newest reply first: %v (next %q)", got, all.NextBatch)
	}
	thrSummary(t, "alice", all.Chunk[0], t1b, 2, true)
	thrSummary(t, "alice", all.Chunk[1], t2a, 1, true)
	// The latest event is served with its own aggregations: its edit.
	if e := all.Chunk[1].Unsigned.Relations.GetThread().LatestEvent.Unsigned.Relations.GetLatestEdit(); e == nil || e.ID != edit {
		t.Fatalf("latest thread event without its edit: %+v", e)
	}
	carolAll := thrMust(t, carol, ts, roomID, "include=all")
	thrSummary(t, "carol", carolAll.Chunk[0], t1b, 2, false)
	thrSummary(t, "carol", carolAll.Chunk[1], t2a, 1, false)

	// include=participated: threads the user started or replied in.
	if got := relIDs(thrMust(t, carol, ts, roomID, "include=participated").Chunk); len(got) != 0 {
		t.Fatalf("carol took part in %v", got)
	}
	if got := relIDs(thrMust(t, bob, ts, roomID, "include=participated").Chunk); !slices.Equal(got, []id.EventID{root1, root2}) {
		t.Fatalf("bob took part in %v", got)
	}
	c2 := relText(t, carol, roomID, "carol joins in", relTo("m.thread", root2))
	carolPart := thrMust(t, carol, ts, roomID, "include=participated")
	if got := relIDs(carolPart.Chunk); !slices.Equal(got, []id.EventID{root2}) {
		t.Fatalf("after replying, carol took part in %v", got)
	}
	thrSummary(t, "carol", carolPart.Chunk[0], c2, 2, true)

	// A new reply moved root2 to the front; pages of one.
	p1 := thrMust(t, alice, ts, roomID, "limit=1")
	if got := relIDs(p1.Chunk); !slices.Equal(got, []id.EventID{root2}) || p1.NextBatch == "" {
		t.Fatalf("page 1: %v next %q", got, p1.NextBatch)
	}
	p2 := thrMust(t, alice, ts, roomID, "limit=1&from="+url.QueryEscape(p1.NextBatch))
	if got := relIDs(p2.Chunk); !slices.Equal(got, []id.EventID{root1}) || p2.NextBatch != "" {
		t.Fatalf("page 2: %v next %q", got, p2.NextBatch)
	}

	// The same summary is bundled wherever the root is served.
	ev, err := carol.GetEvent(ctx, roomID, root1)
	if err != nil {
		t.Fatal(err)
	}
	thrSummary(t, "/event", ev, t1b, 2, false)
	msgs, err := carol.Messages(ctx, roomID, "", "", mautrix.DirectionBackward, nil, 30)
	if err != nil {
		t.Fatal(err)
	}
	var inMessages bool
	for _, ev := range msgs.Chunk {
		if ev.ID == root1 {
			thrSummary(t, "/messages", ev, t1b, 2, false)
			inMessages = true
		}
		if ev.ID == t1a && ev.Unsigned.Relations.GetThread() != nil {
			t.Fatal("a thread reply has a thread summary")
		}
	}
	if !inMessages {
		t.Fatal("root not in /messages")
	}

	// A user who ignores bob sees neither his replies nor his root as his.
	if err := carol.SetAccountData(ctx, event.AccountDataIgnoredUserList.Type, map[string]any{"ignored_users": map[string]any{string(bob.UserID): map[string]any{}}}); err != nil {
		t.Fatal(err)
	}
	ign := thrMust(t, carol, ts, roomID, "")
	for _, ev := range ign.Chunk {
		switch ev.ID {
		case root1: // only bob replied: no summary left
			if ev.Unsigned.Relations.GetThread() != nil {
				t.Fatalf("summary from ignored replies: %+v", ev.Unsigned.Relations.GetThread())
			}
		case root2: // bob's root is shown redacted
			if ev.Content.Raw["body"] != nil {
				t.Fatalf("ignored user's root not redacted: %v", ev.Content.Raw)
			}
			if th := ev.Unsigned.Relations.GetThread(); th == nil || th.Count != 2 {
				t.Fatalf("root2 summary for carol: %+v", th)
			}
		}
	}
}

func TestThreadsBadInput(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")
	dave := ts.RegisterUser("dave")
	roomID := roomCreate(t, alice, &mautrix.ReqCreateRoom{})
	for _, c := range []struct {
		what, query string
	}{
		{"bad include", "include=mine"},
		{"zero limit", "limit=0"},
		{"negative limit", "limit=-3"},
		{"limit not a number", "limit=five"},
		{"bad from", "from=123_456"},
	} {
		_, err := thrList(alice, ts, roomID, c.query)
		roomErr(t, c.what, err, http.StatusBadRequest, "M_INVALID_PARAM")
	}
	_, err := thrList(dave, ts, roomID, "")
	roomErr(t, "not in the room", err, http.StatusForbidden, "M_FORBIDDEN")
	_, err = thrList(alice, ts, "!unknown:localhost", "")
	roomErr(t, "unknown room", err, http.StatusForbidden, "M_FORBIDDEN")
	_, err = thrList(ts.Client(), ts, roomID, "")
	roomErr(t, "no token", err, http.StatusUnauthorized, "M_MISSING_TOKEN")
	// A user who left still lists the threads they could see.
	bob := ts.RegisterUser("bob")
	pub := roomCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if _, err := bob.JoinRoomByID(ctx, pub); err != nil {
		t.Fatal(err)
	}
	root := relText(t, alice, pub, "root", nil)
	relText(t, alice, pub, "reply", relTo("m.thread", root))
	if _, err := bob.LeaveRoom(ctx, pub); err != nil {
		t.Fatal(err)
	}
	if got := relIDs(thrMust(t, bob, ts, pub, "").Chunk); !slices.Equal(got, []id.EventID{root}) {
		t.Fatalf("after leaving: %v", got)
	}
	// An empty room has no threads, and no next_batch.
	if resp := thrMust(t, alice, ts, roomID, "include=all&limit=10"); len(resp.Chunk) != 0 || resp.NextBatch != "" {
		t.Fatalf("empty room: %+v", resp)
	}
}
