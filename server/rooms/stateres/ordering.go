package stateres

import (
	"container/heap"
	"fmt"
	"math"
	"slices"

	"github.com/tidwall/gjson"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/rooms/authrules"
)

const (
	typeCreate      = "m.room.create"
	typePowerLevels = "m.room.power_levels"
	typeJoinRules   = "m.room.join_rules"
	typeMember      = "m.room.member"
)

// infinitePosition is the spec's ∞ mainline position, and also the power
// level of room creators in room version 12 (mautrix uses math.MaxInt too).
const infinitePosition = math.MaxInt

// isPowerEvent reports whether the event is a "Power event": a power levels
// or join rules event, or a membership event with membership leave or ban
// whose sender is not its state_key (a kick or a ban). As in every other
// place the spec names these events, the room's power levels and join rules
// are the ones with an empty state_key.
func isPowerEvent(evt *pdu.PDU) bool {
	if evt.StateKey == nil {
		return false
	}
	switch evt.Type {
	case typePowerLevels, typeJoinRules:
		return *evt.StateKey == ""
	case typeMember:
		membership := gjson.GetBytes(evt.Content, "membership").Str
		return (membership == string(event.MembershipLeave) || membership == string(event.MembershipBan)) &&
			evt.Sender.String() != *evt.StateKey
	}
	return false
}

// powerEventsAndAuth is algorithm step 1's set X: the power events of the full
// conflicted set, enlarged with the events of their auth chains that also
// belong to the full conflicted set. The auth chain is followed through any
// event, in the full conflicted set or not, as the definition of "Auth chain"
// says.
func (r *resolver) powerEventsAndAuth(full eventSet) eventSet {
	x := make(eventSet)
	visited := make(eventSet)
	var walk func(evID id.EventID)
	walk = func(evID id.EventID) {
		evt, ok := r.events[evID]
		if !ok {
			return
		}
		for _, authID := range evt.AuthEvents {
			if _, done := visited[authID]; done {
				continue
			}
			visited[authID] = struct{}{}
			if _, ok := full[authID]; ok {
				x[authID] = struct{}{}
			}
			walk(authID)
		}
	}
	for _, evID := range sortedIDs(full) {
		if isPowerEvent(r.events[evID]) {
			x[evID] = struct{}{}
			walk(evID)
		}
	}
	return x
}

// reverseTopologicalPowerOrder sorts events by the "Reverse topological power
// ordering": Kahn's algorithm over the auth DAG, taking at each step the
// smallest ready event, where x < y if x's sender has the greater power level
// (looking at x's own auth events), then if x has the smaller
// origin_server_ts, then if x has the smaller event ID.
//
// "Topological" is taken over the whole auth DAG: x must come before y when x
// is anywhere in y's auth chain, also when the path between them leaves the
// set being sorted. (Within the v2.1 full conflicted set such paths never
// leave the set, so there this is the same as using direct auth_events edges.)
func (r *resolver) reverseTopologicalPowerOrder(set eventSet) ([]id.EventID, error) {
	ids := sortedIDs(set)
	// below(e) are the members of the set nearest to e in its auth chain
	// (reached without passing another member). As the parents of each
	// member they give Kahn's algorithm exactly the reachability order.
	nearest := make(map[id.EventID][]id.EventID)
	var below func(evID id.EventID) []id.EventID
	below = func(evID id.EventID) []id.EventID {
		if v, ok := nearest[evID]; ok {
			return v
		}
		nearest[evID] = nil // guards against (invalid) auth cycles
		var out []id.EventID
		if evt, ok := r.events[evID]; ok {
			for _, authID := range evt.AuthEvents {
				if _, in := set[authID]; in {
					out = append(out, authID)
				} else {
					out = append(out, below(authID)...)
				}
			}
		}
		slices.Sort(out)
		out = slices.Compact(out)
		nearest[evID] = out
		return out
	}

	items := make(map[id.EventID]*sortItem, len(ids))
	children := make(map[id.EventID][]id.EventID, len(ids))
	pending := make(map[id.EventID]int, len(ids))
	for _, evID := range ids {
		power, err := r.senderPowerLevel(evID)
		if err != nil {
			return nil, err
		}
		items[evID] = &sortItem{id: evID, key: power, ts: r.events[evID].OriginServerTS}
		parents := below(evID)
		pending[evID] = len(parents)
		for _, p := range parents {
			children[p] = append(children[p], evID)
		}
	}

	ready := &powerHeap{}
	for _, evID := range ids {
		if pending[evID] == 0 {
			heap.Push(ready, items[evID])
		}
	}
	out := make([]id.EventID, 0, len(ids))
	for ready.Len() > 0 {
		it := heap.Pop(ready).(*sortItem)
		out = append(out, it.id)
		for _, child := range children[it.id] {
			pending[child]--
			if pending[child] == 0 {
				heap.Push(ready, items[child])
			}
		}
	}
	if len(out) != len(ids) {
		return nil, fmt.Errorf("%w: the auth events of %d power events form a cycle", ErrInvalidState, len(ids)-len(out))
	}
	return out, nil
}

