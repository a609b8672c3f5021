package push

import (
	"bytes"
	"encoding/json"
	"fmt"

	"maunium.net/go/mautrix/id"
)

// Kind is a push rule kind; Kinds lists them in the order rules are
// checked.
type Kind string

// The push rule kinds.
const (
	Override Kind = "override"
	Content  Kind = "content"
	// PostContent (MSC4306) holds general-purpose rules checked after the
	// content rules and before the room rules. The MSC reserves it for
	// server-default rules, so users cannot create rules of this kind.
	PostContent Kind = "postcontent"
	Room        Kind = "room"
	Sender      Kind = "sender"
	Underride   Kind = "underride"
)

// Kinds are the rule kinds in priority order.
var Kinds = []Kind{Override, Content, PostContent, Room, Sender, Underride}

// ParseKind checks a {kind} path parameter.
func ParseKind(s string) (Kind, bool) {
	for _, k := range Kinds {
		if string(k) == s {
			return k, true
		}
	}
	return "", false
}

// hasConditions tells whether rules of the kind carry conditions (the
// others match on their pattern or rule ID).
func (k Kind) hasConditions() bool { return k == Override || k == PostContent || k == Underride }

// Rule is one push rule. Conditions and actions are kept as the JSON they
// were given, so tweaks and condition parameters this server does not know
// pass through unchanged (the spec wants tweaks passed on transparently).
type Rule struct {
	Kind       Kind
	RuleID     string
	Default    bool
	Enabled    bool
	Actions    []json.RawMessage
	Conditions []json.RawMessage // override and underride rules
	Pattern    string            // content rules
}

// MarshalJSON writes the rule as the spec's PushRule: conditions for
// override, postcontent and underride rules (an empty list included), pattern for
// content rules, neither for room and sender rules.
func (r *Rule) MarshalJSON() ([]byte, error) {
	type base struct {
		RuleID  string            `json:"rule_id"`
		Default bool              `json:"default"`
		Enabled bool              `json:"enabled"`
		Actions []json.RawMessage `json:"actions"`
	}
	b := base{RuleID: r.RuleID, Default: r.Default, Enabled: r.Enabled, Actions: r.Actions}
	if b.Actions == nil {
		b.Actions = []json.RawMessage{}
	}
	switch {
	case r.Kind.hasConditions():
		conds := r.Conditions
		if conds == nil {
			conds = []json.RawMessage{}
		}
		return json.Marshal(struct {
			base
			Conditions []json.RawMessage `json:"conditions"`
		}{b, conds})
	case r.Kind == Content:
		return json.Marshal(struct {
			base
			Pattern string `json:"pattern"`
		}{b, r.Pattern})
	}
	return json.Marshal(b)
}

// Ruleset is a user's full set of rules: their own merged with the
// server-default rules, in the order they are checked within each kind.
type Ruleset struct {
	Override    []*Rule
	Content     []*Rule
	PostContent []*Rule
	Room        []*Rule
	Sender      []*Rule
	Underride   []*Rule
}

// Of returns the rules of one kind.
func (rs *Ruleset) Of(k Kind) []*Rule {
	switch k {
	case Override:
		return rs.Override
	case Content:
		return rs.Content
	case PostContent:
		return rs.PostContent
	case Room:
		return rs.Room
	case Sender:
		return rs.Sender
	case Underride:
		return rs.Underride
	}
	return nil
}

func (rs *Ruleset) set(k Kind, rules []*Rule) {
	switch k {
	case Override:
		rs.Override = rules
	case Content:
		rs.Content = rules
	case PostContent:
		rs.PostContent = rules
	case Room:
		rs.Room = rules
	case Sender:
		rs.Sender = rules
	case Underride:
		rs.Underride = rules
	}
}

// Find returns the rule of a kind with an ID, or nil.
func (rs *Ruleset) Find(k Kind, ruleID string) *Rule {
	for _, r := range rs.Of(k) {
		if r.RuleID == ruleID {
			return r
		}
	}
	return nil
}

// MarshalJSON writes the ruleset as the spec's PushRuleset, every kind
// present (as an empty list when it has no rules).
func (rs *Ruleset) MarshalJSON() ([]byte, error) {
	nonNil := func(r []*Rule) []*Rule {
		if r == nil {
			return []*Rule{}
		}
		return r
	}
	return json.Marshal(struct {
		Override    []*Rule `json:"override"`
		Content     []*Rule `json:"content"`
		PostContent []*Rule `json:"postcontent"`
		Room        []*Rule `json:"room"`
		Sender      []*Rule `json:"sender"`
		Underride   []*Rule `json:"underride"`
	}{nonNil(rs.Override), nonNil(rs.Content), nonNil(rs.PostContent), nonNil(rs.Room), nonNil(rs.Sender), nonNil(rs.Underride)})
}

