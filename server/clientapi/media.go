package clientapi

import (
	"net/http"
	"strconv"

	"maunium.net/go/mautrix"

	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/httpapi"
	"github.com/palpo-im/palpo-desktop/server/media"
)

// The content repository (spec: "Content repository"). Uploads and
// /create stay under /_matrix/media; downloads, thumbnails, the config and
// previews moved to /_matrix/client/v1/media and need an access token. The
// old unauthenticated /_matrix/media/v3 downloads are frozen: they serve
// only media uploaded before media.unauthenticated_before. Register gives
// every /_matrix/media/v3 route an r0 twin, so old clients' r0 downloads
// obey the same freeze, while their r0 uploads and config (which carry an
// access token) always work.
func (a *API) registerMedia(rt *httpapi.Router) {
	// Upload bodies are streamed to disk, so their limit is the media one,
	// not the small default for JSON bodies.
	uploadLimit := httpapi.MaxBody(a.deps.Media.MaxUploadBytes())
	rt.Handle(http.MethodPost, mediaV3+"/upload", a.authed(a.uploadMedia), uploadLimit)
	rt.Handle(http.MethodPut, mediaV3+"/upload/{serverName}/{mediaId}", a.authed(a.uploadMediaTo), uploadLimit)
	rt.Handle(http.MethodPost, mediaV1+"/create", a.authed(a.createMedia))

	rt.Handle(http.MethodGet, v1+"/media/config", a.authed(a.mediaConfig))
	rt.Handle(http.MethodGet, v1+"/media/download/{serverName}/{mediaId}", a.authed(a.downloadMedia))
	rt.Handle(http.MethodGet, v1+"/media/download/{serverName}/{mediaId}/{fileName}", a.authed(a.downloadMedia))
	rt.Handle(http.MethodGet, v1+"/media/thumbnail/{serverName}/{mediaId}", a.authed(a.thumbnailMedia))
	rt.Handle(http.MethodGet, v1+"/media/preview_url", a.authed(a.previewURL))

	// Deprecated endpoints.
	rt.Handle(http.MethodGet, mediaV3+"/config", a.authed(a.mediaConfig))
	rt.Handle(http.MethodGet, mediaV3+"/preview_url", a.authed(a.previewURL))
	rt.Handle(http.MethodGet, mediaV3+"/download/{serverName}/{mediaId}", a.legacyDownload)
	rt.Handle(http.MethodGet, mediaV3+"/download/{serverName}/{mediaId}/{fileName}", a.legacyDownload)
	rt.Handle(http.MethodGet, mediaV3+"/thumbnail/{serverName}/{mediaId}", a.legacyThumbnail)
}

func uploadRequest(r *http.Request) media.UploadRequest {
	return media.UploadRequest{
		Body:          r.Body,
		ContentLength: r.ContentLength,
		ContentType:   r.Header.Get("Content-Type"),
		FileName:      r.URL.Query().Get("filename"),
	}
}

func (a *API) uploadMedia(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	uri, err := a.deps.Media.Upload(r.Context(), c.UserID, uploadRequest(r))
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string]string{"content_uri": uri.String()})
}

func (a *API) createMedia(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	uri, expires, err := a.deps.Media.CreatePending(r.Context(), c.UserID)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string]any{"content_uri": uri.String(), "unused_expires_at": expires.UnixMilli()})
}

func (a *API) uploadMediaTo(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	err := a.deps.Media.UploadPending(r.Context(), c.UserID, r.PathValue("serverName"), r.PathValue("mediaId"), uploadRequest(r))
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, struct{}{})
}

func (a *API) mediaConfig(w http.ResponseWriter, r *http.Request, _ *accounts.Caller) error {
	return httpapi.WriteJSON(w, http.StatusOK, map[string]int64{"m.upload.size": a.deps.Media.MaxUploadBytes()})
}

