package app

import (
	"bufio"
	"bytes"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// trimWorkingSet drops this program's read-only file pages (its code and
// constant data) from the process's resident set, like Windows' "empty
// working set": much of a Go program's code runs once at start (package
// initialisation, migrations), and the kernel maps it in 64 KiB at a time,
// so it would count against the resident size for the life of the process.
// Only mappings of the executable that can never be written are touched:
// a dropped page is read back from the page cache the next time it runs
// (a minor fault), with identical contents. It returns how many bytes of
// mappings it advised.
func trimWorkingSet() int64 {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return 0
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return 0
	}
	var advised int64
	sc := bufio.NewScanner(bytes.NewReader(maps))
	for sc.Scan() {
		// start-end perms offset dev inode path
		f := bytes.Fields(sc.Bytes())
		if len(f) < 6 || string(f[5]) != exe {
			continue
		}
		perms := f[1]
		if len(perms) < 4 || perms[1] == 'w' || perms[3] != 'p' {
			continue
		}
		start, end, ok := bytes.Cut(f[0], []byte("-"))
		if !ok {
			continue
		}
		lo, err1 := strconv.ParseUint(string(start), 16, 64)
		hi, err2 := strconv.ParseUint(string(end), 16, 64)
		if err1 != nil || err2 != nil || hi <= lo {
			continue
		}
		if err := madviseRange(uintptr(lo), uintptr(hi-lo)); err == nil {
			advised += int64(hi - lo)
		}
	}
	return advised
}

func madviseRange(addr, length uintptr) error {
	_, _, errno := unix.Syscall(unix.SYS_MADVISE, addr, length, unix.MADV_DONTNEED)
	if errno != 0 {
		return errno
	}
	return nil
}
