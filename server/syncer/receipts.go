package syncer

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/rooms"
	"github.com/palpo-im/palpo-desktop/server/storage"
)

// Receipt types a client may send (spec: "Receipts" and "Read markers").
// m.fully_read is not a receipt other users see: it moves the user's read
// marker, kept in their room account data.
const (
	ReceiptRead        = "m.read"
	ReceiptReadPrivate = "m.read.private"
	ReceiptFullyRead   = "m.fully_read"
)

// ThreadMain is the thread ID of a room's main timeline.
const ThreadMain = "main"

// maxThreadHops bounds how far a receipt's event is followed along its
// relations to find its thread (the spec recommends 3).
const maxThreadHops = 3

// fullyReadMu serialises read marker updates, which read the current
// marker and then write the new one (Synapse uses a linearizer likewise).
var fullyReadMu sync.Mutex

// SendReceipt handles POST /rooms/{roomId}/receipt/{receiptType}/{eventId}:
// the user marks an event of a room they are joined to as read, publicly
// (m.read), privately (m.read.private), or moves their read marker
// (m.fully_read). threadID is "" for an unthreaded receipt, "main" or a
// thread root's event ID.
func (s *Service) SendReceipt(ctx context.Context, user id.UserID, roomID id.RoomID, receiptType string, evID id.EventID, threadID string) error {
	switch receiptType {
	case ReceiptRead, ReceiptReadPrivate, ReceiptFullyRead:
	default:
		return mautrix.MInvalidParam.WithMessage("Receipt type must be m.read, m.read.private or m.fully_read")
	}
	if err := checkEventID(evID); err != nil {
		return err
	}
	if threadID != "" {
		if receiptType == ReceiptFullyRead {
			return mautrix.MInvalidParam.WithMessage("thread_id is not compatible with m.fully_read")
		}
		if threadID != ThreadMain && !strings.HasPrefix(threadID, "$") {
			return mautrix.MInvalidParam.WithMessage(`thread_id must be "main" or the event ID of a thread root`)
		}
	}
	if err := s.checkJoined(ctx, user, roomID); err != nil {
		return err
	}
	ev, err := s.visibleEvent(ctx, user, roomID, evID)
	if err != nil {
		return err
	}
	if threadID != "" {
		in, err := s.inThread(ctx, ev, threadID)
		if err != nil {
			return err
		}
		if !in {
			return mautrix.MInvalidParam.WithMessage("Event " + string(evID) + " is not in thread " + threadID)
		}
	}
	if receiptType == ReceiptFullyRead {
		return s.setFullyRead(ctx, user, ev)
	}
	return s.putReceipt(ctx, user, ev, receiptType, threadID)
}

// ReadMarkers is the body of POST /rooms/{roomId}/read_markers; empty
// fields are left alone.
type ReadMarkers struct {
	FullyRead   id.EventID `json:"m.fully_read"`
	Read        id.EventID `json:"m.read"`
	ReadPrivate id.EventID `json:"m.read.private"`
}

// SetReadMarkers moves the user's read marker and (unthreaded) receipts in
// one call. Every event is checked before anything is written, so a bad
// one leaves all three as they were.
func (s *Service) SetReadMarkers(ctx context.Context, user id.UserID, roomID id.RoomID, m ReadMarkers) error {
	for _, evID := range []id.EventID{m.FullyRead, m.Read, m.ReadPrivate} {
		if evID != "" {
			if err := checkEventID(evID); err != nil {
				return err
			}
		}
	}
	if err := s.checkJoined(ctx, user, roomID); err != nil {
		return err
	}
	evs := map[id.EventID]*rooms.Event{}
	for _, evID := range []id.EventID{m.FullyRead, m.Read, m.ReadPrivate} {
		if evID == "" || evs[evID] != nil {
			continue
		}
		ev, err := s.visibleEvent(ctx, user, roomID, evID)
		if err != nil {
			return err
		}
		evs[evID] = ev
	}
	if m.FullyRead != "" {
		if err := s.setFullyRead(ctx, user, evs[m.FullyRead]); err != nil {
			return err
		}
	}
	if m.Read != "" {
		if err := s.putReceipt(ctx, user, evs[m.Read], ReceiptRead, ""); err != nil {
			return err
		}
	}
	if m.ReadPrivate != "" {
		if err := s.putReceipt(ctx, user, evs[m.ReadPrivate], ReceiptReadPrivate, ""); err != nil {
			return err
		}
	}
	return nil
}

func checkEventID(evID id.EventID) error {
	if len(evID) < 2 || !strings.HasPrefix(string(evID), "$") {
		return mautrix.MInvalidParam.WithMessage("Invalid event ID " + string(evID))
	}
	return nil
}

// checkJoined answers M_FORBIDDEN unless the user is joined to the room
// (the same answer for a room that does not exist: no probing).
func (s *Service) checkJoined(ctx context.Context, user id.UserID, roomID id.RoomID) error {
	m, _, err := s.db.Membership(ctx, roomID, user)
	if err != nil {
		return err
	}
	if m != string(event.MembershipJoin) {
		return mautrix.MForbidden.WithMessage("You are not in this room")
	}
	return nil
}

