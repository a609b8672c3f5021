package clientapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"maunium.net/go/mautrix/pushrules"

	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
)

// pushRaw sends a request as c and decodes the JSON answer (nil body: no
// body; a string: sent as is).
func pushRaw(t *testing.T, ts *testserver.Server, c *mautrix.Client, method, path string, body any) sessResp {
	t.Helper()
	return sessRaw(t, ts, c.AccessToken, method, "/_matrix/client/v3"+path, body)
}

// pushRuleIDs lists the rule IDs of one kind of a raw ruleset.
func pushRuleIDs(t *testing.T, ruleset map[string]any, kind string) []string {
	t.Helper()
	list, ok := ruleset[kind].([]any)
	if !ok {
		t.Fatalf("ruleset has no %s list: %v", kind, ruleset)
	}
	var out []string
	for _, r := range list {
		out = append(out, r.(map[string]any)["rule_id"].(string))
	}
	return out
}

func pushFindRule(ruleset map[string]any, kind, ruleID string) map[string]any {
	list, _ := ruleset[kind].([]any)
	for _, r := range list {
		if m := r.(map[string]any); m["rule_id"] == ruleID {
			return m
		}
	}
	return nil
}

func TestPushRulesDefaults(t *testing.T) {
	ts := testserver.New(t)
	bob := ts.RegisterUser("bob")

	r := pushRaw(t, ts, bob, http.MethodGet, "/pushrules/", nil)
	sessExpect(t, "GET /pushrules/", r, http.StatusOK, "")
	global, ok := r.body["global"].(map[string]any)
	if !ok {
		t.Fatalf("no global ruleset: %s", r.raw)
	}
	// The spec's predefined rules, in its order, with the legacy mention
	// rules where Synapse serves them.
	wantOverride := []string{".m.rule.master", ".m.rule.suppress_notices", ".m.rule.invite_for_me", ".m.rule.member_event",
		".m.rule.is_user_mention", ".m.rule.contains_display_name", ".m.rule.is_room_mention", ".m.rule.roomnotif",
		".m.rule.tombstone", ".m.rule.reaction", ".m.rule.room.server_acl", ".m.rule.suppress_edits"}
	if got := pushRuleIDs(t, global, "override"); !slices.Equal(got, wantOverride) {
		t.Fatalf("override rules\n got %v\nwant %v", got, wantOverride)
	}
	wantUnderride := []string{".m.rule.call", ".m.rule.encrypted_room_one_to_one", ".m.rule.room_one_to_one", ".m.rule.message", ".m.rule.encrypted"}
	if got := pushRuleIDs(t, global, "underride"); !slices.Equal(got, wantUnderride) {
		t.Fatalf("underride rules\n got %v\nwant %v", got, wantUnderride)
	}
	if got := pushRuleIDs(t, global, "content"); !slices.Equal(got, []string{".m.rule.contains_user_name"}) {
		t.Fatalf("content rules %v", got)
	}
	for _, kind := range []string{"room", "sender"} {
		if got := pushRuleIDs(t, global, kind); len(got) != 0 {
			t.Fatalf("%s rules %v", kind, got)
		}
	}
	master := pushFindRule(global, "override", ".m.rule.master")
	if master["enabled"] != false || master["default"] != true || fmt.Sprint(master["conditions"]) != "[]" || fmt.Sprint(master["actions"]) != "[]" {
		t.Fatalf("master rule %v", master)
	}
	// Rules name the user where the spec says "[the user's Matrix ID]".
	invite := pushFindRule(global, "override", ".m.rule.invite_for_me")
	if conds := invite["conditions"].([]any); conds[2].(map[string]any)["pattern"] != string(bob.UserID) {
		t.Fatalf("invite_for_me conditions %v", conds)
	}
	mention := pushFindRule(global, "override", ".m.rule.is_user_mention")
	cond := mention["conditions"].([]any)[0].(map[string]any)
	if cond["kind"] != "event_property_contains" || cond["key"] != `content.m\.mentions.user_ids` || cond["value"] != string(bob.UserID) {
		t.Fatalf("is_user_mention condition %v", cond)
	}
	// A highlight tweak without a value is written without one (not null).
	if highlight := mention["actions"].([]any)[2].(map[string]any); len(highlight) != 1 || highlight["set_tweak"] != "highlight" {
		t.Fatalf("is_user_mention actions %v", mention["actions"])
	}
	if userName := pushFindRule(global, "content", ".m.rule.contains_user_name"); userName["pattern"] != "bob" {
		t.Fatalf("contains_user_name %v", userName)
	}
	tomb := pushFindRule(global, "override", ".m.rule.tombstone")
	if cond := tomb["conditions"].([]any)[1].(map[string]any); cond["key"] != "state_key" || cond["pattern"] != "" {
		t.Fatalf("tombstone state_key condition %v", cond)
	}
	if _, has := pushFindRule(global, "underride", ".m.rule.message")["pattern"]; has {
		t.Fatal("an underride rule has a pattern")
	}

	// GET /pushrules/global/ is the same ruleset, which mautrix parses.
	rs, err := bob.GetPushRules(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(rs.Override) != len(wantOverride) || len(rs.Underride) != len(wantUnderride) || rs.Content[0].Pattern != "bob" {
		t.Fatalf("mautrix ruleset %+v", rs)
	}
	// One rule, and its enabled and actions.
	rule, err := bob.GetPushRule(context.Background(), "global", pushrules.UnderrideRule, ".m.rule.message")
	if err != nil || !rule.Enabled || !rule.Default || len(rule.Actions) != 1 || rule.Actions[0].Action != pushrules.ActionNotify {
		t.Fatalf("GET .m.rule.message: %+v %v", rule, err)
	}
	r = pushRaw(t, ts, bob, http.MethodGet, "/pushrules/global/override/.m.rule.master/enabled", nil)
	sessExpect(t, "GET master enabled", r, http.StatusOK, "")
	if r.body["enabled"] != false {
		t.Fatalf("master enabled %s", r.raw)
	}
	r = pushRaw(t, ts, bob, http.MethodGet, "/pushrules/global/underride/.m.rule.call/actions", nil)
	sessExpect(t, "GET call actions", r, http.StatusOK, "")
	if fmt.Sprint(r.body["actions"]) != "[notify map[set_tweak:sound value:ring]]" {
		t.Fatalf("call actions %s", r.raw)
	}
}

// pushAccountRules returns the m.push_rules content in a sync response's
// account data, or nil.
func pushAccountRules(t *testing.T, resp *mautrix.RespSync) map[string]any {
	t.Helper()
	for _, ev := range resp.AccountData.Events {
		if ev.Type.Type == "m.push_rules" {
			global, _ := ev.Content.Raw["global"].(map[string]any)
			if global == nil {
				t.Fatalf("m.push_rules without global: %v", ev.Content.Raw)
			}
			return global
		}
	}
	return nil
}

func TestPushRulesInSyncAccountData(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	bob := ts.RegisterUser("bob")

	// A fresh account's initial sync carries its rules.
	first := syncOnce(t, bob, "", "", 0)
	global := pushAccountRules(t, first)
	if global == nil || pushFindRule(global, "override", ".m.rule.master") == nil {
		t.Fatalf("initial sync lacks m.push_rules: %+v", first.AccountData)
	}
	// Nothing changed: an incremental sync does not repeat them.
	if again := syncOnce(t, bob, first.NextBatch, "", 0); pushAccountRules(t, again) != nil {
		t.Fatal("unchanged rules repeated in an incremental sync")
	}

	// A change reaches a waiting sync as m.push_rules.
	done := make(chan *mautrix.RespSync, 1)
	go func() {
		resp, err := bob.FullSyncRequest(ctx, mautrix.ReqSync{Since: first.NextBatch, Timeout: 20000})
		if err != nil {
			t.Error(err)
		}
		done <- resp
	}()
	waitForWaiters(t, ts, 1)
	if err := bob.SetPushRuleEnabled(ctx, "global", pushrules.OverrideRule, ".m.rule.master", true); err != nil {
		t.Fatal(err)
	}
	select {
	case resp := <-done:
		global := pushAccountRules(t, resp)
		if global == nil || pushFindRule(global, "override", ".m.rule.master")["enabled"] != true {
			t.Fatalf("changed rules not in sync: %+v", resp.AccountData)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the rule change did not wake the sync")
	}

	// A filter that leaves m.push_rules out is obeyed.
	filter := `{"account_data":{"not_types":["m.push_rules"]}}`
	if resp := syncOnce(t, bob, "", filter, 0); pushAccountRules(t, resp) != nil {
		t.Fatal("m.push_rules despite the filter")
	}
	// The rules cannot be written as plain account data.
	r := pushRaw(t, ts, bob, http.MethodPut, "/user/"+url.PathEscape(string(bob.UserID))+"/account_data/m.push_rules", map[string]any{"global": map[string]any{}})
	if r.status != http.StatusMethodNotAllowed {
		t.Fatalf("PUT account_data m.push_rules: %d %s", r.status, r.raw)
	}
}

func TestPushRuleCRUD(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	bob := ts.RegisterUser("bob")
	put := func(ruleID, before, after string, pattern string) {
		t.Helper()
		err := bob.PutPushRule(ctx, "global", pushrules.ContentRule, ruleID, &mautrix.ReqPutPushRule{
			Before: before, After: after, Pattern: pattern,
			Actions: []*pushrules.PushAction{{Action: pushrules.ActionNotify}},
		})
		if err != nil {
			t.Fatalf("PUT %s: %v", ruleID, err)
		}
	}
	contentIDs := func() []string {
		t.Helper()
		r := pushRaw(t, ts, bob, http.MethodGet, "/pushrules/global/", nil)
		sessExpect(t, "GET /pushrules/global/", r, http.StatusOK, "")
		return pushRuleIDs(t, r.body, "content")
	}

	put("cake", "", "", "cake")
	put("tea", "", "", "tea")                // new rules go first
	put("lie", "", "cake", "cake*lie")       // after cake
	put("biscuit", "tea", "cake", "biscuit") // before wins over after
	if got := contentIDs(); !slices.Equal(got, []string{"biscuit", "tea", "cake", "lie", ".m.rule.contains_user_name"}) {
		t.Fatalf("content order %v", got)
	}
	// Replacing keeps the place; disabling sticks across a replacement.
	if err := bob.SetPushRuleEnabled(ctx, "global", pushrules.ContentRule, "cake", false); err != nil {
		t.Fatal(err)
	}
	put("cake", "", "", "cakes?")
	rule, err := bob.GetPushRule(ctx, "global", pushrules.ContentRule, "cake")
	if err != nil || rule.Pattern != "cakes?" || rule.Enabled || rule.Default {
		t.Fatalf("replaced rule %+v %v", rule, err)
	}
	if got := contentIDs(); !slices.Equal(got, []string{"biscuit", "tea", "cake", "lie", ".m.rule.contains_user_name"}) {
		t.Fatalf("content order after replace %v", got)
	}
	// Moving with after.
	put("biscuit", "", "lie", "biscuit")
	if got := contentIDs(); !slices.Equal(got, []string{"tea", "cake", "lie", "biscuit", ".m.rule.contains_user_name"}) {
		t.Fatalf("content order after move %v", got)
	}
	// Actions of a user rule.
	r := pushRaw(t, ts, bob, http.MethodPut, "/pushrules/global/content/tea/actions", map[string]any{"actions": []any{map[string]any{"set_tweak": "sound", "value": "bell"}}})
	sessExpect(t, "PUT tea actions", r, http.StatusOK, "")
	r = pushRaw(t, ts, bob, http.MethodGet, "/pushrules/global/content/tea/actions", nil)
	if fmt.Sprint(r.body["actions"]) != "[map[set_tweak:sound value:bell]]" {
		t.Fatalf("tea actions %s", r.raw)
	}
	// Delete.
	if err := bob.DeletePushRule(ctx, "global", pushrules.ContentRule, "lie"); err != nil {
		t.Fatal(err)
	}
	_, err = bob.GetPushRule(ctx, "global", pushrules.ContentRule, "lie")
	roomErr(t, "GET deleted rule", err, http.StatusNotFound, "M_NOT_FOUND")
	err = bob.DeletePushRule(ctx, "global", pushrules.ContentRule, "lie")
	roomErr(t, "DELETE deleted rule", err, http.StatusNotFound, "M_NOT_FOUND")

	// Override rules keep their conditions, unknown ones included.
	r = pushRaw(t, ts, bob, http.MethodPut, "/pushrules/global/override/beer", map[string]any{
		"conditions": []any{
			map[string]any{"kind": "event_match", "key": "content.body", "pattern": "beer"},
			map[string]any{"kind": "org.example.future", "param": 1},
		},
		"actions": []any{"notify", map[string]any{"set_tweak": "org.example.flash", "value": map[string]any{"colour": "amber"}}},
	})
	sessExpect(t, "PUT override beer", r, http.StatusOK, "")
	r = pushRaw(t, ts, bob, http.MethodGet, "/pushrules/global/override/beer", nil)
	sessExpect(t, "GET override beer", r, http.StatusOK, "")
	if conds := r.body["conditions"].([]any); len(conds) != 2 || conds[1].(map[string]any)["param"] != float64(1) || r.body["enabled"] != true {
		t.Fatalf("beer rule %s", r.raw)
	}
	if fmt.Sprint(r.body["actions"]) != "[notify map[set_tweak:org.example.flash value:map[colour:amber]]]" {
		t.Fatalf("beer actions %s", r.raw)
	}
	// User override rules come after the master rule and before the other
	// default overrides.
	r = pushRaw(t, ts, bob, http.MethodGet, "/pushrules/", nil)
	if ids := pushRuleIDs(t, r.body["global"].(map[string]any), "override"); ids[0] != ".m.rule.master" || ids[1] != "beer" || ids[2] != ".m.rule.suppress_notices" {
		t.Fatalf("override order %v", ids)
	}
	// Room and sender rules.
	roomID := roomCreate(t, bob, &mautrix.ReqCreateRoom{})
	r = pushRaw(t, ts, bob, http.MethodPut, "/pushrules/global/room/"+url.PathEscape(string(roomID)), map[string]any{"actions": []any{}})
	sessExpect(t, "PUT room rule", r, http.StatusOK, "")
	r = pushRaw(t, ts, bob, http.MethodPut, "/pushrules/global/sender/"+url.PathEscape("@spambot:localhost"), map[string]any{"actions": []any{}})
	sessExpect(t, "PUT sender rule", r, http.StatusOK, "")
	r = pushRaw(t, ts, bob, http.MethodGet, "/pushrules/global/room/"+url.PathEscape(string(roomID)), nil)
	if _, has := r.body["conditions"]; has || r.body["rule_id"] != string(roomID) {
		t.Fatalf("room rule %s", r.raw)
	}

	// Default rules: enabled and actions change, deleting is refused.
	if err := bob.SetPushRuleEnabled(ctx, "global", pushrules.UnderrideRule, ".m.rule.message", false); err != nil {
		t.Fatal(err)
	}
	r = pushRaw(t, ts, bob, http.MethodPut, "/pushrules/global/underride/.m.rule.message/actions", map[string]any{"actions": []any{"notify", map[string]any{"set_tweak": "sound", "value": "default"}}})
	sessExpect(t, "PUT default actions", r, http.StatusOK, "")
	rule, err = bob.GetPushRule(ctx, "global", pushrules.UnderrideRule, ".m.rule.message")
	if err != nil || rule.Enabled || !rule.Default || len(rule.Actions) != 2 {
		t.Fatalf("changed default rule %+v %v", rule, err)
	}
	r = pushRaw(t, ts, bob, http.MethodDelete, "/pushrules/global/underride/.m.rule.message", nil)
	sessExpect(t, "DELETE default rule", r, http.StatusBadRequest, "M_INVALID_PARAM")

	// Rules survive a restart.
	ts.Restart()
	bob.HomeserverURL = mustParse(t, ts.URL)
	rule, err = bob.GetPushRule(ctx, "global", pushrules.ContentRule, "cake")
	if err != nil || rule.Pattern != "cakes?" || rule.Enabled {
		t.Fatalf("rule after restart %+v %v", rule, err)
	}
	rule, err = bob.GetPushRule(ctx, "global", pushrules.UnderrideRule, ".m.rule.message")
	if err != nil || rule.Enabled {
		t.Fatalf("default change after restart %+v %v", rule, err)
	}
}

// The historical dont_notify and coalesce actions are kept as sent (a
// client reads back what it wrote, as with Synapse) and ignored when the
// rule is evaluated: a matching rule with only dont_notify notifies no one.
func TestPushRulesLegacyActionsKept(t *testing.T) {
	ts := testserver.New(t)
	alice, bob, roomID := pushPair(t, ts)
	r := pushRaw(t, ts, bob, http.MethodPut, "/pushrules/global/room/"+url.PathEscape(string(roomID)), map[string]any{"actions": []any{"dont_notify", "coalesce"}})
	sessExpect(t, "PUT room rule", r, http.StatusOK, "")
	r = pushRaw(t, ts, bob, http.MethodGet, "/pushrules/global/room/"+url.PathEscape(string(roomID)), nil)
	if fmt.Sprint(r.body["actions"]) != "[dont_notify coalesce]" {
		t.Fatalf("room rule read back %s", r.raw)
	}
	r = pushRaw(t, ts, bob, http.MethodPut, "/pushrules/global/underride/.m.rule.message/actions", map[string]any{"actions": []any{"dont_notify"}})
	sessExpect(t, "PUT default actions", r, http.StatusOK, "")
	r = pushRaw(t, ts, bob, http.MethodGet, "/pushrules/global/underride/.m.rule.message/actions", nil)
	if fmt.Sprint(r.body["actions"]) != "[dont_notify]" {
		t.Fatalf("default rule actions read back %s", r.raw)
	}
	// Only the mention (an override rule, before the room rule) notifies.
	pushSend(t, alice, roomID, pushText("hello"))
	mention := pushSend(t, alice, roomID, map[string]any{"msgtype": "m.text", "body": "hi", "m.mentions": map[string]any{"user_ids": []string{string(bob.UserID)}}})
	r = pushRaw(t, ts, bob, http.MethodGet, "/notifications", nil)
	n, _ := r.body["notifications"].([]any)
	if len(n) != 1 || n[0].(map[string]any)["event"].(map[string]any)["event_id"] != string(mention) {
		t.Fatalf("notifications %s", r.raw)
	}
}

// MSC4306's postcontent kind is listed and addressable; its rules are the
// server's, so creating one is refused with M_INVALID_PARAM as the MSC says.
func TestPushRulesPostContent(t *testing.T) {
	ts := testserver.New(t)
	bob := ts.RegisterUser("bob")
	r := pushRaw(t, ts, bob, http.MethodGet, "/pushrules/", nil)
	sessExpect(t, "GET pushrules", r, http.StatusOK, "")
	if list, ok := r.body["global"].(map[string]any)["postcontent"].([]any); !ok || len(list) != 0 {
		t.Fatalf("no empty postcontent list: %s", r.raw)
	}
	r = pushRaw(t, ts, bob, http.MethodGet, "/pushrules/global/postcontent/x", nil)
	sessExpect(t, "GET unknown postcontent rule", r, http.StatusNotFound, "M_NOT_FOUND")
	r = pushRaw(t, ts, bob, http.MethodGet, "/pushrules/global/postcontent/x/enabled", nil)
	sessExpect(t, "GET unknown postcontent rule enabled", r, http.StatusNotFound, "M_NOT_FOUND")
	r = pushRaw(t, ts, bob, http.MethodDelete, "/pushrules/global/postcontent/x", nil)
	sessExpect(t, "DELETE unknown postcontent rule", r, http.StatusNotFound, "M_NOT_FOUND")
	r = pushRaw(t, ts, bob, http.MethodPut, "/pushrules/global/postcontent/x", map[string]any{"actions": []any{}, "conditions": []any{}})
	sessExpect(t, "PUT postcontent rule", r, http.StatusBadRequest, "M_INVALID_PARAM")
	if !strings.Contains(r.str("error"), "postcontent") {
		t.Fatalf("refusal does not say why: %s", r.raw)
	}
}

func TestPushRulesBadInput(t *testing.T) {
	ts := testserver.New(t)
	bob := ts.RegisterUser("bob")
	ok := map[string]any{"actions": []any{"notify"}}
	cases := []struct {
		what, method, path string
		body               any
		status             int
		code               string
	}{
		{"unknown kind", http.MethodGet, "/pushrules/global/everything/x", nil, 400, "M_INVALID_PARAM"},
		{"unknown kind put", http.MethodPut, "/pushrules/global/everything/x", ok, 400, "M_INVALID_PARAM"},
		{"unknown rule", http.MethodGet, "/pushrules/global/override/nope", nil, 404, "M_NOT_FOUND"},
		{"unknown rule enabled", http.MethodGet, "/pushrules/global/override/nope/enabled", nil, 404, "M_NOT_FOUND"},
		{"unknown rule set enabled", http.MethodPut, "/pushrules/global/override/nope/enabled", map[string]any{"enabled": true}, 404, "M_NOT_FOUND"},
		{"unknown rule actions", http.MethodGet, "/pushrules/global/override/nope/actions", nil, 404, "M_NOT_FOUND"},
		{"unknown rule set actions", http.MethodPut, "/pushrules/global/override/nope/actions", ok, 404, "M_NOT_FOUND"},
		{"unknown rule delete", http.MethodDelete, "/pushrules/global/override/nope", nil, 404, "M_NOT_FOUND"},
		{"default rule of another kind", http.MethodGet, "/pushrules/global/underride/.m.rule.master", nil, 404, "M_NOT_FOUND"},
		{"unknown scope", http.MethodGet, "/pushrules/device/override/x", nil, 404, "M_UNRECOGNIZED"},
		{"malformed JSON", http.MethodPut, "/pushrules/global/override/x", `{"actions":`, 400, "M_NOT_JSON"},
		{"actions not a list", http.MethodPut, "/pushrules/global/override/x", map[string]any{"actions": "notify"}, 400, "M_BAD_JSON"},
		{"no actions", http.MethodPut, "/pushrules/global/override/x", map[string]any{"conditions": []any{}}, 400, "M_MISSING_PARAM"},
		{"unknown action", http.MethodPut, "/pushrules/global/override/x", map[string]any{"actions": []any{"explode"}}, 400, "M_INVALID_PARAM"},
		{"tweak without name", http.MethodPut, "/pushrules/global/override/x", map[string]any{"actions": []any{map[string]any{"value": 1}}}, 400, "M_INVALID_PARAM"},
		{"action number", http.MethodPut, "/pushrules/global/override/x", map[string]any{"actions": []any{1}}, 400, "M_INVALID_PARAM"},
		{"condition without kind", http.MethodPut, "/pushrules/global/override/x", map[string]any{"actions": []any{}, "conditions": []any{map[string]any{"key": "type"}}}, 400, "M_INVALID_PARAM"},
		{"conditions not a list", http.MethodPut, "/pushrules/global/override/x", map[string]any{"actions": []any{}, "conditions": "all"}, 400, "M_BAD_JSON"},
		{"content without pattern", http.MethodPut, "/pushrules/global/content/x", ok, 400, "M_MISSING_PARAM"},
		{"pattern not a string", http.MethodPut, "/pushrules/global/content/x", map[string]any{"actions": []any{}, "pattern": 3}, 400, "M_BAD_JSON"},
		{"server rule ID", http.MethodPut, "/pushrules/global/override/.mine", ok, 400, "M_INVALID_PARAM"},
		{"default rule replaced", http.MethodPut, "/pushrules/global/override/.m.rule.master", ok, 400, "M_INVALID_PARAM"},
		{"slash in rule ID", http.MethodPut, "/pushrules/global/override/a%2Fb", ok, 400, "M_INVALID_PARAM"},
		{"backslash in rule ID", http.MethodPut, "/pushrules/global/override/a%5Cb", ok, 400, "M_INVALID_PARAM"},
		{"room rule not a room", http.MethodPut, "/pushrules/global/room/lobby", ok, 400, "M_INVALID_PARAM"},
		{"sender rule not a user", http.MethodPut, "/pushrules/global/sender/spambot", ok, 400, "M_INVALID_PARAM"},
		{"before unknown", http.MethodPut, "/pushrules/global/override/x?before=nope", ok, 400, "M_UNKNOWN"},
		{"after unknown", http.MethodPut, "/pushrules/global/override/x?after=nope", ok, 400, "M_UNKNOWN"},
		{"before a default rule", http.MethodPut, "/pushrules/global/override/x?before=.m.rule.master", ok, 400, "M_INVALID_PARAM"},
		{"enabled missing", http.MethodPut, "/pushrules/global/override/.m.rule.master/enabled", map[string]any{}, 400, "M_MISSING_PARAM"},
		{"enabled not a boolean", http.MethodPut, "/pushrules/global/override/.m.rule.master/enabled", map[string]any{"enabled": "yes"}, 400, "M_BAD_JSON"},
		{"enabled malformed", http.MethodPut, "/pushrules/global/override/.m.rule.master/enabled", `{`, 400, "M_NOT_JSON"},
		{"actions missing", http.MethodPut, "/pushrules/global/override/.m.rule.master/actions", map[string]any{}, 400, "M_MISSING_PARAM"},
		{"bad default actions", http.MethodPut, "/pushrules/global/override/.m.rule.master/actions", map[string]any{"actions": []any{"boom"}}, 400, "M_INVALID_PARAM"},
		{"no global slash", http.MethodPost, "/pushrules/", nil, 405, "M_UNRECOGNIZED"},
	}
	for _, c := range cases {
		sessExpect(t, c.what, pushRaw(t, ts, bob, c.method, c.path, c.body), c.status, c.code)
	}
	// Nothing above created a rule.
	r := pushRaw(t, ts, bob, http.MethodGet, "/pushrules/", nil)
	global := r.body["global"].(map[string]any)
	if len(pushRuleIDs(t, global, "override")) != 12 || len(pushRuleIDs(t, global, "content")) != 1 || len(pushRuleIDs(t, global, "room")) != 0 {
		t.Fatalf("bad requests changed the rules: %s", r.raw)
	}
	// No token, and a bad one.
	for _, p := range []string{"/pushrules/", "/pushrules/global/", "/pushrules/global/override/.m.rule.master", "/pushers", "/notifications"} {
		sessExpect(t, "no token "+p, sessRaw(t, ts, "", http.MethodGet, "/_matrix/client/v3"+p, nil), http.StatusUnauthorized, "M_MISSING_TOKEN")
		sessExpect(t, "bad token "+p, sessRaw(t, ts, "nope", http.MethodGet, "/_matrix/client/v3"+p, nil), http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
	}
	sessExpect(t, "no token PUT", sessRaw(t, ts, "", http.MethodPut, "/_matrix/client/v3/pushrules/global/override/x", ok), http.StatusUnauthorized, "M_MISSING_TOKEN")
	sessExpect(t, "no token set pusher", sessRaw(t, ts, "", http.MethodPost, "/_matrix/client/v3/pushers/set", map[string]any{}), http.StatusUnauthorized, "M_MISSING_TOKEN")
}

// pushCounts is what a sync says about a joined room's unread counts.
type pushCounts struct {
	Notify, Highlight int
	Threads           map[string][2]int
	Present           bool
}

// pushSync runs one sync as c with the raw JSON decoded (mautrix's types
// have no unread_thread_notifications), returning the next batch token and
// the counts of roomID.
func pushSync(t *testing.T, c *mautrix.Client, since, filter string, timeout time.Duration, roomID id.RoomID) (string, pushCounts) {
	t.Helper()
	q := map[string]string{"timeout": fmt.Sprint(timeout.Milliseconds())}
	if since != "" {
		q["since"] = since
	}
	if filter != "" {
		q["filter"] = filter
	}
	var resp struct {
		NextBatch string `json:"next_batch"`
		Rooms     struct {
			Join map[id.RoomID]struct {
				Unread *struct {
					Notify    int `json:"notification_count"`
					Highlight int `json:"highlight_count"`
				} `json:"unread_notifications"`
				Threads map[string]struct {
					Notify    int `json:"notification_count"`
					Highlight int `json:"highlight_count"`
				} `json:"unread_thread_notifications"`
			} `json:"join"`
		} `json:"rooms"`
	}
	u := c.BuildURLWithQuery(mautrix.ClientURLPath{"v3", "sync"}, q)
	if _, err := c.MakeRequest(context.Background(), http.MethodGet, u, nil, &resp); err != nil {
		t.Fatalf("sync: %v", err)
	}
	var pc pushCounts
	jr, ok := resp.Rooms.Join[roomID]
	if !ok {
		return resp.NextBatch, pc
	}
	if jr.Unread == nil {
		t.Fatalf("room %s in rooms.join without unread_notifications", roomID)
	}
	pc.Present = true
	pc.Notify, pc.Highlight = jr.Unread.Notify, jr.Unread.Highlight
	for th, c := range jr.Threads {
		if pc.Threads == nil {
			pc.Threads = map[string][2]int{}
		}
		pc.Threads[th] = [2]int{c.Notify, c.Highlight}
	}
	return resp.NextBatch, pc
}

func pushExpect(t *testing.T, what string, got pushCounts, notify, highlight int) {
	t.Helper()
	if !got.Present || got.Notify != notify || got.Highlight != highlight {
		t.Fatalf("%s: got %+v, want notify %d highlight %d", what, got, notify, highlight)
	}
}

func pushSend(t *testing.T, c *mautrix.Client, roomID id.RoomID, content map[string]any) id.EventID {
	t.Helper()
	resp, err := c.SendMessageEvent(context.Background(), roomID, event.EventMessage, content)
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	return resp.EventID
}

func pushText(body string) map[string]any { return map[string]any{"msgtype": "m.text", "body": body} }

// pushPair makes a private room of alice and bob (two members, so the
// one-to-one rules apply).
func pushPair(t *testing.T, ts *testserver.Server) (alice, bob *mautrix.Client, roomID id.RoomID) {
	t.Helper()
	alice = ts.RegisterUser("alice")
	bob = ts.RegisterUser("bob")
	roomID = roomCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if _, err := bob.JoinRoomByID(context.Background(), roomID); err != nil {
		t.Fatal(err)
	}
	return alice, bob, roomID
}

func TestUnreadCounts(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice, bob, roomID := pushPair(t, ts)

	// Before anything is said, the room is there with zero counts.
	since, c := pushSync(t, bob, "", "", 0, roomID)
	pushExpect(t, "initial", c, 0, 0)

	// A message in a one-to-one room notifies bob, and the count comes in
	// the same sync as the event, waking a waiting sync.
	type result struct {
		next string
		c    pushCounts
	}
	done := make(chan result, 1)
	go func() {
		n, c := pushSync(t, bob, since, "", 20*time.Second, roomID)
		done <- result{n, c}
	}()
	waitForWaiters(t, ts, 1)
	pushSend(t, alice, roomID, pushText("hello"))
	var res result
	select {
	case res = <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("the message did not wake bob's sync")
	}
	pushExpect(t, "after hello", res.c, 1, 0)
	since = res.next
	// The sender's own message does not count for her.
	_, c = pushSync(t, alice, "", "", 0, roomID)
	pushExpect(t, "alice's own", c, 0, 0)

	// A mention of bob highlights.
	pushSend(t, alice, roomID, map[string]any{"msgtype": "m.text", "body": "look, Bob", "m.mentions": map[string]any{"user_ids": []string{string(bob.UserID)}}})
	since, c = pushSync(t, bob, since, "", 0, roomID)
	pushExpect(t, "after mention", c, 2, 1)
	// Without m.mentions, the legacy rule matches his user name in the body.
	pushSend(t, alice, roomID, pushText("is bob there?"))
	since, c = pushSync(t, bob, since, "", 0, roomID)
	pushExpect(t, "after legacy mention", c, 3, 2)
	// With m.mentions (naming nobody), the legacy rules stay out of it.
	last := pushSend(t, alice, roomID, map[string]any{"msgtype": "m.text", "body": "bob is great", "m.mentions": map[string]any{}})
	since, c = pushSync(t, bob, since, "", 0, roomID)
	pushExpect(t, "m.mentions without bob", c, 4, 2)
	// Notices do not notify.
	pushSend(t, alice, roomID, map[string]any{"msgtype": "m.notice", "body": "bob: beep"})
	since, c = pushSync(t, bob, since, "", 0, roomID)
	pushExpect(t, "notice", c, 4, 2)

	// A read receipt brings the counts down, and the room comes back in
	// an incremental sync to say so, without a new event.
	if err := bob.SendReceipt(ctx, roomID, last, event.ReceiptTypeRead, nil); err != nil {
		t.Fatal(err)
	}
	since, c = pushSync(t, bob, since, "", 0, roomID)
	pushExpect(t, "after receipt", c, 0, 0)
	// Even with receipts filtered out of the ephemeral section.
	pushSend(t, alice, roomID, pushText("again"))
	since, c = pushSync(t, bob, since, "", 0, roomID)
	pushExpect(t, "again", c, 1, 0)
	noReceipts := `{"room":{"ephemeral":{"not_types":["m.receipt"]}}}`
	_, c = pushSync(t, bob, since, noReceipts, 0, roomID)
	if c.Present {
		t.Fatalf("room in an idle sync: %+v", c)
	}
	evID := pushSend(t, alice, roomID, pushText("and again"))
	since, c = pushSync(t, bob, since, noReceipts, 0, roomID)
	pushExpect(t, "and again", c, 2, 0)
	if err := bob.SendReceipt(ctx, roomID, evID, event.ReceiptTypeReadPrivate, nil); err != nil {
		t.Fatal(err)
	}
	since, c = pushSync(t, bob, since, noReceipts, 0, roomID)
	pushExpect(t, "after private receipt", c, 0, 0)

	// Sending marks what came before read.
	pushSend(t, alice, roomID, pushText("one"))
	pushSend(t, alice, roomID, pushText("two"))
	since, c = pushSync(t, bob, since, "", 0, roomID)
	pushExpect(t, "before bob replies", c, 2, 0)
	pushSend(t, bob, roomID, pushText("reply"))
	since, c = pushSync(t, bob, since, "", 0, roomID)
	pushExpect(t, "after bob replies", c, 0, 0)
	// After his next reply (which needs no new read marker) the counts stay
	// at zero; a message after it counts again, and his next reply clears
	// it (the server must know a marker is needed again).
	pushSend(t, bob, roomID, pushText("reply 2"))
	pushSend(t, alice, roomID, pushText("three"))
	since, c = pushSync(t, bob, since, "", 0, roomID)
	pushExpect(t, "after three", c, 1, 0)
	pushSend(t, bob, roomID, pushText("reply 3"))
	since, c = pushSync(t, bob, since, "", 0, roomID)
	pushExpect(t, "after reply 3", c, 0, 0)

	// Counts survive a restart.
	pushSend(t, alice, roomID, pushText("still there?"))
	ts.Restart()
	bob.HomeserverURL = mustParse(t, ts.URL)
	_, c = pushSync(t, bob, "", "", 0, roomID)
	pushExpect(t, "after restart", c, 1, 0)
	// What the server remembered of read markers is gone with the restart;
	// a reply still clears the count.
	pushSend(t, bob, roomID, pushText("yes"))
	_, c = pushSync(t, bob, "", "", 0, roomID)
	pushExpect(t, "reply after restart", c, 0, 0)
	_ = since
}

func TestUnreadCountsFollowRules(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice, bob, roomID := pushPair(t, ts)
	count := func(what string, notify, highlight int) {
		t.Helper()
		_, c := pushSync(t, bob, "", "", 0, roomID)
		pushExpect(t, what, c, notify, highlight)
	}

	// A room rule with no actions silences the room.
	r := pushRaw(t, ts, bob, http.MethodPut, "/pushrules/global/room/"+url.PathEscape(string(roomID)), map[string]any{"actions": []any{}})
	sessExpect(t, "mute room", r, http.StatusOK, "")
	pushSend(t, alice, roomID, pushText("muted"))
	count("muted room", 0, 0)
	// Mentions are override rules, which come before room rules.
	pushSend(t, alice, roomID, map[string]any{"msgtype": "m.text", "body": "hey", "m.mentions": map[string]any{"user_ids": []string{string(bob.UserID)}}})
	count("mention in muted room", 1, 1)
	if err := bob.DeletePushRule(ctx, "global", pushrules.RoomRule, string(roomID)); err != nil {
		t.Fatal(err)
	}
	pushSend(t, alice, roomID, pushText("unmuted"))
	count("unmuted", 2, 1)

	// A keyword (content rule) that highlights, matched on whole words.
	r = pushRaw(t, ts, bob, http.MethodPut, "/pushrules/global/content/cake", map[string]any{"pattern": "cake", "actions": []any{"notify", map[string]any{"set_tweak": "highlight"}}})
	sessExpect(t, "cake rule", r, http.StatusOK, "")
	pushSend(t, alice, roomID, pushText("Who wants CAKE?"))
	count("cake", 3, 2)
	pushSend(t, alice, roomID, pushText("pancakes!"))
	count("pancakes", 4, 2)
	// Disabled, it no longer matches.
	if err := bob.SetPushRuleEnabled(ctx, "global", pushrules.ContentRule, "cake", false); err != nil {
		t.Fatal(err)
	}
	pushSend(t, alice, roomID, pushText("cake again"))
	count("cake disabled", 5, 2)

	// Actions of a default rule: messages in one-to-one rooms highlight.
	r = pushRaw(t, ts, bob, http.MethodPut, "/pushrules/global/underride/.m.rule.room_one_to_one/actions", map[string]any{"actions": []any{"notify", map[string]any{"set_tweak": "highlight", "value": true}}})
	sessExpect(t, "one-to-one highlights", r, http.StatusOK, "")
	pushSend(t, alice, roomID, pushText("loud"))
	count("loud", 6, 3)

	// The master rule silences everything, mentions included.
	if err := bob.SetPushRuleEnabled(ctx, "global", pushrules.OverrideRule, ".m.rule.master", true); err != nil {
		t.Fatal(err)
	}
	pushSend(t, alice, roomID, map[string]any{"msgtype": "m.text", "body": "hey", "m.mentions": map[string]any{"user_ids": []string{string(bob.UserID)}}})
	count("master on", 6, 3)
	if err := bob.SetPushRuleEnabled(ctx, "global", pushrules.OverrideRule, ".m.rule.master", false); err != nil {
		t.Fatal(err)
	}

	// Someone bob ignores never notifies him.
	if err := bob.SetAccountData(ctx, "m.ignored_user_list", map[string]any{"ignored_users": map[string]any{string(alice.UserID): map[string]any{}}}); err != nil {
		t.Fatal(err)
	}
	pushSend(t, alice, roomID, pushText("you can't hear me"))
	count("ignored", 6, 3)
	pushSend(t, alice, roomID, pushText("still nothing"))
	count("still ignored", 6, 3)
	// And notifies him again once he stops ignoring her.
	if err := bob.SetAccountData(ctx, "m.ignored_user_list", map[string]any{"ignored_users": map[string]any{}}); err != nil {
		t.Fatal(err)
	}
	pushSend(t, alice, roomID, pushText("hi"))
	count("no longer ignored (one-to-one messages highlight, above)", 7, 4)
}

func TestUnreadCountsRoomMentionNeedsPower(t *testing.T) {
	ts := testserver.New(t)
	alice, bob, roomID := pushPair(t, ts)
	carol := ts.RegisterUser("carol")
	if _, err := carol.JoinRoomByID(context.Background(), roomID); err != nil {
		t.Fatal(err)
	}
	atRoom := map[string]any{"msgtype": "m.text", "body": "everyone!", "m.mentions": map[string]any{"room": true}}
	// Alice created the room: she may notify it. (Three members: only the
	// message rule notifies otherwise.)
	pushSend(t, alice, roomID, atRoom)
	_, c := pushSync(t, bob, "", "", 0, roomID)
	pushExpect(t, "@room by the creator", c, 1, 1)
	// Carol has power level 0 < 50: her @room is a plain message.
	pushSend(t, carol, roomID, atRoom)
	_, c = pushSync(t, bob, "", "", 0, roomID)
	pushExpect(t, "@room by carol", c, 2, 1)
	// Legacy "@room" in the body, with the same permission check.
	pushSend(t, alice, roomID, pushText("@room lunch"))
	_, c = pushSync(t, bob, "", "", 0, roomID)
	pushExpect(t, "legacy @room", c, 3, 2)
}

func TestUnreadThreadCounts(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice, bob, roomID := pushPair(t, ts)
	root := pushSend(t, alice, roomID, pushText("root"))
	inThread := func(body string) map[string]any {
		return map[string]any{"msgtype": "m.text", "body": body,
			"m.relates_to": map[string]any{"rel_type": "m.thread", "event_id": string(root), "is_falling_back": true, "m.in_reply_to": map[string]any{"event_id": string(root)}}}
	}
	reply1 := pushSend(t, alice, roomID, inThread("first reply"))
	pushSend(t, alice, roomID, inThread("second reply, bob"))
	// A reaction to a threaded message is in the thread, but reactions do
	// not notify.
	if _, err := alice.SendMessageEvent(ctx, roomID, event.EventReaction, map[string]any{"m.relates_to": map[string]any{"rel_type": "m.annotation", "event_id": string(reply1), "key": "👍"}}); err != nil {
		t.Fatal(err)
	}

	// Without unread_thread_notifications, threads count in the room.
	_, c := pushSync(t, bob, "", "", 0, roomID)
	pushExpect(t, "threads summed", c, 3, 1)
	if c.Threads != nil {
		t.Fatalf("thread counts not asked for: %+v", c.Threads)
	}
	// With it, they are apart.
	threaded := `{"room":{"timeline":{"unread_thread_notifications":true}}}`
	since, c := pushSync(t, bob, "", threaded, 0, roomID)
	pushExpect(t, "main timeline", c, 1, 0)
	if c.Threads[string(root)] != [2]int{2, 1} || len(c.Threads) != 1 {
		t.Fatalf("thread counts %+v", c.Threads)
	}
	// A receipt in the thread clears the thread, not the main timeline.
	if err := bob.SendReceipt(ctx, roomID, reply1, event.ReceiptTypeRead, map[string]any{"thread_id": string(root)}); err != nil {
		t.Fatal(err)
	}
	since, c = pushSync(t, bob, since, threaded, 0, roomID)
	pushExpect(t, "after thread receipt", c, 1, 0)
	if c.Threads[string(root)] != [2]int{1, 1} {
		t.Fatalf("thread counts after receipt %+v", c.Threads)
	}
	// A main-timeline receipt clears the main timeline only.
	if err := bob.SendReceipt(ctx, roomID, root, event.ReceiptTypeRead, map[string]any{"thread_id": "main"}); err != nil {
		t.Fatal(err)
	}
	since, c = pushSync(t, bob, since, threaded, 0, roomID)
	pushExpect(t, "after main receipt", c, 0, 0)
	if c.Threads[string(root)] != [2]int{1, 1} {
		t.Fatalf("thread counts after main receipt %+v", c.Threads)
	}
	// Replying in the thread marks it read; a thread with nothing unread
	// is left out.
	pushSend(t, bob, roomID, inThread("my reply"))
	_, c = pushSync(t, bob, since, threaded, 0, roomID)
	pushExpect(t, "after bob's reply", c, 0, 0)
	if len(c.Threads) != 0 {
		t.Fatalf("thread counts after replying %+v", c.Threads)
	}
}

func TestNotificationsList(t *testing.T) {
	ts := testserver.New(t)
	alice, bob, roomID := pushPair(t, ts)
	first := pushSend(t, alice, roomID, pushText("first"))
	mention := pushSend(t, alice, roomID, map[string]any{"msgtype": "m.text", "body": "hi", "m.mentions": map[string]any{"user_ids": []string{string(bob.UserID)}}})
	third := pushSend(t, alice, roomID, pushText("third"))
	if err := bob.SendReceipt(context.Background(), roomID, mention, event.ReceiptTypeRead, nil); err != nil {
		t.Fatal(err)
	}
	type notif struct {
		Actions []any          `json:"actions"`
		Event   map[string]any `json:"event"`
		Read    bool           `json:"read"`
		RoomID  string         `json:"room_id"`
		TS      int64          `json:"ts"`
	}
	type page struct {
		NextToken     *string `json:"next_token"`
		Notifications []notif `json:"notifications"`
	}
	list := func(query string) page {
		t.Helper()
		r := pushRaw(t, ts, bob, http.MethodGet, "/notifications"+query, nil)
		sessExpect(t, "GET /notifications"+query, r, http.StatusOK, "")
		var p page
		if err := json.Unmarshal([]byte(r.raw), &p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ids := func(p page) []string {
		var out []string
		for _, n := range p.Notifications {
			out = append(out, n.Event["event_id"].(string))
		}
		return out
	}

	all := list("")
	if got := ids(all); !slices.Equal(got, []string{string(third), string(mention), string(first)}) || all.NextToken != nil {
		t.Fatalf("notifications %v next %v", got, all.NextToken)
	}
	n := all.Notifications[0]
	if n.RoomID != string(roomID) || n.Read || n.TS == 0 || fmt.Sprint(n.Actions) != "[notify map[set_tweak:sound value:default]]" {
		t.Fatalf("newest notification %+v", n)
	}
	if _, has := n.Event["room_id"]; has || n.Event["sender"] != string(alice.UserID) {
		t.Fatalf("notification event %v", n.Event)
	}
	if !all.Notifications[1].Read || !all.Notifications[2].Read {
		t.Fatal("events up to the receipt are not read")
	}
	// Only highlights.
	if got := ids(list("?only=highlight")); !slices.Equal(got, []string{string(mention)}) {
		t.Fatalf("highlights %v", got)
	}
	// Paging.
	p1 := list("?limit=2")
	if got := ids(p1); len(got) != 2 || p1.NextToken == nil {
		t.Fatalf("page 1 %v %v", got, p1.NextToken)
	}
	p2 := list("?limit=2&from=" + *p1.NextToken)
	if got := ids(p2); !slices.Equal(got, []string{string(first)}) || p2.NextToken != nil {
		t.Fatalf("page 2 %v %v", got, p2.NextToken)
	}
	// Alice was notified of nothing (she sent everything).
	r := pushRaw(t, ts, alice, http.MethodGet, "/notifications", nil)
	if !strings.Contains(r.raw, `"notifications":[]`) {
		t.Fatalf("alice's notifications %s", r.raw)
	}
	// An invite notifies its target.
	carol := ts.RegisterUser("carol")
	if _, err := alice.InviteUser(context.Background(), roomID, &mautrix.ReqInviteUser{UserID: carol.UserID}); err != nil {
		t.Fatal(err)
	}
	r = pushRaw(t, ts, carol, http.MethodGet, "/notifications", nil)
	if !strings.Contains(r.raw, `"membership":"invite"`) {
		t.Fatalf("carol's notifications %s", r.raw)
	}
	// Bad input.
	for _, q := range []string{"?from=abc", "?from=-1", "?limit=x", "?limit=-1"} {
		sessExpect(t, "notifications"+q, pushRaw(t, ts, bob, http.MethodGet, "/notifications"+q, nil), 400, "M_INVALID_PARAM")
	}
}

func TestPushers(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	httpKind := mautrix.PusherKindHTTP
	pusher := func(appID, key string) *mautrix.Pusher {
		return &mautrix.Pusher{
			Kind: &httpKind, AppID: mautrix.PusherAppID(appID), PushKey: key, AppDisplayName: "App", DeviceDisplayName: "Phone",
			Language: "en", ProfileTag: "tag", Data: mautrix.PusherData{"url": "https://push.example.org/_matrix/push/v1/notify", "format": "event_id_only"},
		}
	}
	list := func(c *mautrix.Client) []mautrix.Pusher {
		t.Helper()
		resp, err := c.GetPushers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return resp.Pushers
	}
	if got := list(bob); len(got) != 0 {
		t.Fatalf("new account has pushers %v", got)
	}
	r := pushRaw(t, ts, bob, http.MethodGet, "/pushers", nil)
	if r.raw != `{"pushers":[]}` {
		t.Fatalf("empty pushers %s", r.raw)
	}
	if err := bob.SetPusher(ctx, pusher("org.example.app", "key1")); err != nil {
		t.Fatal(err)
	}
	got := list(bob)
	if len(got) != 1 || got[0].PushKey != "key1" || got[0].AppID != "org.example.app" || got[0].Data.URL() != "https://push.example.org/_matrix/push/v1/notify" ||
		got[0].Data.Format() != mautrix.PushFormatEventIDOnly || got[0].ProfileTag != "tag" || got[0].Language != "en" || *got[0].Kind != httpKind {
		t.Fatalf("pushers %+v", got)
	}
	// Setting again updates; custom data keys are kept.
	p := pusher("org.example.app", "key1")
	p.DeviceDisplayName = "New phone"
	p.Data["default_payload"] = map[string]any{"aps": "x"}
	if err := bob.SetPusher(ctx, p); err != nil {
		t.Fatal(err)
	}
	r = pushRaw(t, ts, bob, http.MethodGet, "/pushers", nil)
	if !strings.Contains(r.raw, `"device_display_name":"New phone"`) || !strings.Contains(r.raw, `"default_payload"`) || strings.Count(r.raw, "pushkey") != 1 {
		t.Fatalf("updated pusher %s", r.raw)
	}
	// The same key for another user takes it away from bob, unless
	// appended.
	if err := alice.SetPusher(ctx, pusher("org.example.app", "key1")); err != nil {
		t.Fatal(err)
	}
	if got := list(bob); len(got) != 0 {
		t.Fatalf("bob kept a pusher alice took over: %v", got)
	}
	p = pusher("org.example.app", "key1")
	p.Append = true
	if err := bob.SetPusher(ctx, p); err != nil {
		t.Fatal(err)
	}
	if len(list(bob)) != 1 || len(list(alice)) != 1 {
		t.Fatal("append did not keep both pushers")
	}
	if err := bob.SetPusher(ctx, pusher("org.example.app", "key2")); err != nil {
		t.Fatal(err)
	}
	// Plain http URLs are accepted (local push gateways).
	local := pusher("org.example.local", "key3")
	local.Data["url"] = "http://192.168.1.10:8080/_matrix/push/v1/notify"
	if err := bob.SetPusher(ctx, local); err != nil {
		t.Fatal(err)
	}
	if got := list(bob); len(got) != 3 {
		t.Fatalf("three pushers expected: %v", got)
	}
	// kind null deletes (and deleting what is not there is fine).
	for range 2 {
		r = pushRaw(t, ts, bob, http.MethodPost, "/pushers/set", map[string]any{"kind": nil, "app_id": "org.example.app", "pushkey": "key2"})
		sessExpect(t, "delete pusher", r, http.StatusOK, "")
	}
	if got := list(bob); len(got) != 2 || len(list(alice)) != 1 {
		t.Fatalf("after delete: %v", got)
	}
	// Pushers survive a restart.
	ts.Restart()
	bob.HomeserverURL = mustParse(t, ts.URL)
	if got := list(bob); len(got) != 2 {
		t.Fatalf("after restart: %v", got)
	}

	valid := func() map[string]any {
		return map[string]any{"kind": "http", "app_id": "org.example.app", "pushkey": "k", "app_display_name": "App",
			"device_display_name": "Phone", "lang": "en", "data": map[string]any{"url": "https://push.example.org/_matrix/push/v1/notify"}}
	}
	with := func(key string, v any) map[string]any {
		b := valid()
		if v == nil {
			delete(b, key)
		} else {
			b[key] = v
		}
		return b
	}
	cases := []struct {
		what   string
		body   any
		status int
		code   string
	}{
		{"malformed JSON", `{"kind":`, 400, "M_NOT_JSON"},
		{"not an object", `[]`, 400, "M_BAD_JSON"},
		{"no kind", with("kind", nil), 400, "M_MISSING_PARAM"},
		{"no app_id", with("app_id", nil), 400, "M_MISSING_PARAM"},
		{"no pushkey", with("pushkey", nil), 400, "M_MISSING_PARAM"},
		{"no lang", with("lang", nil), 400, "M_MISSING_PARAM"},
		{"no app_display_name", with("app_display_name", nil), 400, "M_MISSING_PARAM"},
		{"no device_display_name", with("device_display_name", nil), 400, "M_MISSING_PARAM"},
		{"no data", with("data", nil), 400, "M_MISSING_PARAM"},
		{"kind a number", with("kind", 1), 400, "M_BAD_JSON"},
		{"app_id a number", with("app_id", 1), 400, "M_BAD_JSON"},
		{"append a string", with("append", "yes"), 400, "M_BAD_JSON"},
		{"data not an object", with("data", "x"), 400, "M_BAD_JSON"},
		{"email", with("kind", "email"), 400, "M_INVALID_PARAM"},
		{"unknown kind", with("kind", "carrier-pigeon"), 400, "M_INVALID_PARAM"},
		{"empty app_id", with("app_id", ""), 400, "M_INVALID_PARAM"},
		{"long app_id", with("app_id", strings.Repeat("a", 65)), 400, "M_INVALID_PARAM"},
		{"empty pushkey", with("pushkey", ""), 400, "M_INVALID_PARAM"},
		{"long pushkey", with("pushkey", strings.Repeat("k", 513)), 400, "M_INVALID_PARAM"},
		{"no url", with("data", map[string]any{"format": "event_id_only"}), 400, "M_MISSING_PARAM"},
		{"url a number", with("data", map[string]any{"url": 5}), 400, "M_BAD_JSON"},
		{"url wrong path", with("data", map[string]any{"url": "https://push.example.org/notify"}), 400, "M_INVALID_PARAM"},
		{"url relative", with("data", map[string]any{"url": "/_matrix/push/v1/notify"}), 400, "M_INVALID_PARAM"},
		{"url ftp", with("data", map[string]any{"url": "ftp://push.example.org/_matrix/push/v1/notify"}), 400, "M_INVALID_PARAM"},
		{"unknown format", with("data", map[string]any{"url": "https://push.example.org/_matrix/push/v1/notify", "format": "full"}), 400, "M_INVALID_PARAM"},
		{"delete without pushkey", map[string]any{"kind": nil, "app_id": "org.example.app"}, 400, "M_MISSING_PARAM"},
	}
	for _, c := range cases {
		sessExpect(t, c.what, pushRaw(t, ts, bob, http.MethodPost, "/pushers/set", c.body), c.status, c.code)
	}
	if got := list(bob); len(got) != 2 {
		t.Fatalf("bad requests changed the pushers: %v", got)
	}
	// The highest limits are allowed.
	sessExpect(t, "limits", pushRaw(t, ts, bob, http.MethodPost, "/pushers/set", with("pushkey", strings.Repeat("k", 512))), 200, "")
}

// TestUnreadCountsDisplayNameFollowsState: the legacy display-name rule
// reads the recipient's name in the room as of the message, so a name
// changed a moment before is the one that highlights (push rules are
// evaluated from the state the message was built on, not a stale read).
func TestUnreadCountsDisplayNameFollowsState(t *testing.T) {
	ctx := context.Background()
	ts := testserver.New(t)
	alice, bob, roomID := pushPair(t, ts)
	carol := ts.RegisterUser("carol")
	if _, err := carol.JoinRoomByID(ctx, roomID); err != nil {
		t.Fatal(err)
	}
	if err := bob.SetDisplayName(ctx, "Bartholomew"); err != nil {
		t.Fatal(err)
	}
	pushSend(t, alice, roomID, pushText("ask Bartholomew"))
	_, c := pushSync(t, bob, "", "", 0, roomID)
	pushExpect(t, "body with bob's name", c, 1, 1)
	if err := bob.SetDisplayName(ctx, "Barty"); err != nil {
		t.Fatal(err)
	}
	// Bob's own event (the new name) marked the room read.
	pushSend(t, alice, roomID, pushText("Bartholomew was his old name"))
	_, c = pushSync(t, bob, "", "", 0, roomID)
	pushExpect(t, "old name", c, 1, 0)
	pushSend(t, alice, roomID, pushText("hi Barty"))
	_, c = pushSync(t, bob, "", "", 0, roomID)
	pushExpect(t, "new name", c, 2, 1)
}
