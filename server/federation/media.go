package federation

import (
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strconv"

	"github.com/palpo-im/palpo-desktop/server/media"
)

// The federation content repository (spec: server-server "Content
// Repository"): other servers download this server's media, signed, as
// multipart/mixed answers of a JSON metadata part and the bytes. Only
// local media is served (a server must fetch media from its origin); the
// media service applies the same rules as for local clients.

// RegisterMedia serves the federation media endpoints and, when federation
// is on, lets the media service fetch other servers' media through the
// signed client (redirects under the same address rules and trust).
func (s *Service) RegisterMedia(m *media.Service) {
	if s.Enabled() {
		tlsCfg, _ := s.outboundTLS() // an error stops Start already
		m.SetRemote(media.Remote{Client: s.client, TLS: tlsCfg, AllowPrivateAddresses: s.fed.AllowPrivateAddresses})
	}
	h := &mediaHandlers{m: m, serverName: s.cfg.ServerName, s: s}
	const v1 = "/_matrix/federation/v1"
	s.HandleAuthed(http.MethodGet, v1+"/media/download/{mediaId}", h.download)
	s.HandleAuthed(http.MethodGet, v1+"/media/thumbnail/{mediaId}", h.thumbnail)
}

type mediaHandlers struct {
	m          *media.Service
	serverName string
	s          *Service
}

func (h *mediaHandlers) download(w http.ResponseWriter, r *http.Request, origin string) error {
	timeout, err := media.ParseTimeout(r.URL.Query())
	if err != nil {
		return err
	}
	c, err := h.m.Download(r.Context(), media.DownloadRequest{ServerName: h.serverName, MediaID: r.PathValue("mediaId"), Timeout: timeout})
	if err != nil {
		return err
	}
	h.writeMultipart(w, r, origin, c)
	return nil
}

func (h *mediaHandlers) thumbnail(w http.ResponseWriter, r *http.Request, origin string) error {
	req, err := media.ParseThumbnailQuery(r.URL.Query())
	if err != nil {
		return err
	}
	req.ServerName, req.MediaID = h.serverName, r.PathValue("mediaId")
	c, err := h.m.Thumbnail(r.Context(), req)
	if err != nil {
		return err
	}
	h.writeMultipart(w, r, origin, c)
	return nil
}

// writeMultipart answers with the spec's two parts: the (empty) JSON
// metadata, then the bytes with their Content-Type and Content-Disposition,
// streamed from the file.
func (h *mediaHandlers) writeMultipart(w http.ResponseWriter, r *http.Request, origin string, c *media.Content) {
	defer c.File.Close()
	mw := multipart.NewWriter(w)
	w.Header().Set("Content-Type", "multipart/mixed; boundary="+mw.Boundary())
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	err := func() error {
		meta, err := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"application/json"}})
		if err != nil {
			return err
		}
		if _, err := io.WriteString(meta, "{}"); err != nil {
			return err
		}
		part, err := mw.CreatePart(textproto.MIMEHeader{
			"Content-Type":        {c.ContentType},
			"Content-Disposition": {c.Disposition},
			"Content-Length":      {strconv.FormatInt(c.Size, 10)},
		})
		if err != nil {
			return err
		}
		if _, err := io.Copy(part, c.File); err != nil {
			return err
		}
		return mw.Close()
	}()
	if err != nil {
		// The status is sent; the other server sees a cut answer.
		h.s.log.Info("media answer cut short", "origin", origin, "error", err)
	}
}
