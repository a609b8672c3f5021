package search

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/rooms"
	"github.com/palpo-im/palpo-desktop/server/storage"
	"github.com/palpo-im/palpo-desktop/server/syncer"
)

// TestSearchWindow checks the behaviour past the window, with a window of
// 10 over 40 matches: an estimated count, ranking over the newest 10
// matches only, and rank pages that stay within them.
func TestSearchWindow(t *testing.T) {
	old := window
	window = 10
	t.Cleanup(func() { window = old })
	ctx := context.Background()
	db, err := storage.Open(ctx, filepath.Join(t.TempDir(), "palpo.db"), 2)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	roomsSvc := rooms.New(db, "localhost", federation.GenerateSigningKey(), log)
	t.Cleanup(func() {
		roomsSvc.Close()
		db.Close()
	})
	s := New(db, roomsSvc, syncer.New(db, roomsSvc, log), log)
	alice := id.UserID("@alice:localhost")
	roomID, err := roomsSvc.CreateRoom(ctx, alice, &rooms.CreateRoomRequest{})
	if err != nil {
		t.Fatal(err)
	}
	// 40 matches and 40 other messages, interleaved: the stream is even.
	var contents [][]byte
	for i := range 40 {
		for _, body := range []string{fmt.Sprintf("heron %02d", i), fmt.Sprintf("other %02d", i)} {
			c, _ := json.Marshal(map[string]string{"msgtype": "m.text", "body": body})
			contents = append(contents, c)
		}
	}
	if _, err := roomsSvc.SendMessages(ctx, alice, roomID, "m.room.message", contents); err != nil {
		t.Fatal(err)
	}
	term := "heron"
	crit := &Criteria{SearchTerm: &term, Filter: &mautrix.FilterPart{Limit: 4}}
	var got []string
	next := ""
	for range 5 {
		res, err := s.Search(ctx, alice, crit, next)
		if err != nil {
			t.Fatal(err)
		}
		// About 40 over a stream of ~90 events where the newest 10 span ~20.
		if res.Count < 30 || res.Count > 50 {
			t.Fatalf("estimated count %d, want about 40", res.Count)
		}
		for _, r := range res.Results {
			got = append(got, r.Result.Content.Raw["body"].(string))
		}
		if next = res.NextBatch; next == "" {
			break
		}
	}
	slices.Sort(got)
	var want []string
	for i := 30; i < 40; i++ {
		want = append(want, fmt.Sprintf("heron %02d", i))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("ranked pages %q, want the newest 10 matches once each", got)
	}
	// Newest first is not windowed: paging reaches every match.
	crit.OrderBy = "recent"
	got, next = nil, ""
	for range 20 {
		res, err := s.Search(ctx, alice, crit, next)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res.Results {
			got = append(got, r.Result.Content.Raw["body"].(string))
		}
		if next = res.NextBatch; next == "" {
			break
		}
	}
	if len(got) != 40 || got[0] != "heron 39" || got[39] != "heron 00" {
		t.Fatalf("recent pages: %d results, %q … %q", len(got), got[0], got[len(got)-1])
	}
}

func TestBatchTokens(t *testing.T) {
	for _, b := range []batch{{}, {byRank: true, pos: 30, floor: 7}, {room: "!r:x", pos: 99}} {
		got, err := parseBatch(b.String())
		if err != nil || got != b {
			t.Fatalf("round trip %+v: %+v %v", b, got, err)
		}
	}
	for _, s := range []string{"", "!!", "cmVjZW50", "cmVjZW50CmFsbAoKMTAKNQ" /* recent with a floor */} {
		if _, err := parseBatch(s); err == nil {
			t.Fatalf("token %q accepted", s)
		}
	}
}
