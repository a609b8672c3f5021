package admin_test

import (
	"bytes"
	"net/http"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
)

func mediaUp(t *testing.T, c *mautrix.Client, data, contentType, name string) id.ContentURI {
	t.Helper()
	resp, err := c.UploadMedia(ctx, mautrix.ReqUploadMedia{ContentBytes: []byte(data), ContentType: contentType, FileName: name})
	if err != nil {
		t.Fatalf("upload: %v", err)
	}
	return resp.ContentURI
}

type userMedia struct {
	Media []struct {
		CreatedTS          int64   `json:"created_ts"`
		LastAccessTS       *int64  `json:"last_access_ts"`
		MediaID            string  `json:"media_id"`
		MediaLength        int64   `json:"media_length"`
		MediaType          string  `json:"media_type"`
		QuarantinedBy      *string `json:"quarantined_by"`
		SafeFromQuarantine bool    `json:"safe_from_quarantine"`
		UploadName         *string `json:"upload_name"`
	} `json:"media"`
	NextToken *int `json:"next_token"`
	Total     int  `json:"total"`
}

func TestListUserMedia(t *testing.T) {
	ts := testserver.New(t)
	root := ts.RegisterAdmin("root")
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	a1 := mediaUp(t, alice, "first", "text/plain", "one.txt")
	a2 := mediaUp(t, alice, "second!", "image/png", "")
	a3 := mediaUp(t, alice, "third..", "application/pdf", "three.pdf")
	mediaUp(t, bob, "bob's", "text/plain", "")
	if _, err := alice.CreateMXC(ctx); err != nil { // pending: not listed
		t.Fatal(err)
	}

	var out userMedia
	ok(t, root, req{method: http.MethodGet, path: "/v1/users/@alice:localhost/media"}, http.StatusOK, &out)
	if out.Total != 3 || len(out.Media) != 3 || out.NextToken != nil {
		t.Fatalf("list: %+v", out)
	}
	m := out.Media[0]
	if m.MediaID != a1.FileID || m.MediaLength != 5 || m.MediaType != "text/plain" || m.UploadName == nil || *m.UploadName != "one.txt" ||
		m.CreatedTS == 0 || m.LastAccessTS != nil || m.QuarantinedBy != nil || m.SafeFromQuarantine {
		t.Fatalf("first item: %+v", m)
	}
	if out.Media[1].MediaID != a2.FileID || out.Media[1].UploadName != nil || out.Media[2].MediaID != a3.FileID {
		t.Fatalf("order: %+v", out.Media)
	}
	// Paging and ordering.
	ok(t, root, req{method: http.MethodGet, path: "/v1/users/@alice:localhost/media?limit=2"}, http.StatusOK, &out)
	if len(out.Media) != 2 || out.NextToken == nil || *out.NextToken != 2 || out.Total != 3 {
		t.Fatalf("page 1: %+v", out)
	}
	out = userMedia{}
	ok(t, root, req{method: http.MethodGet, path: "/v1/users/@alice:localhost/media?limit=2&from=2"}, http.StatusOK, &out)
	if len(out.Media) != 1 || out.NextToken != nil || out.Media[0].MediaID != a3.FileID {
		t.Fatalf("page 2: %+v", out)
	}
	ok(t, root, req{method: http.MethodGet, path: "/v1/users/@alice:localhost/media?order_by=media_length&dir=b"}, http.StatusOK, &out)
	if out.Media[0].MediaLength != 7 || out.Media[2].MediaLength != 5 {
		t.Fatalf("by length, backwards: %+v", out.Media)
	}
	// Bad input.
	for _, c := range []struct {
		path   string
		status int
		code   string
	}{
		{"/v1/users/@alice:localhost/media?limit=-1", 400, "M_INVALID_PARAM"},
		{"/v1/users/@alice:localhost/media?from=x", 400, "M_INVALID_PARAM"},
		{"/v1/users/@alice:localhost/media?order_by=colour", 400, "M_INVALID_PARAM"},
		{"/v1/users/@alice:localhost/media?dir=sideways", 400, "M_INVALID_PARAM"},
		{"/v1/users/@nobody:localhost/media", 404, "M_NOT_FOUND"},
	} {
		fails(t, root, req{method: http.MethodGet, path: c.path}, c.status, c.code)
	}
	_, err := do(t, root, req{method: http.MethodGet, path: "/v1/users/@alice:example.org/media"}, nil)
	if err == nil {
		t.Fatal("remote user: no error")
	}
	fails(t, alice, req{method: http.MethodGet, path: "/v1/users/@alice:localhost/media"}, 403, "M_FORBIDDEN")
}

