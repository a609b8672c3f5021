package outbound

import (
	"encoding/json"
	"testing"
	"time"
)

func TestStripUnsigned(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"type":"m.room.message","content":{"body":"unsigned"}}`, `{"type":"m.room.message","content":{"body":"unsigned"}}`},
		{`{"type":"m.room.message","unsigned":{"age":5},"content":{}}`, `{"content":{},"type":"m.room.message"}`},
		{`not json "unsigned"`, `not json "unsigned"`},
	} {
		got := stripUnsigned([]byte(tc.in))
		if string(got) != tc.want {
			t.Errorf("stripUnsigned(%s) = %s, want %s", tc.in, got, tc.want)
		}
		if json.Valid([]byte(tc.in)) && !json.Valid(got) {
			t.Errorf("stripUnsigned(%s) is not JSON", tc.in)
		}
	}
}

func TestNewTxnIDsDiffer(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := newTxnID(time.Unix(1_800_000_000, 0))
		if seen[id] {
			t.Fatalf("transaction ID %s repeated", id)
		}
		seen[id] = true
	}
}
