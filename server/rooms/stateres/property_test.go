package stateres

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/tidwall/gjson"
	"pgregory.net/rapid"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"
)

var frank = user("frank")

// genUsers are the people of generated rooms; admin creates them.
var genUsers = []id.UserID{admin, mod, carol, dave, eve, frank}

// genCase is a generated room with a DAG that forks (and forks again) from a
// common base, and the state at the end of each branch.
type genCase struct {
	room   *testRoom
	states []StateMap
	ops    []string
}

// genForks builds a random room: random power levels and memberships, then
// branches that fork from the base or from each other and get random events
// (power level changes, kicks, bans, unbans, invites, joins, leaves, join rule
// changes, topics, names) from random senders. Events the auth rules reject on
// their branch are dropped, as a server would. Timestamps are sometimes
// repeated or out of order, so the tie-breaks are exercised.
func genForks(t *rapid.T, version id.RoomVersion, gmslCompatible bool) *genCase {
	r, b := newTestRoom(t, version, admin, nil)
	c := &genCase{room: r}
	b.join(t, admin)
	users := make(map[id.UserID]int)
	for _, u := range genUsers[1:] {
		if lvl := rapid.SampledFrom([]int{0, 50, 50, 100}).Draw(t, "level of "+u.Localpart()); lvl > 0 {
			users[u] = lvl
		}
	}
	b.powerLevels(t, admin, levels(version, admin, users), nil)
	if gmslCompatible {
		// The admin's first join has no power levels in its auth events;
		// a later profile update does. See TestDifferentialGomatrixserverlib.
		b.send(t, admin, typeMember, admin.String(), map[string]any{"membership": "join", "displayname": "Admin"})
	}
	b.joinRules(t, admin, event.JoinRulePublic)
	for _, u := range genUsers[1:] {
		if rapid.IntRange(0, 2).Draw(t, "joins "+u.Localpart()) > 0 {
			b.join(t, u)
		}
	}
	if rapid.Bool().Draw(t, "invite only") {
		b.joinRules(t, admin, event.JoinRuleInvite)
	}

	branches := []*branch{b.fork()}
	// changed records, per branch, the keys it (or the branch it forked
	// from) changed since the base.
	changed := map[*branch]map[pdu.StateKey]bool{branches[0]: {}}
	maxBranches := rapid.IntRange(2, 4).Draw(t, "branches")
	ops := rapid.IntRange(1, 20).Draw(t, "ops")
	for range ops {
		if len(branches) < maxBranches && (len(branches) < 2 || rapid.IntRange(0, 3).Draw(t, "fork now") == 0) {
			parent := branches[rapid.IntRange(0, len(branches)-1).Draw(t, "fork from")]
			child := parent.fork()
			changed[child] = maps.Clone(changed[parent])
			branches = append(branches, child)
		}
		bi := rapid.IntRange(0, len(branches)-1).Draw(t, "branch")
		br := branches[bi]
		before := maps.Clone(br.state)
		if op := randomOp(t, br, gmslCompatible, bi == 0, changed[br]); op != "" {
			c.ops = append(c.ops, fmt.Sprintf("branch %d: %s", bi, op))
		}
		for k, v := range br.state {
			if before[k] != v {
				changed[br][k] = true
			}
		}
	}
	for len(branches) < 2 {
		branches = append(branches, b.fork())
	}
	for _, br := range branches {
		c.states = append(c.states, br.state)
	}
	if !gmslCompatible && rapid.IntRange(0, 4).Draw(t, "include base") == 0 {
		c.states = append(c.states, b.state)
	}
	return c
}

