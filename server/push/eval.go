package push

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
)

// This file evaluates push rules against an event, as the spec's "Push
// Rules" section defines conditions and matching. mautrix's pushrules
// package has the types but matches differently from the spec in places
// (event_match on non-string values, implicit substring matches, a
// highlight tweak without a value written as null), so the matching is
// ours.

// Outcome is what the first matching rule says to do with an event.
type Outcome struct {
	RuleID    string
	Notify    bool
	Highlight bool
	Actions   []json.RawMessage
}

// roomContext answers the conditions that depend on the room: it is asked
// lazily, so an event costs only the lookups its rules need.
type roomContext interface {
	MemberCount() int
	// DisplayName is the user's display name in the room ("" if none).
	DisplayName(user string) string
	// SenderMayNotify tells whether the event's sender has the power
	// level the room requires for a notification of type key.
	SenderMayNotify(key string) bool
}

// Event is an event as push rules see it: its client-format JSON, with
// numbers kept exact.
type Event struct {
	flat        map[string]any
	roomID      string
	sender      string
	body        string
	hasBody     bool
	hasMentions bool
}

// NewEvent prepares an event's client-format JSON for evaluation.
func NewEvent(clientJSON []byte) (*Event, error) {
	dec := json.NewDecoder(bytes.NewReader(clientJSON))
	dec.UseNumber()
	var flat map[string]any
	if err := dec.Decode(&flat); err != nil {
		return nil, err
	}
	ev := &Event{flat: flat}
	ev.roomID, _ = flat["room_id"].(string)
	ev.sender, _ = flat["sender"].(string)
	if content, ok := flat["content"].(map[string]any); ok {
		ev.body, ev.hasBody = content["body"].(string)
		_, ev.hasMentions = content["m.mentions"]
	}
	return ev, nil
}

