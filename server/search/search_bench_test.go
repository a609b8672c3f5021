package search

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/rooms"
	"github.com/palpo-im/palpo-desktop/server/storage"
	"github.com/palpo-im/palpo-desktop/server/syncer"
)

// The search benchmark's corpus: benchMessages messages in benchRooms
// rooms, built once per test binary through the rooms service (real,
// signed PDUs indexed by the real triggers), with words drawn from a
// Zipf distribution over a vocabulary, as real chat is: a few words are
// in most messages, most words in few.
const (
	benchMessages = 100_000
	benchRooms    = 10
	benchVocab    = 20_000
	benchBatch    = 1000
)

var (
	benchOnce  sync.Once
	benchDir   string
	benchSvc   *Service
	benchUser  = id.UserID("@alice:localhost")
	benchErr   error
	benchBuilt time.Duration
)

func TestMain(m *testing.M) {
	code := m.Run()
	if benchDir != "" {
		os.RemoveAll(benchDir)
	}
	os.Exit(code)
}

// benchWords is the vocabulary: distinct random lower-case words of 3 to
// 9 letters, in order of frequency. Like real words, some are prefixes of
// others, which prefix matching has to expand.
var benchWords = func() []string {
	r := rand.New(rand.NewPCG(3, 4))
	seen := map[string]bool{}
	out := make([]string, 0, benchVocab)
	for len(out) < benchVocab {
		b := make([]byte, 3+r.IntN(7))
		for i := range b {
			b[i] = byte('a' + r.IntN(26))
		}
		if w := string(b); !seen[w] {
			seen[w] = true
			out = append(out, w)
		}
	}
	return out
}()

func benchWord(i int) string { return benchWords[i] }

func benchCorpus(b *testing.B) *Service {
	benchOnce.Do(func() {
		start := time.Now()
		ctx := context.Background()
		benchDir, benchErr = os.MkdirTemp("", "palpo-search-bench")
		if benchErr != nil {
			return
		}
		db, err := storage.Open(ctx, filepath.Join(benchDir, "palpo.db"), 4)
		if err != nil {
			benchErr = err
			return
		}
		log := slog.New(slog.DiscardHandler)
		roomsSvc := rooms.New(db, "localhost", federation.GenerateSigningKey(), log)
		benchSvc = New(db, roomsSvc, syncer.New(db, roomsSvc, log), log)
		r := rand.New(rand.NewPCG(1, 2))
		zipf := rand.NewZipf(r, 1.07, 2, benchVocab-1)
		var roomIDs []id.RoomID
		for range benchRooms {
			roomID, err := roomsSvc.CreateRoom(ctx, benchUser, &rooms.CreateRoomRequest{})
			if err != nil {
				benchErr = err
				return
			}
			roomIDs = append(roomIDs, roomID)
		}
		for sent := 0; sent < benchMessages; sent += benchBatch {
			contents := make([][]byte, benchBatch)
			for i := range contents {
				words := make([]string, 4+r.IntN(12))
				for j := range words {
					words[j] = benchWord(int(zipf.Uint64()))
				}
				body := fmt.Sprint(words)
				contents[i], _ = json.Marshal(map[string]string{"msgtype": "m.text", "body": body[1 : len(body)-1]})
			}
			if _, err := roomsSvc.SendMessages(ctx, benchUser, roomIDs[(sent/benchBatch)%benchRooms], "m.room.message", contents); err != nil {
				benchErr = err
				return
			}
		}
		benchBuilt = time.Since(start)
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchSvc
}

// BenchmarkSearch measures POST /search's work (room set, index query,
// count, visibility, client events) over 100,000 messages, for a rare
// word, a common one, two words, and a word in most messages, by rank and
// newest first; p50 and p99 per search.
func BenchmarkSearch(b *testing.B) {
	s := benchCorpus(b)
	b.Logf("corpus of %d messages built in %s", benchMessages, benchBuilt.Round(time.Second))
	for _, c := range []struct {
		name, term string
	}{
		{"rare", benchWord(3000)},
		{"common", benchWord(40)},
		{"two-words", benchWord(40) + " " + benchWord(300)},
		{"most-common", benchWord(0)},
		// Two letters: a prefix of hundreds of words.
		{"short-prefix", benchWord(0)[:2]},
	} {
		for _, order := range []string{"rank", "recent"} {
			b.Run(c.name+"/"+order, func(b *testing.B) {
				term := c.term
				crit := &Criteria{SearchTerm: &term, OrderBy: order, Filter: &mautrix.FilterPart{Limit: 10}}
				ctx := context.Background()
				res, err := s.Search(ctx, benchUser, crit, "")
				if err != nil {
					b.Fatal(err)
				}
				lat := make([]time.Duration, 0, b.N)
				b.ResetTimer()
				for range b.N {
					start := time.Now()
					if _, err := s.Search(ctx, benchUser, crit, ""); err != nil {
						b.Fatal(err)
					}
					lat = append(lat, time.Since(start))
				}
				b.StopTimer()
				b.ReportMetric(float64(res.Count), "count")
				// The exact number, to compare with the estimated count.
				q, err := s.parse(benchUser, crit, "")
				if err != nil {
					b.Fatal(err)
				}
				if err := s.searchRooms(ctx, q); err != nil {
					b.Fatal(err)
				}
				exact, _, err := s.db.SearchWindow(ctx, &storage.SearchQuery{Match: q.match.match, Rooms: q.rooms}, 1<<30)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(exact), "matches")
				slices.Sort(lat)
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			})
		}
	}
}
