package rooms

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// This file is the room directory and the space hierarchy across servers:
// what other servers may learn of ours (the federation /publicRooms and
// /hierarchy), and what our users learn of theirs (the client API's
// /publicRooms with server, and /hierarchy of spaces this server is not
// in).

// DirectoryRemote reads other servers' published room directories and
// spaces over federation.
type DirectoryRemote interface {
	// PublicRooms asks server for its directory. A filtered query is sent
	// as the POST form; a server that does not know that form answers an
	// error with status 404 or 405, or M_UNRECOGNIZED.
	PublicRooms(ctx context.Context, server string, q PublicRoomsQuery) (*PublicRoomsPage, error)
	// Hierarchy asks server for a space and its children (answers may be
	// cached for a while, as the spec suggests).
	Hierarchy(ctx context.Context, server string, roomID id.RoomID, suggestedOnly bool) (*ServerHierarchy, error)
}

// ServerHierarchy is the answer of the federation GET /hierarchy: the room
// asked for with its m.space.child events, the summaries of the children
// the asking server may see, and the children it may not.
type ServerHierarchy struct {
	Room                 *HierarchyRoom `json:"room"`
	Children             []*RoomSummary `json:"children"`
	InaccessibleChildren []id.RoomID    `json:"inaccessible_children"`
}

// errNoDirectoryRemote answers a directory request for another server
// while federation is off.
var errNoDirectoryRemote = mautrix.MNotFound.WithMessage("The room directories of other servers cannot be listed: federation is not enabled on this server")

// PublicRoomsOn lists the published room directory of server: this
// server's own when server is empty or our name, else asked of that server
// over federation. A filter another server does not take (an older server
// without the POST form) is applied here to its unfiltered page, as
// Synapse does. A server that cannot be reached or answers nonsense is a
// 502.
func (s *Service) PublicRoomsOn(ctx context.Context, server string, q PublicRoomsQuery) (*PublicRoomsPage, error) {
	if server == "" || server == s.serverName {
		return s.PublicRooms(ctx, q)
	}
	if !id.ValidateServerName(server) {
		return nil, mautrix.MInvalidParam.WithMessage("Invalid server name " + server)
	}
	if s.Directory == nil {
		return nil, errNoDirectoryRemote
	}
	if q.Limit < 0 {
		return nil, mautrix.MInvalidParam.WithMessage("limit must not be negative")
	}
	if q.IncludeAllNetworks && q.ThirdPartyInstanceID != "" {
		return nil, mautrix.MInvalidParam.WithMessage("include_all_networks cannot be combined with third_party_instance_id")
	}
	ctx, cancel := context.WithTimeout(ctx, remoteDirectoryTimeout)
	defer cancel()
	page, err := s.Directory.PublicRooms(ctx, server, q)
	if err != nil && q.Filtered() && unsupportedEndpoint(err) {
		plain := q
		plain.SearchTerm, plain.RoomTypes = "", nil
		if page, err = s.Directory.PublicRooms(ctx, server, plain); err == nil {
			kept := page.Chunk[:0]
			for _, sum := range page.Chunk {
				if sum != nil && q.matches(sum) {
					kept = append(kept, sum)
				}
			}
			page.Chunk = kept
		}
	}
	if err != nil {
		return nil, s.remoteDirectoryErr(server, err)
	}
	page.Chunk = slices.DeleteFunc(page.Chunk, func(sum *RoomSummary) bool { return sum == nil || sum.RoomID == "" })
	if page.Chunk == nil {
		page.Chunk = []*RoomSummary{}
	}
	return page, nil
}

// unsupportedEndpoint tells whether another server's error says it does
// not serve the endpoint asked for.
func unsupportedEndpoint(err error) bool {
	var re mautrix.RespError
	if !errors.As(err, &re) {
		return false
	}
	return re.StatusCode == http.StatusNotFound || re.StatusCode == http.StatusMethodNotAllowed || re.ErrCode == mautrix.MUnrecognized.ErrCode
}

// remoteDirectoryErr turns what went wrong asking another server into the
// client's answer: that server's refusals (400, 403, 404) as it gave them,
// anything else (unreachable, a 5xx, a 401 about our signature, which a
// client must not take for its own token) as 502 M_UNKNOWN.
func (s *Service) remoteDirectoryErr(server string, err error) error {
	var re mautrix.RespError
	if errors.As(err, &re) {
		switch re.StatusCode {
		case http.StatusBadRequest, http.StatusForbidden, http.StatusNotFound:
			return re
		}
	}
	s.log.Info("could not read another server's directory", "server", server, "error", err)
	return mautrix.MUnknown.WithStatus(http.StatusBadGateway).WithMessage("Failed to fetch the room list of " + server)
}

// errHierarchyNotFound is the federation /hierarchy's one answer for a
// room this server cannot tell about: unknown, not joined here, or not
// visible to the asking server (the spec gives all of them as 404).
var errHierarchyNotFound = mautrix.MNotFound.WithMessage("Room not found, or your server may not see it")

