package app

import "testing"

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
