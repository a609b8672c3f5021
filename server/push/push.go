// Package push owns push notifications: each user's push rules (the
// spec's defaults merged with their own), pushers, and the evaluation of
// rules against every new room event, which records the notifications that
// unread counts in /sync and GET /notifications are made of, and their
// delivery to push gateways (delivery.go).
package push

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/rooms"
	"github.com/palpo-im/palpo-desktop/server/storage"
)

// AccountData stores account data and wakes the user's syncs: the sync
// engine, through which changed rules reach clients as m.push_rules.
type AccountData interface {
	SetAccountData(ctx context.Context, user id.UserID, roomID id.RoomID, evType string, content []byte) error
}

// PushRulesType is the account data event type clients read rules from.
const PushRulesType = "m.push_rules"

// Service is the push service.
type Service struct {
	db         *storage.DB
	rooms      *rooms.Service
	serverName string
	log        *slog.Logger

	// AccountData receives the user's ruleset whenever it changes. Set it
	// before the server serves requests.
	AccountData AccountData
	// Now is the clock for notification timestamps; tests may replace it.
	Now func() time.Time

	// writeMu serialises rule changes, which read, modify and write a
	// user's rules of a kind.
	writeMu sync.Mutex
	cacheMu sync.Mutex
	cache   map[id.UserID]*compiled
	// gen counts each user's rule changes, so a ruleset compiled from
	// rules read before a change is not cached after it.
	gen map[id.UserID]uint64

	// delivery sends notifications to push gateways (delivery.go).
	delivery *delivery
	// marks spares the read marker of a user's event when nothing they
	// have not read came before it (readmarks.go).
	marks readMarks
}

// New builds the push service and subscribes it to new room events. An
// event's notifications are worked out before it is stored (OnPrepare) and
// stored in its own transaction, so a sync woken once it is committed
// reads the new counts with it, as the spec wants.
func New(db *storage.DB, roomsSvc *rooms.Service, serverName string, log *slog.Logger) *Service {
	s := &Service{db: db, rooms: roomsSvc, serverName: serverName, log: log, Now: time.Now, cache: map[id.UserID]*compiled{}, gen: map[id.UserID]uint64{}}
	s.delivery = newDelivery(s)
	roomsSvc.OnPrepare(s.prepareEvents)
	roomsSvc.OnEvent(s.onEvents)
	roomsSvc.OnDiscard(s.marks.discarded)
	return s
}

// Errors the push service answers with.
var (
	errRuleNotFound = mautrix.MNotFound.WithMessage("The push rule was not found.")
	mMissingParam   = mautrix.RespError{ErrCode: "M_MISSING_PARAM", StatusCode: http.StatusBadRequest}
	mUnknown400     = mautrix.RespError{ErrCode: "M_UNKNOWN", StatusCode: http.StatusBadRequest}
)

// LoadRuleset reads a user's ruleset: their own rules merged with the
// server-default ones. It is a function of the database alone, so the sync
// engine can put the ruleset in an initial sync without a push service.
func LoadRuleset(ctx context.Context, db *storage.DB, user id.UserID) (*Ruleset, error) {
	rows, defs, err := db.UserPushRules(ctx, user)
	if err != nil {
		return nil, err
	}
	own := map[Kind][]*Rule{}
	for _, row := range rows {
		k, ok := ParseKind(row.Kind)
		if !ok {
			continue
		}
		r := &Rule{Kind: k, RuleID: row.RuleID, Enabled: row.Enabled}
		if err := json.Unmarshal(row.Actions, &r.Actions); err != nil {
			return nil, fmt.Errorf("stored push rule %s of %s: %w", row.RuleID, user, err)
		}
		if row.Conditions != nil {
			if err := json.Unmarshal(row.Conditions, &r.Conditions); err != nil {
				return nil, fmt.Errorf("stored push rule %s of %s: %w", row.RuleID, user, err)
			}
		}
		if row.Pattern != nil {
			r.Pattern = *row.Pattern
		}
		own[k] = append(own[k], r)
	}
	changes := map[Kind]map[string]Change{}
	for _, d := range defs {
		k, ok := ParseKind(d.Kind)
		if !ok {
			continue
		}
		c := Change{Enabled: d.Enabled}
		if d.Actions != nil {
			if err := json.Unmarshal(d.Actions, &c.Actions); err != nil {
				return nil, fmt.Errorf("stored push rule change %s of %s: %w", d.RuleID, user, err)
			}
		}
		if changes[k] == nil {
			changes[k] = map[string]Change{}
		}
		changes[k][d.RuleID] = c
	}
	return Assemble(user, own, changes), nil
}

