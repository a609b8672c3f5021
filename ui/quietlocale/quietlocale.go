// Package quietlocale keeps Fyne from logging "Fyne error: Error parsing
// user locale C" at start-up on systems whose locale is C.UTF-8 or
// POSIX.UTF-8 (Debian's default in containers, many minimal installs).
//
// Fyne reads the locale from LC_ALL, LC_MESSAGES or LANG when its lang
// package initialises, before main runs; "C.UTF-8" loses its encoding and
// leaves "C", which is no language. The C locale means untranslated, that
// is English, so this package says so in LANGUAGE, which Fyne reads first
// when the locale is not exactly "C". Imported (blank) by package main, it
// is initialised before Fyne's lang package: Go initialises the packages
// that are ready in import-path order, and lang waits for packages such as
// text/template and golang.org/x/text, whose paths sort after this one.
package quietlocale

import (
	"os"
	"runtime"
	"strings"
)

func init() {
	if runtime.GOOS == "windows" || runtime.GOOS == "darwin" {
		return // the locale comes from the system there, not the environment
	}
	if v, ok := Fix(os.Getenv); ok {
		os.Setenv("LANGUAGE", v)
	}
}

// Fix says what LANGUAGE should be set to (and whether to set it) for
// the environment getenv reads: "en" when the locale is C or POSIX with an
// encoding and LANGUAGE is not set.
func Fix(getenv func(string) string) (string, bool) {
	locale := ""
	for _, k := range []string{"LC_ALL", "LC_MESSAGES", "LANG"} {
		if locale = getenv(k); locale != "" {
			break
		}
	}
	lang, _, hasEncoding := strings.Cut(locale, ".")
	if !hasEncoding || (lang != "C" && lang != "POSIX") || getenv("LANGUAGE") != "" {
		return "", false
	}
	return "en", true
}