// randomOp tries one random event on the branch and describes it, or returns
// "" when the auth rules did not allow it.
//
// gmslCompatible keeps to what gomatrixserverlib resolves as the spec says
// (see TestDifferentialGomatrixserverlib): power level and join rules changes
// only by the admin, power level changes only on the first branch and never of
// the admin's own level or membership, no kicks or bans, leaves only on the
// first branch, each key changed at most once along a branch, and timestamps
// that grow along the DAG.
func randomOp(t *rapid.T, b *branch, gmslCompatible, firstBranch bool, changed map[pdu.StateKey]bool) string {
	kind := rapid.SampledFrom([]string{"power", "power", "power", "ban", "kick", "unban", "invite", "join", "join", "leave", "rules", "topic", "topic", "name"}).Draw(t, "op")
	sender := rapid.SampledFrom(genUsers).Draw(t, "sender")
	target := rapid.SampledFrom(genUsers).Draw(t, "target")
	if gmslCompatible {
		switch kind {
		case "power":
			if !firstBranch || target == admin {
				return ""
			}
			sender = admin
		case "ban", "kick", "unban":
			// These pull the target's membership, sent with a lower power
			// level, into the power-sorted events.
			return ""
		case "rules":
			sender = admin
		case "leave":
			// Concurrent leaves of one user make a leave→leave
			// transition, which gomatrixserverlib allows ("NOTSPEC").
			if !firstBranch {
				return ""
			}
		}
		if (kind == "join" || kind == "leave") && sender == admin {
			// The admin's membership is in the auth chain of the power
			// events; a conflicted one links conflicted power events,
			// which gomatrixserverlib duplicates and then misorders.
			return ""
		}
	}
	if !gmslCompatible && rapid.IntRange(0, 3).Draw(t, "odd timestamp") == 0 {
		b.room.at(1_700_000_000_000 + int64(rapid.IntRange(1, 6).Draw(t, "timestamp"))*1000)
	}
	var typ, stateKey string
	var content map[string]any
	switch kind {
	case "power":
		typ = typePowerLevels
		content = currentPowerLevels(b)
		users := content["users"].(map[string]any)
		if lvl := rapid.SampledFrom([]int{-1, 0, 0, 50, 75, 100}).Draw(t, "new level"); lvl < 0 {
			delete(users, target.String())
		} else {
			users[target.String()] = lvl
		}
		if !gmslCompatible && rapid.IntRange(0, 3).Draw(t, "change a threshold") == 0 {
			field := rapid.SampledFrom([]string{"ban", "kick", "state_default", "invite"}).Draw(t, "threshold")
			content[field] = rapid.SampledFrom([]int{0, 50, 100}).Draw(t, "threshold level")
		}
	case "ban", "kick", "unban", "invite", "join", "leave":
		typ, stateKey = typeMember, target.String()
		membership := map[string]event.Membership{"ban": event.MembershipBan, "kick": event.MembershipLeave, "unban": event.MembershipLeave, "invite": event.MembershipInvite, "join": event.MembershipJoin, "leave": event.MembershipLeave}[kind]
		if kind == "join" || kind == "leave" {
			stateKey = sender.String()
		}
		content = map[string]any{"membership": membership}
	case "rules":
		typ = typeJoinRules
		content = map[string]any{"join_rule": rapid.SampledFrom([]event.JoinRule{event.JoinRulePublic, event.JoinRuleInvite}).Draw(t, "rule")}
	case "topic", "name":
		typ = "m.room." + kind
		key := map[string]string{"topic": "topic", "name": "name"}[kind]
		content = map[string]any{key: fmt.Sprintf("%s %d", kind, rapid.IntRange(0, 99).Draw(t, "text"))}
	}
	if gmslCompatible && changed[stateKeyOf(typ, stateKey)] {
		// A second change of a key on a branch leaves the first in the
		// auth difference, which gomatrixserverlib does not replay.
		return ""
	}
	evID, err := b.trySend(t, sender, typ, stateKey, content)
	if err != nil {
		return ""
	}
	return fmt.Sprintf("%s by %s on %q: %s", kind, sender.Localpart(), stateKey, evID)
}

// currentPowerLevels returns a mutable copy of the branch's power levels.
func currentPowerLevels(b *branch) map[string]any {
	content := map[string]any{"users": map[string]any{}}
	if plID, ok := b.state[plKey]; ok {
		gjson.ParseBytes(b.room.get(plID).Content).ForEach(func(k, v gjson.Result) bool {
			if k.Str == "users" {
				users := map[string]any{}
				v.ForEach(func(u, l gjson.Result) bool {
					users[u.Str] = l.Int()
					return true
				})
				content["users"] = users
			} else {
				content[k.Str] = v.Value()
			}
			return true
		})
	}
	return content
}

// chainRoom is the room as a Loader that is also an AuthChainer, computing
// chains by a plain depth-first search, so the two ways of getting auth chains
// can be compared.
type chainRoom struct{ *testRoom }

func (c chainRoom) AuthChain(_ context.Context, ids []id.EventID) (map[id.EventID]struct{}, error) {
	out := make(map[id.EventID]struct{})
	var walk func(evID id.EventID)
	walk = func(evID id.EventID) {
		for _, a := range c.get(evID).AuthEvents {
			if _, ok := out[a]; !ok {
				out[a] = struct{}{}
				walk(a)
			}
		}
	}
	for _, evID := range ids {
		walk(evID)
	}
	return out, nil
}

