package app

import "testing"

// TestCleanReadOnlyMappings: only private, read-only mappings of the
// executable without pages of their own are trimmed (dirty page-cache pages
// of a file just written are fine); relocated read-only data (anonymous
// pages), writable data and other files are left alone.
func TestCleanReadOnlyMappings(t *testing.T) {
	const exe = "/opt/palpo/palpo"
	smaps := `00400000-00800000 r-xp 00000000 08:01 123 /opt/palpo/palpo
Size:               4096 kB
Rss:                2048 kB
Private_Dirty:       512 kB
Anonymous:             0 kB
00800000-00a00000 r--p 00400000 08:01 123 /opt/palpo/palpo
Size:               2048 kB
Private_Dirty:         0 kB
Anonymous:             0 kB
00a00000-00a10000 r--p 00600000 08:01 123 /opt/palpo/palpo
Size:                 64 kB
Private_Dirty:         8 kB
Anonymous:             8 kB
00a10000-00a20000 rw-p 00610000 08:01 123 /opt/palpo/palpo
Size:                 64 kB
Private_Dirty:        64 kB
7f0000000000-7f0000100000 r-xp 00000000 08:01 456 /usr/lib/libc.so.6
Size:               1024 kB
Private_Dirty:         0 kB
`
	got := cleanReadOnlyMappings([]byte(smaps), exe)
	want := []mapping{{0x400000, 0x800000}, {0x800000, 0xa00000}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("mappings %x, want %x (text and clean rodata only)", got, want)
	}
}