// RulesJSON is the content of a user's m.push_rules account data.
func RulesJSON(rs *Ruleset) ([]byte, error) {
	return json.Marshal(Global{Global: rs})
}

// maxCompiledCache bounds how many users' compiled rules stay in memory.
const maxCompiledCache = 256

// compiledFor returns a user's ruleset ready to evaluate, from memory when
// it has not changed.
func (s *Service) compiledFor(ctx context.Context, user id.UserID) (*compiled, error) {
	s.cacheMu.Lock()
	c, ok := s.cache[user]
	gen := s.gen[user]
	s.cacheMu.Unlock()
	if ok {
		return c, nil
	}
	rs, err := LoadRuleset(ctx, s.db, user)
	if err != nil {
		return nil, err
	}
	c = compile(rs)
	s.cacheMu.Lock()
	if s.gen[user] == gen {
		// Compiled rules cost tens of kilobytes a user; a bounded cache keeps
		// a big server's memory flat (rules compile again in microseconds).
		if len(s.cache) >= maxCompiledCache {
			clear(s.cache)
		}
		s.cache[user] = c
	}
	s.cacheMu.Unlock()
	return c, nil
}

// changed forgets the user's compiled rules and publishes the new ruleset
// as their m.push_rules account data (which wakes their syncs).
func (s *Service) changed(ctx context.Context, user id.UserID) error {
	s.cacheMu.Lock()
	delete(s.cache, user)
	s.gen[user]++
	s.cacheMu.Unlock()
	rs, err := LoadRuleset(ctx, s.db, user)
	if err != nil {
		return err
	}
	content, err := RulesJSON(rs)
	if err != nil {
		return err
	}
	if s.AccountData == nil {
		return errors.New("push: no account data store to publish rules to")
	}
	return s.AccountData.SetAccountData(ctx, user, "", PushRulesType, content)
}

func (s *Service) isLocal(user id.UserID) bool { return user.Homeserver() == s.serverName }

// prepareEvents evaluates every local member's rules against events about
// to be stored; their notifications and read markers are stored with them,
// in the same transaction (rooms.Preparer). A failure is logged: an event
// is not refused for its notifications.
func (s *Service) prepareEvents(ctx context.Context, evs []*rooms.Event, stored []*storage.NewEvent, state rooms.StateMap) {
	for i, ev := range evs {
		if ev.Rejected {
			continue
		}
		actions, sent, err := s.process(ctx, ev, state)
		if err != nil {
			s.log.Warn("push: evaluate rules", "room", ev.RoomID, "event", ev.ID, "error", err)
			continue
		}
		// Shared with the stored event, which fills in their stream
		// position when it is stored.
		stored[i].PushActions, stored[i].PushSent = actions, sent
		ev.PushActions = actions
	}
}

// onEvents wakes the pushers of the users that stored events notified.
func (s *Service) onEvents(evs []*rooms.Event) {
	var actions []storage.PushAction
	for _, ev := range evs {
		actions = append(actions, ev.PushActions...)
	}
	s.notificationsAdded(actions)
}

