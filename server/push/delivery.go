package push

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/storage"
)

// Delivery of notifications to push gateways (spec: "Push Gateway API";
// the behaviour follows Synapse's HttpPusher).
//
// Every http pusher has a worker goroutine that sends its user's
// notifications (push_actions rows that notify) one at a time, in stream
// order, to the pusher's gateway. Recording a notification only wakes the
// workers, so an event's send never waits for a gateway. A worker's
// position is stored (pusher_positions), so a restart resumes where it
// stopped: notifications made while the server was down or a gateway was
// failing are delivered after, in order. A gateway that fails (network
// error, 5xx, 408, 429) is retried with exponential backoff, holding back
// the pusher's later notifications so they stay in order, and a
// notification still failing after a day is given up, as Synapse does;
// one the gateway refuses with another 4xx is dropped at once. A pushkey
// the gateway lists as rejected loses its pusher.
//
// Notifications are recorded by each event's listener after the event is
// stored, and events of different rooms are stored in parallel, so a
// notification can be recorded a moment after a later one. A worker
// therefore tracks what it delivered above its stored position in memory
// and moves the stored position only past notifications older than
// settleDelay, by which time any earlier one is recorded. A crash can so
// repeat the notifications of the last moments before it; the spec makes
// gateways drop duplicates by event ID. A clean stop moves the position
// past everything delivered.

// Delivery timing defaults.
const (
	defaultBackoffBase = time.Second
	defaultBackoffMax  = time.Hour
	defaultGiveUpAfter = 24 * time.Hour
	settleDelay        = time.Minute
	// gatewayTimeout bounds one request to a push gateway.
	gatewayTimeout = 20 * time.Second
	// pushBatch is how many notifications a worker reads at a time.
	pushBatch = 50
)

// pusherKey names a pusher.
type pusherKey struct {
	user    id.UserID
	appID   string
	pushKey string
}

// delivery runs the workers.
type delivery struct {
	s      *Service
	log    *slog.Logger
	client *http.Client

	optMu       sync.Mutex
	backoffBase time.Duration
	backoffMax  time.Duration
	giveUpAfter time.Duration

	// reloadMu makes reloads (read the pushers, then start and stop
	// workers) one at a time, so an older read never undoes a newer one.
	reloadMu sync.Mutex
	mu       sync.Mutex
	ctx      context.Context // nil unless started
	cancel   context.CancelFunc
	workers  map[pusherKey]*pusherWorker
	wg       sync.WaitGroup
}

func newDelivery(s *Service) *delivery {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	transport.ResponseHeaderTimeout = gatewayTimeout
	return &delivery{
		s: s, log: s.log,
		client:      &http.Client{Transport: transport, Timeout: gatewayTimeout},
		backoffBase: defaultBackoffBase, backoffMax: defaultBackoffMax, giveUpAfter: defaultGiveUpAfter,
		workers: map[pusherKey]*pusherWorker{},
	}
}

// Start begins delivering notifications to push gateways, each pusher
// resuming where it stopped. Call it once; Stop ends it.
func (s *Service) Start() error {
	d := s.delivery
	d.mu.Lock()
	if d.ctx != nil {
		d.mu.Unlock()
		return errors.New("push delivery already started")
	}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	d.mu.Unlock()
	return d.reload(d.ctx)
}

// Stop ends delivery and waits for the workers, which store how far they
// got. Call it before closing the database.
func (s *Service) Stop() {
	d := s.delivery
	d.mu.Lock()
	if d.cancel != nil {
		d.cancel()
	}
	d.ctx, d.cancel = nil, nil
	d.workers = map[pusherKey]*pusherWorker{}
	d.mu.Unlock()
	d.wg.Wait()
}

// SetDeliveryBackoff sets the delay before the first retry of a failing
// push gateway (doubling after each failure) and its cap (tests make them
// tiny).
func (s *Service) SetDeliveryBackoff(base, maxDelay time.Duration) {
	d := s.delivery
	d.optMu.Lock()
	defer d.optMu.Unlock()
	d.backoffBase, d.backoffMax = base, maxDelay
}

// backoff is the delay before retry number n (0 for the first).
func (d *delivery) backoff(n int) time.Duration {
	d.optMu.Lock()
	defer d.optMu.Unlock()
	delay := d.backoffBase * time.Duration(math.Pow(2, float64(min(n, 40))))
	if delay <= 0 || delay > d.backoffMax {
		return d.backoffMax
	}
	return delay
}

func (d *delivery) givingUpAfter() time.Duration {
	d.optMu.Lock()
	defer d.optMu.Unlock()
	return d.giveUpAfter
}

