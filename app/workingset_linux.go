package app

import (
	"bufio"
	"bytes"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// trimWorkingSet drops this program's clean read-only file pages (its code
// and constant data) from the process's resident set, like Windows' "empty
// working set": much of a Go program's code runs once at start (package
// initialisation, migrations), and the kernel maps it in 64 KiB at a time,
// so it would count against the resident size for the life of the process.
// Only mappings of the executable that cannot be written and hold no page
// of their own (no anonymous page) are touched: a dynamically linked build
// has relocated, read-only data that must stay: a dropped page is read back from the
// page cache the next time it runs (a minor fault), with identical
// contents. It returns how many bytes of mappings it advised.
func trimWorkingSet() int64 {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return 0
	}
	smaps, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		return 0
	}
	var advised int64
	for _, m := range cleanReadOnlyMappings(smaps, exe) {
		if err := madviseRange(uintptr(m.start), uintptr(m.end-m.start)); err == nil {
			advised += int64(m.end - m.start)
		}
	}
	return advised
}

type mapping struct{ start, end uint64 }

// cleanReadOnlyMappings returns the mappings in an smaps listing of the file
// path that are private, not writable, and have no anonymous page.
func cleanReadOnlyMappings(smaps []byte, path string) []mapping {
	var out []mapping
	var cur mapping
	candidate, clean := false, false
	flush := func() {
		if candidate && clean {
			out = append(out, cur)
		}
		candidate = false
	}
	sc := bufio.NewScanner(bytes.NewReader(smaps))
	for sc.Scan() {
		line := sc.Bytes()
		f := bytes.Fields(line)
		if len(f) == 0 {
			continue
		}
		if start, end, ok := bytes.Cut(f[0], []byte("-")); ok && len(f) >= 5 && !bytes.HasSuffix(f[0], []byte(":")) {
			// A mapping's header: start-end perms offset dev inode [path].
			flush()
			lo, err1 := strconv.ParseUint(string(start), 16, 64)
			hi, err2 := strconv.ParseUint(string(end), 16, 64)
			perms := f[1]
			candidate = err1 == nil && err2 == nil && hi > lo && len(f) >= 6 && string(f[5]) == path &&
				len(perms) == 4 && perms[0] == 'r' && perms[1] != 'w' && perms[3] == 'p'
			cur, clean = mapping{lo, hi}, true
			continue
		}
		if !candidate || len(f) < 2 {
			continue
		}
		switch string(f[0]) {
		case "Anonymous:", "Swap:":
			// A page of its own (copied on write, as relocated data
			// is) is anonymous; dirty page-cache pages (a file just
			// written) are not, and are safe to drop.
			if string(f[1]) != "0" {
				clean = false
			}
		}
	}
	flush()
	return out
}

func madviseRange(addr, length uintptr) error {
	_, _, errno := unix.Syscall(unix.SYS_MADVISE, addr, length, unix.MADV_DONTNEED)
	if errno != 0 {
		return errno
	}
	return nil
}
