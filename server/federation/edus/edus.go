// Package edus applies the EDUs other servers send in transactions:
// typing notifications, read receipts and presence of their users, each
// checked against who sent it (a server speaks only for its own users)
// and against the rooms this server shares with them.
package edus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/storage"
)

// EDU types applied here; others are ignored.
const (
	TypeTyping   = "m.typing"
	TypeReceipt  = "m.receipt"
	TypePresence = "m.presence"
)

// Timing of remote ephemeral state, as Synapse keeps it: a remote user's
// typing ends after remoteTypingTimeout unless their server refreshes it,
// and their presence is considered gone after remotePresenceTimeout
// without an update (their server re-sends presence of online users more
// often than that).
const (
	remoteTypingTimeout   = 60 * time.Second
	remotePresenceTimeout = 30 * time.Minute
	// presenceIdle is the sync engine's idle limit: it marks a user
	// offline whose last_sync_ts is older than that.
	presenceIdle = 5 * time.Minute
)

// ErrNotAllowed is an EDU (or an item of one) refused: about a user of
// another server than the one that sent it, or about a room the user is
// not in here.
var ErrNotAllowed = errors.New("EDU not allowed")

// TypingSetter sets a user's typing state in a room (the sync engine).
type TypingSetter interface {
	SetTyping(ctx context.Context, user id.UserID, roomID id.RoomID, typing bool, timeout time.Duration) error
}

// Waker wakes the syncs of users and a room's watchers (the sync
// notifier).
type Waker interface {
	Wake(users ...id.UserID)
	WakeRoom(roomID id.RoomID)
}

// Applier applies inbound EDUs.
type Applier struct {
	db         *storage.DB
	serverName string
	typing     TypingSetter
	wake       Waker
	log        *slog.Logger
	// Now is the clock; tests may replace it.
	Now func() time.Time
	// ServerAllowed applies a room's m.room.server_acl (nil: no ACLs).
	ServerAllowed func(ctx context.Context, roomID id.RoomID, server string) (bool, error)
	// DeviceLists applies device list and cross-signing key updates
	// (devicelists.go; nil: they are ignored).
	DeviceLists DeviceListApplier
}

// New builds the applier.
func New(db *storage.DB, serverName string, typing TypingSetter, wake Waker, log *slog.Logger) *Applier {
	return &Applier{db: db, serverName: serverName, typing: typing, wake: wake, log: log, Now: time.Now}
}

// edu is an EDU as a transaction carries it.
type edu struct {
	Type    string          `json:"edu_type"`
	Content json.RawMessage `json:"content"`
}

// ApplyEDU applies one EDU of a transaction from origin (the request's
// authenticated server). The items it may apply are applied even when
// others are refused; the error (wrapping ErrNotAllowed for refusals) is
// for the log: a transaction is answered 200 whatever its EDUs hold.
func (a *Applier) ApplyEDU(ctx context.Context, origin string, raw json.RawMessage) error {
	var e edu
	if err := json.Unmarshal(raw, &e); err != nil {
		return fmt.Errorf("EDU from %s: %w", origin, err)
	}
	switch e.Type {
	case TypeTyping:
		return a.applyTyping(ctx, origin, e.Content)
	case TypeReceipt:
		return a.applyReceipts(ctx, origin, e.Content)
	case TypePresence:
		return a.applyPresence(ctx, origin, e.Content)
	case TypeDeviceListUpdate, TypeSigningKeyUpdate:
		return a.applyDeviceLists(ctx, origin, e.Type, e.Content)
	case TypeDirectToDevice:
		return a.applyDirectToDevice(ctx, origin, e.Content)
	}
	return nil
}

// joined tells whether a user is joined to a room here, and their server
// not denied by the room's server ACL (which covers EDUs as well as PDUs).
func (a *Applier) joined(ctx context.Context, roomID id.RoomID, user id.UserID) (bool, error) {
	if a.ServerAllowed != nil {
		if ok, err := a.ServerAllowed(ctx, roomID, user.Homeserver()); err != nil || !ok {
			return false, err
		}
	}
	m, _, err := a.db.Membership(ctx, roomID, user)
	if err != nil {
		return false, err
	}
	return m == "join", nil
}