// errNoEvent is one answer for an unknown event, an event of another room
// and an event the user may not see, so none can be told from the others.
var errNoEvent = mautrix.MNotFound.WithMessage("Event not found")

// visibleEvent loads an event of the room the user may see.
func (s *Service) visibleEvent(ctx context.Context, user id.UserID, roomID id.RoomID, evID id.EventID) (*rooms.Event, error) {
	evs, err := s.rooms.Events(ctx, []id.EventID{evID})
	if err != nil {
		return nil, err
	}
	ev, ok := evs[evID]
	if !ok || ev.RoomID != roomID || ev.Rejected {
		return nil, errNoEvent
	}
	ok, err = s.rooms.CanSee(ctx, user, ev)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errNoEvent
	}
	return ev, nil
}

// relation is content["m.relates_to"] of an event.
type relation struct {
	RelType string     `json:"rel_type"`
	EventID id.EventID `json:"event_id"`
}

func relationOf(ev *rooms.Event) *relation {
	var c struct {
		RelatesTo *relation `json:"m.relates_to"`
	}
	if json.Unmarshal(ev.PDU.Content, &c) != nil || c.RelatesTo == nil || c.RelatesTo.EventID == "" {
		return nil
	}
	return c.RelatesTo
}

// inThread tells whether a receipt for thread threadID may point at ev, as
// Synapse checks it: for the main timeline, ev must not be in a thread; for
// a thread, ev must be in it (a thread relation to its root, possibly
// through other relations), or be its root or related to the root by other
// relations. Relations are followed up to maxThreadHops. Unlike Synapse we
// cannot look for events pointing at a root (there is no relations index
// yet), so a receipt naming an event as the root of a thread is accepted
// without checking that the thread has replies.
func (s *Service) inThread(ctx context.Context, ev *rooms.Event, threadID string) (bool, error) {
	var root id.EventID // from a thread relation on the way up
	top := ev.ID        // the topmost event reached
	cur := ev
	for range maxThreadHops + 1 {
		rel := relationOf(cur)
		if rel == nil {
			break
		}
		if rel.RelType == string(event.RelThread) {
			root = rel.EventID
			break
		}
		top = rel.EventID
		evs, err := s.rooms.Events(ctx, []id.EventID{rel.EventID})
		if err != nil {
			return false, err
		}
		next, ok := evs[rel.EventID]
		if !ok || next.RoomID != ev.RoomID {
			break
		}
		cur = next
	}
	if threadID == ThreadMain {
		return root == "", nil
	}
	return root == id.EventID(threadID) || (root == "" && top == id.EventID(threadID)), nil
}

// putReceipt stores a receipt and wakes who sees it: the room's members,
// or for a private receipt only its owner. A receipt for an event older
// than the one the user's receipt (of that type and thread) already points
// at is ignored, as Synapse does, for every type and thread.
func (s *Service) putReceipt(ctx context.Context, user id.UserID, ev *rooms.Event, receiptType, threadID string) error {
	r := storage.Receipt{
		RoomID: ev.RoomID, UserID: user, Type: receiptType, ThreadID: threadID, EventID: ev.ID, TS: time.Now().UnixMilli(),
	}
	pos, err := s.db.PutReceipt(ctx, r, ev.StreamPos)
	if err != nil {
		return err
	}
	if pos == 0 {
		return nil
	}
	if s.OnReadReceipt != nil {
		s.OnReadReceipt(user)
	}
	if receiptType == ReceiptReadPrivate {
		s.notifier.Wake(user)
		return nil
	}
	s.wakeRoom(ctx, ev.RoomID)
	if s.Ephemeral != nil {
		r.StreamID = pos
		s.Ephemeral.ReceiptSent(r)
	}
	return nil
}

// setFullyRead moves the user's read marker (the m.fully_read room account
// data) to ev, unless it already points at ev or at a later event: like
// Synapse, the marker only moves forward.
func (s *Service) setFullyRead(ctx context.Context, user id.UserID, ev *rooms.Event) error {
	fullyReadMu.Lock()
	defer fullyReadMu.Unlock()
	raw, err := s.db.GetAccountData(ctx, user, ev.RoomID, ReceiptFullyRead)
	switch {
	case errors.Is(err, storage.ErrNotFound):
	case err != nil:
		return err
	default:
		var old struct {
			EventID id.EventID `json:"event_id"`
		}
		if json.Unmarshal(raw, &old) == nil && old.EventID != "" {
			evs, err := s.rooms.Events(ctx, []id.EventID{old.EventID})
			if err != nil {
				return err
			}
			if prev, ok := evs[old.EventID]; ok && prev.RoomID == ev.RoomID && prev.StreamPos >= ev.StreamPos {
				return nil
			}
		}
	}
	content, err := json.Marshal(event.FullyReadEventContent{EventID: ev.ID})
	if err != nil {
		return err
	}
	return s.SetAccountData(ctx, user, ev.RoomID, ReceiptFullyRead, content)
}
