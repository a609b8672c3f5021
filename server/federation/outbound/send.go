package outbound

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	mathrand "math/rand/v2"
	"strconv"
	"time"

	"go.mau.fi/util/jsontime"
	mfed "maunium.net/go/mautrix/federation"

	"github.com/palpo-im/palpo-desktop/server/storage"
)

func randFloat() float64 { return mathrand.Float64() }

// sendError is a transaction the destination did not answer 200 (recorded,
// with the backoff that follows).
type sendError struct {
	dest string
	err  error
}

func (e *sendError) Error() string { return fmt.Sprintf("send to %s: %v", e.dest, e.err) }
func (e *sendError) Unwrap() error { return e.err }

// errNotDue means the destination is backing off.
var errNotDue = errors.New("destination is backing off")

// runWorker sends a destination what it is owed, one transaction at a
// time, waiting out its backoff after failures, until it is owed nothing.
func (s *Sender) runWorker(d *dest) {
	defer s.wg.Done()
	for {
		if s.ctx.Err() != nil {
			return
		}
		wait, err := s.dueIn(s.ctx, d.name)
		if err != nil {
			s.log.Warn("federation: read destination", "destination", d.name, "error", err)
			wait = errorPause
		}
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-d.kick:
			case <-s.ctx.Done():
			}
			t.Stop()
			continue
		}
		sent, err := s.sendOnce(s.ctx, d)
		var fail *sendError
		switch {
		case errors.As(err, &fail), errors.Is(err, errNotDue):
			continue // the backoff is recorded; the loop waits it out
		case err != nil:
			if s.ctx.Err() != nil {
				return
			}
			s.log.Warn("federation: send", "destination", d.name, "error", err)
			s.pause(errorPause)
			continue
		}
		if !sent {
			s.mu.Lock()
			select {
			case <-d.kick:
				// Work came in while this worker looked: look again.
				s.mu.Unlock()
				continue
			default:
			}
			d.running = false
			s.mu.Unlock()
			return
		}
	}
}

// dueIn is how long a destination's backoff has left (0 when due).
func (s *Sender) dueIn(ctx context.Context, name string) (time.Duration, error) {
	row, err := s.db.GetFederationDestination(ctx, name)
	if errors.Is(err, storage.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return max(0, time.UnixMilli(row.NextRetryTS).Sub(s.Now())), nil
}

// sendOnce sends a destination its next transaction (or resends the one
// in flight) if its backoff is over. It reports whether a transaction was
// answered 200; (false, nil) means nothing is owed.
func (s *Sender) sendOnce(ctx context.Context, d *dest) (bool, error) {
	d.sendMu.Lock()
	defer d.sendMu.Unlock()
	row, err := s.db.GetFederationDestination(ctx, d.name)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return false, err
	}
	retries := 0
	if row != nil {
		if row.NextRetryTS > s.Now().UnixMilli() {
			return false, errNotDue
		}
		retries = row.RetryCount
	}
	req := d.inflight
	if req == nil {
		if req, err = s.nextTxn(ctx, d.name); err != nil || req == nil {
			return false, err
		}
		d.inflight = req
	}
	sendCtx, cancel := context.WithTimeout(ctx, s.SendTimeout)
	resp, err := s.tx.SendTransaction(sendCtx, req)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			// Stopping: not the destination's fault; resent after Start.
			return false, ctx.Err()
		}
		retries++
		delay := s.backoff(retries)
		next := s.Now().Add(delay)
		s.log.Info("federation: transaction failed", "destination", d.name, "txn", req.TxnID,
			"retry", retries, "wait", delay.Round(time.Millisecond), "error", err)
		if rerr := s.db.FederationTxnFailed(ctx, d.name, retries, next.UnixMilli(), errorText(err)); rerr != nil {
			return false, rerr
		}
		s.mu.Lock()
		s.backingOff[d.name] = true
		s.mu.Unlock()
		return false, &sendError{dest: d.name, err: err}
	}
	if resp != nil {
		for evID, r := range resp.PDUs {
			if r.Error != "" {
				// The destination took the transaction but refused the
				// event (its auth checks); resending would not help.
				s.log.Debug("federation: event refused", "destination", d.name, "event", evID, "error", r.Error)
			}
		}
	}
	if err := s.db.FederationTxnSent(ctx, d.name, req.TxnID, s.Now().UnixMilli()); err != nil {
		return false, err
	}
	d.inflight = nil
	s.mu.Lock()
	delete(s.backingOff, d.name)
	s.mu.Unlock()
	return true, nil
}

