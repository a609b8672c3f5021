package push

import (
	"context"
	"encoding/json"
	"slices"
	"strings"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/storage"
)

// The push rules API (spec: "Push Rules: API").

// Rules returns a user's ruleset.
func (s *Service) Rules(ctx context.Context, user id.UserID) (*Ruleset, error) {
	return LoadRuleset(ctx, s.db, user)
}

// Rule returns one rule, or M_NOT_FOUND.
func (s *Service) Rule(ctx context.Context, user id.UserID, kind Kind, ruleID string) (*Rule, error) {
	rs, err := s.Rules(ctx, user)
	if err != nil {
		return nil, err
	}
	r := rs.Find(kind, ruleID)
	if r == nil {
		return nil, errRuleNotFound
	}
	return r, nil
}

// RuleBody is the body of PUT /pushrules/global/{kind}/{ruleId}.
type RuleBody struct {
	Actions    []json.RawMessage `json:"actions"`
	Conditions []json.RawMessage `json:"conditions"`
	Pattern    *string           `json:"pattern"`
}

// PutRule creates or replaces one of the user's own rules. A new rule is
// the most important of its kind unless before (which wins when both are
// given) or after names another of the user's rules to place it next to;
// a replaced rule keeps its place and its enabled state unless moved.
func (s *Service) PutRule(ctx context.Context, user id.UserID, kind Kind, ruleID string, body RuleBody, before, after string) error {
	if err := checkRuleID(kind, ruleID); err != nil {
		return err
	}
	if body.Actions == nil {
		return mMissingParam.WithMessage("Missing actions")
	}
	if err := checkActions(body.Actions); err != nil {
		return mautrix.MInvalidParam.WithMessage("Invalid actions: " + err.Error())
	}
	if kind == PostContent {
		return mautrix.MInvalidParam.WithMessage("postcontent rules are the server's; clients cannot create them (MSC4306)")
	}
	rule := storage.PushRuleRow{Kind: string(kind), RuleID: ruleID, Enabled: true}
	var err error
	if rule.Actions, err = json.Marshal(body.Actions); err != nil {
		return err
	}
	switch {
	case kind.hasConditions():
		conds := body.Conditions
		if conds == nil {
			conds = []json.RawMessage{}
		}
		for _, c := range conds {
			var obj struct {
				Kind *string `json:"kind"`
			}
			if json.Unmarshal(c, &obj) != nil || obj.Kind == nil || *obj.Kind == "" {
				return mautrix.MInvalidParam.WithMessage("Every condition must be an object with a kind")
			}
		}
		if rule.Conditions, err = json.Marshal(conds); err != nil {
			return err
		}
	case kind == Content:
		if body.Pattern == nil {
			return mMissingParam.WithMessage("Content rules need a pattern")
		}
		if *body.Pattern == "" {
			return mautrix.MInvalidParam.WithMessage("The pattern must not be empty")
		}
		rule.Pattern = body.Pattern
	}
	for _, rel := range []string{before, after} {
		if strings.HasPrefix(rel, ".") {
			return mautrix.MInvalidParam.WithMessage("Rules cannot be placed relative to a server-default rule")
		}
	}

	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	rows, err := s.ownRules(ctx, user, kind)
	if err != nil {
		return err
	}
	at := slices.IndexFunc(rows, func(r storage.PushRuleRow) bool { return r.RuleID == ruleID })
	if at >= 0 {
		rule.Enabled = rows[at].Enabled
	}
	switch {
	case before != "" || after != "":
		if at >= 0 {
			rows = slices.Delete(rows, at, at+1)
		}
		rel, offset := before, 0
		if before == "" {
			rel, offset = after, 1
		}
		i := slices.IndexFunc(rows, func(r storage.PushRuleRow) bool { return r.RuleID == rel })
		if i < 0 {
			return mUnknown400.WithMessage("before/after rule not found: " + rel)
		}
		rows = slices.Insert(rows, i+offset, rule)
	case at >= 0:
		rows[at] = rule
	default:
		rows = slices.Insert(rows, 0, rule)
	}
	if err := s.db.SetUserPushRules(ctx, user, string(kind), rows); err != nil {
		return err
	}
	return s.changed(ctx, user)
}

