package app

import (
	"fmt"
	"strconv"
	"strings"
)

// The desktop app changes a few known keys of palpo.toml (server_name,
// listen, registration.mode, media.max_upload_bytes) and must keep
// everything else: the comments that explain each option, keys the person
// set by hand, their order. Re-encoding the parsed config would lose all of
// that, and rewriting the example with values substituted would lose what
// was edited by hand. So the file is edited as text: a small scanner walks
// it the way a TOML parser does (so a "[" inside a multi-line array or
// string is never mistaken for a table header), finds where the key's value
// is, and replaces just that span, leaving the rest of the line (a trailing
// comment) alone. A key that is missing is added to its table. The caller
// then parses the result and checks the value came out as intended
// (editConfig in settings.go), so a file written in a shape this scanner
// does not expect (an inline table, say) is refused rather than damaged.

// tomlKey is one key = value line the scanner found.
type tomlKey struct {
	full       string // table and key joined with dots, e.g. "registration.mode"
	table      string
	valueStart int // byte offsets of the value in the text
	valueEnd   int
	lineEnd    int // offset just past the line's newline (or len(text))
}

// tomlTable is a [table] header the scanner found.
type tomlTable struct {
	name    string
	lineEnd int // offset just past the header line
	lastEnd int // offset just past the table's last key line (lineEnd if none)
}

// scanTOML lists the keys and tables of text, or fails on text it cannot
// follow (which config.Parse would reject too).
func scanTOML(text string) (keys []tomlKey, tables []tomlTable, err error) {
	s := &tomlScanner{text: text}
	table := ""
	tableIdx := -1
	for {
		s.skipBlank()
		if s.pos >= len(text) {
			return keys, tables, nil
		}
		switch c := text[s.pos]; {
		case c == '\n' || c == '\r':
			s.pos++
		case c == '#':
			s.skipLine()
		case c == '[':
			array := strings.HasPrefix(text[s.pos:], "[[")
			open := 1
			if array {
				open = 2
			}
			end := strings.IndexByte(text[s.pos:], ']')
			if end < 0 {
				return nil, nil, fmt.Errorf("line %d: unclosed table header", s.line())
			}
			name := normalizeKey(text[s.pos+open : s.pos+end])
			if array {
				// Arrays of tables are not Palpo's; keep them apart
				// from any table of the same name.
				name = "[[" + name + "]]"
			}
			s.pos += end + open
			if err := s.endOfLine(); err != nil {
				return nil, nil, err
			}
			table = name
			tables = append(tables, tomlTable{name: name, lineEnd: s.pos, lastEnd: s.pos})
			tableIdx = len(tables) - 1
		default:
			eq := s.keyEnd()
			if eq < 0 {
				return nil, nil, fmt.Errorf("line %d: expected key = value", s.line())
			}
			key := normalizeKey(text[s.pos:eq])
			s.pos = eq + 1
			s.skipBlank()
			start := s.pos
			if err := s.skipValue(); err != nil {
				return nil, nil, err
			}
			end := s.pos
			if err := s.endOfLine(); err != nil {
				return nil, nil, err
			}
			full := key
			if table != "" {
				full = table + "." + key
			}
			keys = append(keys, tomlKey{full: full, table: table, valueStart: start, valueEnd: end, lineEnd: s.pos})
			if tableIdx >= 0 {
				tables[tableIdx].lastEnd = s.pos
			}
		}
	}
}

// normalizeKey turns `a . "b"` into `a.b`: whitespace around dots and the
// quotes of quoted parts do not matter to TOML.
func normalizeKey(k string) string {
	parts := strings.Split(k, ".")
	for i, p := range parts {
		p = strings.TrimSpace(p)
		if len(p) >= 2 && (p[0] == '"' && p[len(p)-1] == '"' || p[0] == '\'' && p[len(p)-1] == '\'') {
			p = p[1 : len(p)-1]
		}
		parts[i] = p
	}
	return strings.Join(parts, ".")
}

type tomlScanner struct {
	text string
	pos  int
}

func (s *tomlScanner) line() int { return strings.Count(s.text[:min(s.pos, len(s.text))], "\n") + 1 }

func (s *tomlScanner) skipBlank() {
	for s.pos < len(s.text) && (s.text[s.pos] == ' ' || s.text[s.pos] == '\t') {
		s.pos++
	}
}

func (s *tomlScanner) skipLine() {
	if i := strings.IndexByte(s.text[s.pos:], '\n'); i >= 0 {
		s.pos += i + 1
	} else {
		s.pos = len(s.text)
	}
}

// endOfLine accepts blanks and a comment after a value or header, and
// moves past the newline.
func (s *tomlScanner) endOfLine() error {
	s.skipBlank()
	if s.pos >= len(s.text) {
		return nil
	}
	switch s.text[s.pos] {
	case '#', '\r', '\n':
		s.skipLine()
		return nil
	}
	return fmt.Errorf("line %d: unexpected text after the value", s.line())
}

// keyEnd finds the '=' ending the key that starts at pos, skipping quoted
// key parts; -1 if the line has none.
func (s *tomlScanner) keyEnd() int {
	for i := s.pos; i < len(s.text); i++ {
		switch s.text[i] {
		case '=':
			return i
		case '\n', '#':
			return -1
		case '"', '\'':
			j := strings.IndexByte(s.text[i+1:], s.text[i])
			if j < 0 {
				return -1
			}
			i += j + 1
		}
	}
	return -1
}

