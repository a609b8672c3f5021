package stateres

import (
	"bytes"
	"crypto/sha1"
	"testing"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// A moderator bans eve while the admin concurrently demotes the moderator.
// The power levels are resolved first (the demotion, deeper, is applied on
// top of the old levels and is allowed), then the memberships against them:
// the ban is no longer allowed and eve stays joined.
func TestV1BanRacingDemotion(t *testing.T) {
	r, base := standardRoom(t, id.RoomV1, eve)
	eveJoin := base.state[memberKey(eve)]
	banning, demoting := base.fork(), base.fork()
	banning.member(t, mod, eve, event.MembershipBan)
	demotion := demoting.powerLevels(t, admin, levels(id.RoomV1, admin, map[id.UserID]int{mod: 0}), nil)
	for _, order := range [][]StateMap{{banning.state, demoting.state}, {demoting.state, banning.state}} {
		got := r.resolve(t, order...)
		wantEntry(t, got, plKey, demotion, "the demotion stands")
		wantEntry(t, got, memberKey(eve), eveJoin, "the ban by the demoted moderator is dropped")
	}
}

// Ordinary state goes to the deepest event the auth rules allow, whatever the
// timestamps say (state resolution v2 would order by power and time), and
// between equal depths to the lowest sha1 of the event ID. A key only one
// state set has is not a conflict.
func TestV1OrdinaryConflicts(t *testing.T) {
	r, base := standardRoom(t, id.RoomV1, eve)
	short, long := base.fork(), base.fork()
	long.topic(t, mod, "first")
	deep := long.topic(t, mod, "second")
	// The shallower topic is the newest by the clock.
	r.at(1_900_000_000_000)
	short.topic(t, admin, "newest")
	carolJoin := short.join(t, carol)

	got := r.resolve(t, short.state, long.state)
	wantEntry(t, got, topicKey, deep, "the deepest topic")
	wantEntry(t, got, memberKey(carol), carolJoin, "a join only one side has")

	a, b := base.fork(), base.fork()
	ta, tb := a.topic(t, admin, "a"), b.topic(t, mod, "b")
	want := ta
	if sa, sb := sha1.Sum([]byte(ta)), sha1.Sum([]byte(tb)); bytes.Compare(sb[:], sa[:]) < 0 {
		want = tb
	}
	for _, order := range [][]StateMap{{a.state, b.state}, {b.state, a.state}} {
		wantEntry(t, r.resolve(t, order...), topicKey, want, "equal depths: the lowest sha1(event_id)")
	}

	// A deeper topic its sender may no longer set loses to one that passes
	// the auth rules in the resolved state.
	demoted, kept := base.fork(), base.fork()
	demoted.topic(t, mod, "by the moderator")
	demoted.topic(t, mod, "again")
	demoted.topic(t, mod, "and again")
	demotion := kept.powerLevels(t, admin, levels(id.RoomV1, admin, map[id.UserID]int{mod: 0}), map[string]any{"state_default": 50})
	adminTopic := kept.topic(t, admin, "by the admin")
	got = r.resolve(t, demoted.state, kept.state)
	wantEntry(t, got, plKey, demotion, "the demotion")
	wantEntry(t, got, topicKey, adminTopic, "the topic the demoted moderator set is not allowed")
}
