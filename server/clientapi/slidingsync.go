package clientapi

import (
	"net/http"
	"strconv"

	"maunium.net/go/mautrix"

	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/httpapi"
	"github.com/palpo-im/palpo-desktop/server/slidingsync"
)

// slidingSyncPath is simplified sliding sync's unstable endpoint (MSC4186),
// the one Element X calls once /versions advertises the feature.
const slidingSyncPath = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"

func (a *API) registerSlidingSync(rt *httpapi.Router) {
	if a.deps.SlidingSync == nil {
		return
	}
	rt.Handle(http.MethodPost, slidingSyncPath, a.authed(a.slidingSync))
}

// slidingSync reads pos, timeout and set_presence from the query string
// (where Element X and Synapse put them) or the body (where the MSC's
// current text moved them), the body winning.
func (a *API) slidingSync(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	var req slidingsync.Request
	if err := httpapi.ReadJSON(r, &req); err != nil {
		return err
	}
	q := r.URL.Query()
	if req.Pos == nil && q.Has("pos") {
		pos := q.Get("pos")
		req.Pos = &pos
	}
	if req.Timeout == nil && q.Get("timeout") != "" {
		ms, err := strconv.ParseInt(q.Get("timeout"), 10, 64)
		if err != nil {
			return mautrix.MInvalidParam.WithMessage("timeout must be a non-negative number of milliseconds")
		}
		req.Timeout = &ms
	}
	if req.SetPresence == "" {
		req.SetPresence = q.Get("set_presence")
	}
	resp, err := a.deps.SlidingSync.Sync(r.Context(), slidingsync.Caller{User: c.UserID, Device: c.DeviceID}, &req)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, resp)
}
