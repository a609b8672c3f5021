package clientapi

import (
	"encoding/json"
	"net/http"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/e2ee"
	"github.com/palpo-im/palpo-desktop/server/httpapi"
	"github.com/palpo-im/palpo-desktop/server/oauth"
	"github.com/palpo-im/palpo-desktop/server/syncer"
)

// End-to-end encryption keys (spec: keys.yaml, cross_signing.yaml).
func (a *API) registerKeys(rt *httpapi.Router) {
	rt.Handle(http.MethodPost, v3+"/keys/upload", a.authed(a.uploadKeys))
	rt.Handle(http.MethodPost, v3+"/keys/query", a.authed(a.queryKeys))
	rt.Handle(http.MethodPost, v3+"/keys/claim", a.authed(a.claimKeys))
	rt.Handle(http.MethodGet, v3+"/keys/changes", a.authed(a.keyChanges))
	rt.Handle(http.MethodPost, v3+"/keys/device_signing/upload", a.authed(a.uploadCrossSigningKeys))
	rt.Handle(http.MethodPost, v3+"/keys/signatures/upload", a.authed(a.uploadSignatures))
}

func (a *API) uploadKeys(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	var req e2ee.UploadRequest
	if err := httpapi.ReadJSON(r, &req); err != nil {
		return err
	}
	counts, err := a.deps.E2EE.UploadKeys(r.Context(), c.UserID, c.DeviceID, &req)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string]any{"one_time_key_counts": counts})
}

func (a *API) queryKeys(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	var req struct {
		DeviceKeys *map[id.UserID][]id.DeviceID `json:"device_keys"`
		Timeout    *int64                       `json:"timeout"`
	}
	if err := httpapi.ReadJSON(r, &req); err != nil {
		return err
	}
	if req.DeviceKeys == nil {
		return accounts.MMissingParam.WithMessage("device_keys is required")
	}
	resp, err := a.deps.E2EE.QueryKeysTimeout(r.Context(), c.UserID, *req.DeviceKeys, e2ee.RemoteTimeout(req.Timeout))
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, resp)
}

func (a *API) claimKeys(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	var req struct {
		OneTimeKeys *map[id.UserID]map[id.DeviceID]string `json:"one_time_keys"`
		Timeout     *int64                                `json:"timeout"`
	}
	if err := httpapi.ReadJSON(r, &req); err != nil {
		return err
	}
	if req.OneTimeKeys == nil {
		return accounts.MMissingParam.WithMessage("one_time_keys is required")
	}
	resp, err := a.deps.E2EE.ClaimKeysTimeout(r.Context(), *req.OneTimeKeys, e2ee.RemoteTimeout(req.Timeout))
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, resp)
}

func (a *API) keyChanges(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	q := r.URL.Query()
	if q.Get("from") == "" {
		return accounts.MMissingParam.WithMessage("from is required")
	}
	from, err := syncer.ParseToken(q.Get("from"))
	if err != nil {
		return err
	}
	// to is required by the spec but only a hint; like Synapse, answer up
	// to now when a client leaves it out.
	to, err := a.syncEngine.Current(r.Context())
	if err != nil {
		return err
	}
	if q.Get("to") != "" {
		if to, err = syncer.ParseToken(q.Get("to")); err != nil {
			return err
		}
	}
	changed, left, err := a.syncEngine.DeviceListChanges(r.Context(), c.UserID, from, to)
	if err != nil {
		return err
	}
	if changed == nil {
		changed = []id.UserID{}
	}
	if left == nil {
		left = []id.UserID{}
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string][]id.UserID{"changed": changed, "left": left})
}

func (a *API) uploadCrossSigningKeys(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	var req e2ee.CrossSigningUpload
	if err := httpapi.ReadJSON(r, &req); err != nil {
		return err
	}
	if c.OAuth && a.deps.ApprovalURL != nil {
		req.OAuthApprovalURL = a.deps.ApprovalURL(r, oauth.ActionCrossSigningReset)
	}
	if err := a.deps.E2EE.UploadCrossSigningKeys(r.Context(), c, &req, httpapi.ClientIP(r)); err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, struct{}{})
}

func (a *API) uploadSignatures(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	var req map[id.UserID]map[string]json.RawMessage
	if err := httpapi.ReadJSON(r, &req); err != nil {
		return err
	}
	if req == nil {
		return mautrix.MBadJSON.WithMessage("The body must be an object of users to signed keys")
	}
	resp, err := a.deps.E2EE.UploadSignatures(r.Context(), c.UserID, req)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, resp)
}
