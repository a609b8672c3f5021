package outbound

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/storage"
)

// EDU types this server sends.
const (
	EDUTyping   = "m.typing"
	EDUReceipt  = "m.receipt"
	EDUPresence = "m.presence"
)

// observerTimeout bounds the database work of one observer call, which
// runs in the request that made the change.
const observerTimeout = 10 * time.Second

// QueueEDU queues an EDU for each destination (this server left out),
// persisted until each has answered 200.
func (s *Sender) QueueEDU(ctx context.Context, destinations []string, eduType string, content any) error {
	return s.queueEDU(ctx, destinations, eduType, content, "")
}

// queueEDU is QueueEDU with a coalesce key: a newer EDU with the same key
// replaces one not yet sent.
func (s *Sender) queueEDU(ctx context.Context, destinations []string, eduType string, content any, key string) error {
	raw, err := json.Marshal(content)
	if err != nil {
		return fmt.Errorf("encode %s: %w", eduType, err)
	}
	var rows []storage.QueuedEDU
	seen := map[string]bool{}
	for _, d := range destinations {
		if d == "" || d == s.serverName || seen[d] {
			continue
		}
		seen[d] = true
		rows = append(rows, storage.QueuedEDU{Destination: d, Type: eduType, Content: raw, CoalesceKey: key})
	}
	if len(rows) == 0 {
		return nil
	}
	if err := s.db.QueueFederationEDUs(ctx, rows); err != nil {
		return err
	}
	for _, r := range rows {
		s.kickWorker(r.Destination)
	}
	return nil
}

// typingEDU is a pending typing notification; ptr identity tells a taken
// one from a newer one for the same room and user.
type typingEDU struct {
	key string
	edu json.RawMessage
}

// TypingChanged hears that a local user started (or refreshed) or stopped
// typing in a room, and passes it to the servers in the room. Typing
// notifications are kept in memory only, not persisted: one is stale
// within seconds and worthless after its 30 s timeout, which is less than
// any restart takes, so resending it after a crash would show a typing
// user who is not. The newest per room and user replaces older ones.
func (s *Sender) TypingChanged(roomID id.RoomID, user id.UserID, typing bool) {
	if user.Homeserver() != s.serverName {
		return // a remote user's typing, applied here: not ours to pass on
	}
	ctx, cancel := context.WithTimeout(context.Background(), observerTimeout)
	defer cancel()
	dests, err := s.roomServers(ctx, roomID)
	if err != nil {
		s.log.Warn("federation: typing destinations", "room", roomID, "error", err)
		return
	}
	if len(dests) == 0 {
		return
	}
	edu := eduJSON(EDUTyping, mustJSON(map[string]any{"room_id": roomID, "user_id": user, "typing": typing}))
	key := string(roomID) + "|" + string(user)
	s.mu.Lock()
	for _, d := range dests {
		m := s.typing[d]
		if m == nil {
			m = map[string]json.RawMessage{}
			s.typing[d] = m
		}
		m[key] = edu
	}
	s.mu.Unlock()
	for _, d := range dests {
		s.kickWorker(d)
	}
}

// peekTyping returns up to maxTypingPerTxn pending typing EDUs of a
// destination, in a stable order.
func (s *Sender) peekTyping(name string) []typingEDU {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.typing[name]
	out := make([]typingEDU, 0, len(m))
	for k, e := range m {
		out = append(out, typingEDU{key: k, edu: e})
	}
	slices.SortFunc(out, func(a, b typingEDU) int {
		switch {
		case a.key < b.key:
			return -1
		case a.key > b.key:
			return 1
		}
		return 0
	})
	if len(out) > maxTypingPerTxn {
		out = out[:maxTypingPerTxn]
	}
	return out
}

