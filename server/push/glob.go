package push

import (
	"regexp"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// Push rule patterns (spec: "Push Rules", event_match): globs where * is
// any run of characters and ? exactly one, matched ignoring case against
// the whole value, or for content.body against any run of the body that
// starts and ends at word boundaries (a word character being one of
// [A-Za-z0-9_]).

// matcher tests a value against a pattern.
type matcher interface {
	MatchString(text string) bool
}

// globMatcher returns the matcher of a glob. A glob without wildcards — a
// user's own name in their default rules, most keyword rules — is matched
// without a regexp: a compiled regexp costs tens of kilobytes, and every
// user's ruleset has a different name. Globs with wildcards compile once
// and are shared between rulesets (a regexp is safe for concurrent use).
func globMatcher(glob string, words bool) matcher {
	if glob != "" && !strings.ContainsAny(glob, "*?") {
		return literalMatcher{lit: glob, words: words}
	}
	key := strconv.FormatBool(words) + glob
	globCache.Lock()
	defer globCache.Unlock()
	if re, ok := globCache.m[key]; ok {
		return re
	}
	re := globRegexp(glob, words)
	if globCache.m == nil || len(globCache.m) >= maxGlobCache {
		globCache.m = map[string]*regexp.Regexp{}
	}
	globCache.m[key] = re
	return re
}

var globCache struct {
	sync.Mutex
	m map[string]*regexp.Regexp
}

// maxGlobCache bounds the shared regexps (users' own rules add theirs).
const maxGlobCache = 4096

// nonWord matches a character that makes a word boundary.
const nonWord = `[^A-Za-z0-9_]`

// globRegexp compiles a glob into a case-insensitive regular expression
// matching either the whole value, or with words, any substring that
// starts and ends at word boundaries.
func globRegexp(glob string, words bool) *regexp.Regexp {
	var b strings.Builder
	// Case is ignored in the glob only: under (?i) the boundary class
	// would also exclude the Kelvin sign and the long s, which fold to k
	// and s, though the spec's word characters are ASCII alone.
	b.WriteString(`(?s)`)
	if words {
		b.WriteString(`(?:^|` + nonWord + `)`)
	} else {
		b.WriteString(`^`)
	}
	b.WriteString(`(?i:`)
	for _, r := range glob {
		switch r {
		case '*':
			b.WriteString(`.*`)
		case '?':
			b.WriteString(`.`)
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	b.WriteString(`)`)
	if words {
		b.WriteString(`(?:` + nonWord + `|$)`)
	} else {
		b.WriteString(`$`)
	}
	return regexp.MustCompile(b.String())
}

// literalMatcher matches what globRegexp's regexp of a glob without
// wildcards matches, with the same (simple) case folding.
type literalMatcher struct {
	lit   string
	words bool
}

func (m literalMatcher) MatchString(text string) bool {
	if !m.words {
		return strings.EqualFold(text, m.lit)
	}
	for i := 0; i < len(text); {
		if i == 0 || !isWordRune(lastRune(text[:i])) {
			if n, ok := foldPrefix(text[i:], m.lit); ok && (i+n == len(text) || !isWordRune(firstRune(text[i+n:]))) {
				return true
			}
		}
		_, size := utf8.DecodeRuneInString(text[i:])
		i += size
	}
	return false
}

// foldPrefix tells whether text starts with lit ignoring case, and how many
// bytes of text that prefix takes (folding can change a rune's length).
func foldPrefix(text, lit string) (int, bool) {
	n := 0
	for _, want := range lit {
		if n >= len(text) {
			return 0, false
		}
		got, size := utf8.DecodeRuneInString(text[n:])
		if !equalFoldRune(got, want) {
			return 0, false
		}
		n += size
	}
	return n, true
}

func equalFoldRune(a, b rune) bool {
	if a == b {
		return true
	}
	for r := unicode.SimpleFold(a); r != a; r = unicode.SimpleFold(r) {
		if r == b {
			return true
		}
	}
	return false
}

func isWordRune(r rune) bool {
	return r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')
}

func lastRune(s string) rune {
	r, _ := utf8.DecodeLastRuneInString(s)
	return r
}

func firstRune(s string) rune {
	r, _ := utf8.DecodeRuneInString(s)
	return r
}
