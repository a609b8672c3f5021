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
//
// After a burst of work (a client's first sync, a busy chat) the heap has
// grown, and the collector frees it but the runtime hands it back to the
// system only over minutes. So once the server has gone quiet (it
// allocates next to nothing for a second) with much freed memory still
// held, it is handed back at once: a family server's resident size falls
// back to its idle size as soon as the family stops typing, and the cost
// (one collection of a small heap) is paid only when nobody is waiting.

const (
	// memoryFloor is the smallest limit: a family server's whole Go memory
	// (heap, stacks, runtime) with room to spare.
	memoryFloor = 64 << 20
	// memoryHeadroom is how far above the live heap and stacks the limit
	// stays (1.5: the collector runs when half again as much is in use).
	memoryHeadroom = 1.5
	// memoryCheckEvery is how often the limit follows the live heap.
	memoryCheckEvery = 15 * time.Second
	// quietCheckEvery is how often the server is checked for having gone
	// quiet after a burst.
	quietCheckEvery = time.Second
	// quietAllocBytes is the most a quiet server allocates between two
	// checks (an idle server answering long-polls allocates a few KiB).
	quietAllocBytes = 1 << 20
	// releaseAboveBytes is how much freed heap memory must be held before
	// it is worth a collection to hand it back.
	releaseAboveBytes = 4 << 20
)

// ReleaseMemory hands freed memory back to the system at once: the heap
// the collector freed (after starting: the garbage of migrations and
// initialisation; after a burst: its garbage) and code pages no longer
// running (trimWorkingSet). The server calls it once it serves and
// whenever it goes quiet after a burst.
func ReleaseMemory() {
	debug.FreeOSMemory()
	trimWorkingSet()
}

// releaser decides when freed memory is handed back: after a burst, once
// quiet. It is fed the runtime's allocation counter and freed-but-held
// heap bytes at each check.
type releaser struct {
	lastAllocs uint64
	started    bool
	// settled is set once the server was first quiet after starting.
	settled bool
}

// shouldRelease reports whether to hand memory back now: the server
// allocated less than quietAllocBytes since the last check and holds more
// than releaseAboveBytes of freed heap, or it is quiet for the first time
// since it started. Then the code that its first clients ran (a single
// request brings back megabytes of it, the kernel mapping code 64 KiB at a
// time) is dropped again, however little heap is held: once, so the
// resident size a family sees after start is the idle one.
func (r *releaser) shouldRelease(allocs, heldFree uint64) bool {
	since := allocs - r.lastAllocs
	first := !r.started
	r.lastAllocs, r.started = allocs, true
	quiet := !first && since < quietAllocBytes
	if quiet && !r.settled {
		r.settled = true
		return true
	}
	return quiet && heldFree > releaseAboveBytes
}

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
	samples := []metrics.Sample{
		{Name: "/gc/heap/live:bytes"}, {Name: "/memory/classes/heap/stacks:bytes"},
		{Name: "/gc/heap/allocs:bytes"}, {Name: "/memory/classes/heap/free:bytes"},
	}
	read := func() (v [4]uint64) {
		metrics.Read(samples)
		for i, s := range samples {
			if s.Value.Kind() == metrics.KindUint64 {
				v[i] = s.Value.Uint64()
			}
		}
		return v
	}
	apply := func() {
		v := read()
		debug.SetMemoryLimit(memoryLimit(v[0], v[1]))
	}
	apply()
	limit := time.NewTicker(memoryCheckEvery)
	defer limit.Stop()
	quiet := time.NewTicker(quietCheckEvery)
	defer quiet.Stop()
	var rel releaser
	for {
		select {
		case <-ctx.Done():
			debug.SetMemoryLimit(math.MaxInt64)
			return
		case <-limit.C:
			apply()
		case <-quiet.C:
			v := read()
			if rel.shouldRelease(v[2], v[3]) {
				ReleaseMemory()
				// The collection's own allocations do not count as work.
				rel.lastAllocs = read()[2]
			}
		}
	}
}