// HierarchyForServer answers the federation GET /hierarchy for origin: the
// space (which must be a room this server is in and origin may see), its
// m.space.child events, the children this server is in that origin may see
// and, as inaccessible, those it may not. Children this server is not in
// are left out: it cannot tell about them.
func (s *Service) HierarchyForServer(ctx context.Context, origin string, roomID id.RoomID, suggestedOnly bool) (*ServerHierarchy, error) {
	r, err := s.room(ctx, roomID)
	if errors.Is(err, errRoomNotFound) {
		return nil, errHierarchyNotFound
	}
	if err != nil {
		return nil, err
	}
	if in, err := s.serverJoined(ctx, roomID); err != nil || !in {
		return nil, cmpErr(err, errHierarchyNotFound)
	}
	sum, ok, err := s.summaryForServer(ctx, origin, r)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errHierarchyNotFound
	}
	children := []*ChildState{}
	if sum.RoomType == event.RoomTypeSpace {
		if children, err = s.spaceChildren(ctx, r, suggestedOnly); err != nil {
			return nil, err
		}
	}
	out := &ServerHierarchy{
		Room:     &HierarchyRoom{RoomSummary: sum, ChildrenState: children},
		Children: []*RoomSummary{}, InaccessibleChildren: []id.RoomID{},
	}
	seen := map[id.RoomID]bool{roomID: true}
	for _, c := range children {
		if seen[c.child] {
			continue
		}
		seen[c.child] = true
		cr, err := s.room(ctx, c.child)
		if errors.Is(err, errRoomNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if in, err := s.serverJoined(ctx, cr.ID); err != nil {
			return nil, err
		} else if !in {
			continue
		}
		csum, ok, err := s.summaryForServer(ctx, origin, cr)
		if err != nil {
			return nil, err
		}
		if ok {
			out.Children = append(out.Children, csum)
		} else {
			out.InaccessibleChildren = append(out.InaccessibleChildren, cr.ID)
		}
	}
	return out, nil
}

func cmpErr(err, otherwise error) error {
	if err != nil {
		return err
	}
	return otherwise
}

// summaryForServer is a room's summary if origin may see it: the room's
// ACL lets origin in and either anyone may see the room (openToAll),
// origin has a user joined or invited, or, for a restricted room, origin
// has a user in one of the rooms the join rule allows (who could join).
func (s *Service) summaryForServer(ctx context.Context, origin string, r *room) (*RoomSummary, bool, error) {
	if ok, err := s.ServerAllowed(ctx, r.ID, origin); err != nil || !ok {
		return nil, false, err
	}
	sum, err := s.summarize(ctx, r)
	if err != nil {
		return nil, false, err
	}
	if openToAll(r.Version, sum) {
		return sum, true, nil
	}
	joined, err := s.JoinedUsers(ctx, r.ID)
	if err != nil {
		return nil, false, err
	}
	invited, err := s.db.Members(ctx, r.ID, string(event.MembershipInvite))
	if err != nil {
		return nil, false, err
	}
	if hasUserOf(joined, origin) || hasUserOf(invited, origin) {
		return sum, true, nil
	}
	for _, allowed := range sum.AllowedRoomIDs {
		members, err := s.JoinedUsers(ctx, allowed)
		if err != nil {
			return nil, false, err
		}
		if hasUserOf(members, origin) {
			return sum, true, nil
		}
	}
	return sum, false, nil
}

func hasUserOf(users []id.UserID, server string) bool {
	return slices.ContainsFunc(users, func(u id.UserID) bool { return u.Homeserver() == server })
}

// serverJoined tells whether one of this server's users is joined to a
// room: only then is what this server knows of it current.
func (s *Service) serverJoined(ctx context.Context, roomID id.RoomID) (bool, error) {
	joined, err := s.JoinedUsers(ctx, roomID)
	if err != nil {
		return false, err
	}
	return hasUserOf(joined, s.serverName), nil
}

// rootVia are the servers to ask for a hierarchy's root when this server
// is not in it: the server in its room ID, if it has one, then those that
// had users in the room when this server last knew it. (The client API
// gives no via for the root, and room IDs of version 12 name no server.)
func (s *Service) rootVia(ctx context.Context, roomID id.RoomID) ([]string, error) {
	via := roomIDServer(roomID)
	if _, err := s.room(ctx, roomID); errors.Is(err, errRoomNotFound) {
		return via, nil
	} else if err != nil {
		return nil, err
	}
	servers, err := s.ServersInRoom(ctx, roomID)
	if err != nil {
		return nil, err
	}
	for _, srv := range servers {
		if !slices.Contains(via, srv) {
			via = append(via, srv)
		}
	}
	return via, nil
}

// roomIDServer is the server in a room ID (before room version 12 room
// IDs name the server that created the room), as a list to ask.
func roomIDServer(roomID id.RoomID) []string {
	if _, server, ok := strings.Cut(string(roomID), ":"); ok && id.ValidateServerName(server) {
		return []string{server}
	}
	return nil
}

