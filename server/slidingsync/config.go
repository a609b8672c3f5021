package slidingsync

import (
	"slices"
	"strconv"
	"strings"

	"maunium.net/go/mautrix/id"
)

// roomConfig is the config a room is sent with this time: when it matches
// several lists and subscriptions, their superset (the largest timeline
// limit, the union of required states), as the MSC's "Combining room
// configs" says. It is immutable once built, so a connection's memory of
// what it sent can share it.
type roomConfig struct {
	limit  int
	states []RequiredState
	sig    string // canonical form, to notice a changed config
}

// combine merges the configs a room matched.
func combine(configs []*RoomConfig) *roomConfig {
	c := &roomConfig{}
	for _, rc := range configs {
		if rc.TimelineLimit != nil {
			c.limit = max(c.limit, min(*rc.TimelineLimit, maxTimelineLimit))
		}
		c.states = append(c.states, rc.RequiredState)
	}
	parts := make([]string, 0, len(c.states))
	for _, rs := range c.states {
		parts = append(parts, rs.signature())
	}
	slices.Sort(parts)
	parts = slices.Compact(parts)
	c.sig = strings.Join(parts, "|")
	return c
}

func (rs RequiredState) signature() string {
	var b strings.Builder
	for _, p := range rs.Include {
		b.WriteString("+" + p.String())
	}
	for _, p := range rs.Exclude {
		b.WriteString("-" + p.String())
	}
	b.WriteString(" lazy=" + strconv.FormatBool(rs.LazyMembers))
	return b.String()
}

func (p StatePattern) String() string {
	t, k := strconv.Quote(p.Type), strconv.Quote(p.StateKey)
	if p.AnyType {
		t = "*"
	}
	if p.AnyKey {
		k = "*"
	}
	return t + "," + k
}

// lazyMembers tells whether membership is lazily loaded: sent for the
// timeline's senders and targets rather than in full.
func (c *roomConfig) lazyMembers() bool {
	for _, rs := range c.states {
		if rs.LazyMembers {
			return true
		}
	}
	return false
}

// wants tells whether a state entry is asked for explicitly (lazy-loaded
// members aside).
func (c *roomConfig) wants(user id.UserID, typ, key string) bool {
	for _, rs := range c.states {
		if rs.wants(user, typ, key) {
			return true
		}
	}
	return false
}

func (rs RequiredState) wants(user id.UserID, typ, key string) bool {
	for _, p := range rs.Exclude {
		if p.matches(user, typ, key) {
			return false
		}
	}
	for _, p := range rs.Include {
		if !p.matches(user, typ, key) {
			continue
		}
		// With lazy members, "all state" means all but the membership,
		// which comes lazily; members named by type still match.
		if rs.LazyMembers && p.AnyType && typ == memberTyp {
			continue
		}
		return true
	}
	return false
}

func (p StatePattern) matches(user id.UserID, typ, key string) bool {
	if !p.AnyType && p.Type != typ {
		return false
	}
	if p.AnyKey {
		return true
	}
	if p.StateKey == meKey {
		return key == string(user)
	}
	return p.StateKey == key
}