func TestDeleteMedia(t *testing.T) {
	ts := testserver.New(t)
	root := ts.RegisterAdmin("root")
	alice := ts.RegisterUser("alice")
	uri := mediaUp(t, alice, "to delete", "text/plain", "x.txt")

	var info struct {
		MediaInfo map[string]any `json:"media_info"`
	}
	ok(t, root, req{method: http.MethodGet, path: "/v1/media/localhost/" + uri.FileID}, http.StatusOK, &info)
	if info.MediaInfo["media_id"] != uri.FileID || info.MediaInfo["user_id"] != "@alice:localhost" ||
		info.MediaInfo["media_origin"] != "localhost" || info.MediaInfo["media_length"] != float64(9) || info.MediaInfo["upload_name"] != "x.txt" {
		t.Fatalf("media info: %v", info.MediaInfo)
	}

	fails(t, alice, req{method: http.MethodDelete, path: "/v1/media/localhost/" + uri.FileID}, 403, "M_FORBIDDEN")
	var out struct {
		DeletedMedia []string `json:"deleted_media"`
		Total        int      `json:"total"`
	}
	ok(t, root, req{method: http.MethodDelete, path: "/v1/media/localhost/" + uri.FileID}, http.StatusOK, &out)
	if out.Total != 1 || len(out.DeletedMedia) != 1 || out.DeletedMedia[0] != uri.FileID {
		t.Fatalf("delete: %+v", out)
	}
	if _, err := alice.DownloadBytes(ctx, uri); err == nil {
		t.Fatal("deleted media still downloads")
	}
	fails(t, root, req{method: http.MethodDelete, path: "/v1/media/localhost/" + uri.FileID}, 404, "M_NOT_FOUND")
	fails(t, root, req{method: http.MethodGet, path: "/v1/media/localhost/" + uri.FileID}, 404, "M_NOT_FOUND")
	fails(t, root, req{method: http.MethodDelete, path: "/v1/media/example.org/" + uri.FileID}, 400, "M_INVALID_PARAM")
	fails(t, root, req{method: http.MethodDelete, path: "/v1/media/localhost/bad.id"}, 400, "M_INVALID_PARAM")
}

func TestDeleteUserMedia(t *testing.T) {
	ts := testserver.New(t)
	root := ts.RegisterAdmin("root")
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	for _, s := range []string{"a", "bb", "ccc"} {
		mediaUp(t, alice, s, "text/plain", "")
	}
	shared := mediaUp(t, bob, "a", "text/plain", "") // same bytes as one of alice's
	var out struct {
		DeletedMedia []string `json:"deleted_media"`
		Total        int      `json:"total"`
	}
	ok(t, root, req{method: http.MethodDelete, path: "/v1/users/@alice:localhost/media?limit=2"}, http.StatusOK, &out)
	if out.Total != 2 {
		t.Fatalf("first page: %+v", out)
	}
	ok(t, root, req{method: http.MethodDelete, path: "/v1/users/@alice:localhost/media"}, http.StatusOK, &out)
	if out.Total != 1 {
		t.Fatalf("rest: %+v", out)
	}
	ok(t, root, req{method: http.MethodDelete, path: "/v1/users/@alice:localhost/media"}, http.StatusOK, &out)
	if out.Total != 0 || out.DeletedMedia == nil {
		t.Fatalf("nothing left: %+v", out)
	}
	// Bob's upload of the same bytes survives.
	if got, err := bob.DownloadBytes(ctx, shared); err != nil || !bytes.Equal(got, []byte("a")) {
		t.Fatalf("bob's media: %v", err)
	}
}
