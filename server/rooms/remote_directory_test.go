package rooms

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
)

// fakeDirectory answers PublicRooms as a server without the POST form
// would (filtered queries: 404), or with err.
type fakeDirectory struct {
	rooms []*RoomSummary
	err   error
	asked int
}

func (f *fakeDirectory) PublicRooms(_ context.Context, _ string, q PublicRoomsQuery) (*PublicRoomsPage, error) {
	f.asked++
	if f.err != nil {
		return nil, f.err
	}
	if q.Filtered() {
		return nil, mautrix.MUnrecognized.WithStatus(http.StatusNotFound)
	}
	return &PublicRoomsPage{Chunk: slices.Clone(f.rooms), TotalRoomCountEstimate: len(f.rooms)}, nil
}

func (f *fakeDirectory) Hierarchy(context.Context, string, id.RoomID, bool) (*ServerHierarchy, error) {
	return nil, errors.New("not served")
}

// TestPublicRoomsOnOtherServers: a server without the filtered form gets
// its unfiltered page filtered here; its refusals pass on, its failures
// are a 502; bad input is refused before asking.
func TestPublicRoomsOnOtherServers(t *testing.T) {
	s := newMesh(t, "a.test").servers["a.test"]
	ctx := context.Background()
	space := "m.space"
	f := &fakeDirectory{rooms: []*RoomSummary{
		{RoomID: "!garden:b.test", Name: "Garden"}, {RoomID: "!kids:b.test", Name: "Kids", RoomType: "m.space"}, nil,
	}}
	s.Directory = f
	page, err := s.PublicRoomsOn(ctx, "b.test", PublicRoomsQuery{SearchTerm: "gar"})
	if err != nil || len(page.Chunk) != 1 || page.Chunk[0].RoomID != "!garden:b.test" || f.asked != 2 {
		t.Fatalf("search term without the POST form: %+v, %v (asked %d)", page, err, f.asked)
	}
	page, err = s.PublicRoomsOn(ctx, "b.test", PublicRoomsQuery{RoomTypes: []*string{&space}})
	if err != nil || len(page.Chunk) != 1 || page.Chunk[0].RoomID != "!kids:b.test" {
		t.Fatalf("room types without the POST form: %+v, %v", page, err)
	}
	page, err = s.PublicRoomsOn(ctx, "b.test", PublicRoomsQuery{})
	if err != nil || len(page.Chunk) != 2 {
		t.Fatalf("unfiltered, a null entry dropped: %+v, %v", page, err)
	}

	check := func(what string, err error, status int, code string) {
		t.Helper()
		var re mautrix.RespError
		if !errors.As(err, &re) || re.StatusCode != status || re.ErrCode != code {
			t.Fatalf("%s: %v, want %d %s", what, err, status, code)
		}
	}
	f.asked = 0
	_, err = s.PublicRoomsOn(ctx, "b.test", PublicRoomsQuery{Limit: -1})
	check("negative limit", err, http.StatusBadRequest, "M_INVALID_PARAM")
	_, err = s.PublicRoomsOn(ctx, "b.test", PublicRoomsQuery{IncludeAllNetworks: true, ThirdPartyInstanceID: "irc"})
	check("all networks and one", err, http.StatusBadRequest, "M_INVALID_PARAM")
	_, err = s.PublicRoomsOn(ctx, "not a server", PublicRoomsQuery{})
	check("bad server name", err, http.StatusBadRequest, "M_INVALID_PARAM")
	if f.asked != 0 {
		t.Fatalf("bad input was sent on (%d requests)", f.asked)
	}
	f.err = mautrix.MForbidden.WithMessage("not you")
	_, err = s.PublicRoomsOn(ctx, "b.test", PublicRoomsQuery{})
	check("refused", err, http.StatusForbidden, "M_FORBIDDEN")
	// A 401 is about our signature, not the client's token.
	f.err = mautrix.RespError{ErrCode: "M_UNAUTHORIZED", StatusCode: http.StatusUnauthorized}
	_, err = s.PublicRoomsOn(ctx, "b.test", PublicRoomsQuery{})
	check("401 from the server", err, http.StatusBadGateway, "M_UNKNOWN")
	f.err = errors.New("connection refused")
	_, err = s.PublicRoomsOn(ctx, "b.test", PublicRoomsQuery{})
	check("unreachable", err, http.StatusBadGateway, "M_UNKNOWN")

	s.Directory = nil
	_, err = s.PublicRoomsOn(ctx, "b.test", PublicRoomsQuery{})
	check("federation off", err, http.StatusNotFound, "M_NOT_FOUND")
}
