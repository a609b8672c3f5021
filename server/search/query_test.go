package search

import (
	"database/sql"
	"slices"
	"testing"

	_ "modernc.org/sqlite"
)

func TestParseTerm(t *testing.T) {
	for _, c := range []struct {
		term, match string
		highlights  []string
	}{
		{"walrus", `"walrus"*`, []string{"walrus"}},
		{"Walrus  Club", `"Walrus"* "Club"*`, []string{"club", "walrus"}},
		{`"big walrus" tusk`, `"big walrus" "tusk"*`, []string{"big", "tusk", "walrus"}},
		{"cats or dogs", `"cats"* OR "dogs"*`, []string{"cats", "dogs"}},
		{"or cats OR", `"cats"*`, []string{"cats"}},
		{"tea -coffee", `("tea"*) NOT ("coffee")`, []string{"tea"}},
		{"-coffee", "", nil},
		{"e-mail", `"e-mail"*`, []string{"e", "mail"}},
		{`say "hi`, `"say"* "hi"`, []string{"hi", "say"}},
		{`a"b`, `"a"* "b"`, []string{"a", "b"}},
		{`""""`, "", nil},
		{"!!! ... 😀", "", nil},
		{`x"y"z`, `"x"* "y" "z"*`, []string{"x", "y", "z"}},
		{"", "", nil},
	} {
		q := parseTerm(c.term)
		if q.match != c.match || !slices.Equal(q.highlights, c.highlights) {
			t.Errorf("parseTerm(%q) = %q %q, want %q %q", c.term, q.match, q.highlights, c.match, c.highlights)
		}
	}
}

// FuzzParseTerm checks that FTS5 accepts whatever parseTerm makes of any
// input: a search term must never become a database error.
func FuzzParseTerm(f *testing.F) {
	db, err := sql.Open("sqlite", ":memory:")
	if err != nil {
		f.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE VIRTUAL TABLE t USING fts5 (value, tokenize = 'unicode61 remove_diacritics 2');
INSERT INTO t (value) VALUES ('walrus club meeting'), ('café au lait')`); err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{"walrus", `"a b" -c OR d`, `"`, `-`, `- -`, `OR OR`, `NOT AND`, `*`, `"x""y"`, `^a`, `col:x`, `(a`, "\x00", "a\u0301"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, term string) {
		q := parseTerm(term)
		if q.match == "" {
			return
		}
		rows, err := db.Query(`SELECT rowid FROM t WHERE t MATCH ?`, q.match)
		if err != nil {
			t.Fatalf("term %q: FTS5 refused %q: %v", term, q.match, err)
		}
		for rows.Next() {
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("term %q: FTS5 refused %q: %v", term, q.match, err)
		}
		rows.Close()
	})
}