// Global is the body of GET /pushrules/ and the content of the m.push_rules
// account data event: the global ruleset, the only one the spec defines.
type Global struct {
	Global *Ruleset `json:"global"`
}

// raw is a JSON literal for the default rules below.
func raw(s string) json.RawMessage { return json.RawMessage(s) }

// jsonString quotes s as a JSON string.
func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

var (
	actNotify         = raw(`"notify"`)
	actSoundDefault   = raw(`{"set_tweak":"sound","value":"default"}`)
	actSoundRing      = raw(`{"set_tweak":"sound","value":"ring"}`)
	actHighlight      = raw(`{"set_tweak":"highlight"}`)
	condTypeMessage   = raw(`{"kind":"event_match","key":"type","pattern":"m.room.message"}`)
	condTypeEncrypt   = raw(`{"kind":"event_match","key":"type","pattern":"m.room.encrypted"}`)
	condOneToOne      = raw(`{"kind":"room_member_count","is":"2"}`)
	condEmptyStateKey = raw(`{"kind":"event_match","key":"state_key","pattern":""}`)
)

// Legacy mention rules: removed from the spec in v1.17 (MSC4210) but still
// served, as Synapse does, because Element builds its "Mentions & keywords"
// settings from them and misbehaves without them (element-web #35032,
// #34999). They never match an event with m.mentions (the spec's rule since
// v1.7), so clients that use intentional mentions are unaffected.
const (
	ruleContainsDisplayName = ".m.rule.contains_display_name"
	ruleContainsUserName    = ".m.rule.contains_user_name"
	ruleRoomNotif           = ".m.rule.roomnotif"
	ruleMaster              = ".m.rule.master"
)

func isLegacyMentionRule(ruleID string) bool {
	return ruleID == ruleContainsDisplayName || ruleID == ruleContainsUserName || ruleID == ruleRoomNotif
}

// defaultRules returns the server-default rules for a user, per kind, in
// the spec's order ("Predefined Rules"), with the legacy mention rules
// where Synapse places them.
func defaultRules(user id.UserID) map[Kind][]*Rule {
	userJSON := jsonString(string(user))
	rule := func(k Kind, ruleID string, enabled bool, conds []json.RawMessage, actions ...json.RawMessage) *Rule {
		return &Rule{Kind: k, RuleID: ruleID, Default: true, Enabled: enabled, Conditions: conds, Actions: actions}
	}
	conds := func(c ...json.RawMessage) []json.RawMessage {
		if c == nil {
			return []json.RawMessage{}
		}
		return c
	}
	override := []*Rule{
		rule(Override, ruleMaster, false, conds()),
		rule(Override, ".m.rule.suppress_notices", true, conds(
			raw(`{"kind":"event_match","key":"content.msgtype","pattern":"m.notice"}`))),
		rule(Override, ".m.rule.invite_for_me", true, conds(
			raw(`{"kind":"event_match","key":"type","pattern":"m.room.member"}`),
			raw(`{"kind":"event_match","key":"content.membership","pattern":"invite"}`),
			raw(`{"kind":"event_match","key":"state_key","pattern":`+userJSON+`}`)),
			actNotify, actSoundDefault),
		rule(Override, ".m.rule.member_event", true, conds(
			raw(`{"kind":"event_match","key":"type","pattern":"m.room.member"}`))),
		rule(Override, ".m.rule.is_user_mention", true, conds(
			raw(`{"kind":"event_property_contains","key":"content.m\\.mentions.user_ids","value":`+userJSON+`}`)),
			actNotify, actSoundDefault, actHighlight),
		rule(Override, ruleContainsDisplayName, true, conds(raw(`{"kind":"contains_display_name"}`)),
			actNotify, actSoundDefault, actHighlight),
		rule(Override, ".m.rule.is_room_mention", true, conds(
			raw(`{"kind":"event_property_is","key":"content.m\\.mentions.room","value":true}`),
			raw(`{"kind":"sender_notification_permission","key":"room"}`)),
			actNotify, actHighlight),
		rule(Override, ruleRoomNotif, true, conds(
			raw(`{"kind":"event_match","key":"content.body","pattern":"@room"}`),
			raw(`{"kind":"sender_notification_permission","key":"room"}`)),
			actNotify, actHighlight),
		rule(Override, ".m.rule.tombstone", true, conds(
			raw(`{"kind":"event_match","key":"type","pattern":"m.room.tombstone"}`), condEmptyStateKey),
			actNotify, actHighlight),
		rule(Override, ".m.rule.reaction", true, conds(
			raw(`{"kind":"event_match","key":"type","pattern":"m.reaction"}`))),
		rule(Override, ".m.rule.room.server_acl", true, conds(
			raw(`{"kind":"event_match","key":"type","pattern":"m.room.server_acl"}`), condEmptyStateKey)),
		rule(Override, ".m.rule.suppress_edits", true, conds(
			raw(`{"kind":"event_property_is","key":"content.m\\.relates_to.rel_type","value":"m.replace"}`))),
	}
	content := []*Rule{{
		Kind: Content, RuleID: ruleContainsUserName, Default: true, Enabled: true,
		Pattern: user.Localpart(), Actions: []json.RawMessage{actNotify, actSoundDefault, actHighlight},
	}}
	underride := []*Rule{
		rule(Underride, ".m.rule.call", true, conds(
			raw(`{"kind":"event_match","key":"type","pattern":"m.call.invite"}`)),
			actNotify, actSoundRing),
		rule(Underride, ".m.rule.encrypted_room_one_to_one", true, conds(condOneToOne, condTypeEncrypt),
			actNotify, actSoundDefault),
		rule(Underride, ".m.rule.room_one_to_one", true, conds(condOneToOne, condTypeMessage),
			actNotify, actSoundDefault),
		rule(Underride, ".m.rule.message", true, conds(condTypeMessage), actNotify),
		rule(Underride, ".m.rule.encrypted", true, conds(condTypeEncrypt), actNotify),
	}
	return map[Kind][]*Rule{Override: override, Content: content, Underride: underride}
}

