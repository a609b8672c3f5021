package federation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"maunium.net/go/mautrix"
	mfed "maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/config"
	"github.com/palpo-im/palpo-desktop/server/httpapi"
	"github.com/palpo-im/palpo-desktop/server/storage"
)

// maxNotaryServers bounds one notary query: each server named may cost an
// outbound fetch.
const maxNotaryServers = 50

func (k *KeyRing) register(rt *httpapi.Router) {
	rt.Handle(http.MethodGet, "/_matrix/key/v2/server", k.serveOwnKeys)
	// Deprecated form with a key ID; the answer is the same.
	rt.Handle(http.MethodGet, "/_matrix/key/v2/server/{keyId}", k.serveOwnKeys)
	rt.Handle(http.MethodPost, "/_matrix/key/v2/query", k.serveQuery)
	rt.Handle(http.MethodGet, "/_matrix/key/v2/query/{serverName}", k.serveQueryOne)
}

func (k *KeyRing) serveOwnKeys(w http.ResponseWriter, r *http.Request) error {
	resp, err := k.OwnKeyResponse(r.Context())
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, resp)
}

type queryResponse struct {
	ServerKeys []json.RawMessage `json:"server_keys"`
}

func (k *KeyRing) serveQuery(w http.ResponseWriter, r *http.Request) error {
	var req mfed.ReqQueryKeys
	if err := httpapi.ReadJSON(r, &req); err != nil {
		return err
	}
	if req.ServerKeys == nil {
		return mautrix.MBadJSON.WithMessage("server_keys is required")
	}
	if len(req.ServerKeys) > maxNotaryServers {
		return mautrix.MLimitExceeded.WithMessage(fmt.Sprintf("At most %d servers per query", maxNotaryServers)).WithStatus(http.StatusBadRequest)
	}
	out := queryResponse{ServerKeys: []json.RawMessage{}}
	names := make([]string, 0, len(req.ServerKeys))
	for name := range req.ServerKeys {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		criteria := req.ServerKeys[name]
		var minValid int64
		keyIDs := make([]id.KeyID, 0, len(criteria))
		for keyID, c := range criteria {
			keyIDs = append(keyIDs, keyID)
			minValid = max(minValid, c.MinimumValidUntilTS.UnixMilli())
		}
		raw, err := k.notaryAnswer(r.Context(), name, keyIDs, minValid)
		if err != nil {
			return err
		}
		if raw != nil {
			out.ServerKeys = append(out.ServerKeys, raw)
		}
	}
	return httpapi.WriteJSON(w, http.StatusOK, out)
}

func (k *KeyRing) serveQueryOne(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("serverName")
	var minValid int64
	if v := r.URL.Query().Get("minimum_valid_until_ts"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return mautrix.MInvalidParam.WithMessage("minimum_valid_until_ts must be a number of milliseconds")
		}
		minValid = n
	}
	out := queryResponse{ServerKeys: []json.RawMessage{}}
	raw, err := k.notaryAnswer(r.Context(), name, nil, minValid)
	if err != nil {
		return err
	}
	if raw != nil {
		out.ServerKeys = append(out.ServerKeys, raw)
	}
	return httpapi.WriteJSON(w, http.StatusOK, out)
}

// notaryAnswer is one server's key response as this notary gives it: the
// server's own signed response (from the cache, fetched when missing, not
// valid long enough or lacking a requested key) with our signature added;
// nil when we have nothing for it.
func (k *KeyRing) notaryAnswer(ctx context.Context, serverName string, keyIDs []id.KeyID, minValid int64) (json.RawMessage, error) {
	if serverName == k.s.cfg.ServerName {
		resp, err := k.OwnKeyResponse(ctx)
		if err != nil {
			return nil, err
		}
		return json.Marshal(resp)
	}
	if config.ValidateServerName(serverName) != nil || !k.s.AllowedServer(serverName) {
		return nil, nil
	}
	raw, validUntil, _, err := k.s.db.ServerKeyResponse(ctx, serverName)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	}
	if err != nil || validUntil < max(minValid, ms(time.Now())) || !hasKeys(raw, keyIDs) {
		keyID := id.KeyID("")
		if len(keyIDs) > 0 {
			keyID = keyIDs[0]
		}
		at := time.UnixMilli(max(minValid, ms(time.Now())))
		if ferr := k.fetch(ctx, serverName, keyID, at, true); ferr != nil {
			k.s.log.Debug("notary could not refresh keys", "origin", serverName, "error", ferr)
		}
		if raw, _, _, err = k.s.db.ServerKeyResponse(ctx, serverName); errors.Is(err, storage.ErrNotFound) {
			return nil, nil
		} else if err != nil {
			return nil, err
		}
	}
	return k.countersign(raw)
}

func hasKeys(raw []byte, keyIDs []id.KeyID) bool {
	if len(keyIDs) == 0 {
		return true
	}
	var resp struct {
		VerifyKeys    map[id.KeyID]json.RawMessage `json:"verify_keys"`
		OldVerifyKeys map[id.KeyID]json.RawMessage `json:"old_verify_keys"`
	}
	if json.Unmarshal(raw, &resp) != nil {
		return false
	}
	for _, keyID := range keyIDs {
		_, a := resp.VerifyKeys[keyID]
		_, b := resp.OldVerifyKeys[keyID]
		if a || b {
			return true
		}
	}
	return false
}

// countersign adds our signature to another server's key response.
func (k *KeyRing) countersign(raw []byte) (json.RawMessage, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, fmt.Errorf("cached key response: %w", err)
	}
	sigs := map[string]map[id.KeyID]string{}
	if s, ok := obj["signatures"]; ok {
		if err := json.Unmarshal(s, &sigs); err != nil {
			return nil, fmt.Errorf("cached key response signatures: %w", err)
		}
	}
	sig, err := k.s.key.SignJSON(json.RawMessage(raw))
	if err != nil {
		return nil, fmt.Errorf("countersign key response: %w", err)
	}
	own := k.s.cfg.ServerName
	if sigs[own] == nil {
		sigs[own] = map[id.KeyID]string{}
	}
	sigs[own][k.s.key.ID] = sig
	if obj["signatures"], err = json.Marshal(sigs); err != nil {
		return nil, err
	}
	return json.Marshal(obj)
}
