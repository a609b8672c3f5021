//go:build !linux

package app

// trimWorkingSet is Linux-only; elsewhere the system trims by itself.
func trimWorkingSet() int64 { return 0 }