// reload reads the pushers and makes the workers match: new pushers get
// one, removed ones lose theirs, changed ones deliver with their new
// settings from the next notification on.
func (d *delivery) reload(ctx context.Context) error {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	d.mu.Lock()
	running := d.ctx != nil
	d.mu.Unlock()
	if !running {
		return nil
	}
	pushers, err := d.s.db.HTTPPushers(ctx)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ctx == nil {
		return nil
	}
	seen := map[pusherKey]bool{}
	for _, p := range pushers {
		k := pusherKey{user: p.UserID, appID: p.AppID, pushKey: p.PushKey}
		seen[k] = true
		if w, ok := d.workers[k]; ok {
			if w.currentPusher().CreatedTS == p.CreatedTS {
				w.setPusher(p)
				continue
			}
			// Removed and set again since the last reload: a new
			// pusher, with a new position.
			w.cancel()
		}
		w := newPusherWorker(d, k, p)
		d.workers[k] = w
		d.wg.Add(1)
		go w.run()
	}
	for k, w := range d.workers {
		if !seen[k] {
			w.cancel()
			delete(d.workers, k)
		}
	}
	return nil
}

// reloadLogged reloads after a change that is already stored, so a
// failure is logged rather than failing it.
func (d *delivery) reloadLogged(ctx context.Context) {
	if err := d.reload(ctx); err != nil {
		d.log.Warn("push delivery: reload pushers", "error", err)
	}
}

// wake tells the workers of users' pushers to look for new notifications,
// or (badge) to send a new badge count. It never blocks.
func (d *delivery) wake(users []id.UserID, badge bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for k, w := range d.workers {
		if slices.Contains(users, k.user) {
			if badge {
				w.badgeDirty.Store(true)
			}
			select {
			case w.wake <- struct{}{}:
			default:
			}
		}
	}
}

// notificationsAdded wakes the pushers of the users who got a notification
// (a row that notifies) from an event.
func (s *Service) notificationsAdded(actions []storage.PushAction) {
	var users []id.UserID
	for _, a := range actions {
		if a.Notify && !slices.Contains(users, a.UserID) {
			users = append(users, a.UserID)
		}
	}
	if len(users) > 0 {
		s.delivery.wake(users, false)
	}
}

// pushersChanged gives a new pusher its starting position (the newest
// event: it delivers what comes next) and starts or stops workers.
func (s *Service) pushersChanged(ctx context.Context, user id.UserID, appID, pushKey string, added bool) {
	if added {
		if err := s.db.StartPusherPosition(ctx, user, appID, pushKey); err != nil {
			s.log.Warn("push delivery: start pusher", "user", user, "app_id", appID, "error", err)
		}
	}
	s.delivery.reloadLogged(ctx)
}

// ReadReceiptMoved is told that a user's read receipt in a room moved: the
// user's devices get their new badge count when it changed (Synapse's
// badge updates after receipts, so a phone's badge clears once the user
// reads on another device).
func (s *Service) ReadReceiptMoved(user id.UserID) {
	if s.isLocal(user) {
		s.delivery.wake([]id.UserID{user}, true)
	}
}

// DevicesRemoved removes the pushers of a user's devices that were signed
// out or deleted (a pusher records the device that set it), as Synapse
// does: a phone that signed out must stop getting notifications.
func (s *Service) DevicesRemoved(ctx context.Context, user id.UserID) {
	n, err := s.db.DeletePushersOfRemovedDevices(ctx, user)
	if err != nil {
		s.log.Warn("push: remove pushers of removed devices", "user", user, "error", err)
		return
	}
	if n > 0 {
		s.delivery.reloadLogged(ctx)
	}
}

// pusherWorker delivers one pusher's notifications.
type pusherWorker struct {
	d      *delivery
	key    pusherKey
	ctx    context.Context
	cancel context.CancelFunc
	wake   chan struct{}

	mu     sync.Mutex
	pusher storage.Pusher

	badgeDirty atomic.Bool

	// Owned by the worker's goroutine.
	pos     int64           // stored position: everything up to it is handled
	havePos bool            // pos has been read
	done    map[int64]int64 // handled notifications above pos → their ts (ms)
	badge   int             // the badge count last sent, -1 if none yet
	gone    bool            // the pusher was removed by the worker itself
}

func newPusherWorker(d *delivery, k pusherKey, p storage.Pusher) *pusherWorker {
	ctx, cancel := context.WithCancel(d.ctx)
	w := &pusherWorker{d: d, key: k, ctx: ctx, cancel: cancel, wake: make(chan struct{}, 1), pusher: p, done: map[int64]int64{}, badge: -1}
	return w
}