// reshuffled returns the state sets in a different order, each map rebuilt by
// inserting its entries in a different order.
func reshuffled(t *rapid.T, states []StateMap) []StateMap {
	out := make([]StateMap, 0, len(states))
	for i, s := range rapid.Permutation(states).Draw(t, "state set order") {
		keys := slices.SortedFunc(maps.Keys(s), func(a, b pdu.StateKey) int {
			if a.Type != b.Type {
				return compareStrings(a.Type, b.Type)
			}
			return compareStrings(a.StateKey, b.StateKey)
		})
		keys = rapid.Permutation(keys).Draw(t, fmt.Sprintf("insertion order %d", i))
		m := make(StateMap, len(s))
		for _, k := range keys {
			m[k] = s[k]
		}
		out = append(out, m)
	}
	return out
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func TestProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		version := rapid.SampledFrom([]id.RoomVersion{id.RoomV10, id.RoomV11, id.RoomV12}).Draw(t, "version")
		c := genForks(t, version, false)
		ctx := context.Background()
		resolve := func(what string, states []StateMap, loader Loader) StateMap {
			got, err := Resolve(ctx, version, states, loader)
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			return got
		}
		got := resolve("resolve", c.states, c.room)

		// The order of the state sets, and of the entries inside them,
		// does not matter.
		if again := resolve("reshuffled", reshuffled(t, c.states), c.room); !maps.Equal(got, again) {
			t.Fatalf("reshuffled state sets resolve differently:\n%v\n%v\nops: %v", got, again, c.ops)
		}
		// Nor does a state set given twice.
		if again := resolve("duplicated", append(slices.Clone(c.states), c.states[0]), c.room); !maps.Equal(got, again) {
			t.Fatalf("a duplicated state set changes the result\nops: %v", c.ops)
		}
		// An AuthChainer gives the same result as walking auth events.
		if again := resolve("AuthChainer", c.states, chainRoom{c.room}); !maps.Equal(got, again) {
			t.Fatalf("AuthChainer changes the result\nops: %v", c.ops)
		}
		// The full conflicted set, computed with the (U − …) shortcut and
		// the pruned walk, is the one the spec's definitions give.
		for _, loader := range []Loader{c.room, chainRoom{c.room}} {
			got, want := fullConflictedSetOf(t, version, c.states, loader), bruteFullConflictedSet(c.room, c.states)
			if !maps.Equal(got, want) {
				t.Fatalf("full conflicted set (%T):\n got %v\nwant %v", loader, sortedIDs(got), sortedIDs(want))
			}
		}
		// A single state set resolves to itself.
		for i, s := range c.states {
			if one := resolve("single", []StateMap{s}, c.room); !maps.Equal(one, s) {
				t.Fatalf("state set %d alone does not resolve to itself", i)
			}
		}
		// Unconflicted entries always survive.
		for k, v := range c.states[0] {
			unconflicted := true
			for _, s := range c.states[1:] {
				if s[k] != v {
					unconflicted = false
				}
			}
			if unconflicted && got[k] != v {
				t.Fatalf("unconflicted (%s, %q) = %s became %q", k.Type, k.StateKey, v, got[k])
			}
		}
		// Every entry is an event of the room under its own key, and the
		// room keeps its create event.
		for k, v := range got {
			evt := c.room.get(v)
			if evt == nil || evt.Type != k.Type || *evt.StateKey != k.StateKey {
				t.Fatalf("(%s, %q) holds %s, which is not such an event", k.Type, k.StateKey, v)
			}
		}
		if got[stateKeyOf(typeCreate, "")] != c.room.create {
			t.Fatal("the create event was lost")
		}
	})
}

func fullConflictedSetOf(t *rapid.T, version id.RoomVersion, states []StateMap, loader Loader) eventSet {
	unconflicted, conflicts, err := separate(states)
	if err != nil {
		t.Fatal(err)
	}
	r := &resolver{ctx: context.Background(), version: version, v21: version.StateResVersion() == id.StateResV2_1, loader: loader, events: map[id.EventID]*pdu.PDU{}}
	r.chainer, _ = loader.(AuthChainer)
	if err := r.load(sortedIDs(conflicts.ids)); err != nil {
		t.Fatal(err)
	}
	full, err := r.fullConflictedSet(states, unconflicted, conflicts)
	if err != nil {
		t.Fatal(err)
	}
	return full
}

// bruteFullConflictedSet is the spec's "Full conflicted set" from its
// definitions, without shortcuts: the conflicted state set, the auth
// difference of the full auth chains of every event of every state set, and
// for v2.1 every event on a path between two conflicted events, found by
// walking every path from every conflicted event.
func bruteFullConflictedSet(r *testRoom, states []StateMap) eventSet {
	_, conflicts, _ := separate(states)
	full := maps.Clone(conflicts.ids)
	count := map[id.EventID]int{}
	for _, s := range states {
		chain, _ := chainRoom{r}.AuthChain(context.Background(), slices.Collect(maps.Values(s)))
		for evID := range chain {
			count[evID]++
		}
	}
	for evID, n := range count {
		if n < len(states) {
			full[evID] = struct{}{}
		}
	}
	if r.version.StateResVersion() != id.StateResV2_1 {
		return full
	}
	// The implementer's guide's naive walk, with one memo: a node already
	// known to lead to a conflicted event adds its path without walking on.
	leads := map[id.EventID]bool{}
	var walk func(evID id.EventID, path []id.EventID) bool
	walk = func(evID id.EventID, path []id.EventID) bool {
		found := false
		if _, ok := conflicts.ids[evID]; ok && len(path) > 0 {
			found = true
		}
		if known, ok := leads[evID]; ok {
			found = found || known
		} else {
			below := false
			for _, a := range r.get(evID).AuthEvents {
				if walk(a, append(path, evID)) {
					below = true
				}
			}
			leads[evID] = below || isConflicted(conflicts, evID)
			found = found || below
		}
		if found {
			for _, p := range path {
				full[p] = struct{}{}
			}
		}
		return found || isConflicted(conflicts, evID)
	}
	for evID := range conflicts.ids {
		walk(evID, nil)
	}
	return full
}

func isConflicted(c *conflicts, evID id.EventID) bool {
	_, ok := c.ids[evID]
	return ok
}