// How long another server may take to answer: a client is waiting, and a
// hierarchy may ask several servers in turn.
const (
	remoteDirectoryTimeout = 30 * time.Second
	remoteSpaceTimeout     = 10 * time.Second
)

// maxRemoteSpaces bounds the federation requests of one walk of a
// hierarchy, so that a page of a sprawling remote space stays quick.
const maxRemoteSpaces = 20

// spaceWalk is one walk of a hierarchy for a user: the rooms learnt from
// other servers' answers on the way, and the rooms they said are closed.
type spaceWalk struct {
	s             *Service
	user          id.UserID
	suggestedOnly bool
	// known are children's summaries from their parent's remote answer.
	known map[id.RoomID]*RoomSummary
	// closed are rooms an answer gave as inaccessible: not to be asked
	// again (spec).
	closed map[id.RoomID]bool
	asked  int
}

func newSpaceWalk(s *Service, user id.UserID, suggestedOnly bool) *spaceWalk {
	return &spaceWalk{s: s, user: user, suggestedOnly: suggestedOnly, known: map[id.RoomID]*RoomSummary{}, closed: map[id.RoomID]bool{}}
}

// visit is a room as the hierarchy shows it to the walk's user, or nil
// when the user may not see it or nothing can be learnt of it. A room this
// server is in is described from its own state; another is asked of the
// via servers (a non-space child whose parent's answer described it needs
// no request of its own).
func (w *spaceWalk) visit(ctx context.Context, roomID id.RoomID, via []string) (*HierarchyRoom, error) {
	s := w.s
	r, err := s.room(ctx, roomID)
	if err != nil && !errors.Is(err, errRoomNotFound) {
		return nil, err
	}
	if r != nil {
		in, err := s.serverJoined(ctx, roomID)
		if err != nil {
			return nil, err
		}
		if in || s.Directory == nil {
			return s.localHierarchyRoom(ctx, w.user, r, w.suggestedOnly)
		}
	}
	if s.Directory == nil || w.closed[roomID] {
		return nil, nil
	}
	if sum, ok := w.known[roomID]; ok && sum.RoomType != event.RoomTypeSpace {
		return w.remoteRoom(ctx, &HierarchyRoom{RoomSummary: sum, ChildrenState: []*ChildState{}})
	}
	answer := w.ask(ctx, roomID, via)
	if answer == nil {
		if r != nil {
			// Nobody answered: what this server last knew is better than
			// nothing.
			return s.localHierarchyRoom(ctx, w.user, r, w.suggestedOnly)
		}
		return nil, nil
	}
	for _, c := range answer.Children {
		if c != nil && c.RoomID != "" {
			w.known[c.RoomID] = c
		}
	}
	for _, closed := range answer.InaccessibleChildren {
		w.closed[closed] = true
	}
	room := answer.Room
	children := []*ChildState{}
	if room.RoomType == event.RoomTypeSpace {
		for _, cs := range room.ChildrenState {
			var content map[string]any
			if cs == nil || jsonUnmarshal(cs.Content, &content) != nil {
				continue
			}
			// Answers are cached and shared: parse a copy.
			c := *cs
			if c.parse(content, w.suggestedOnly) {
				children = append(children, &c)
			}
		}
		sortChildren(children)
	}
	return w.remoteRoom(ctx, &HierarchyRoom{RoomSummary: room.RoomSummary, ChildrenState: children})
}

// remoteRoom applies the user's own visibility to a room another server
// described (that server only checked that this server may see it).
func (w *spaceWalk) remoteRoom(ctx context.Context, h *HierarchyRoom) (*HierarchyRoom, error) {
	ok, err := w.s.previewableSummary(ctx, w.user, h.RoomID, h.RoomVersion, h.RoomSummary)
	if err != nil || !ok {
		return nil, err
	}
	return h, nil
}

// ask asks the via servers, in turn, for a space; nil if none answered
// with it.
func (w *spaceWalk) ask(ctx context.Context, roomID id.RoomID, via []string) *ServerHierarchy {
	s := w.s
	for _, server := range via {
		if server == s.serverName || !id.ValidateServerName(server) {
			continue
		}
		if w.asked >= maxRemoteSpaces {
			return nil
		}
		w.asked++
		actx, cancel := context.WithTimeout(ctx, remoteSpaceTimeout)
		answer, err := s.Directory.Hierarchy(actx, server, roomID, w.suggestedOnly)
		cancel()
		if err != nil {
			s.log.Debug("a server did not give a space's hierarchy", "server", server, "room", roomID, "error", err)
			continue
		}
		if answer == nil || answer.Room == nil || answer.Room.RoomSummary == nil || answer.Room.RoomID != roomID {
			s.log.Debug("a server answered a space's hierarchy with another room", "server", server, "room", roomID)
			continue
		}
		return answer
	}
	return nil
}
