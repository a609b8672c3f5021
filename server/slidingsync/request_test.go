package slidingsync

import (
	"encoding/json"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"
)

func TestRequiredStateMatching(t *testing.T) {
	const me = id.UserID("@me:x")
	cases := []struct {
		name     string
		json     string
		typ, key string
		want     bool
		lazy     bool
	}{
		{"pair exact", `[["m.room.name", ""]]`, "m.room.name", "", true, false},
		{"pair other type", `[["m.room.name", ""]]`, "m.room.topic", "", false, false},
		{"pair any key", `[["m.space.child", "*"]]`, "m.space.child", "!a:x", true, false},
		{"pair any type", `[["*", ""]]`, "m.room.topic", "", true, false},
		{"pair $ME", `[["m.room.member", "$ME"]]`, "m.room.member", "@me:x", true, false},
		{"pair $ME other", `[["m.room.member", "$ME"]]`, "m.room.member", "@you:x", false, false},
		{"pair $LAZY is not a key", `[["m.room.member", "$LAZY"]]`, "m.room.member", "$LAZY", false, true},
		{"all", `[["*", "*"]]`, "m.room.member", "@you:x", true, false},
		{"all with lazy members", `[["*", "*"], ["m.room.member", "$LAZY"]]`, "m.room.member", "@you:x", false, true},
		{"all with lazy, non-member", `[["*", "*"], ["m.room.member", "$LAZY"]]`, "m.room.create", "", true, true},
		{"object include all", `{"include": [{}]}`, "m.room.create", "", true, false},
		{"object exclude", `{"include": [{}], "exclude": [{"type": "m.room.create"}]}`, "m.room.create", "", false, false},
		{"object key only", `{"include": [{"state_key": "$ME"}]}`, "org.example", "@me:x", true, false},
		{"object lazy", `{"include": [{}], "lazy_members": true}`, "m.room.member", "@you:x", false, true},
		{"object lazy, members named", `{"include": [{"type": "m.room.member"}], "lazy_members": true}`, "m.room.member", "@you:x", true, true},
		{"null", `null`, "m.room.create", "", false, false},
	}
	for _, c := range cases {
		var rs RequiredState
		if err := json.Unmarshal([]byte(c.json), &rs); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		cfg := combine([]*RoomConfig{{TimelineLimit: new(int), RequiredState: rs}})
		if got := cfg.wants(me, c.typ, c.key); got != c.want {
			t.Errorf("%s: wants(%s, %s) = %v, want %v", c.name, c.typ, c.key, got, c.want)
		}
		if cfg.lazyMembers() != c.lazy {
			t.Errorf("%s: lazy %v, want %v", c.name, cfg.lazyMembers(), c.lazy)
		}
	}
	for _, bad := range []string{`[["a"]]`, `[["a", "b", "c"]]`, `"all"`, `[[1, 2]]`, `{"include": 5}`} {
		var rs RequiredState
		if err := json.Unmarshal([]byte(bad), &rs); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}

func TestCombinedConfigs(t *testing.T) {
	one, ten := 1, 10
	var a, b RequiredState
	_ = json.Unmarshal([]byte(`[["m.room.name", ""]]`), &a)
	_ = json.Unmarshal([]byte(`[["m.room.topic", ""], ["m.room.member", "$LAZY"]]`), &b)
	c := combine([]*RoomConfig{{TimelineLimit: &one, RequiredState: a}, {TimelineLimit: &ten, RequiredState: b}})
	if c.limit != 10 || !c.lazyMembers() || !c.wants("@me:x", "m.room.name", "") || !c.wants("@me:x", "m.room.topic", "") {
		t.Fatalf("combined %+v", c)
	}
	// The signature ignores order and duplicates, and sees any change.
	same := combine([]*RoomConfig{{TimelineLimit: &ten, RequiredState: b}, {TimelineLimit: &one, RequiredState: a}, {TimelineLimit: &one, RequiredState: a}})
	if same.sig != c.sig {
		t.Fatalf("signatures differ: %q vs %q", same.sig, c.sig)
	}
	if other := combine([]*RoomConfig{{TimelineLimit: &one, RequiredState: a}}); other.sig == c.sig {
		t.Fatal("different configs share a signature")
	}
}

func TestListRanges(t *testing.T) {
	l := &ListConfig{Ranges: [][2]int{{0, 1}, {5, 6}}}
	for i, want := range []bool{true, true, false, false, false, true, true, false} {
		if l.inRange(i) != want {
			t.Errorf("ranges: index %d in range = %v", i, !want)
		}
	}
	single := &ListConfig{Range: &[2]int{2, 3}}
	if single.inRange(1) || !single.inRange(2) || !single.inRange(3) || single.inRange(4) {
		t.Error("range: wrong window")
	}
	if all := (&ListConfig{}); !all.inRange(1000) {
		t.Error("no range should mean the whole list")
	}
}

func TestConnectionVersions(t *testing.T) {
	cs := connections{conns: map[connKey]*conn{}}
	key := connKey{user: "@me:x", device: "DEV"}
	now := time.Now()
	c, st, err := cs.acquire(key, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	st.token.Events = 7
	pos1 := c.commit(st)
	c.release()
	// The same pos twice (a retry), then the next one.
	for range 2 {
		c, st, err = cs.acquire(key, &pos1, now)
		if err != nil {
			t.Fatalf("retry with %s: %v", pos1, err)
		}
		if st.token.Events != 7 {
			t.Fatalf("state of %s lost: %+v", pos1, st.token)
		}
		c.release()
	}
	c, st, _ = cs.acquire(key, &pos1, now)
	pos2 := c.commit(st)
	c.release()
	c, _, err = cs.acquire(key, &pos2, now)
	if err != nil {
		t.Fatal(err)
	}
	c.release()
	if _, _, err := cs.acquire(key, &pos1, now); err == nil {
		t.Fatalf("superseded pos: %v", err)
	}
	// A device keeps at most maxConnsPerDevice connections.
	for i := range maxConnsPerDevice + 5 {
		c, _, _ := cs.acquire(connKey{user: "@me:x", device: "DEV", connID: string(rune('a' + i))}, nil, now)
		c.release()
	}
	if n := cs.count(); n != maxConnsPerDevice {
		t.Fatalf("%d connections kept, want %d", n, maxConnsPerDevice)
	}
	// Idle connections expire.
	c, _, _ = cs.acquire(connKey{user: "@other:x", device: "D"}, nil, now.Add(connIdleExpiry+2*time.Minute))
	c.release()
	if n := cs.count(); n != 1 {
		t.Fatalf("%d connections after a week idle, want only the new one", n)
	}
}
