package accounts

import (
	"runtime/metrics"
	"slices"
	"testing"
	"time"
)

func TestHashAndVerifyPassword(t *testing.T) {
	h, err := HashPassword("hunter2")
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := VerifyPassword(h, "hunter2"); !ok || err != nil {
		t.Fatalf("right password: %v %v", ok, err)
	}
	if ok, err := VerifyPassword(h, "hunter3"); ok || err != nil {
		t.Fatalf("wrong password: %v %v", ok, err)
	}
	h2, _ := HashPassword("hunter2")
	if h == h2 {
		t.Fatal("two hashes of one password are equal: no salt")
	}
	p := PasswordHashParams()
	for _, bad := range []string{"", "$argon2id$v=19$m=0,t=2,p=1$c2FsdA$a2V5", "$argon2i$v=19$m=19456,t=2,p=1$c2FsdA$a2V5", "$argon2id$v=18$m=19456,t=2,p=1$c2FsdA$a2V5", "$argon2id$v=19$m=19456,t=2,p=1$!!$a2V5"} {
		if _, err := VerifyPassword(bad, "x"); err == nil {
			t.Errorf("hash %q accepted", bad)
		}
	}
	if p.MemoryKiB < 19*1024 || p.Time < 2 || p.Threads < 1 {
		t.Fatalf("argon2id parameters below OWASP's minimum: %+v", p)
	}
}

// TestHashLeavesHeapSmall: after a password is hashed or checked, the
// collector's next goal follows what is really live, not the hash's 19 MiB
// of scratch memory (which a collection during the hash counts as live,
// letting the heap double to over 40 MB before the next one).
func TestHashLeavesHeapSmall(t *testing.T) {
	goal := []metrics.Sample{{Name: "/gc/heap/goal:bytes"}}
	check := func(what string) {
		t.Helper()
		metrics.Read(goal)
		if g := goal[0].Value.Uint64(); g >= 19<<20 {
			t.Errorf("after %s the heap goal is %.1f MiB, want under 19", what, float64(g)/(1<<20))
		}
	}
	h, err := HashPassword("hunter2")
	if err != nil {
		t.Fatal(err)
	}
	check("hashing")
	if _, err := VerifyPassword(h, "hunter2"); err != nil {
		t.Fatal(err)
	}
	check("verifying")
}

// BenchmarkHashPassword measures one argon2id hash, the cost of every
// password login (verifying costs the same as hashing).
func BenchmarkHashPassword(b *testing.B) {
	var lat []time.Duration
	for b.Loop() {
		start := time.Now()
		if _, err := HashPassword("correct horse battery staple"); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(len(lat))/b.Elapsed().Seconds(), "hashes/s")
	p := PasswordHashParams()
	b.ReportMetric(float64(p.MemoryKiB), "argon-KiB")
}