// Assemble builds a user's ruleset from their own rules and their changes
// to the defaults. Server-default rules come after the user's own rules of
// the same kind, except .m.rule.master, which comes before everything.
func Assemble(user id.UserID, own map[Kind][]*Rule, changes map[Kind]map[string]Change) *Ruleset {
	defaults := defaultRules(user)
	rs := &Ruleset{}
	for _, k := range Kinds {
		var rules []*Rule
		defs := defaults[k]
		for _, d := range defs {
			if c, ok := changes[k][d.RuleID]; ok {
				if c.Enabled != nil {
					d.Enabled = *c.Enabled
				}
				if c.Actions != nil {
					d.Actions = c.Actions
				}
			}
		}
		if k == Override && len(defs) > 0 && defs[0].RuleID == ruleMaster {
			rules = append(rules, defs[0])
			defs = defs[1:]
		}
		rules = append(rules, own[k]...)
		rules = append(rules, defs...)
		rs.set(k, rules)
	}
	return rs
}

// Change is a user's change to a server-default rule; nil keeps the
// default.
type Change struct {
	Enabled *bool
	Actions []json.RawMessage
}

// DefaultRuleset is the ruleset of a user who changed nothing.
func DefaultRuleset(user id.UserID) *Ruleset { return Assemble(user, nil, nil) }

// normaliseActions drops the historical dont_notify and coalesce actions,
// which the spec says to ignore by stripping them. Rules keep them as the
// client sent them (as Synapse does: a client that reads back its rule
// sees what it wrote); only evaluation strips them.
func normaliseActions(actions []json.RawMessage) []json.RawMessage {
	out := make([]json.RawMessage, 0, len(actions))
	for _, a := range actions {
		t := bytes.TrimSpace(a)
		if bytes.Equal(t, []byte(`"dont_notify"`)) || bytes.Equal(t, []byte(`"coalesce"`)) {
			continue
		}
		out = append(out, a)
	}
	return out
}

// checkActions validates actions as the spec defines them: "notify" (and
// the historical strings), or an object with a string set_tweak.
func checkActions(actions []json.RawMessage) error {
	for _, a := range actions {
		var s string
		if json.Unmarshal(a, &s) == nil {
			switch s {
			case "notify", "dont_notify", "coalesce":
				continue
			}
			return fmt.Errorf("unknown action %q", s)
		}
		var obj map[string]json.RawMessage
		if json.Unmarshal(a, &obj) != nil {
			return fmt.Errorf("an action must be a string or an object, not %s", a)
		}
		var tweak string
		if t, ok := obj["set_tweak"]; !ok || json.Unmarshal(t, &tweak) != nil || tweak == "" {
			return fmt.Errorf("an action object needs a set_tweak string: %s", a)
		}
	}
	return nil
}