func (w *pusherWorker) setPusher(p storage.Pusher) {
	w.mu.Lock()
	w.pusher = p
	w.mu.Unlock()
}

func (w *pusherWorker) currentPusher() storage.Pusher {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pusher
}

func (w *pusherWorker) logger() *slog.Logger {
	return w.d.log.With("user", w.key.user, "app_id", w.key.appID)
}

func (w *pusherWorker) run() {
	defer w.d.wg.Done()
	defer w.cancel()
	for w.deliverPending() {
		if w.badgeDirty.Swap(false) {
			w.sendBadge()
		}
		if !w.waitForWork() {
			break
		}
	}
	if !w.gone {
		w.flush()
	}
}

// waitForWork waits for a wake-up, or for delivered notifications to be
// old enough to move the stored position past; false when stopping.
func (w *pusherWorker) waitForWork() bool {
	var settle <-chan time.Time
	if len(w.done) > 0 {
		t := time.NewTimer(w.untilSettled())
		defer t.Stop()
		settle = t.C
	}
	select {
	case <-w.ctx.Done():
		return false
	case <-w.wake:
	case <-settle:
	}
	return true
}

// untilSettled is how long until the oldest delivered notification above
// the stored position is old enough to move the position past.
func (w *pusherWorker) untilSettled() time.Duration {
	oldest := int64(math.MaxInt64)
	for _, ts := range w.done {
		oldest = min(oldest, ts)
	}
	wait := time.UnixMilli(oldest).Add(settleDelay).Sub(w.d.s.Now())
	return max(wait, 10*time.Millisecond)
}

