package clientapi

import (
	"encoding/json"
	"fmt"
	"net/http"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/httpapi"
	"github.com/palpo-im/palpo-desktop/server/todevice"
)

// Send-to-device messaging (spec: "Send-to-Device messaging"); delivery is
// part of /sync.
func (a *API) registerToDevice(rt *httpapi.Router) {
	rt.Handle(http.MethodPut, v3+"/sendToDevice/{eventType}/{txnId}", a.authed(a.sendToDevice))
}

type sendToDeviceBody struct {
	Messages map[id.UserID]map[id.DeviceID]json.RawMessage `json:"messages"`
}

func (a *API) sendToDevice(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	evType, err := eventTypeParam(r)
	if err != nil {
		return err
	}
	txnID := r.PathValue("txnId")
	if txnID == "" || len(txnID) > 255 {
		return mautrix.MInvalidParam.WithMessage("Invalid transaction ID")
	}
	var body sendToDeviceBody
	if err := httpapi.ReadJSON(r, &body); err != nil {
		return err
	}
	if body.Messages == nil {
		return accounts.MMissingParam.WithMessage("messages is required")
	}
	for userID, devices := range body.Messages {
		if devices == nil {
			return mautrix.MBadJSON.WithMessage(fmt.Sprintf("Messages for %s must be an object", userID))
		}
		for deviceID, content := range devices {
			if !httpapi.IsJSONObject(content) {
				return mautrix.MBadJSON.WithMessage(fmt.Sprintf("Message content for %s %s must be an object", userID, deviceID))
			}
		}
	}
	err = a.toDevice.Send(r.Context(), &todevice.Request{
		Sender:       c.UserID,
		SenderDevice: c.DeviceID,
		Type:         evType,
		TxnID:        txnID,
		Messages:     body.Messages,
	})
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, struct{}{})
}
