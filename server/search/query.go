package search

import (
	"slices"
	"strings"
	"unicode"
)

// matchQuery is a user's search term turned into an FTS5 query.
type matchQuery struct {
	// match is the FTS5 expression; "" when the term has nothing to
	// search for (only punctuation, or only exclusions).
	match string
	// highlights are the words to highlight in results, lower-cased.
	highlights []string
}

// parseTerm turns a search term into an FTS5 expression, with the small
// syntax Synapse accepts: words (all must match, each as a prefix, so
// "meet" finds "meeting"), "quoted phrases", OR between terms, and
// -word to exclude a word. Everything the user typed ends up inside FTS5
// string literals, so no input can inject FTS5 syntax or fail to parse.
// (A prefix costs more than a whole word: FTS5 gathers all of its matches
// before returning the first. BenchmarkSearch's short-prefix case shows
// what that costs.)
func parseTerm(term string) matchQuery {
	var positive []string // FTS5 operands, with "OR" entries between some
	var negative []string
	var highlights []string
	// Control characters (NUL ends an FTS5 string early) separate words,
	// as the tokenizer treats them anyway.
	term = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, term)
	pendingOr := false
	addOperand := func(op string) {
		if len(positive) > 0 {
			if pendingOr {
				positive = append(positive, "OR")
			}
		}
		pendingOr = false
		positive = append(positive, op)
	}
	for _, tok := range splitTerm(term) {
		if !tok.quoted && strings.EqualFold(tok.text, "or") {
			pendingOr = len(positive) > 0
			continue
		}
		words := tokenWords(tok.text)
		if len(words) == 0 {
			continue
		}
		lit := `"` + strings.ReplaceAll(tok.text, `"`, `""`) + `"`
		switch {
		case tok.negated:
			negative = append(negative, lit)
		case tok.quoted:
			addOperand(lit)
			highlights = append(highlights, words...)
		default:
			addOperand(lit + "*")
			highlights = append(highlights, words...)
		}
	}
	if len(positive) == 0 {
		return matchQuery{}
	}
	match := strings.Join(positive, " ")
	if len(negative) > 0 {
		// FTS5's NOT is binary: what matches on the left and not the right.
		match = "(" + match + ") NOT (" + strings.Join(negative, " OR ") + ")"
	}
	slices.Sort(highlights)
	return matchQuery{match: match, highlights: slices.Compact(highlights)}
}

// termToken is one whitespace-separated piece of a search term.
type termToken struct {
	text    string
	quoted  bool
	negated bool
}

// splitTerm splits a search term on white space, keeping "quoted phrases"
// (an unclosed quote runs to the end) and noting a leading '-'.
func splitTerm(term string) []termToken {
	var out []termToken
	rs := []rune(term)
	for i := 0; i < len(rs); {
		if unicode.IsSpace(rs[i]) {
			i++
			continue
		}
		negated := false
		if rs[i] == '-' && i+1 < len(rs) && !unicode.IsSpace(rs[i+1]) {
			negated = true
			i++
		}
		if rs[i] == '"' {
			end := i + 1
			for end < len(rs) && rs[end] != '"' {
				end++
			}
			out = append(out, termToken{text: string(rs[i+1 : end]), quoted: true, negated: negated})
			i = end + 1
			continue
		}
		end := i
		for end < len(rs) && !unicode.IsSpace(rs[end]) && rs[end] != '"' {
			end++
		}
		out = append(out, termToken{text: string(rs[i:end]), negated: negated})
		i = end
	}
	return out
}

// tokenWords splits text as the index's unicode61 tokenizer does: words
// are runs of letters, numbers (and their combining marks) and private-use
// characters; everything else, emoji included, separates them.
func tokenWords(text string) []string {
	return strings.FieldsFunc(strings.ToLower(text), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsNumber(r) && !unicode.IsMark(r) && !unicode.Is(unicode.Co, r)
	})
}