// sleep waits for delay unless the worker stops first.
func (w *pusherWorker) sleep(delay time.Duration) bool {
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-w.ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// loadPosition reads the stored position, giving the pusher one at the
// newest event if it has none (made while the server was not delivering).
func (w *pusherWorker) loadPosition() error {
	k := w.key
	pos, ok, err := w.d.s.db.PusherPosition(w.ctx, k.user, k.appID, k.pushKey)
	if err == nil && !ok {
		if err = w.d.s.db.StartPusherPosition(w.ctx, k.user, k.appID, k.pushKey); err == nil {
			pos, _, err = w.d.s.db.PusherPosition(w.ctx, k.user, k.appID, k.pushKey)
		}
	}
	if err != nil {
		return err
	}
	w.pos, w.havePos = pos, true
	return nil
}

// deliverPending delivers the notifications waiting for the pusher, in
// order. It returns false when the worker must stop.
func (w *pusherWorker) deliverPending() bool {
	failures := 0
	for w.ctx.Err() == nil {
		if !w.havePos {
			if err := w.loadPosition(); err != nil {
				if !w.storageFailed(err, &failures) {
					return false
				}
				continue
			}
		}
		limit := len(w.done) + pushBatch
		rows, err := w.d.s.db.PendingPushes(w.ctx, w.key.user, w.pos, limit)
		if err != nil {
			if !w.storageFailed(err, &failures) {
				return false
			}
			continue
		}
		failures = 0
		for _, a := range rows {
			if _, ok := w.done[a.StreamPos]; ok {
				continue
			}
			if !w.deliver(a) {
				return false
			}
			w.done[a.StreamPos] = a.TS
		}
		w.advance(w.ctx, rows, w.d.s.Now().Add(-settleDelay).UnixMilli())
		if len(rows) < limit {
			return true
		}
	}
	return false
}

// storageFailed logs a database error and waits before the next try; false
// when the worker stops meanwhile.
func (w *pusherWorker) storageFailed(err error, failures *int) bool {
	if w.ctx.Err() != nil {
		return false
	}
	w.logger().Warn("push delivery: read notifications", "error", err)
	delay := w.d.backoff(*failures)
	*failures++
	return w.sleep(delay)
}

// advance moves the stored position over the leading handled notifications
// of rows (pending notifications, oldest first) made at or before cutoff
// (ms).
func (w *pusherWorker) advance(ctx context.Context, rows []storage.PushAction, cutoff int64) {
	moved := false
	for _, a := range rows {
		ts, ok := w.done[a.StreamPos]
		if !ok || ts > cutoff {
			break
		}
		w.pos = a.StreamPos
		delete(w.done, a.StreamPos)
		moved = true
	}
	if !moved {
		return
	}
	k := w.key
	if err := w.d.s.db.SetPusherPosition(ctx, k.user, k.appID, k.pushKey, w.pos); err != nil && ctx.Err() == nil {
		w.logger().Warn("push delivery: save position", "error", err)
	}
}

// flush stores the position past everything delivered, when the worker
// stops: the server is shutting down (no event is being recorded any
// more) or the pusher changed.
func (w *pusherWorker) flush() {
	if len(w.done) == 0 || !w.havePos {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rows, err := w.d.s.db.PendingPushes(ctx, w.key.user, w.pos, len(w.done)+1)
	if err != nil {
		w.logger().Warn("push delivery: save position", "error", err)
		return
	}
	w.advance(ctx, rows, math.MaxInt64)
}

// deliver sends one notification, retrying while the gateway fails. It
// returns false when the worker must stop (stopping, or pusher removed);
// true when the notification is done with: delivered, already read,
// refused, or given up.
func (w *pusherWorker) deliver(a storage.PushAction) bool {
	var failingSince time.Time
	for attempt := 0; ; attempt++ {
		outcome, err := w.attempt(a)
		switch {
		case w.ctx.Err() != nil:
			return false
		case w.gone:
			return false
		case outcome == postDelivered:
			return true
		case outcome == postDrop:
			w.logger().Warn("push delivery: notification dropped", "event", a.EventID, "error", err)
			return true
		}
		now := w.d.s.Now()
		if failingSince.IsZero() {
			failingSince = now
		}
		if now.Sub(failingSince) >= w.d.givingUpAfter() {
			w.logger().Warn("push delivery: giving up on a notification", "event", a.EventID, "error", err)
			return true
		}
		delay := w.d.backoff(attempt)
		w.logger().Info("push delivery: gateway failed, retrying", "event", a.EventID, "retry_in", delay, "error", err)
		if !w.sleep(delay) {
			return false
		}
	}
}

// attempt makes one try at a notification.
func (w *pusherWorker) attempt(a storage.PushAction) (postOutcome, error) {
	ctx, db := w.ctx, w.d.s.db
	// A notification the user has read meanwhile (on another device) is
	// not pushed, as Synapse does.
	rp, err := db.UserReadPositions(ctx, a.RoomID, a.UserID)
	if err != nil {
		return postRetry, err
	}
	if a.StreamPos <= rp.Of(a.ThreadID) {
		return postDelivered, nil
	}
	evs, err := w.d.s.rooms.Events(ctx, []id.EventID{a.EventID})
	if err != nil {
		return postRetry, err
	}
	ev, ok := evs[a.EventID]
	if !ok {
		return postDrop, errors.New("event not found")
	}
	badge, err := db.PushBadge(ctx, a.UserID)
	if err != nil {
		return postRetry, err
	}
	gp, err := newGatewayPusher(w.currentPusher())
	if err != nil {
		return postDrop, err
	}
	req, err := w.d.s.eventNotification(ctx, a.UserID, gp, a, ev, badge)
	if err != nil {
		return postRetry, err
	}
	outcome, rejected, err := w.d.post(ctx, gp.url, req)
	if outcome == postDelivered {
		w.badge = badge
		w.handleRejected(gp, rejected)
	}
	return outcome, err
}

// sendBadge sends the user's badge count alone when it changed since the
// last one sent. Like Synapse, a failed badge update is not retried: the
// next notification or receipt carries the count again.
func (w *pusherWorker) sendBadge() {
	badge, err := w.d.s.db.PushBadge(w.ctx, w.key.user)
	if err != nil {
		if w.ctx.Err() == nil {
			w.logger().Warn("push delivery: badge count", "error", err)
		}
		return
	}
	if badge == w.badge {
		return
	}
	gp, err := newGatewayPusher(w.currentPusher())
	if err != nil {
		w.logger().Warn("push delivery: badge update", "error", err)
		return
	}
	req := &gatewayRequest{Notification: gatewayNotification{Counts: gatewayCounts{Unread: badge}, Devices: []gatewayDevice{gp.device}}}
	outcome, rejected, err := w.d.post(w.ctx, gp.url, req)
	if outcome != postDelivered {
		if w.ctx.Err() == nil {
			w.logger().Info("push delivery: badge update failed", "error", err)
		}
		return
	}
	w.badge = badge
	w.handleRejected(gp, rejected)
}

// handleRejected removes the pusher when the gateway rejected its pushkey
// (spec: the homeserver must stop sending to it and remove the pusher).
// Other pushkeys in the list were not sent and are ignored, as Synapse
// does.
func (w *pusherWorker) handleRejected(gp gatewayPusher, rejected []string) {
	if !slices.Contains(rejected, gp.device.PushKey) {
		return
	}
	k := w.key
	w.logger().Info("push gateway rejected the pushkey: removing the pusher")
	if err := w.d.s.db.DeletePusher(w.ctx, k.user, k.appID, k.pushKey); err != nil {
		w.logger().Warn("push delivery: remove rejected pusher", "error", err)
		return
	}
	w.gone = true
	w.d.reloadLogged(w.ctx)
}
