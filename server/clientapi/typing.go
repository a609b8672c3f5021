package clientapi

import (
	"net/http"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/httpapi"
)

// Typing notifications (spec: "Typing Notifications").
func (a *API) registerTyping(rt *httpapi.Router) {
	rt.Handle(http.MethodPut, v3+"/rooms/{roomId}/typing/{userId}", a.authed(a.setTyping))
}

type typingBody struct {
	Typing  *bool  `json:"typing"`
	Timeout *int64 `json:"timeout"`
}

func (a *API) setTyping(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	roomID, err := roomIDParam(r)
	if err != nil {
		return err
	}
	if id.UserID(r.PathValue("userId")) != c.UserID {
		return mautrix.MForbidden.WithMessage("You can only set your own typing state")
	}
	var body typingBody
	if err := httpapi.ReadJSON(r, &body); err != nil {
		return err
	}
	if body.Typing == nil {
		return mautrix.RespError{ErrCode: "M_MISSING_PARAM", StatusCode: http.StatusBadRequest}.WithMessage("Missing typing")
	}
	var timeout time.Duration // the sync service applies the default and the cap
	if body.Timeout != nil {
		if *body.Timeout < 0 {
			return mautrix.MInvalidParam.WithMessage("timeout must not be negative")
		}
		timeout = time.Duration(min(*body.Timeout, int64(time.Hour/time.Millisecond))) * time.Millisecond
	}
	if err := a.syncEngine.SetTyping(r.Context(), c.UserID, roomID, *body.Typing, timeout); err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, struct{}{})
}
