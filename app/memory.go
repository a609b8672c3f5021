package app

import (
	"context"
	"math"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// The headless server's memory policy. Go's collector lets the heap grow to
// twice what is live (GOGC=100) and hands freed memory back to the system
// slowly; on a spare PC that shows as a server twice its size. A soft
// memory limit makes the collector and the scavenger keep the total near
// the limit. The limit follows what is live, staying at least half again
// above it, so a big server gets room instead of a collector that never
// stops; small servers sit at the floor. GOMEMLIMIT, when set, wins.

const (
	// memoryFloor is the smallest limit: a family server's whole Go memory
	// (heap, stacks, runtime) with room to spare.
	memoryFloor = 64 << 20
	// memoryHeadroom is how far above the live heap and stacks the limit
	// stays (1.5: the collector runs when half again as much is in use).
	memoryHeadroom = 1.5
	// memoryCheckEvery is how often the limit follows the live heap.
	memoryCheckEvery = 15 * time.Second
)

// memoryLimit is the soft limit for a live heap and stacks of the given
// sizes.
func memoryLimit(live, stacks uint64) int64 {
	want := memoryHeadroom * float64(live+stacks)
	return int64(math.Max(memoryFloor, want))
}

// ManageMemory applies the policy until ctx ends; it does nothing when the
// user set GOMEMLIMIT.
func ManageMemory(ctx context.Context) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	samples := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/memory/classes/heap/stacks:bytes"}}
	apply := func() {
		metrics.Read(samples)
		var v [2]uint64
		for i, s := range samples {
			if s.Value.Kind() == metrics.KindUint64 {
				v[i] = s.Value.Uint64()
			}
		}
		debug.SetMemoryLimit(memoryLimit(v[0], v[1]))
	}
	apply()
	t := time.NewTicker(memoryCheckEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			debug.SetMemoryLimit(math.MaxInt64)
			return
		case <-t.C:
			apply()
		}
	}
}
