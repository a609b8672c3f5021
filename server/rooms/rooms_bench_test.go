package rooms

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/storage"
)

// newTestService opens a rooms service on a temporary database.
func newTestService(tb testing.TB) *Service {
	tb.Helper()
	db, err := storage.Open(context.Background(), filepath.Join(tb.TempDir(), "palpo.db"), 4)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return New(db, "localhost", federation.GenerateSigningKey(), slog.New(slog.DiscardHandler))
}

func message(i int) []byte {
	b, _ := json.Marshal(map[string]any{"msgtype": "m.text", "body": fmt.Sprintf("message %d", i)})
	return b
}

// BenchmarkSendMessage measures persisting one message event: build, hash,
// sign, authorise and store in its own transaction, with p50 and p99.
func BenchmarkSendMessage(b *testing.B) {
	s := newTestService(b)
	ctx := context.Background()
	alice := id.UserID("@alice:localhost")
	roomID, err := s.CreateRoom(ctx, alice, &CreateRoomRequest{})
	if err != nil {
		b.Fatal(err)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		if _, err := s.Send(ctx, alice, "DEV", roomID, "m.room.message", message(i), fmt.Sprintf("t%d", i)); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	reportLatency(b, lat)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkCreateRoom measures creating a default private room (create,
// member, power levels, join rules, history visibility, guest access,
// name): one transaction.
func BenchmarkCreateRoom(b *testing.B) {
	s := newTestService(b)
	ctx := context.Background()
	name := "Bench"
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		if _, err := s.CreateRoom(ctx, "@alice:localhost", &CreateRoomRequest{Name: &name}); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	reportLatency(b, lat)
}

func reportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// TestThousandMessages sends 1,000 messages one after another and checks
// each is stored once, in order; with -v it logs the rate.
func TestThousandMessages(t *testing.T) {
	s := newTestService(t)
	ctx := context.Background()
	alice := id.UserID("@alice:localhost")
	roomID, err := s.CreateRoom(ctx, alice, &CreateRoomRequest{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var last int64
	for i := range 1000 {
		evID, err := s.Send(ctx, alice, "DEV", roomID, "m.room.message", message(i), fmt.Sprintf("t%d", i))
		if err != nil {
			t.Fatal(err)
		}
		ev, err := s.event(ctx, evID)
		if err != nil {
			t.Fatal(err)
		}
		if ev.StreamPos <= last {
			t.Fatalf("stream position %d not after %d", ev.StreamPos, last)
		}
		last = ev.StreamPos
	}
	t.Logf("1,000 sequential messages: %.0f events/s", 1000/time.Since(start).Seconds())
}

// BenchmarkCreateRoomLarge measures createRoom with long initial_state and
// invite lists, which must cost time linear in their length.
func BenchmarkCreateRoomLarge(b *testing.B) {
	defer func(n int) { maxCreateRoomList = n }(maxCreateRoomList)
	maxCreateRoomList = slices.Max(benchSizes)
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("initial_state=%d", n), func(b *testing.B) {
			s := newTestService(b)
			req := &CreateRoomRequest{}
			for i := range n {
				req.InitialState = append(req.InitialState, InitialStateEvent{Type: "com.example.state", StateKey: fmt.Sprintf("k%d", i), Content: []byte(`{"v":1}`)})
			}
			resetPeakRSS()
			for range b.N {
				if _, err := s.CreateRoom(context.Background(), "@alice:localhost", req); err != nil {
					b.Fatal(err)
				}
			}
			reportPeakRSS(b)
		})
		b.Run(fmt.Sprintf("invite=%d", n), func(b *testing.B) {
			s := newTestService(b)
			req := &CreateRoomRequest{}
			for i := range n {
				req.Invite = append(req.Invite, id.NewUserID(fmt.Sprintf("u%d", i), "remote.example"))
			}
			resetPeakRSS()
			for range b.N {
				if _, err := s.CreateRoom(context.Background(), "@alice:localhost", req); err != nil {
					b.Fatal(err)
				}
			}
			reportPeakRSS(b)
		})
	}
}

// benchSizes are list lengths for BenchmarkCreateRoomLarge: the cap, the
// request that once took 44 s, and the most a 1 MiB body holds.
var benchSizes = []int{1000, 8000, 19800}

// resetPeakRSS resets the process's peak resident set (Linux; elsewhere
// reportPeakRSS reports nothing).
func resetPeakRSS() {
	runtime.GC()
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// reportPeakRSS reports the peak resident set since resetPeakRSS, in MB.
func reportPeakRSS(b *testing.B) {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			if kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB"))); err == nil {
				b.ReportMetric(float64(kb)/1024, "peak-RSS-MB")
			}
		}
	}
}