// splitPath splits a dot-separated property path: '\.' is a literal dot
// and '\\' a literal backslash; any other backslash is itself.
func splitPath(key string) []string {
	var parts []string
	var cur strings.Builder
	for i := 0; i < len(key); i++ {
		c := key[i]
		switch {
		case c == '\\' && i+1 < len(key) && (key[i+1] == '.' || key[i+1] == '\\'):
			cur.WriteByte(key[i+1])
			i++
		case c == '.':
			parts = append(parts, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	return append(parts, cur.String())
}

// lookup follows a property path through the event; ok is false when the
// property is absent.
func (ev *Event) lookup(path []string) (any, bool) {
	var cur any = ev.flat
	for _, p := range path {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = obj[p]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// condition is a parsed push condition.
type condition struct {
	kind    string
	key     string
	path    []string
	re      matcher // event_match
	value   any     // event_property_is / _contains
	cmp     string  // room_member_count
	count   int
	invalid bool // malformed: never matches
}

var memberCountRe = regexp.MustCompile(`^(==|<=|>=|<|>)?([0-9]+)$`)

func parseCondition(raw json.RawMessage) condition {
	var c struct {
		Kind    string          `json:"kind"`
		Key     *string         `json:"key"`
		Pattern *string         `json:"pattern"`
		Is      *string         `json:"is"`
		Value   json.RawMessage `json:"value"`
	}
	if json.Unmarshal(raw, &c) != nil {
		return condition{invalid: true}
	}
	out := condition{kind: c.Kind}
	if c.Key != nil {
		out.key = *c.Key
		out.path = splitPath(*c.Key)
	}
	switch c.Kind {
	case "event_match":
		if c.Key == nil || c.Pattern == nil {
			out.invalid = true
			break
		}
		out.re = globMatcher(*c.Pattern, *c.Key == "content.body")
	case "event_property_is", "event_property_contains":
		if c.Key == nil || c.Value == nil {
			out.invalid = true
			break
		}
		dec := json.NewDecoder(bytes.NewReader(c.Value))
		dec.UseNumber()
		if dec.Decode(&out.value) != nil || !isScalar(out.value) {
			out.invalid = true
		}
	case "room_member_count":
		m := memberCountRe.FindStringSubmatch(ptrVal(c.Is))
		if m == nil {
			out.invalid = true
			break
		}
		out.cmp = m[1]
		n, err := strconv.Atoi(m[2])
		if err != nil {
			out.invalid = true
		}
		out.count = n
	case "sender_notification_permission":
		if c.Key == nil || *c.Key == "" {
			out.invalid = true
		}
	case "contains_display_name":
	default:
		// Unrecognised conditions never match (spec).
		out.invalid = true
	}
	return out
}

func ptrVal(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// isScalar tells whether v is one of the values event_property_is compares:
// a string, an integer, a boolean or null.
func isScalar(v any) bool {
	switch x := v.(type) {
	case nil, string, bool:
		return true
	case json.Number:
		_, err := strconv.ParseInt(string(x), 10, 64)
		return err == nil
	}
	return false
}

// scalarEqual compares two scalars exactly, without casting.
func scalarEqual(a, b any) bool {
	if !isScalar(a) || !isScalar(b) {
		return false
	}
	switch x := a.(type) {
	case json.Number:
		y, ok := b.(json.Number)
		if !ok {
			return false
		}
		xi, _ := strconv.ParseInt(string(x), 10, 64)
		yi, _ := strconv.ParseInt(string(y), 10, 64)
		return xi == yi
	case nil:
		return b == nil
	}
	return a == b
}

func (c *condition) match(ev *Event, rc roomContext, user string) bool {
	if c.invalid {
		return false
	}
	switch c.kind {
	case "event_match":
		v, ok := ev.lookup(c.path)
		s, isString := v.(string)
		return ok && isString && c.re.MatchString(s)
	case "event_property_is":
		v, ok := ev.lookup(c.path)
		return ok && scalarEqual(v, c.value)
	case "event_property_contains":
		v, ok := ev.lookup(c.path)
		arr, isArray := v.([]any)
		if !ok || !isArray {
			return false
		}
		for _, item := range arr {
			if scalarEqual(item, c.value) {
				return true
			}
		}
		return false
	case "contains_display_name":
		if !ev.hasBody {
			return false
		}
		name := rc.DisplayName(user)
		return name != "" && (literalMatcher{lit: name, words: true}).MatchString(ev.body)
	case "room_member_count":
		n := rc.MemberCount()
		switch c.cmp {
		case "", "==":
			return n == c.count
		case "<":
			return n < c.count
		case ">":
			return n > c.count
		case "<=":
			return n <= c.count
		case ">=":
			return n >= c.count
		}
	case "sender_notification_permission":
		return rc.SenderMayNotify(c.key)
	}
	return false
}

// compiledRule is a rule ready to match.
type compiledRule struct {
	rule    *Rule
	conds   []condition
	pattern matcher // content rules
	legacy  bool
	out     Outcome
}

// compiled is a ruleset ready to evaluate, kinds in priority order.
type compiled struct {
	rules [][]*compiledRule
}

func compile(rs *Ruleset) *compiled {
	c := &compiled{}
	for _, k := range Kinds {
		var list []*compiledRule
		for _, r := range rs.Of(k) {
			cr := &compiledRule{rule: r, legacy: r.Default && isLegacyMentionRule(r.RuleID), out: outcomeOf(r)}
			switch {
			case k.hasConditions():
				for _, raw := range r.Conditions {
					cr.conds = append(cr.conds, parseCondition(raw))
				}
			case k == Content:
				cr.pattern = globMatcher(r.Pattern, true)
			}
			list = append(list, cr)
		}
		c.rules = append(c.rules, list)
	}
	return c
}

// outcomeOf reads a rule's actions: notify, and the highlight tweak (true
// when given without a value, as the spec defines it).
func outcomeOf(r *Rule) Outcome {
	o := Outcome{RuleID: r.RuleID, Actions: normaliseActions(r.Actions)}
	for _, a := range o.Actions {
		var s string
		if json.Unmarshal(a, &s) == nil {
			o.Notify = o.Notify || s == "notify"
			continue
		}
		var t struct {
			SetTweak string          `json:"set_tweak"`
			Value    json.RawMessage `json:"value"`
		}
		if json.Unmarshal(a, &t) == nil && t.SetTweak == "highlight" {
			v := bytes.TrimSpace(t.Value)
			o.Highlight = len(v) == 0 || bytes.Equal(v, []byte("true"))
		}
	}
	return o
}

// evaluate finds the first enabled rule matching the event for user and
// returns what it says; ok is false when no rule matches.
func (c *compiled) evaluate(ev *Event, rc roomContext, user string) (Outcome, bool) {
	for i, list := range c.rules {
		kind := Kinds[i]
		for _, cr := range list {
			if !cr.rule.Enabled {
				continue
			}
			// Since v1.7 the legacy body-matching mention rules do not
			// apply to events that carry intentional mentions.
			if cr.legacy && ev.hasMentions {
				continue
			}
			if cr.matches(kind, ev, rc, user) {
				return cr.out, true
			}
		}
	}
	return Outcome{}, false
}

func (cr *compiledRule) matches(kind Kind, ev *Event, rc roomContext, user string) bool {
	switch kind {
	case Override, PostContent, Underride:
		for i := range cr.conds {
			if !cr.conds[i].match(ev, rc, user) {
				return false
			}
		}
		return true
	case Content:
		return ev.hasBody && cr.pattern.MatchString(ev.body)
	case Room:
		return cr.rule.RuleID == ev.roomID
	case Sender:
		return cr.rule.RuleID == ev.sender
	}
	return false
}
