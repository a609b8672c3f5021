package federation

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"maunium.net/go/mautrix"
	mfed "maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/httpapi"
	"github.com/palpo-im/palpo-desktop/server/rooms"
)

// The discovery endpoints of the server-server API: the published room
// directory, space hierarchies and OpenID user info. Handlers are thin:
// the rooms service decides what another server may see.

// DirectoryDeps are what the discovery endpoints need.
type DirectoryDeps struct {
	Rooms *rooms.Service
	// OpenIDUserInfo is whose unexpired OpenID token this is (the accounts
	// service's), or 401 M_UNKNOWN_TOKEN.
	OpenIDUserInfo func(ctx context.Context, token string) (id.UserID, error)
}

// RegisterDirectory serves the discovery endpoints and, when federation is
// on, lets the rooms service read other servers' directories and spaces.
func (s *Service) RegisterDirectory(d DirectoryDeps) {
	h := &directoryHandlers{d: d}
	if s.Enabled() {
		d.Rooms.Directory = &directoryRemote{s: s, spaces: newSpaceCache(spaceCacheTTL, spaceCacheMax)}
	}
	const v1 = "/_matrix/federation/v1"
	s.HandleAuthed(http.MethodGet, v1+"/publicRooms", h.getPublicRooms)
	s.HandleAuthed(http.MethodPost, v1+"/publicRooms", h.postPublicRooms)
	s.HandleAuthed(http.MethodGet, v1+"/hierarchy/{roomId}", h.hierarchy)
	// Called by widgets and integration managers, which have no server
	// key: not signed.
	s.router.Handle(http.MethodGet, v1+"/openid/userinfo", h.openIDUserInfo)
}

type directoryHandlers struct {
	d DirectoryDeps
}

func (h *directoryHandlers) getPublicRooms(w http.ResponseWriter, r *http.Request, _ string) error {
	req, err := rooms.PublicRoomsQueryFrom(r.URL.Query())
	if err != nil {
		return err
	}
	page, err := h.d.Rooms.PublicRooms(r.Context(), req)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, page)
}

func (h *directoryHandlers) postPublicRooms(w http.ResponseWriter, r *http.Request, _ string) error {
	var body rooms.PublicRoomsBody
	if err := httpapi.ReadJSON(r, &body); err != nil {
		return err
	}
	req := body.Query()
	page, err := h.d.Rooms.PublicRooms(r.Context(), req)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, page)
}

func (h *directoryHandlers) hierarchy(w http.ResponseWriter, r *http.Request, origin string) error {
	roomID := id.RoomID(r.PathValue("roomId"))
	if len(roomID) < 2 || roomID[0] != '!' {
		return mautrix.MInvalidParam.WithMessage("Expected a room ID")
	}
	suggested := false
	if v := r.URL.Query().Get("suggested_only"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return mautrix.MInvalidParam.WithMessage("suggested_only must be true or false")
		}
		suggested = b
	}
	resp, err := h.d.Rooms.HierarchyForServer(r.Context(), origin, roomID, suggested)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, resp)
}

func (h *directoryHandlers) openIDUserInfo(w http.ResponseWriter, r *http.Request) error {
	if h.d.OpenIDUserInfo == nil {
		return mautrix.MUnknownToken.WithMessage("Access token unknown or expired")
	}
	user, err := h.d.OpenIDUserInfo(r.Context(), r.URL.Query().Get("access_token"))
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string]id.UserID{"sub": user})
}

// directoryRemote lets the rooms service read other servers' directories
// and spaces (rooms.DirectoryRemote).
type directoryRemote struct {
	s      *Service
	spaces *spaceCache
}

var _ rooms.DirectoryRemote = (*directoryRemote)(nil)

func (d *directoryRemote) PublicRooms(ctx context.Context, server string, q rooms.PublicRoomsQuery) (*rooms.PublicRoomsPage, error) {
	if err := (remote{d.s}).allowed(server); err != nil {
		return nil, err
	}
	params := mfed.RequestParams{
		ServerName: server, Method: http.MethodGet, Path: mfed.URLPath{"v1", "publicRooms"}, Authenticate: true,
	}
	if q.Filtered() {
		body := q.Body()
		params.Method, params.RequestJSON = http.MethodPost, body
	} else {
		v := url.Values{}
		if q.Limit > 0 {
			v.Set("limit", strconv.Itoa(q.Limit))
		}
		if q.Since != "" {
			v.Set("since", q.Since)
		}
		if q.IncludeAllNetworks {
			v.Set("include_all_networks", "true")
		}
		if q.ThirdPartyInstanceID != "" {
			v.Set("third_party_instance_id", q.ThirdPartyInstanceID)
		}
		params.Query = v
	}
	var page rooms.PublicRoomsPage
	params.ResponseJSON = &page
	if _, _, err := d.s.client.MakeFullRequest(ctx, params); err != nil {
		return nil, remoteErr(server, err)
	}
	return &page, nil
}

func (d *directoryRemote) Hierarchy(ctx context.Context, server string, roomID id.RoomID, suggestedOnly bool) (*rooms.ServerHierarchy, error) {
	if err := (remote{d.s}).allowed(server); err != nil {
		return nil, err
	}
	key := spaceKey{server, roomID, suggestedOnly}
	if h, ok := d.spaces.get(key); ok {
		return h, nil
	}
	var h rooms.ServerHierarchy
	_, _, err := d.s.client.MakeFullRequest(ctx, mfed.RequestParams{
		ServerName: server, Method: http.MethodGet, Path: mfed.URLPath{"v1", "hierarchy", roomID},
		Query: url.Values{"suggested_only": {strconv.FormatBool(suggestedOnly)}}, Authenticate: true, ResponseJSON: &h,
	})
	if err != nil {
		return nil, remoteErr(server, err)
	}
	d.spaces.put(key, &h)
	return &h, nil
}

// Remote hierarchies are cached briefly, as the spec asks: a client
// paging through a space walks it again for each page.
const (
	spaceCacheTTL = 2 * time.Minute
	spaceCacheMax = 1000
)

type spaceKey struct {
	server    string
	room      id.RoomID
	suggested bool
}

type spaceCache struct {
	ttl, max int64
	mu       sync.Mutex
	entries  map[spaceKey]spaceEntry
}

type spaceEntry struct {
	h       *rooms.ServerHierarchy
	expires time.Time
}

func newSpaceCache(ttl time.Duration, max int) *spaceCache {
	return &spaceCache{ttl: int64(ttl), max: int64(max), entries: map[spaceKey]spaceEntry{}}
}

func (c *spaceCache) get(k spaceKey) (*rooms.ServerHierarchy, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	if !ok || time.Now().After(e.expires) {
		return nil, false
	}
	return e.h, true
}

func (c *spaceCache) put(k spaceKey, h *rooms.ServerHierarchy) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if int64(len(c.entries)) >= c.max {
		for key, e := range c.entries {
			if now.After(e.expires) {
				delete(c.entries, key)
			}
		}
		if int64(len(c.entries)) >= c.max {
			// Still full of live entries: start afresh rather than track
			// ages; they are cheap to fetch again.
			clear(c.entries)
		}
	}
	c.entries[k] = spaceEntry{h: h, expires: now.Add(time.Duration(c.ttl))}
}