// nextTxn makes the next transaction for a destination: the persisted one
// in flight (after a restart) as it was, or a new one of the oldest PDUs
// and EDUs owed plus pending typing notifications. Typing notifications
// live in memory only (see TypingChanged), so a transaction resent after a
// restart lacks them; nothing else in it changes. nil: nothing is owed.
func (s *Sender) nextTxn(ctx context.Context, name string) (*mfed.ReqSendTransaction, error) {
	typing := s.peekTyping(name)
	newID := newTxnID(s.Now())
	now := s.Now().UnixMilli()
	st, err := s.db.NextFederationTxn(ctx, name, newID, now, MaxPDUsPerTxn, MaxEDUsPerTxn-len(typing))
	if err != nil {
		return nil, err
	}
	req := &mfed.ReqSendTransaction{Destination: name, Origin: s.serverName, PDUs: []json.RawMessage{}}
	if st != nil {
		req.TxnID = st.ID
		req.OriginServerTS = jsontime.UMInt(st.TS)
		for _, p := range st.PDUs {
			req.PDUs = append(req.PDUs, stripUnsigned(p))
		}
		for _, e := range st.EDUs {
			req.EDUs = append(req.EDUs, eduJSON(e.Type, e.Content))
		}
		if st.ID != newID {
			return req, nil // the one in flight, unchanged
		}
	} else {
		if len(typing) == 0 {
			return nil, nil
		}
		req.TxnID = newID
		req.OriginServerTS = jsontime.UMInt(now)
	}
	s.takeTyping(name, typing)
	for _, e := range typing {
		req.EDUs = append(req.EDUs, e.edu)
	}
	return req, nil
}

// newTxnID makes a transaction ID unique for this server: the time, for
// readable logs, and randomness, so that IDs made after a restart (or a
// clock step back) never repeat one the destination has seen.
func newTxnID(now time.Time) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return strconv.FormatInt(now.UnixMilli(), 10) + "-" + hex.EncodeToString(b[:])
}

// stripUnsigned removes "unsigned" from a PDU: it holds what this server
// computed for its own clients (ages, relations), never part of the signed
// event, and the destination computes its own.
func stripUnsigned(p []byte) json.RawMessage {
	if !bytes.Contains(p, []byte(`"unsigned"`)) {
		return p
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(p, &m) != nil {
		return p
	}
	if _, ok := m["unsigned"]; !ok {
		return p
	}
	delete(m, "unsigned")
	out, err := json.Marshal(m)
	if err != nil {
		return p
	}
	return out
}

// eduJSON is an EDU as a transaction carries it.
func eduJSON(eduType string, content []byte) json.RawMessage {
	out, _ := json.Marshal(struct {
		Type    string          `json:"edu_type"`
		Content json.RawMessage `json:"content"`
	}{eduType, content})
	return out
}

// backoff is the wait after the n-th failure in a row: MinBackoff doubled
// per failure, capped at MaxBackoff, varied by ±20%.
func (s *Sender) backoff(n int) time.Duration {
	d := s.MinBackoff
	for i := 1; i < n && d < s.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, s.MaxBackoff)
	f := 1 - backoffJitter + 2*backoffJitter*s.Jitter()
	return time.Duration(float64(d) * f)
}

// errorText is an error for the status page, bounded.
func errorText(err error) string {
	msg := err.Error()
	if len(msg) > 500 {
		msg = msg[:500] + "…"
	}
	return msg
}
