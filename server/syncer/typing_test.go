package syncer

import (
	"testing"
	"time"
)

// Typing positions follow the clock in microseconds and strictly increase,
// even for changes within the same microsecond, so a restarted server (a
// fresh typingState) starts past the positions handed out before.
func TestTypingPositions(t *testing.T) {
	var ts typingState
	start := time.Now().UnixMicro()
	first := ts.position()
	if first < start {
		t.Fatalf("first position %d is before the clock (%d)", first, start)
	}
	if again := ts.position(); again != first {
		t.Fatalf("position moved without a change: %d then %d", first, again)
	}
	prev := first
	for range 1000 {
		p := ts.bump()
		if p <= prev {
			t.Fatalf("position went from %d to %d", prev, p)
		}
		prev = p
	}
	// Once the clock has passed the last position, a fresh state (a
	// restart) starts after it.
	for time.Now().UnixMicro() <= prev {
		time.Sleep(time.Millisecond)
	}
	var restarted typingState
	if p := restarted.position(); p <= prev {
		t.Fatalf("position after a restart %d is not past %d", p, prev)
	}
}