func downloadRequest(r *http.Request, unauthenticated bool) (media.DownloadRequest, error) {
	timeout, err := media.ParseTimeout(r.URL.Query())
	if err != nil {
		return media.DownloadRequest{}, err
	}
	req := media.DownloadRequest{
		ServerName: r.PathValue("serverName"), MediaID: r.PathValue("mediaId"),
		Timeout: timeout, Unauthenticated: unauthenticated,
	}
	if name := r.PathValue("fileName"); name != "" {
		req.FileName = &name
	}
	return req, nil
}

func (a *API) downloadMedia(w http.ResponseWriter, r *http.Request, _ *accounts.Caller) error {
	return a.download(w, r, false)
}

func (a *API) legacyDownload(w http.ResponseWriter, r *http.Request) error {
	return a.download(w, r, true)
}

func (a *API) download(w http.ResponseWriter, r *http.Request, unauthenticated bool) error {
	req, err := downloadRequest(r, unauthenticated)
	if err != nil {
		return err
	}
	content, err := a.deps.Media.Download(r.Context(), req)
	if err != nil {
		return err
	}
	serveMedia(w, r, content)
	return nil
}

func thumbnailRequest(r *http.Request, unauthenticated bool) (media.ThumbnailRequest, error) {
	req, err := media.ParseThumbnailQuery(r.URL.Query())
	req.ServerName, req.MediaID, req.Unauthenticated = r.PathValue("serverName"), r.PathValue("mediaId"), unauthenticated
	return req, err
}

func (a *API) thumbnailMedia(w http.ResponseWriter, r *http.Request, _ *accounts.Caller) error {
	return a.thumbnail(w, r, false)
}

func (a *API) legacyThumbnail(w http.ResponseWriter, r *http.Request) error {
	return a.thumbnail(w, r, true)
}

func (a *API) thumbnail(w http.ResponseWriter, r *http.Request, unauthenticated bool) error {
	req, err := thumbnailRequest(r, unauthenticated)
	if err != nil {
		return err
	}
	content, err := a.deps.Media.Thumbnail(r.Context(), req)
	if err != nil {
		return err
	}
	serveMedia(w, r, content)
	return nil
}

// mediaCSP is the spec's recommended Content-Security-Policy for media: a
// file opened in a browser tab runs no script and loads nothing.
const mediaCSP = "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; style-src 'unsafe-inline'; object-src 'self';"

// serveMedia writes a media file with its headers. http.ServeContent
// answers range and conditional requests (206, 304, 416) and HEAD, and
// streams from the file, so no file is ever held in memory.
func serveMedia(w http.ResponseWriter, r *http.Request, c *media.Content) {
	defer c.File.Close()
	h := w.Header()
	h.Set("Content-Type", c.ContentType)
	h.Set("Content-Disposition", c.Disposition)
	h.Set("Content-Security-Policy", mediaCSP)
	h.Set("Cross-Origin-Resource-Policy", "cross-origin")
	h.Set("X-Content-Type-Options", "nosniff")
	// Content under a media ID never changes; only the person it was
	// downloaded for should keep a copy.
	h.Set("Cache-Control", "private, max-age=86400")
	h.Set("ETag", c.ETag)
	http.ServeContent(w, r, "", c.ModTime, c.File)
}

func (a *API) previewURL(w http.ResponseWriter, r *http.Request, c *accounts.Caller) error {
	if !a.deps.Media.PreviewsEnabled() {
		// Before any parameter check: to clients the endpoint is absent.
		return media.ErrPreviewsOff
	}
	q := r.URL.Query()
	u := q.Get("url")
	if u == "" {
		return accounts.MMissingParam.WithMessage("Missing string query parameter url")
	}
	if ts := q.Get("ts"); ts != "" {
		// Palpo keeps only the latest preview, which the spec allows.
		if _, err := strconv.ParseInt(ts, 10, 64); err != nil {
			return mautrix.MInvalidParam.WithMessage("ts must be an integer")
		}
	}
	og, err := a.deps.Media.PreviewURL(r.Context(), c.UserID, u)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, og)
}
