package clientapi

import (
	"encoding/json"
	"net/http"
	"strconv"

	"maunium.net/go/mautrix"

	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/httpapi"
	"github.com/palpo-im/palpo-desktop/server/push"
)

// Push rules, pushers and notifications (spec: "Push Notifications").
func (a *API) registerPush(rt *httpapi.Router) {
	rt.Handle(http.MethodGet, v3+"/pushrules/{$}", a.authed(a.getPushRules))
	rt.Handle(http.MethodGet, v3+"/pushrules/global/{$}", a.authed(a.getGlobalPushRules))
	rt.Handle(http.MethodGet, v3+"/pushrules/global/{kind}/{ruleId}", a.authed(a.getPushRule))
	rt.Handle(http.MethodPut, v3+"/pushrules/global/{kind}/{ruleId}", a.authed(a.putPushRule))
	rt.Handle(http.MethodDelete, v3+"/pushrules/global/{kind}/{ruleId}", a.authed(a.deletePushRule))
	rt.Handle(http.MethodGet, v3+"/pushrules/global/{kind}/{ruleId}/enabled", a.authed(a.getPushRuleEnabled))
	rt.Handle(http.MethodPut, v3+"/pushrules/global/{kind}/{ruleId}/enabled", a.authed(a.putPushRuleEnabled))
	rt.Handle(http.MethodGet, v3+"/pushrules/global/{kind}/{ruleId}/actions", a.authed(a.getPushRuleActions))
	rt.Handle(http.MethodPut, v3+"/pushrules/global/{kind}/{ruleId}/actions", a.authed(a.putPushRuleActions))
	rt.Handle(http.MethodGet, v3+"/pushers", a.authed(a.getPushers))
	rt.Handle(http.MethodPost, v3+"/pushers/set", a.authed(a.setPusher))
	rt.Handle(http.MethodGet, v3+"/notifications", a.authed(a.notifications))
}

// pushRule is the caller's rule that {kind} and {ruleId} name.
func (a *API) pushRule(r *http.Request, c *accounts.Caller) (*push.Rule, error) {
	kind, ruleID, err := ruleTarget(r)
	if err != nil {
		return nil, err
	}
	return a.deps.Push.Rule(r.Context(), c.UserID, kind, ruleID)
}

// ruleTarget reads {kind} and {ruleId}.
func ruleTarget(r *http.Request) (push.Kind, string, error) {
	kind, ok := push.ParseKind(r.PathValue("kind"))
	if !ok {
		return "", "", mautrix.MInvalidParam.WithMessage("Unknown push rule kind " + strconv.Quote(r.PathValue("kind")) +
			": use override, content, postcontent, room, sender or underride")
	}
	return kind, r.PathValue("ruleId"), nil
}

func (a *API) getPushRules(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	rs, err := a.deps.Push.Rules(r.Context(), c.UserID)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, push.Global{Global: rs})
}

func (a *API) getGlobalPushRules(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	rs, err := a.deps.Push.Rules(r.Context(), c.UserID)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, rs)
}

func (a *API) getPushRule(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	rule, err := a.pushRule(r, c)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, rule)
}

func (a *API) putPushRule(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	kind, ruleID, err := ruleTarget(r)
	if err != nil {
		return err
	}
	var body push.RuleBody
	if err := httpapi.ReadJSON(r, &body); err != nil {
		return err
	}
	q := r.URL.Query()
	if err := a.deps.Push.PutRule(r.Context(), c.UserID, kind, ruleID, body, q.Get("before"), q.Get("after")); err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, struct{}{})
}

func (a *API) deletePushRule(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	kind, ruleID, err := ruleTarget(r)
	if err != nil {
		return err
	}
	if err := a.deps.Push.DeleteRule(r.Context(), c.UserID, kind, ruleID); err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, struct{}{})
}

func (a *API) getPushRuleEnabled(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	rule, err := a.pushRule(r, c)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string]bool{"enabled": rule.Enabled})
}

func (a *API) putPushRuleEnabled(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	kind, ruleID, err := ruleTarget(r)
	if err != nil {
		return err
	}
	var body struct {
		Enabled *bool `json:"enabled"`
	}
	if err := httpapi.ReadJSON(r, &body); err != nil {
		return err
	}
	if body.Enabled == nil {
		return accounts.MMissingParam.WithMessage("Missing enabled")
	}
	if err := a.deps.Push.SetEnabled(r.Context(), c.UserID, kind, ruleID, *body.Enabled); err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, struct{}{})
}

func (a *API) getPushRuleActions(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	rule, err := a.pushRule(r, c)
	if err != nil {
		return err
	}
	actions := rule.Actions
	if actions == nil {
		actions = []json.RawMessage{}
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string]any{"actions": actions})
}

func (a *API) putPushRuleActions(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	kind, ruleID, err := ruleTarget(r)
	if err != nil {
		return err
	}
	var body struct {
		Actions []json.RawMessage `json:"actions"`
	}
	if err := httpapi.ReadJSON(r, &body); err != nil {
		return err
	}
	if body.Actions == nil {
		return accounts.MMissingParam.WithMessage("Missing actions")
	}
	if err := a.deps.Push.SetActions(r.Context(), c.UserID, kind, ruleID, body.Actions); err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, struct{}{})
}

func (a *API) getPushers(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	ps, err := a.deps.Push.Pushers(r.Context(), c.UserID)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string]any{"pushers": ps})
}

func (a *API) setPusher(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	var body push.PusherBody
	if err := httpapi.ReadJSON(r, &body); err != nil {
		return err
	}
	if err := a.deps.Push.SetPusher(r.Context(), c.UserID, c.DeviceID, body); err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, struct{}{})
}

func (a *API) notifications(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	q := r.URL.Query()
	limit := 0
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 0 {
			return mautrix.MInvalidParam.WithMessage("limit must be a non-negative integer")
		}
		limit = n
	}
	// Like Synapse, only=highlight filters and any other value is ignored.
	resp, err := a.deps.Push.ListNotifications(r.Context(), c.UserID, q.Get("from"), limit, q.Get("only") == "highlight")
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, resp)
}