// skipWS skips blanks, newlines and comments (inside arrays).
func (s *tomlScanner) skipWS() {
	for s.pos < len(s.text) {
		switch s.text[s.pos] {
		case ' ', '\t', '\r', '\n':
			s.pos++
		case '#':
			s.skipLine()
		default:
			return
		}
	}
}

// skipValue moves past one TOML value.
func (s *tomlScanner) skipValue() error {
	t := s.text
	if s.pos >= len(t) {
		return fmt.Errorf("line %d: missing value", s.line())
	}
	rest := t[s.pos:]
	switch {
	case strings.HasPrefix(rest, `"""`), strings.HasPrefix(rest, `'''`):
		delim := rest[:3]
		i := 3
		for {
			j := strings.Index(rest[i:], delim)
			if j < 0 {
				return fmt.Errorf("line %d: unclosed multi-line string", s.line())
			}
			i += j
			if delim == `"""` && escaped(rest, i) {
				i++
				continue
			}
			break
		}
		i += 3
		// Up to two more quotes belong to the string ("""a"""" is a").
		for k := 0; k < 2 && i < len(rest) && rest[i] == delim[0]; k++ {
			i++
		}
		s.pos += i
	case rest[0] == '"':
		i := 1
		for ; i < len(rest) && rest[i] != '\n'; i++ {
			if rest[i] == '\\' {
				i++
				continue
			}
			if rest[i] == '"' {
				s.pos += i + 1
				return nil
			}
		}
		return fmt.Errorf("line %d: unclosed string", s.line())
	case rest[0] == '\'':
		j := strings.IndexAny(rest[1:], "'\n")
		if j < 0 || rest[1+j] != '\'' {
			return fmt.Errorf("line %d: unclosed string", s.line())
		}
		s.pos += j + 2
	case rest[0] == '[':
		s.pos++
		for {
			s.skipWS()
			if s.pos >= len(t) {
				return fmt.Errorf("line %d: unclosed array", s.line())
			}
			if t[s.pos] == ']' {
				s.pos++
				return nil
			}
			if err := s.skipValue(); err != nil {
				return err
			}
			s.skipWS()
			if s.pos < len(t) && t[s.pos] == ',' {
				s.pos++
			}
		}
	case rest[0] == '{':
		s.pos++
		for {
			s.skipBlank()
			if s.pos >= len(t) {
				return fmt.Errorf("line %d: unclosed inline table", s.line())
			}
			if t[s.pos] == '}' {
				s.pos++
				return nil
			}
			if t[s.pos] == ',' {
				s.pos++
				continue
			}
			eq := s.keyEnd()
			if eq < 0 {
				return fmt.Errorf("line %d: bad inline table", s.line())
			}
			s.pos = eq + 1
			s.skipBlank()
			if err := s.skipValue(); err != nil {
				return err
			}
		}
	default:
		// A number, boolean or date: up to a blank, separator or comment.
		i := 0
		for i < len(rest) && !strings.ContainsRune(" \t\r\n,]}#", rune(rest[i])) {
			i++
		}
		if i == 0 {
			return fmt.Errorf("line %d: missing value", s.line())
		}
		s.pos += i
	}
	return nil
}

// escaped tells whether the quote at rest[i] follows an odd number of
// backslashes.
func escaped(rest string, i int) bool {
	n := 0
	for j := i - 1; j >= 0 && rest[j] == '\\'; j-- {
		n++
	}
	return n%2 == 1
}

// setTOMLValue returns text with the key full (such as "listen" or
// "registration.mode") set to value, a TOML literal. An existing value is
// replaced in place; a missing key is added at the end of its table, which
// is added at the end of the file when missing (top-level keys go before
// the first table, where TOML needs them).
func setTOMLValue(text, full, value string) (string, error) {
	keys, tables, err := scanTOML(text)
	if err != nil {
		return "", err
	}
	found := false
	for i := len(keys) - 1; i >= 0; i-- {
		k := keys[i]
		if k.full == full {
			text = text[:k.valueStart] + value + text[k.valueEnd:]
			found = true
			break
		}
	}
	if found {
		return text, nil
	}
	table, key := "", full
	if i := strings.LastIndexByte(full, '.'); i >= 0 {
		table, key = full[:i], full[i+1:]
	}
	line := key + " = " + value + "\n"
	if table == "" {
		if len(tables) == 0 {
			return ensureNewline(text) + line, nil
		}
		at := headerStart(text, tables[0].lineEnd)
		return text[:at] + line + "\n" + text[at:], nil
	}
	for _, t := range tables {
		if t.name == table {
			at := t.lastEnd
			prefix := text[:at]
			if at > 0 && text[at-1] != '\n' {
				prefix += "\n"
			}
			return prefix + line + text[at:], nil
		}
	}
	return ensureNewline(text) + "\n[" + table + "]\n" + line, nil
}

// headerStart finds the start of the header line that ends at lineEnd.
func headerStart(text string, lineEnd int) int {
	end := lineEnd
	if end > 0 && text[end-1] == '\n' {
		end--
	}
	return strings.LastIndexByte(text[:end], '\n') + 1
}

func ensureNewline(text string) string {
	if text != "" && !strings.HasSuffix(text, "\n") {
		return text + "\n"
	}
	return text
}

// TOML literals for the values the app writes.

func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func tomlStrings(list []string) string {
	parts := make([]string, len(list))
	for i, s := range list {
		parts[i] = tomlString(s)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func tomlInt(n int64) string { return strconv.FormatInt(n, 10) }
