package stateres

import (
	"context"
	"fmt"
	"testing"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// bigRoomForks builds a room with the admin, a moderator and n members, all
// joined, then two concurrent branches with a handful of typical changes each:
// power level changes on both, a kick, a ban, a profile change, a leave, new
// joins and a topic on each.
func bigRoomForks(tb testT, v id.RoomVersion, n int) (*testRoom, []StateMap) {
	members := make([]id.UserID, n)
	for i := range members {
		members[i] = user(fmt.Sprintf("u%05d", i))
	}
	r, base := standardRoom(tb, v, members...)
	a, c := base.fork(), base.fork()

	// a: the admin promotes u00001; later the moderator kicks u00005 and
	// sets the topic, and u00007 changes their display name.
	// c: the admin demotes the moderator (after a's promotion, so it is the
	// power levels applied last), bans u00006, five people join, u00009
	// leaves, and the admin sets the topic.
	a.powerLevels(tb, admin, levels(v, admin, map[id.UserID]int{mod: 50, members[1]: 50}), nil)
	c.powerLevels(tb, admin, levels(v, admin, map[id.UserID]int{mod: 0}), nil)
	c.member(tb, admin, members[6], event.MembershipBan)
	for i := range 5 {
		c.join(tb, user(fmt.Sprintf("new%d", i)))
	}
	c.member(tb, members[9], members[9], event.MembershipLeave)
	c.topic(tb, admin, "from branch c")
	a.member(tb, mod, members[5], event.MembershipLeave)
	a.send(tb, members[7], typeMember, members[7].String(), map[string]any{"membership": "join", "displayname": "Seven"})
	a.topic(tb, mod, "from branch a")
	return r, []StateMap{a.state, c.state}
}

// BenchmarkResolve10kMembers resolves two forks of a room of 10,000 members.
func BenchmarkResolve10kMembers(b *testing.B) {
	for _, v := range []id.RoomVersion{id.RoomV11, id.RoomV12} {
		b.Run("v"+string(v), func(b *testing.B) {
			r, states := bigRoomForks(b, v, 10_000)
			ctx := context.Background()
			r.loadEvents = 0
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := Resolve(ctx, v, states, r); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/op")
			b.ReportMetric(float64(r.loadEvents)/float64(b.N), "loaded/op")
		})
	}
}

// TestBigRoomForks checks the benchmark's resolution on a smaller room: the
// demotion is applied last, so the moderator's later kick and topic fail; the
// rest applies.
func TestBigRoomForks(t *testing.T) {
	forVersions(t, []id.RoomVersion{id.RoomV11, id.RoomV12}, func(t *testing.T, v id.RoomVersion) {
		r, states := bigRoomForks(t, v, 200)
		got := r.resolve(t, states...)
		a, c := states[0], states[1]
		wantEntry(t, got, plKey, c[plKey], "the admin's later demotion of the moderator")
		wantEntry(t, got, memberKey(user("u00005")), c[memberKey(user("u00005"))], "kick by the demoted moderator")
		wantEntry(t, got, memberKey(user("u00006")), c[memberKey(user("u00006"))], "ban by the admin")
		wantEntry(t, got, memberKey(user("u00007")), a[memberKey(user("u00007"))], "profile change")
		wantEntry(t, got, memberKey(user("u00009")), c[memberKey(user("u00009"))], "leave")
		wantEntry(t, got, memberKey(user("new4")), c[memberKey(user("new4"))], "new join")
		wantEntry(t, got, topicKey, c[topicKey], "the admin's topic (the moderator's fails)")
		if len(got) != len(c) {
			t.Errorf("resolved state has %d entries, want %d", len(got), len(c))
		}
	})
}
