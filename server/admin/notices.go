package admin

import (
	"bytes"
	"net/http"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/httpapi"
	"github.com/palpo-im/palpo-desktop/server/notices"
)

// Server notices, with Synapse's shapes (admin_api/server_notices): an
// admin sends one user an official message in their notices room.
func (a *API) registerNotices(rt *httpapi.Router) {
	if a.deps.Notices == nil {
		return
	}
	rt.Handle(http.MethodPost, prefix+"/v1/send_server_notice", a.admin(a.sendServerNotice))
	rt.Handle(http.MethodPut, prefix+"/v1/send_server_notice/{txnId}", a.admin(a.sendServerNotice))
}

func (a *API) sendServerNotice(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	b, err := readBody(r)
	if err != nil {
		return err
	}
	for _, name := range []string{"user_id", "content"} {
		if _, ok := b[name]; !ok {
			return accounts.MMissingParam.WithMessage("Missing params: ['%s']", name)
		}
	}
	to, err := b.str("user_id", mautrix.MBadJSON)
	if err != nil {
		return err
	}
	if to == nil {
		return mautrix.MBadJSON.WithMessage("user_id must be a string")
	}
	content := bytes.TrimSpace(b["content"])
	if len(content) == 0 || content[0] != '{' {
		return mautrix.MBadJSON.WithMessage("content must be a JSON object")
	}
	evType, err := b.str("type", mautrix.MBadJSON)
	if err != nil {
		return err
	}
	stateKey, err := b.str("state_key", mautrix.MBadJSON)
	if err != nil {
		return err
	}
	n := notices.Notice{To: id.UserID(*to), StateKey: stateKey, Content: content}
	if evType != nil {
		n.Type = *evType
	}
	if txn := r.PathValue("txnId"); txn != "" {
		// Transactions belong to the admin's session, as a client's do.
		n.TxnID = string(c.UserID) + "|" + string(c.DeviceID) + "|" + txn
	}
	evID, err := a.deps.Notices.Send(r.Context(), n)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string]id.EventID{"event_id": evID})
}
