package push

import (
	"encoding/json"
	"slices"
	"testing"
)

// The spec's examples for each condition kind ("Conditions" in the push
// module), and the corners of paths and globs.

type testRoom struct {
	members int
	names   map[string]string
	mayRoom bool
}

func (r testRoom) MemberCount() int               { return r.members }
func (r testRoom) DisplayName(user string) string { return r.names[user] }
func (r testRoom) SenderMayNotify(key string) bool {
	return key == "room" && r.mayRoom
}

func mustEvent(t *testing.T, js string) *Event {
	t.Helper()
	ev, err := NewEvent([]byte(js))
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func condMatches(t *testing.T, cond, ev string) bool {
	t.Helper()
	c := parseCondition(json.RawMessage(cond))
	return c.match(mustEvent(t, ev), testRoom{members: 2, names: map[string]string{"@bob:x": "Bob Smith"}, mayRoom: true}, "@bob:x")
}

func TestEventMatch(t *testing.T) {
	topic := func(v string) string { return `{"type":"m.room.topic","state_key":"","content":{"topic":` + v + `}}` }
	cond := `{"kind":"event_match","key":"content.topic","pattern":"lunc?*"}`
	for v, want := range map[string]bool{`"Lunch plans"`: true, `"LUNCH"`: true, `" lunch"`: false, `"lunc"`: false, `null`: false, `5`: false} {
		if got := condMatches(t, cond, topic(v)); got != want {
			t.Errorf("lunc?* against topic %s: %v, want %v", v, got, want)
		}
	}
	// A missing property never matches, not even "*".
	if condMatches(t, `{"kind":"event_match","key":"content.nope","pattern":"*"}`, topic(`"x"`)) {
		t.Error("* matched a missing property")
	}
	// content.body: any substring between word boundaries.
	body := func(b string) string { return `{"type":"m.room.message","content":{"body":` + b + `}}` }
	cond = `{"kind":"event_match","key":"content.body","pattern":"ex*ple"}`
	for b, want := range map[string]bool{`"An example event."`: true, `"exple"`: true, `"An exciting triple-whammy"`: true, `"examples"`: false, `"reexample"`: false, `"ex_ple"`: true, `"ex\nple"`: true} {
		if got := condMatches(t, cond, body(b)); got != want {
			t.Errorf("ex*ple against body %s: %v, want %v", b, got, want)
		}
	}
	// Other keys match the whole value, not a substring.
	if condMatches(t, `{"kind":"event_match","key":"type","pattern":"m.room"}`, body(`"x"`)) {
		t.Error("type m.room matched m.room.message")
	}
	// An empty pattern matches an empty state key only.
	if !condMatches(t, `{"kind":"event_match","key":"state_key","pattern":""}`, topic(`"x"`)) ||
		condMatches(t, `{"kind":"event_match","key":"state_key","pattern":""}`, body(`"x"`)) {
		t.Error("empty state_key pattern")
	}
	// Regular expression characters in a pattern are literal.
	if condMatches(t, `{"kind":"event_match","key":"content.body","pattern":"a.c"}`, body(`"abc"`)) ||
		!condMatches(t, `{"kind":"event_match","key":"content.body","pattern":"a.c"}`, body(`"x a.c y"`)) {
		t.Error("dot in a pattern is not literal")
	}
}

func TestEventPropertyIs(t *testing.T) {
	create := func(v string) string {
		return `{"type":"m.room.create","state_key":"","content":{"m.federate":` + v + `,"n":{"a.b":7}}}`
	}
	cond := `{"kind":"event_property_is","key":"content.m\\.federate","value":true}`
	for v, want := range map[string]bool{`true`: true, `"true"`: false, `1`: false, `false`: false} {
		if got := condMatches(t, cond, create(v)); got != want {
			t.Errorf("m.federate %s: %v, want %v", v, got, want)
		}
	}
	if !condMatches(t, `{"kind":"event_property_is","key":"content.n.a\\.b","value":7}`, create("true")) {
		t.Error("integer 7 through an escaped path")
	}
	if !condMatches(t, `{"kind":"event_property_is","key":"content.m\\.federate","value":null}`, create("null")) {
		t.Error("null equals null")
	}
	if condMatches(t, `{"kind":"event_property_is","key":"content.absent","value":null}`, create("null")) {
		t.Error("null matched an absent property")
	}
	// Compound values are not compared.
	if condMatches(t, `{"kind":"event_property_is","key":"content.n","value":{"a.b":7}}`, create("true")) {
		t.Error("an object matched")
	}
}

func TestEventPropertyContains(t *testing.T) {
	ev := `{"type":"m.room.canonical_alias","state_key":"","content":{"alt_aliases":["#somewhere:example.org","#myroom:example.com",{"x":1},3]}}`
	for cond, want := range map[string]bool{
		`{"kind":"event_property_contains","key":"content.alt_aliases","value":"#myroom:example.com"}`: true,
		`{"kind":"event_property_contains","key":"content.alt_aliases","value":":example.com"}`:        false,
		`{"kind":"event_property_contains","key":"content.alt_aliases","value":3}`:                     true,
		`{"kind":"event_property_contains","key":"type","value":"m"}`:                                  false,
	} {
		if got := condMatches(t, cond, ev); got != want {
			t.Errorf("%s: %v, want %v", cond, got, want)
		}
	}
}

func TestOtherConditions(t *testing.T) {
	msg := `{"type":"m.room.message","sender":"@alice:x","content":{"body":"hi bob smith!"}}`
	for cond, want := range map[string]bool{
		`{"kind":"room_member_count","is":"2"}`:                   true,
		`{"kind":"room_member_count","is":"==2"}`:                 true,
		`{"kind":"room_member_count","is":"<2"}`:                  false,
		`{"kind":"room_member_count","is":"<=2"}`:                 true,
		`{"kind":"room_member_count","is":">1"}`:                  true,
		`{"kind":"room_member_count","is":">=3"}`:                 false,
		`{"kind":"room_member_count","is":"two"}`:                 false,
		`{"kind":"room_member_count"}`:                            false,
		`{"kind":"contains_display_name"}`:                        true,
		`{"kind":"sender_notification_permission","key":"room"}`:  true,
		`{"kind":"sender_notification_permission","key":"other"}`: false,
		`{"kind":"sender_notification_permission"}`:               false,
		`{"kind":"org.example.unknown"}`:                          false,
		`{"kind":"event_match","key":"content.body"}`:             false,
		`{"kind":"event_property_is","key":"content.body"}`:       false,
		`"not an object"`:                                         false,
	} {
		if got := condMatches(t, cond, msg); got != want {
			t.Errorf("%s: %v, want %v", cond, got, want)
		}
	}
	// The display name must stand as whole words.
	if condMatches(t, `{"kind":"contains_display_name"}`, `{"type":"m.room.message","content":{"body":"bob smithson"}}`) {
		t.Error("display name matched inside a word")
	}
}

func TestSplitPath(t *testing.T) {
	for key, want := range map[string][]string{
		`content.body`:                   {"content", "body"},
		`content.m\.relates_to.rel_type`: {"content", "m.relates_to", "rel_type"},
		`content.m\\foo`:                 {"content", `m\foo`},
		`content.m\xfoo`:                 {"content", `m\xfoo`},
		`type`:                           {"type"},
		`content.m\.mentions.user_ids`:   {"content", "m.mentions", "user_ids"},
		`content.trailing\`:              {"content", `trailing\`},
	} {
		if got := splitPath(key); !slices.Equal(got, want) {
			t.Errorf("splitPath(%q) = %q, want %q", key, got, want)
		}
	}
}

func TestEvaluateOrderAndOutcome(t *testing.T) {
	user := "@bob:x"
	rs := DefaultRuleset("@bob:x")
	c := compile(rs)
	eval := func(ev string, room testRoom) Outcome {
		t.Helper()
		out, _ := c.evaluate(mustEvent(t, ev), room, user)
		return out
	}
	dm := testRoom{members: 2}
	group := testRoom{members: 5}
	if out := eval(`{"type":"m.room.message","sender":"@a:x","content":{"msgtype":"m.text","body":"hi"}}`, dm); out.RuleID != ".m.rule.room_one_to_one" || !out.Notify || out.Highlight {
		t.Errorf("dm message: %+v", out)
	}
	if out := eval(`{"type":"m.room.message","sender":"@a:x","content":{"msgtype":"m.text","body":"hi"}}`, group); out.RuleID != ".m.rule.message" {
		t.Errorf("group message: %+v", out)
	}
	if out := eval(`{"type":"m.room.encrypted","sender":"@a:x","content":{}}`, group); out.RuleID != ".m.rule.encrypted" || !out.Notify {
		t.Errorf("encrypted: %+v", out)
	}
	if out := eval(`{"type":"m.room.message","sender":"@a:x","content":{"body":"x","m.mentions":{"user_ids":["@bob:x"]}}}`, group); out.RuleID != ".m.rule.is_user_mention" || !out.Highlight {
		t.Errorf("mention: %+v", out)
	}
	if out := eval(`{"type":"m.room.message","sender":"@a:x","content":{"body":"x","m.relates_to":{"rel_type":"m.replace","event_id":"$e"}}}`, group); out.RuleID != ".m.rule.suppress_edits" || out.Notify {
		t.Errorf("edit: %+v", out)
	}
	if out := eval(`{"type":"m.room.tombstone","state_key":"","sender":"@a:x","content":{"body":"x"}}`, group); out.RuleID != ".m.rule.tombstone" || !out.Highlight {
		t.Errorf("tombstone: %+v", out)
	}
	if out := eval(`{"type":"m.room.member","state_key":"@bob:x","sender":"@a:x","content":{"membership":"invite"}}`, group); out.RuleID != ".m.rule.invite_for_me" || !out.Notify {
		t.Errorf("invite: %+v", out)
	}
	if out := eval(`{"type":"m.room.member","state_key":"@carol:x","sender":"@a:x","content":{"membership":"invite"}}`, group); out.RuleID != ".m.rule.member_event" || out.Notify {
		t.Errorf("someone else's invite: %+v", out)
	}
	if _, ok := c.evaluate(mustEvent(t, `{"type":"m.room.topic","state_key":"","sender":"@a:x","content":{"topic":"x"}}`), group, user); ok {
		t.Error("a topic change matched a rule")
	}
	// Historical actions are ignored: dont_notify is no action at all.
	r := &Rule{Kind: Override, RuleID: "x", Enabled: true, Actions: []json.RawMessage{json.RawMessage(`"dont_notify"`), json.RawMessage(`{"set_tweak":"highlight","value":false}`)}}
	if out := outcomeOf(r); out.Notify || out.Highlight || len(out.Actions) != 1 {
		t.Errorf("dont_notify outcome %+v", out)
	}
}

// MSC4306: postcontent rules are checked after the content rules and
// before the room rules.
func TestPostContentOrder(t *testing.T) {
	const user = "@bob:x"
	all := func(id string, actions ...json.RawMessage) *Rule {
		return &Rule{Kind: PostContent, RuleID: id, Enabled: true, Conditions: []json.RawMessage{}, Actions: actions}
	}
	msg := mustEvent(t, `{"type":"m.room.message","room_id":"!r:x","sender":"@al:x","content":{"body":"tea time"}}`)
	rc := testRoom{members: 3}
	outcome := func(own map[Kind][]*Rule) string {
		o, _ := compile(Assemble(user, own, nil)).evaluate(msg, rc, user)
		return o.RuleID
	}
	room := &Rule{Kind: Room, RuleID: "!r:x", Enabled: true, Actions: []json.RawMessage{actNotify}}
	tea := &Rule{Kind: Content, RuleID: "tea", Enabled: true, Pattern: "tea", Actions: []json.RawMessage{actNotify}}
	if got := outcome(map[Kind][]*Rule{Room: {room}, PostContent: {all("quiet")}}); got != "quiet" {
		t.Errorf("postcontent against a room rule: %q won, want quiet", got)
	}
	if got := outcome(map[Kind][]*Rule{Content: {tea}, PostContent: {all("quiet")}}); got != "tea" {
		t.Errorf("postcontent against a content rule: %q won, want tea", got)
	}
}

// The historical actions are kept in the rule and ignored when it is
// evaluated.
func TestLegacyActionsIgnored(t *testing.T) {
	r := &Rule{Kind: Override, RuleID: "x", Actions: []json.RawMessage{raw(`"dont_notify"`), raw(`"coalesce"`), actNotify}}
	o := outcomeOf(r)
	if !o.Notify || len(o.Actions) != 1 || len(r.Actions) != 3 {
		t.Fatalf("outcome %+v of %s", o, r.Actions)
	}
}
