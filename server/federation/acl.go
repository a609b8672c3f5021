package federation

import (
	"regexp"
	"strings"
)

// serverACL is allow_servers/deny_servers compiled: globs with * (any run
// of characters) and ? (one character), as in m.room.server_acl.
type serverACL struct {
	allow []*regexp.Regexp
	deny  []*regexp.Regexp
}

func newServerACL(allow, deny []string) serverACL {
	return serverACL{allow: compileGlobs(allow), deny: compileGlobs(deny)}
}

func compileGlobs(globs []string) []*regexp.Regexp {
	out := make([]*regexp.Regexp, 0, len(globs))
	for _, g := range globs {
		expr := regexp.QuoteMeta(g)
		expr = strings.ReplaceAll(expr, `\*`, `.*`)
		expr = strings.ReplaceAll(expr, `\?`, `.`)
		// Host names are case-insensitive.
		out = append(out, regexp.MustCompile(`(?i)^`+expr+`$`))
	}
	return out
}

func matchAny(res []*regexp.Regexp, name string) bool {
	for _, re := range res {
		if re.MatchString(name) {
			return true
		}
	}
	return false
}

// allowed: not denied, and listed when there is an allow list.
func (a serverACL) allowed(name string) bool {
	if matchAny(a.deny, name) {
		return false
	}
	return len(a.allow) == 0 || matchAny(a.allow, name)
}