// takeTyping removes typing EDUs put in a transaction, unless a newer one
// for the same room and user replaced them meanwhile.
func (s *Sender) takeTyping(name string, taken []typingEDU) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.typing[name]
	for _, t := range taken {
		if cur, ok := m[t.key]; ok && &cur[0] == &t.edu[0] {
			delete(m, t.key)
		}
	}
	if len(m) == 0 {
		delete(s.typing, name)
	}
}

// ReceiptSent hears that a local user's public read receipt moved, and
// queues it for the servers in the room; a newer receipt of the user (same
// room, type and thread) replaces one not yet sent. Private receipts never
// leave this server.
func (s *Sender) ReceiptSent(r storage.Receipt) {
	if r.UserID.Homeserver() != s.serverName || r.Type != "m.read" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), observerTimeout)
	defer cancel()
	dests, err := s.roomServers(ctx, r.RoomID)
	if err != nil {
		s.log.Warn("federation: receipt destinations", "room", r.RoomID, "error", err)
		return
	}
	data := map[string]any{"ts": r.TS}
	if r.ThreadID != "" {
		data["thread_id"] = r.ThreadID
	}
	content := map[id.RoomID]any{r.RoomID: map[string]any{r.Type: map[id.UserID]any{
		r.UserID: map[string]any{"event_ids": []id.EventID{r.EventID}, "data": data},
	}}}
	key := EDUReceipt + "|" + string(r.RoomID) + "|" + string(r.UserID) + "|" + r.Type + "|" + r.ThreadID
	if err := s.queueEDU(ctx, dests, EDUReceipt, content, key); err != nil {
		s.log.Warn("federation: queue receipt", "room", r.RoomID, "user", r.UserID, "error", err)
	}
}

// PresenceChanged hears that a local user's presence changed, and queues
// it for the servers sharing a room with them; a newer presence replaces
// one not yet sent, so a server away for a day gets the latest only.
func (s *Sender) PresenceChanged(p storage.Presence) {
	if p.UserID.Homeserver() != s.serverName {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), observerTimeout)
	defer cancel()
	users, err := s.db.UsersSharingRooms(ctx, p.UserID)
	if err != nil {
		s.log.Warn("federation: presence destinations", "user", p.UserID, "error", err)
		return
	}
	dests := s.serversOf(users)
	if len(dests) == 0 {
		return
	}
	now := s.Now().UnixMilli()
	update := map[string]any{
		"user_id":          p.UserID,
		"presence":         p.State,
		"last_active_ago":  max(0, now-p.LastActiveTS),
		"currently_active": p.State == "online" && now-p.LastActiveTS < (5*time.Minute).Milliseconds(),
	}
	if p.StatusMsg != nil {
		update["status_msg"] = *p.StatusMsg
	}
	content := map[string]any{"push": []any{update}}
	if err := s.queueEDU(ctx, dests, EDUPresence, content, EDUPresence+"|"+string(p.UserID)); err != nil {
		s.log.Warn("federation: queue presence", "user", p.UserID, "error", err)
	}
}

// presencePing is how often the presence of local users who are not
// offline is sent again: other servers (Synapse, and Palpo's own inbound
// side) take a remote user for offline after 30 minutes without news.
const presencePing = 25 * time.Minute

// runPresencePing re-sends local users' presence until Stop.
func (s *Sender) runPresencePing() {
	defer s.wg.Done()
	t := time.NewTicker(presencePing)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
			s.PingPresence(s.ctx)
		}
	}
}

// PingPresence queues the presence of every local user who is not offline
// for the servers sharing a room with them.
func (s *Sender) PingPresence(ctx context.Context) {
	// Every user not offline has synced before the end of time.
	active, err := s.db.StalePresence(ctx, math.MaxInt64)
	if err != nil {
		s.log.Warn("federation: presence ping", "error", err)
		return
	}
	for _, p := range active {
		if p.UserID.Homeserver() == s.serverName {
			s.PresenceChanged(p)
		}
	}
}

func mustJSON(v any) []byte {
	out, err := json.Marshal(v)
	if err != nil {
		panic(err) // only maps of strings and booleans reach here
	}
	return out
}