// checkRuleID checks the ID of a rule a user creates: IDs starting with a
// dot are the server's, slashes are not allowed (spec), and room and
// sender rules are named after the room or user they apply to.
func checkRuleID(kind Kind, ruleID string) error {
	switch {
	case ruleID == "":
		return mautrix.MInvalidParam.WithMessage("The rule ID must not be empty")
	case strings.HasPrefix(ruleID, "."):
		return mautrix.MInvalidParam.WithMessage("Rule IDs starting with '.' are reserved for server-default rules")
	case strings.ContainsAny(ruleID, `/\`):
		return mautrix.MInvalidParam.WithMessage("Rule IDs must not contain slashes or backslashes")
	case kind == Room && !strings.HasPrefix(ruleID, "!"):
		return mautrix.MInvalidParam.WithMessage("The ID of a room rule is the room's ID")
	case kind == Sender && !strings.HasPrefix(ruleID, "@"):
		return mautrix.MInvalidParam.WithMessage("The ID of a sender rule is the sender's user ID")
	}
	return nil
}

func (s *Service) ownRules(ctx context.Context, user id.UserID, kind Kind) ([]storage.PushRuleRow, error) {
	all, _, err := s.db.UserPushRules(ctx, user)
	if err != nil {
		return nil, err
	}
	var out []storage.PushRuleRow
	for _, r := range all {
		if r.Kind == string(kind) {
			out = append(out, r)
		}
	}
	return out, nil
}

// isDefault tells whether a rule ID names one of the server-default rules
// of a kind.
func isDefault(user id.UserID, kind Kind, ruleID string) bool {
	for _, r := range defaultRules(user)[kind] {
		if r.RuleID == ruleID {
			return true
		}
	}
	return false
}

// DeleteRule deletes one of the user's own rules. Server-default rules
// cannot be deleted (disable them instead).
func (s *Service) DeleteRule(ctx context.Context, user id.UserID, kind Kind, ruleID string) error {
	if isDefault(user, kind, ruleID) {
		return mautrix.MInvalidParam.WithMessage("Server-default rules cannot be deleted; disable them instead")
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	rows, err := s.ownRules(ctx, user, kind)
	if err != nil {
		return err
	}
	at := slices.IndexFunc(rows, func(r storage.PushRuleRow) bool { return r.RuleID == ruleID })
	if at < 0 {
		return errRuleNotFound
	}
	if err := s.db.SetUserPushRules(ctx, user, string(kind), slices.Delete(rows, at, at+1)); err != nil {
		return err
	}
	return s.changed(ctx, user)
}

// SetEnabled enables or disables a rule, the user's own or a default one.
func (s *Service) SetEnabled(ctx context.Context, user id.UserID, kind Kind, ruleID string, enabled bool) error {
	return s.update(ctx, user, kind, ruleID, &enabled, nil)
}

// SetActions replaces a rule's actions, the user's own or a default one.
func (s *Service) SetActions(ctx context.Context, user id.UserID, kind Kind, ruleID string, actions []json.RawMessage) error {
	if err := checkActions(actions); err != nil {
		return mautrix.MInvalidParam.WithMessage("Invalid actions: " + err.Error())
	}
	return s.update(ctx, user, kind, ruleID, nil, actions)
}

func (s *Service) update(ctx context.Context, user id.UserID, kind Kind, ruleID string, enabled *bool, actions []json.RawMessage) error {
	var actJSON []byte
	if actions != nil {
		var err error
		if actJSON, err = json.Marshal(actions); err != nil {
			return err
		}
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if isDefault(user, kind, ruleID) {
		if err := s.db.SetPushRuleDefault(ctx, user, string(kind), ruleID, enabled, actJSON); err != nil {
			return err
		}
		return s.changed(ctx, user)
	}
	rows, err := s.ownRules(ctx, user, kind)
	if err != nil {
		return err
	}
	at := slices.IndexFunc(rows, func(r storage.PushRuleRow) bool { return r.RuleID == ruleID })
	if at < 0 {
		return errRuleNotFound
	}
	if enabled != nil {
		rows[at].Enabled = *enabled
	}
	if actJSON != nil {
		rows[at].Actions = actJSON
	}
	if err := s.db.SetUserPushRules(ctx, user, string(kind), rows); err != nil {
		return err
	}
	return s.changed(ctx, user)
}
