package app

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// The desktop app's Logs tab shows the server's log live. Open tees the
// logger into a LogBuffer: every record still goes to standard error as
// before, and the last few thousand are also kept in memory for the window.

// logBufferSize is how many records the Logs tab can show: enough for a bug
// report, small enough (a few hundred KB) not to matter on an idle server.
const logBufferSize = 2000

// LogEntry is one log record as the Logs tab shows it.
type LogEntry struct {
	Seq     uint64 // 1, 2, 3… in the order logged, never reused
	Time    time.Time
	Level   slog.Level
	Message string
	Attrs   string // key=value pairs as the text log writes them
}

// String is the entry as one line of text, the way a bug report wants it.
func (e LogEntry) String() string {
	s := e.Time.Format("2006-01-02 15:04:05") + " " + e.Level.String() + " " + e.Message
	if e.Attrs != "" {
		s += " " + e.Attrs
	}
	return s
}

// LogBuffer keeps the newest log entries in memory and tells subscribers
// when new ones arrive. It is safe for concurrent use.
type LogBuffer struct {
	mu      sync.Mutex
	ring    []LogEntry // ring[(start+i)%cap] for i < n
	start   int
	n       int
	seq     uint64
	subs    map[chan struct{}]struct{}
	scratch bytes.Buffer // the attributes of the record being handled
}

// NewLogBuffer makes a buffer holding the last capacity entries.
func NewLogBuffer(capacity int) *LogBuffer {
	if capacity < 1 {
		capacity = 1
	}
	return &LogBuffer{ring: make([]LogEntry, capacity), subs: map[chan struct{}]struct{}{}}
}

// Entries returns the kept entries, oldest first.
func (b *LogBuffer) Entries() []LogEntry {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]LogEntry, b.n)
	for i := range b.n {
		out[i] = b.ring[(b.start+i)%len(b.ring)]
	}
	return out
}

// Subscribe returns a channel that receives a value soon after new entries
// arrive (several entries may share one value: it never blocks the logger),
// and a function that ends the subscription.
func (b *LogBuffer) Subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	b.mu.Lock()
	b.subs[ch] = struct{}{}
	b.mu.Unlock()
	return ch, func() {
		b.mu.Lock()
		delete(b.subs, ch)
		b.mu.Unlock()
	}
}

func (b *LogBuffer) add(e LogEntry) {
	b.seq++
	e.Seq = b.seq
	if b.n < len(b.ring) {
		b.ring[(b.start+b.n)%len(b.ring)] = e
		b.n++
	} else {
		b.ring[b.start] = e
		b.start = (b.start + 1) % len(b.ring)
	}
	for ch := range b.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// Handler returns a slog handler that records into b at level and above.
func (b *LogBuffer) Handler(level slog.Leveler) slog.Handler {
	// A text handler formats the attributes (with WithAttrs and WithGroup
	// applied exactly as on standard error) into b.scratch; time, level and
	// message are kept as fields so the tab can filter and format them.
	inner := slog.NewTextHandler(scratchWriter{b}, &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && (a.Key == slog.TimeKey || a.Key == slog.LevelKey || a.Key == slog.MessageKey) {
				return slog.Attr{}
			}
			return a
		},
	})
	return &bufferHandler{b: b, inner: inner}
}

// scratchWriter writes into the buffer's scratch space; Handle holds b.mu
// around every write, so it takes no lock itself.
type scratchWriter struct{ b *LogBuffer }

func (w scratchWriter) Write(p []byte) (int, error) { return w.b.scratch.Write(p) }

type bufferHandler struct {
	b     *LogBuffer
	inner slog.Handler
}

func (h *bufferHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h *bufferHandler) Handle(ctx context.Context, r slog.Record) error {
	h.b.mu.Lock()
	defer h.b.mu.Unlock()
	h.b.scratch.Reset()
	err := h.inner.Handle(ctx, r)
	h.b.add(LogEntry{Time: r.Time, Level: r.Level, Message: r.Message, Attrs: strings.TrimSpace(h.b.scratch.String())})
	return err
}

func (h *bufferHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &bufferHandler{b: h.b, inner: h.inner.WithAttrs(attrs)}
}

func (h *bufferHandler) WithGroup(name string) slog.Handler {
	return &bufferHandler{b: h.b, inner: h.inner.WithGroup(name)}
}
