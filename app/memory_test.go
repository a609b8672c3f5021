package app

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
)

func TestMemoryLimitPolicy(t *testing.T) {
	cases := []struct {
		live, stacks uint64
		want         int64
	}{
		{0, 0, memoryFloor},
		{20 << 20, 20 << 20, memoryFloor}, // a family server: the floor
		{60 << 20, 10 << 20, 105 << 20},   // bigger: half again above what is live
		{400 << 20, 100 << 20, 750 << 20},
	}
	for _, c := range cases {
		if got := memoryLimit(c.live, c.stacks); got != c.want {
			t.Errorf("memoryLimit(%d MiB live, %d MiB stacks) = %d MiB, want %d MiB", c.live>>20, c.stacks>>20, got>>20, c.want>>20)
		}
	}
}

func TestReleaserHandsBackOnlyWhenQuiet(t *testing.T) {
	var r releaser
	const mib = 1 << 20
	steps := []struct {
		allocs, free uint64
		want         bool
		why          string
	}{
		{100 * mib, 50 * mib, false, "first check: nothing to compare with"},
		{180 * mib, 2 * mib, false, "busy: 80 MiB allocated in a second"},
		{180*mib + 5<<10, 2 * mib, true, "quiet for the first time since start: settle, however little is held"},
		{180*mib + 8<<10, 2 * mib, false, "quiet again, little held"},
		{180*mib + 10<<10, 50 * mib, true, "quiet with 50 MiB held: hand it back"},
		{180*mib + 20<<10, 2 * mib, false, "quiet, little held"},
		{181*mib + 20<<10, 30 * mib, false, "1 MiB in a second is work"},
		{181*mib + 30<<10, 30 * mib, true, "quiet again"},
	}
	for _, s := range steps {
		if got := r.shouldRelease(s.allocs, s.free); got != s.want {
			t.Errorf("%s: shouldRelease = %v, want %v", s.why, got, s.want)
		}
	}
}

// TestTrimWorkingSetKeepsProgramWorking: dropping the executable's
// read-only pages leaves the program running (they are read back on use)
// and touches only mappings that cannot be written.
func TestTrimWorkingSetKeepsProgramWorking(t *testing.T) {
	advised := trimWorkingSet()
	if runtime.GOOS == "linux" && advised <= 0 {
		t.Fatalf("advised %d bytes; the test binary's code should have been trimmed", advised)
	}
	// Code and constant data in use again after the trim.
	var sb strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&sb, "%d,", i)
	}
	if got := len(strings.Split(sb.String(), ",")); got != 1001 {
		t.Fatalf("after trimming, formatting gave %d fields", got)
	}
	ReleaseMemory()
}
