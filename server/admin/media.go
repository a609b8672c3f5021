package admin

import (
	"net/http"

	"maunium.net/go/mautrix"

	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/httpapi"
	"github.com/palpo-im/palpo-desktop/server/media"
)

// Media admin endpoints, with Synapse's shapes: a media item's details,
// deleting one, and listing (or deleting) a user's uploads — what the
// desktop app's storage view shows.
func (a *API) registerMedia(rt *httpapi.Router) {
	if a.deps.Media == nil {
		return
	}
	rt.Handle(http.MethodGet, prefix+"/v1/media/{serverName}/{mediaId}", a.admin(a.mediaInfo))
	rt.Handle(http.MethodDelete, prefix+"/v1/media/{serverName}/{mediaId}", a.admin(a.deleteMedia))
	rt.Handle(http.MethodGet, prefix+"/v1/users/{userId}/media", a.admin(a.listUserMedia))
	rt.Handle(http.MethodDelete, prefix+"/v1/users/{userId}/media", a.admin(a.deleteUserMedia))
}

// userMediaJSON is one media item in a user's list, as Synapse shows it.
// Palpo has no quarantine and does not record access times.
type userMediaJSON struct {
	CreatedTS          int64   `json:"created_ts"`
	LastAccessTS       *int64  `json:"last_access_ts"`
	MediaID            string  `json:"media_id"`
	MediaLength        int64   `json:"media_length"`
	MediaType          string  `json:"media_type"`
	QuarantinedBy      *string `json:"quarantined_by"`
	SafeFromQuarantine bool    `json:"safe_from_quarantine"`
	UploadName         *string `json:"upload_name"`
}

func toUserMediaJSON(m *media.Info) userMediaJSON {
	return userMediaJSON{
		CreatedTS: m.CreatedTS, MediaID: m.MediaID, MediaLength: m.Size, MediaType: m.ContentType,
		UploadName: nullable(m.UploadName),
	}
}

// mediaInfoJSON is GET /v1/media/{serverName}/{mediaId}'s media_info.
type mediaInfoJSON struct {
	MediaOrigin string  `json:"media_origin"`
	UserID      *string `json:"user_id"`
	userMediaJSON
	SHA256   *string `json:"sha256"`
	URLCache *string `json:"url_cache"`
	// Pending is Palpo's: the ID was made with /create and has no content yet.
	Pending bool `json:"io.palpo.pending"`
}

func (a *API) mediaInfo(w http.ResponseWriter, r *http.Request, _ *accounts.Caller) error {
	info, err := a.deps.Media.Info(r.Context(), r.PathValue("serverName"), r.PathValue("mediaId"))
	if err != nil {
		return err
	}
	uid := string(info.UserID)
	return httpapi.WriteJSON(w, http.StatusOK, map[string]any{"media_info": mediaInfoJSON{
		MediaOrigin: a.deps.ServerName, UserID: &uid, userMediaJSON: toUserMediaJSON(info),
		SHA256: nullable(info.SHA256), URLCache: nullable(info.URLCache), Pending: info.SHA256 == "",
	}})
}

type deletedMediaJSON struct {
	DeletedMedia []string `json:"deleted_media"`
	Total        int      `json:"total"`
}

func (a *API) deleteMedia(w http.ResponseWriter, r *http.Request, _ *accounts.Caller) error {
	mediaID := r.PathValue("mediaId")
	if err := a.deps.Media.Delete(r.Context(), r.PathValue("serverName"), mediaID); err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, deletedMediaJSON{DeletedMedia: []string{mediaID}, Total: 1})
}

// defaultMediaPage is Synapse's default limit for media lists.
const defaultMediaPage = 100

// userMediaQuery parses the paging of a user's media list and checks the
// user exists (404 M_NOT_FOUND otherwise, as Synapse).
func (a *API) userMediaQuery(r *http.Request) (media.UserMediaQuery, error) {
	var q media.UserMediaQuery
	userID, err := a.pathUser(r)
	if err != nil {
		return q, err
	}
	if err := a.accounts.RequireUser(r.Context(), userID); err != nil {
		return q, err
	}
	if q.From, err = queryInt(r, "from", 0); err != nil {
		return q, err
	}
	if q.Limit, err = queryInt(r, "limit", defaultMediaPage); err != nil {
		return q, err
	}
	q.OrderBy = r.URL.Query().Get("order_by")
	if !media.ValidOrder(q.OrderBy) {
		return q, mautrix.MInvalidParam.WithMessage("Unknown value for order_by: %s", q.OrderBy)
	}
	switch dir := r.URL.Query().Get("dir"); dir {
	case "", "f":
	case "b":
		q.Backwards = true
	default:
		return q, mautrix.MInvalidParam.WithMessage("Query parameter dir must be one of ['b', 'f']")
	}
	return q, nil
}

type userMediaListJSON struct {
	Media     []userMediaJSON `json:"media"`
	NextToken *int            `json:"next_token,omitempty"`
	Total     int             `json:"total"`
}

func (a *API) listUserMedia(w http.ResponseWriter, r *http.Request, _ *accounts.Caller) error {
	q, err := a.userMediaQuery(r)
	if err != nil {
		return err
	}
	userID, _ := a.pathUser(r)
	items, total, err := a.deps.Media.ListUserMedia(r.Context(), userID, q)
	if err != nil {
		return err
	}
	out := userMediaListJSON{Media: make([]userMediaJSON, len(items)), Total: total}
	for i := range items {
		out.Media[i] = toUserMediaJSON(&items[i])
	}
	if next := q.From + len(items); next < total {
		out.NextToken = &next
	}
	return httpapi.WriteJSON(w, http.StatusOK, out)
}

func (a *API) deleteUserMedia(w http.ResponseWriter, r *http.Request, _ *accounts.Caller) error {
	q, err := a.userMediaQuery(r)
	if err != nil {
		return err
	}
	userID, _ := a.pathUser(r)
	deleted, err := a.deps.Media.DeleteUserMedia(r.Context(), userID, q)
	if err != nil {
		return err
	}
	if deleted == nil {
		deleted = []string{}
	}
	return httpapi.WriteJSON(w, http.StatusOK, deletedMediaJSON{DeletedMedia: deleted, Total: len(deleted)})
}
