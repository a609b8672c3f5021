// Package outbound is the federation sender: one persisted queue per
// destination server, fed from the committed event stream and from EDUs,
// sent as transactions of at most 50 PDUs and 100 EDUs, one in flight per
// destination, retried with exponential backoff until answered 200.
//
// Nothing is lost across a crash: PDUs are queued from the event stream
// (events past a persisted position are queued again at start), a
// transaction's rows are deleted only after a 200, and an unanswered
// transaction is resent under the same ID with the same contents, as the
// spec asks ("the sending server must wait and retry for a 200 OK response
// before sending a transaction with a different txnId").
package outbound

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"time"

	mfed "maunium.net/go/mautrix/federation"

	"github.com/palpo-im/palpo-desktop/server/rooms"
	"github.com/palpo-im/palpo-desktop/server/storage"
)

// TransactionSender sends one transaction to a destination (PUT
// /_matrix/federation/v1/send/{txnId}); *mfed.Client is one.
type TransactionSender interface {
	SendTransaction(ctx context.Context, req *mfed.ReqSendTransaction) (*mfed.RespSendTransaction, error)
}

// Limits of one transaction (spec: "Transactions").
const (
	MaxPDUsPerTxn = 50
	MaxEDUsPerTxn = 100
	// maxTypingPerTxn leaves room for persisted EDUs beside typing ones.
	maxTypingPerTxn = 50
)

// Backoff defaults: a destination that fails waits 5 s, then twice as
// long after each further failure, up to an hour, each wait varied by
// ±20% so that servers coming back do not all get retried at once.
const (
	DefaultMinBackoff  = 5 * time.Second
	DefaultMaxBackoff  = time.Hour
	DefaultSendTimeout = 2 * time.Minute
	backoffJitter      = 0.2
	// catchUpPage is how many events one queueing step reads.
	catchUpPage = 500
	// positionWriteEvery is how far the queue position may run ahead of
	// the stored one when there is nothing to queue.
	positionWriteEvery = 1000
	// errorPause is how long background work waits after a database error.
	errorPause = 5 * time.Second
)

// Sender is the outbound federation queue.
type Sender struct {
	db         *storage.DB
	serverName string
	tx         TransactionSender
	log        *slog.Logger

	// Now is the clock (tests replace it before Start).
	Now func() time.Time
	// Jitter returns a number in [0, 1) that spreads backoff delays
	// (math/rand/v2's Float64 unless a test fixes it).
	Jitter func() float64
	// MinBackoff and MaxBackoff bound the wait after failures.
	MinBackoff, MaxBackoff time.Duration
	// SendTimeout bounds one transaction attempt.
	SendTimeout time.Duration

	queueMu sync.Mutex // one catch-up at a time; guards the positions
	// queuedThrough is how far the stream has been scanned, and
	// persistedThrough how far the database says (-1: not read yet).
	queuedThrough, persistedThrough int64
	nudge                           chan struct{}

	loadBackoffs sync.Once

	mu         sync.Mutex
	dests      map[string]*dest
	backingOff map[string]bool
	typing     map[string]map[string]json.RawMessage // destination → room|user → m.typing EDU
	started    bool
	ctx        context.Context
	cancel     context.CancelFunc
	wg         sync.WaitGroup
}

// dest is one destination's in-memory state.
type dest struct {
	name string
	// sendMu keeps one transaction in flight per destination, whether the
	// background worker or Flush sends it.
	sendMu sync.Mutex
	// inflight is the transaction sent and not yet answered 200, resent as
	// is; nil when the next one is to be made.
	inflight *mfed.ReqSendTransaction
	running  bool
	kick     chan struct{}
}

// New builds the sender. It does nothing until Start (or Flush).
func New(db *storage.DB, serverName string, sender TransactionSender, log *slog.Logger) *Sender {
	return &Sender{
		db: db, serverName: serverName, tx: sender, log: log,
		Now: time.Now, Jitter: randFloat,
		MinBackoff: DefaultMinBackoff, MaxBackoff: DefaultMaxBackoff, SendTimeout: DefaultSendTimeout,
		nudge:         make(chan struct{}, 1),
		queuedThrough: -1, persistedThrough: -1,
		dests:      map[string]*dest{},
		backingOff: map[string]bool{},
		typing:     map[string]map[string]json.RawMessage{},
	}
}

// Start queues the events committed since the last run, then sends in the
// background until Stop: every destination owed something gets a worker,
// which waits out its backoff first.
func (s *Sender) Start() {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.started = true
	s.mu.Unlock()
	s.wg.Add(2)
	go s.runQueuer()
	go s.runPresencePing()
	s.nudgeQueuer()
}