type sortItem struct {
	id  id.EventID
	key int // power level of the sender, or mainline position
	ts  int64
}

// powerLess is the comparison of the "Reverse topological power ordering".
func powerLess(a, b *sortItem) bool {
	if a.key != b.key {
		return a.key > b.key
	}
	if a.ts != b.ts {
		return a.ts < b.ts
	}
	return a.id < b.id
}

type powerHeap []*sortItem

func (h powerHeap) Len() int           { return len(h) }
func (h powerHeap) Less(i, j int) bool { return powerLess(h[i], h[j]) }
func (h powerHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *powerHeap) Push(x any)        { *h = append(*h, x.(*sortItem)) }
func (h *powerHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

// senderPowerLevel is the power level of the event's sender "when looking at
// their respective auth_events": the users entry (else users_default) of the
// power levels event among its auth events. Without one, the auth rules'
// default applies: the room creator has 100, everyone else 0. In room version
// 12 the room creators (the create event's sender and its additional_creators)
// have infinite power level whatever the power levels say.
func (r *resolver) senderPowerLevel(evID id.EventID) (int, error) {
	if v, ok := r.senderPower[evID]; ok {
		return v, nil
	}
	evt := r.events[evID]
	if err := r.load(evt.AuthEvents); err != nil {
		return 0, fmt.Errorf("auth events of %s: %w", evID, err)
	}
	var plEvt, createEvt *pdu.PDU
	for _, authID := range evt.AuthEvents {
		ae := r.events[authID]
		if ae.StateKey == nil || *ae.StateKey != "" {
			continue
		}
		switch ae.Type {
		case typePowerLevels:
			plEvt = ae
		case typeCreate:
			createEvt = ae
		}
	}

	var level int
	if r.version.PrivilegedRoomCreators() {
		// Reuse mautrix's model of creator power: PowerLevelsEventContent
		// with CreateEvent set reports math.MaxInt for the creators.
		info, err := r.create()
		if err != nil {
			return 0, err
		}
		pl := &event.PowerLevelsEventContent{CreateEvent: info.clientEvent}
		if plEvt != nil {
			pl.Users, pl.UsersDefault = parseUserLevels(r.version, plEvt)
		}
		level = pl.GetUserLevel(evt.Sender)
	} else if plEvt != nil {
		users, usersDefault := parseUserLevels(r.version, plEvt)
		pl := &event.PowerLevelsEventContent{Users: users, UsersDefault: usersDefault}
		level = pl.GetUserLevel(evt.Sender)
	} else if createEvt != nil && evt.Sender == roomCreator(r.version, createEvt) {
		level = 100
	}

	if r.senderPower == nil {
		r.senderPower = make(map[id.EventID]int)
	}
	r.senderPower[evID] = level
	return level, nil
}

// roomCreator is the creator the auth rules give 100 when there is no power
// levels event: content.creator up to room version 10, the sender from 11.
func roomCreator(version id.RoomVersion, createEvt *pdu.PDU) id.UserID {
	if version.CreatorInContent() {
		return id.UserID(gjson.GetBytes(createEvt.Content, "creator").Str)
	}
	return createEvt.Sender
}

// parseUserLevels reads users and users_default from a power levels event,
// with the integer rules of the room version: from room version 10 only JSON
// integers count; before, the auth rules accept what Python's int() accepts
// ("v1-stringy-power-levels").
func parseUserLevels(version id.RoomVersion, plEvt *pdu.PDU) (map[id.UserID]int, int) {
	users := make(map[id.UserID]int)
	gjson.GetBytes(plEvt.Content, "users").ForEach(func(key, value gjson.Result) bool {
		if v, ok := authrules.ParseLevel(version, value); ok {
			users[id.UserID(key.Str)] = v
		}
		return true
	})
	usersDefault, _ := authrules.ParseLevel(version, gjson.GetBytes(plEvt.Content, "users_default"))
	return users, usersDefault
}

// createInfo is the room version 12 create event, which events reach through
// their room ID rather than their auth events.
type createInfo struct {
	clientEvent *event.Event
}

func (r *resolver) create() (*createInfo, error) {
	if r.createInfo != nil {
		return r.createInfo, nil
	}
	if len(r.roomID) < 2 {
		return nil, fmt.Errorf("%w: no room ID to find the create event with", ErrInvalidState)
	}
	createID := id.EventID("$" + r.roomID[1:])
	evt, err := r.event(createID)
	if err != nil {
		return nil, fmt.Errorf("create event of %s: %w", r.roomID, err)
	}
	ce, err := evt.ToClientEvent(r.version)
	if err == nil {
		err = ce.Content.ParseRaw(ce.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: parse create event %s: %w", ErrInvalidState, createID, err)
	}
	r.createInfo = &createInfo{clientEvent: ce}
	return r.createInfo, nil
}

// powerLevelsAuthEvent returns the m.room.power_levels event among the auth
// events of evID, or "" if there is none.
func (r *resolver) powerLevelsAuthEvent(evID id.EventID) (id.EventID, error) {
	evt, err := r.event(evID)
	if err != nil {
		return "", err
	}
	if err := r.load(evt.AuthEvents); err != nil {
		return "", fmt.Errorf("auth events of %s: %w", evID, err)
	}
	for _, authID := range evt.AuthEvents {
		ae := r.events[authID]
		if ae.Type == typePowerLevels && ae.StateKey != nil && *ae.StateKey == "" {
			return authID, nil
		}
	}
	return "", nil
}

// mainlineOrder sorts events by the "Mainline ordering" based on the power
// levels event pl ("" when the partially resolved state has none, which makes
// the mainline empty and every position ∞).
//
// The mainline of P0 is P0, the power levels event in P0's auth events (P1),
// the one in P1's, and so on. The mainline position of an event e is the
// index i of the first event of e's own such chain [e1, e2, …] (e itself not
// included) that is on the mainline, or ∞. Events sort by greater position
// first, then smaller origin_server_ts, then smaller event ID.
func (r *resolver) mainlineOrder(events []id.EventID, pl id.EventID) ([]id.EventID, error) {
	if len(events) == 0 {
		return nil, nil
	}
	mainline := make(map[id.EventID]int)
	for i, p := 0, pl; p != ""; i++ {
		if _, loop := mainline[p]; loop {
			break
		}
		mainline[p] = i
		next, err := r.powerLevelsAuthEvent(p)
		if err != nil {
			return nil, err
		}
		p = next
	}

	// positionFrom[p] memoises the position found walking from power levels
	// event p, so shared chains are walked once.
	positionFrom := make(map[id.EventID]int)
	position := func(start id.EventID) (int, error) {
		var path []id.EventID
		onPath := make(eventSet)
		pos := infinitePosition
		for p := start; p != ""; {
			if v, ok := mainline[p]; ok {
				pos = v
				break
			}
			if v, ok := positionFrom[p]; ok {
				pos = v
				break
			}
			if _, loop := onPath[p]; loop {
				break
			}
			onPath[p] = struct{}{}
			path = append(path, p)
			next, err := r.powerLevelsAuthEvent(p)
			if err != nil {
				return 0, err
			}
			p = next
		}
		for _, p := range path {
			positionFrom[p] = pos
		}
		return pos, nil
	}

	items := make([]*sortItem, 0, len(events))
	for _, evID := range events {
		first, err := r.powerLevelsAuthEvent(evID)
		if err != nil {
			return nil, err
		}
		pos, err := position(first)
		if err != nil {
			return nil, err
		}
		items = append(items, &sortItem{id: evID, key: pos, ts: r.events[evID].OriginServerTS})
	}
	// A greater mainline position sorts first, like a greater power level in
	// powerLess; the tie-breaks are the same.
	slices.SortFunc(items, func(a, b *sortItem) int {
		switch {
		case powerLess(a, b):
			return -1
		case powerLess(b, a):
			return 1
		}
		return 0
	})
	out := make([]id.EventID, len(items))
	for i, it := range items {
		out[i] = it.id
	}
	return out, nil
}