// process returns the notifications ev makes and the read marker its
// sender's own event sets. Their stream position is the event's, filled in
// when it is stored.
func (s *Service) process(ctx context.Context, ev *rooms.Event, state rooms.StateMap) (actions []storage.PushAction, sent []storage.PushSent, err error) {
	sender := ev.PDU.Sender
	thread, err := s.threadOf(ctx, ev)
	if err != nil {
		return nil, nil, err
	}
	if s.isLocal(sender) {
		// Sending an event marks what came before it read; recorded only
		// when something may be unread, to spare a write per message. The
		// mark is remembered only if the event's notifications are worked
		// out too: otherwise its marker is never stored.
		k := readMarkKey{sender, ev.RoomID, thread}
		if s.marks.sent(k) {
			sent = append(sent, storage.PushSent{UserID: sender, RoomID: ev.RoomID, ThreadID: thread})
			defer func() {
				if err != nil {
					s.marks.forget(k)
				}
			}()
		}
	}
	members, err := s.rooms.JoinedUsers(ctx, ev.RoomID)
	if err != nil {
		return nil, nil, err
	}
	var recipients []id.UserID
	for _, m := range members {
		if m != sender && s.isLocal(m) {
			recipients = append(recipients, m)
		}
	}
	// An invitee is not a member yet, but their invite is for them
	// (.m.rule.invite_for_me).
	if ev.PDU.Type == event.StateMember.Type && ev.Membership() == event.MembershipInvite {
		if target := id.UserID(ev.StateKey()); target != sender && s.isLocal(target) {
			recipients = append(recipients, target)
		}
	}
	if len(recipients) == 0 {
		return actions, sent, nil
	}
	ignoring, err := s.usersIgnoring(ctx, sender, recipients)
	if err != nil {
		return nil, nil, err
	}
	ce, err := s.rooms.ClientEvent(ctx, ev)
	if err != nil {
		return nil, nil, err
	}
	ceJSON, err := json.Marshal(ce)
	if err != nil {
		return nil, nil, err
	}
	pev, err := NewEvent(ceJSON)
	if err != nil {
		return nil, nil, fmt.Errorf("event for push rules: %w", err)
	}
	rc := &eventRoom{s: s, ctx: ctx, ev: ev, members: len(members), state: state}
	now := s.Now().UnixMilli()
	for _, user := range recipients {
		if ignoring[user] {
			continue
		}
		c, err := s.compiledFor(ctx, user)
		if err != nil {
			return nil, nil, err
		}
		out, ok := c.evaluate(pev, rc, string(user))
		if !ok || (!out.Notify && !out.Highlight) {
			continue
		}
		actJSON, err := json.Marshal(out.Actions)
		if err != nil {
			return nil, nil, err
		}
		s.marks.notified(readMarkKey{user, ev.RoomID, thread})
		actions = append(actions, storage.PushAction{
			UserID: user, RoomID: ev.RoomID, EventID: ev.ID, ThreadID: thread,
			Notify: out.Notify, Highlight: out.Highlight, Actions: actJSON, TS: now,
		})
	}
	return actions, sent, nil
}

// usersIgnoring returns those of users whose m.ignored_user_list names
// sender: events from someone you ignore never notify you.
func (s *Service) usersIgnoring(ctx context.Context, sender id.UserID, users []id.UserID) (map[id.UserID]bool, error) {
	lists, err := s.db.IgnoredUserLists(ctx, users)
	if err != nil {
		return nil, err
	}
	out := map[id.UserID]bool{}
	for user, raw := range lists {
		var c struct {
			IgnoredUsers map[id.UserID]json.RawMessage `json:"ignored_users"`
		}
		if json.Unmarshal(raw, &c) == nil {
			if _, ok := c.IgnoredUsers[sender]; ok {
				out[user] = true
			}
		}
	}
	return out, nil
}

// maxThreadHops bounds how far an event's relations are followed to find
// its thread (the spec recommends 3).
const maxThreadHops = 3