// Stop ends the background work, abandoning (not failing) transactions in
// flight: they are resent, under the same ID, after the next Start.
func (s *Sender) Stop() {
	s.mu.Lock()
	if !s.started {
		s.mu.Unlock()
		return
	}
	s.cancel()
	s.mu.Unlock()
	s.wg.Wait()
	s.mu.Lock()
	s.started = false
	for _, d := range s.dests {
		d.running = false
	}
	s.mu.Unlock()
}

// RoomEvents is a rooms listener (register it with rooms.Service.OnEvent):
// events of this server's users were committed, so the queuer reads the
// stream. It only signals; the stream, not this call, says what to queue,
// so an event whose call is lost to a crash is still queued at the next
// start.
func (s *Sender) RoomEvents(evs []*rooms.Event) {
	for _, ev := range evs {
		if ev.PDU.Sender.Homeserver() == s.serverName && !ev.Rejected {
			s.nudgeQueuer()
			return
		}
	}
}

// Wake tells the sender a destination is up (it just sent us something):
// its backoff ends and what it is owed is sent now.
func (s *Sender) Wake(destination string) {
	s.loadBackoffs.Do(func() {
		// Backoffs recorded before a restart: read once, so that a Wake
		// for a destination not backing off costs no database write.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		rows, err := s.db.FederationDestinations(ctx)
		if err != nil {
			s.log.Warn("federation: read backoffs", "error", err)
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, r := range rows {
			if r.RetryCount > 0 || r.NextRetryTS > 0 {
				s.backingOff[r.Destination] = true
			}
		}
	})
	s.mu.Lock()
	off := s.backingOff[destination]
	delete(s.backingOff, destination)
	s.mu.Unlock()
	if !off {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.db.ResetFederationBackoff(ctx, destination); err != nil {
		s.log.Warn("federation: reset backoff", "destination", destination, "error", err)
	}
	s.kickWorker(destination)
}

// DestinationStatus is one destination as the admin API and the app show
// it.
type DestinationStatus struct {
	Name string
	// Queued counts the PDUs and persisted EDUs owed.
	Queued      int
	RetryCount  int
	LastError   string
	NextRetry   time.Time // zero when not backing off
	LastSuccess time.Time // zero when never reached
}

// Destinations lists every destination queued for, by name.
func (s *Sender) Destinations(ctx context.Context) ([]DestinationStatus, error) {
	rows, err := s.db.FederationDestinations(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]DestinationStatus, len(rows))
	for i, r := range rows {
		out[i] = DestinationStatus{Name: r.Destination, Queued: r.Queued, RetryCount: r.RetryCount, LastError: r.LastError}
		if r.NextRetryTS > 0 {
			out[i].NextRetry = time.UnixMilli(r.NextRetryTS)
		}
		if r.LastSuccessTS > 0 {
			out[i].LastSuccess = time.UnixMilli(r.LastSuccessTS)
		}
	}
	return out, nil
}

// Flush queues what the event stream holds and sends every destination
// whose backoff is over (by Now) until it is owed nothing or an attempt
// fails, in the caller's goroutine: tests use it instead of Start to
// run deterministically. Failed sends are recorded, not returned; the
// error is for the database.
func (s *Sender) Flush(ctx context.Context) error {
	if err := s.catchUp(ctx); err != nil {
		return err
	}
	names, err := s.db.FederationDestinationsWithWork(ctx)
	if err != nil {
		return err
	}
	s.mu.Lock()
	for name := range s.typing {
		names = append(names, name)
	}
	s.mu.Unlock()
	var errs []error
	for _, name := range names {
		d := s.dest(name)
		for {
			sent, err := s.sendOnce(ctx, d)
			var fail *sendError
			if errors.As(err, &fail) || errors.Is(err, errNotDue) {
				break
			}
			if err != nil {
				errs = append(errs, err)
				break
			}
			if !sent {
				break
			}
		}
	}
	return errors.Join(errs...)
}

// dest returns a destination's state, made on first use.
func (s *Sender) dest(name string) *dest {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.dests[name]
	if !ok {
		d = &dest{name: name, kick: make(chan struct{}, 1)}
		s.dests[name] = d
	}
	return d
}

// kickWorker makes sure a destination's worker runs and looks for work
// (when the sender has been started).
func (s *Sender) kickWorker(name string) {
	d := s.dest(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started || s.ctx.Err() != nil {
		return
	}
	if !d.running {
		d.running = true
		s.wg.Add(1)
		go s.runWorker(d)
		return
	}
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

func (s *Sender) nudgeQueuer() {
	select {
	case s.nudge <- struct{}{}:
	default:
	}
}