// applyTyping applies m.typing: the user must be of the origin server and
// joined to the room here (spec: "Typing Notifications").
func (a *Applier) applyTyping(ctx context.Context, origin string, raw json.RawMessage) error {
	var c struct {
		RoomID id.RoomID `json:"room_id"`
		UserID id.UserID `json:"user_id"`
		Typing bool      `json:"typing"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return fmt.Errorf("m.typing from %s: %w", origin, err)
	}
	if c.UserID.Homeserver() != origin {
		return fmt.Errorf("m.typing from %s for %s: %w", origin, c.UserID, ErrNotAllowed)
	}
	ok, err := a.joined(ctx, c.RoomID, c.UserID)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("m.typing from %s: %s is not in %s: %w", origin, c.UserID, c.RoomID, ErrNotAllowed)
	}
	return a.typing.SetTyping(ctx, c.UserID, c.RoomID, c.Typing, remoteTypingTimeout)
}

// receiptData is a receipt's metadata.
type receiptData struct {
	TS       int64  `json:"ts"`
	ThreadID string `json:"thread_id"`
}

type userReceipt struct {
	EventIDs []id.EventID `json:"event_ids"`
	Data     receiptData  `json:"data"`
}

// applyReceipts applies m.receipt: each m.read receipt of a user of the
// origin joined to the room here is stored and shown to the room's local
// members. Other receipt types are ignored (private receipts never travel).
func (a *Applier) applyReceipts(ctx context.Context, origin string, raw json.RawMessage) error {
	var c map[id.RoomID]map[string]json.RawMessage
	if err := json.Unmarshal(raw, &c); err != nil {
		return fmt.Errorf("m.receipt from %s: %w", origin, err)
	}
	var errs []error
	for roomID, types := range c {
		readRaw, ok := types["m.read"]
		if !ok {
			continue
		}
		var reads map[id.UserID]userReceipt
		if err := json.Unmarshal(readRaw, &reads); err != nil {
			errs = append(errs, fmt.Errorf("m.receipt from %s in %s: %w", origin, roomID, err))
			continue
		}
		stored := false
		for user, r := range reads {
			ok, err := a.applyReceipt(ctx, origin, roomID, user, r)
			if err != nil {
				errs = append(errs, err)
			}
			stored = stored || ok
		}
		if stored {
			a.wakeRoom(ctx, roomID)
		}
	}
	return errors.Join(errs...)
}

func (a *Applier) applyReceipt(ctx context.Context, origin string, roomID id.RoomID, user id.UserID, r userReceipt) (bool, error) {
	if user.Homeserver() != origin {
		return false, fmt.Errorf("m.receipt from %s for %s: %w", origin, user, ErrNotAllowed)
	}
	if len(r.EventIDs) == 0 || !strings.HasPrefix(string(r.EventIDs[0]), "$") {
		return false, fmt.Errorf("m.receipt from %s for %s: no event", origin, user)
	}
	if t := r.Data.ThreadID; t != "" && t != "main" && !strings.HasPrefix(t, "$") {
		return false, fmt.Errorf("m.receipt from %s for %s: bad thread_id", origin, user)
	}
	ok, err := a.joined(ctx, roomID, user)
	if err != nil {
		return false, err
	}
	if !ok {
		return false, fmt.Errorf("m.receipt from %s: %s is not in %s: %w", origin, user, roomID, ErrNotAllowed)
	}
	evID := r.EventIDs[0]
	// A receipt for an event this server has not received yet is kept (the
	// event may come later) and, having no position to compare, replaces
	// the user's previous one.
	eventPos := int64(math.MaxInt64)
	ev, err := a.db.GetEvent(ctx, evID)
	switch {
	case errors.Is(err, storage.ErrNotFound):
	case err != nil:
		return false, err
	case ev.RoomID != roomID:
		return false, fmt.Errorf("m.receipt from %s: %s is not an event of %s: %w", origin, evID, roomID, ErrNotAllowed)
	default:
		eventPos = ev.StreamPos
	}
	ts := r.Data.TS
	if ts <= 0 {
		ts = a.Now().UnixMilli()
	}
	pos, err := a.db.PutReceipt(ctx, storage.Receipt{
		RoomID: roomID, UserID: user, Type: "m.read", ThreadID: r.Data.ThreadID, EventID: evID, TS: ts,
	}, eventPos)
	if err != nil {
		return false, err
	}
	return pos != 0, nil
}

func (a *Applier) wakeRoom(ctx context.Context, roomID id.RoomID) {
	a.wake.WakeRoom(roomID)
	users, err := a.db.Members(ctx, roomID, "join")
	if err != nil {
		a.log.Warn("federation: wake room", "room", roomID, "error", err)
		return
	}
	a.wake.Wake(a.local(users)...)
}

func (a *Applier) local(users []id.UserID) []id.UserID {
	out := users[:0:0]
	for _, u := range users {
		if u.Homeserver() == a.serverName {
			out = append(out, u)
		}
	}
	return out
}

// presenceUpdate is one item of m.presence's push list.
type presenceUpdate struct {
	UserID        id.UserID `json:"user_id"`
	Presence      string    `json:"presence"`
	StatusMsg     *string   `json:"status_msg"`
	LastActiveAgo int64     `json:"last_active_ago"`
}

// applyPresence applies m.presence: the presence of users of the origin
// who share a room with a local user (no one here would see the others).
func (a *Applier) applyPresence(ctx context.Context, origin string, raw json.RawMessage) error {
	var c struct {
		Push []presenceUpdate `json:"push"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return fmt.Errorf("m.presence from %s: %w", origin, err)
	}
	var errs []error
	for _, u := range c.Push {
		if err := a.applyOnePresence(ctx, origin, u); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (a *Applier) applyOnePresence(ctx context.Context, origin string, u presenceUpdate) error {
	if u.UserID.Homeserver() != origin {
		return fmt.Errorf("m.presence from %s for %s: %w", origin, u.UserID, ErrNotAllowed)
	}
	switch u.Presence {
	case "online", "unavailable", "offline":
	default:
		return fmt.Errorf("m.presence from %s for %s: unknown state %q", origin, u.UserID, u.Presence)
	}
	sharing, err := a.db.UsersSharingRooms(ctx, u.UserID)
	if err != nil {
		return err
	}
	watchers := a.local(sharing)
	if len(watchers) == 0 {
		return fmt.Errorf("m.presence from %s: %s shares no room with a user here: %w", origin, u.UserID, ErrNotAllowed)
	}
	cur, err := a.db.GetPresence(ctx, u.UserID)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	now := a.Now()
	p := &storage.Presence{
		UserID: u.UserID, State: u.Presence, StatusMsg: u.StatusMsg,
		LastActiveTS: now.UnixMilli() - max(0, u.LastActiveAgo),
		// A remote user never syncs here; the sync engine's sweeper marks
		// a user offline presenceIdle after their last sync, so this
		// "last sync" makes it do so remotePresenceTimeout after the
		// latest update, unless their server sends another.
		LastSyncTS: now.Add(remotePresenceTimeout - presenceIdle).UnixMilli(),
	}
	changed := cur == nil || cur.State != p.State || !sameMsg(cur.StatusMsg, p.StatusMsg)
	if cur != nil {
		p.StreamID = cur.StreamID
	}
	if err := a.db.PutPresence(ctx, p, changed); err != nil {
		return err
	}
	if changed {
		a.wake.Wake(watchers...)
	}
	return nil
}

func sameMsg(x, y *string) bool {
	if x == nil || y == nil {
		return x == y
	}
	return *x == *y
}
