package push

import (
	"math/rand/v2"
	"testing"
)

// TestLiteralMatcherAgreesWithRegexp checks the regexp-free matcher of
// wildcard-free globs against the regexp it replaces, on hand-picked and
// random texts (case, Unicode folding, word boundaries, invalid UTF-8).
func TestLiteralMatcherAgreesWithRegexp(t *testing.T) {
	lits := []string{"alice", "Alice", "bob_b", "o'neil", "k", "straße", "ǅemal", "a.b", "x"}
	texts := []string{
		"", "alice", "ALICE", "hi alice!", "hialice", "alice_", "_alice", "alice2", "(alice)", "alicealice alice",
		"Kelvin \u212a", "\u212a", "k", "ǆemal says hi", "ǅEMAL", "STRASSE", "straße", "a.b.c", "a-b", "é alice é",
		"alice\n", "\nalice", "\xffalice\xff", "xx", "x x", "o'neil's", "O'NEIL",
	}
	alphabet := []rune("aAlLiIcCeEkK\u212a_ .'xbß-é\n0")
	rng := rand.New(rand.NewPCG(1, 2))
	for range 3000 {
		n := rng.IntN(12)
		rs := make([]rune, n)
		for i := range rs {
			rs[i] = alphabet[rng.IntN(len(alphabet))]
		}
		texts = append(texts, string(rs))
	}
	for _, lit := range lits {
		for _, words := range []bool{true, false} {
			re := globRegexp(lit, words)
			m := literalMatcher{lit: lit, words: words}
			for _, text := range texts {
				if got, want := m.MatchString(text), re.MatchString(text); got != want {
					t.Errorf("literal %q (words %v) on %q: %v, the regexp says %v", lit, words, text, got, want)
				}
			}
		}
	}
}

func TestGlobMatcherKinds(t *testing.T) {
	if _, ok := globMatcher("alice", true).(literalMatcher); !ok {
		t.Error("a wildcard-free glob should not compile a regexp")
	}
	a, b := globMatcher("*.alice", false), globMatcher("*.alice", false)
	if a != b {
		t.Error("the same wildcard glob should share one regexp")
	}
	if !globMatcher("al?ce*", false).MatchString("ALICE smith") || globMatcher("al?ce", false).MatchString("alice smith") {
		t.Error("wildcard glob matching")
	}
}