// threadOf returns the thread an event belongs to ("" for the main
// timeline): the root of an m.thread relation, found directly or through
// up to maxThreadHops other relations (a reaction to a threaded message is
// in that thread).
func (s *Service) threadOf(ctx context.Context, ev *rooms.Event) (string, error) {
	cur := ev
	for range maxThreadHops {
		var c struct {
			RelatesTo *struct {
				RelType string     `json:"rel_type"`
				EventID id.EventID `json:"event_id"`
			} `json:"m.relates_to"`
		}
		if json.Unmarshal(cur.PDU.Content, &c) != nil || c.RelatesTo == nil || c.RelatesTo.EventID == "" {
			return "", nil
		}
		if c.RelatesTo.RelType == string(event.RelThread) {
			return string(c.RelatesTo.EventID), nil
		}
		evs, err := s.rooms.Events(ctx, []id.EventID{c.RelatesTo.EventID})
		if err != nil {
			return "", err
		}
		next, ok := evs[c.RelatesTo.EventID]
		if !ok || next.RoomID != ev.RoomID {
			return "", nil
		}
		cur = next
	}
	return "", nil
}

// eventRoom is the room as an event's push rules see it: the state after
// the event, read only when a condition asks.
type eventRoom struct {
	s       *Service
	ctx     context.Context
	ev      *rooms.Event
	members int
	// state is the room's state after the event when the builder gave
	// it, else nil (the current state is read).
	state rooms.StateMap

	plLoaded bool
	pl       *event.PowerLevelsEventContent
	notif    map[string]json.RawMessage
	names    map[string]string
}

func (r *eventRoom) MemberCount() int { return r.members }

// stateEvent is the room's state event of a type and key after the event
// (nil if none): from the state the builder gave, through the rooms
// service's event cache, or else the current state.
func (r *eventRoom) stateEvent(evType, stateKey string) (*rooms.Event, error) {
	if r.state == nil {
		return r.s.rooms.CurrentStateEvent(r.ctx, r.ev.RoomID, evType, stateKey)
	}
	evID, ok := r.state[pdu.StateKey{Type: evType, StateKey: stateKey}]
	if !ok || evID == "" {
		return nil, nil
	}
	return r.s.rooms.StateEvent(r.ctx, evID)
}

func (r *eventRoom) DisplayName(user string) string {
	if name, ok := r.names[user]; ok {
		return name
	}
	if r.names == nil {
		r.names = map[string]string{}
	}
	var name string
	if m, err := r.stateEvent(event.StateMember.Type, user); err == nil && m != nil {
		var c struct {
			DisplayName string `json:"displayname"`
		}
		if json.Unmarshal(m.PDU.Content, &c) == nil {
			name = c.DisplayName
		}
	}
	r.names[user] = name
	return name
}

// SenderMayNotify compares the sender's power level with the level the
// room's power levels require for notifications of type key (50 unless
// set), as the spec's sender_notification_permission condition does.
func (r *eventRoom) SenderMayNotify(key string) bool {
	if !r.plLoaded {
		r.plLoaded = true
		r.loadPowerLevels()
	}
	if r.pl == nil {
		return false
	}
	required := 50
	if v, ok := r.notif[key]; ok {
		var n int
		if json.Unmarshal(v, &n) != nil {
			return false
		}
		required = n
	}
	return r.pl.GetUserLevel(r.ev.PDU.Sender) >= required
}

// loadPowerLevels reads the room's power levels with the v12 creators'
// infinite power, as the rooms service computes them for auth.
func (r *eventRoom) loadPowerLevels() {
	create, err := r.stateEvent(event.StateCreate.Type, "")
	if err != nil || create == nil {
		return
	}
	pl := &event.PowerLevelsEventContent{}
	plEv, err := r.stateEvent(event.StatePowerLevels.Type, "")
	if err != nil {
		return
	}
	if plEv != nil {
		if json.Unmarshal(plEv.PDU.Content, pl) != nil {
			return
		}
		var c struct {
			Notifications map[string]json.RawMessage `json:"notifications"`
		}
		_ = json.Unmarshal(plEv.PDU.Content, &c)
		r.notif = c.Notifications
	} else {
		// Without a power levels event the creator has 100 (auth rules).
		pl.Users = map[id.UserID]int{create.PDU.Sender: 100}
	}
	if create.Version.PrivilegedRoomCreators() {
		var c event.CreateEventContent
		_ = json.Unmarshal(create.PDU.Content, &c)
		pl.CreateEvent = &event.Event{Sender: create.PDU.Sender, Content: event.Content{Parsed: &c}}
	}
	r.pl = pl
}
