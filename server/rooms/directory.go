package rooms

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/storage"
)

// This file serves the client API's directories: room aliases (with the
// checks on m.room.canonical_alias), the published room directory
// (/publicRooms and a room's visibility in it) and the user directory.
// Room summaries, which the room directory and the space hierarchy share,
// are built here too.

// MaxAliasLength is the spec's limit on a room alias, in bytes.
const MaxAliasLength = 255

var (
	// errBadAlias answers a canonical alias event naming an alias that does
	// not point to the room.
	errBadAlias = mautrix.RespError{ErrCode: "M_BAD_ALIAS", StatusCode: http.StatusBadRequest}
	// errAliasNotFound is the one answer for an alias nobody created.
	errAliasNotFound = mautrix.MNotFound.WithMessage("Room alias not found")
)

// ParseAlias checks an alias against the grammar of the spec's appendix:
// '#', a localpart without ':' or NUL, ':', a server name; at most 255
// bytes. It returns the alias's server name, or M_INVALID_PARAM.
func ParseAlias(alias id.RoomAlias) (localpart, server string, err error) {
	s := string(alias)
	if len(s) > MaxAliasLength {
		return "", "", mautrix.MInvalidParam.WithMessage(fmt.Sprintf("Room alias is longer than %d bytes", MaxAliasLength))
	}
	rest, ok := strings.CutPrefix(s, "#")
	if !ok {
		return "", "", mautrix.MInvalidParam.WithMessage("Room alias must start with '#'")
	}
	localpart, server, ok = strings.Cut(rest, ":")
	if !ok || localpart == "" || !utf8.ValidString(localpart) || strings.ContainsRune(localpart, 0) {
		return "", "", mautrix.MInvalidParam.WithMessage("Room alias must look like #name:server")
	}
	if !id.ValidateServerName(server) {
		return "", "", mautrix.MInvalidParam.WithMessage(fmt.Sprintf("Room alias has an invalid server name %q", server))
	}
	return localpart, server, nil
}

// CreateAlias maps a new alias of this server to a room, as PUT
// /directory/room/{roomAlias} asks. The user must be in the room (server
// admins need not be, as in Synapse), and the alias must be free.
func (s *Service) CreateAlias(ctx context.Context, user id.UserID, isAdmin bool, alias id.RoomAlias, roomID id.RoomID) error {
	localpart, server, err := ParseAlias(alias)
	if err != nil {
		return err
	}
	if server != s.serverName {
		return mautrix.MInvalidParam.WithMessage(fmt.Sprintf("Aliases can only be created on this server (%s)", s.serverName))
	}
	if strings.IndexFunc(localpart, unicode.IsSpace) >= 0 {
		return mautrix.MInvalidParam.WithMessage("Room alias must not contain spaces")
	}
	r, err := s.room(ctx, roomID)
	if err != nil {
		return err
	}
	if !isAdmin {
		if m, _, err := s.db.Membership(ctx, r.ID, user); err != nil {
			return err
		} else if m != string(event.MembershipJoin) {
			return mautrix.MForbidden.WithMessage("You must be in the room to create an alias for it")
		}
	}
	// The spec's answer to a taken alias is 409 M_UNKNOWN (not M_ROOM_IN_USE,
	// which createRoom uses).
	inUse := mautrix.MUnknown.WithStatus(http.StatusConflict).WithMessage(fmt.Sprintf("Room alias %s already exists", alias))
	if _, err := s.db.GetAlias(ctx, alias); err == nil {
		return inUse
	} else if !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	if err := s.db.CreateAlias(ctx, storage.Alias{Alias: alias, RoomID: r.ID, Creator: user}, s.Now().UnixMilli()); err != nil {
		if errors.Is(err, storage.ErrAliasExists) {
			return inUse
		}
		return err
	}
	s.log.Info("room alias created", "alias", alias, "room", r.ID, "user", user)
	return nil
}

// LookupAlias resolves an alias for GET /directory/room/{roomAlias}: the
// room and the servers to join it through, this one first. Other servers'
// aliases would need federation, which Palpo does not speak yet, so they
// are not found.
func (s *Service) LookupAlias(ctx context.Context, alias id.RoomAlias) (id.RoomID, []string, error) {
	_, server, err := ParseAlias(alias)
	if err != nil {
		return "", nil, err
	}
	if server != s.serverName {
		return "", nil, mautrix.MNotFound.WithMessage(fmt.Sprintf("Room alias %s not found: aliases of other servers cannot be resolved yet", alias))
	}
	a, err := s.db.GetAlias(ctx, alias)
	if errors.Is(err, storage.ErrNotFound) {
		return "", nil, errAliasNotFound
	}
	if err != nil {
		return "", nil, err
	}
	servers, err := s.roomServers(ctx, a.RoomID)
	if err != nil {
		return "", nil, err
	}
	return a.RoomID, servers, nil
}

// roomServers lists this server and the servers of the room's joined
// members: where a client may join the room through.
func (s *Service) roomServers(ctx context.Context, roomID id.RoomID) ([]string, error) {
	members, err := s.JoinedUsers(ctx, roomID)
	if err != nil {
		return nil, err
	}
	out := []string{s.serverName}
	for _, m := range members {
		if hs := m.Homeserver(); hs != "" && !slices.Contains(out, hs) {
			out = append(out, hs)
		}
	}
	return out, nil
}

// DeleteAlias removes an alias. As in Synapse, its creator, a server admin
// or a room member with the power to send m.room.canonical_alias may; the
// alias is then also taken out of the room's canonical alias event, when
// the user may change it (the spec recommends deleting the alias anyway).
func (s *Service) DeleteAlias(ctx context.Context, user id.UserID, isAdmin bool, alias id.RoomAlias) error {
	_, server, err := ParseAlias(alias)
	if err != nil {
		return err
	}
	if server != s.serverName {
		return mautrix.MInvalidParam.WithMessage(fmt.Sprintf("Only aliases of this server (%s) can be deleted here", s.serverName))
	}
	a, err := s.db.GetAlias(ctx, alias)
	if errors.Is(err, storage.ErrNotFound) {
		return errAliasNotFound
	}
	if err != nil {
		return err
	}
	allowed := a.Creator == user || isAdmin
	r, err := s.room(ctx, a.RoomID)
	if err != nil {
		return err
	}
	if !allowed {
		if allowed, err = s.canChangeRoomList(ctx, r, user); err != nil {
			return err
		}
	}
	if !allowed {
		return mautrix.MForbidden.WithMessage("You may not delete this alias: you did not create it and cannot change the room's aliases")
	}
	if err := s.db.DeleteAlias(ctx, alias); errors.Is(err, storage.ErrNotFound) {
		return errAliasNotFound
	} else if err != nil {
		return err
	}
	s.log.Info("room alias deleted", "alias", alias, "room", r.ID, "user", user)
	if err := s.dropCanonicalAlias(ctx, r, user, alias); err != nil {
		var re mautrix.RespError
		if !errors.As(err, &re) {
			return err
		}
		// Refused by the auth rules: the alias is gone all the same.
		s.log.Info("could not update the canonical alias after deleting an alias", "alias", alias, "room", r.ID, "user", user, "error", err)
	}
	return nil
}

// dropCanonicalAlias sends a new m.room.canonical_alias without alias, if
// the current one names it.
func (s *Service) dropCanonicalAlias(ctx context.Context, r *room, user id.UserID, alias id.RoomAlias) error {
	cur, err := s.CurrentStateEvent(ctx, r.ID, event.StateCanonicalAlias.Type, "")
	if err != nil || cur == nil {
		return err
	}
	content := eventContent(cur)
	changed := false
	if a, _ := content["alias"].(string); a == string(alias) {
		delete(content, "alias")
		changed = true
	}
	if alts, ok := content["alt_aliases"].([]any); ok {
		kept := make([]any, 0, len(alts))
		for _, v := range alts {
			if str, _ := v.(string); str == string(alias) {
				changed = true
				continue
			}
			kept = append(kept, v)
		}
		if len(kept) == 0 {
			delete(content, "alt_aliases")
		} else {
			content["alt_aliases"] = kept
		}
	}
	if !changed {
		return nil
	}
	empty := ""
	p, err := newProto(user, event.StateCanonicalAlias.Type, &empty, content)
	if err != nil {
		return err
	}
	_, err = s.sendEvents(ctx, r, []*proto{p}, false)
	return err
}

// LocalAliases lists this server's aliases of a room, for its members, for
// anyone when the room is world-readable, and for server admins. An unknown
// room gets the same 403 as a room the user is not in.
func (s *Service) LocalAliases(ctx context.Context, user id.UserID, isAdmin bool, roomID id.RoomID) ([]id.RoomAlias, error) {
	if _, err := s.room(ctx, roomID); err != nil {
		if errors.Is(err, errRoomNotFound) && !isAdmin {
			return nil, errNotInRoom
		}
		return nil, err
	}
	if !isAdmin {
		m, _, err := s.db.Membership(ctx, roomID, user)
		if err != nil {
			return nil, err
		}
		if m != string(event.MembershipJoin) {
			readable, err := s.worldReadable(ctx, roomID)
			if err != nil {
				return nil, err
			}
			if !readable {
				return nil, errNotInRoom
			}
		}
	}
	aliases, err := s.db.RoomAliases(ctx, roomID)
	if err != nil {
		return nil, err
	}
	if aliases == nil {
		aliases = []id.RoomAlias{}
	}
	return aliases, nil
}

// checkCanonicalAlias applies the spec's checks to a new
// m.room.canonical_alias: every alias it adds (alias, alt_aliases) must be
// well formed (M_INVALID_PARAM) and point to this room (M_BAD_ALIAS).
// Aliases already in the current event are not checked again, so removing
// one never fails. Aliases of other servers cannot be resolved without
// federation and are refused as M_BAD_ALIAS.
func (s *Service) checkCanonicalAlias(ctx context.Context, roomID id.RoomID, raw []byte) error {
	var content map[string]any
	if err := jsonUnmarshal(raw, &content); err != nil {
		return mautrix.MBadJSON.WithMessage("Content must be a JSON object")
	}
	var oldAlias string
	var oldAlts []any
	if cur, err := s.CurrentStateEvent(ctx, roomID, event.StateCanonicalAlias.Type, ""); err != nil {
		return err
	} else if cur != nil {
		old := eventContent(cur)
		oldAlias, _ = old["alias"].(string)
		oldAlts, _ = old["alt_aliases"].([]any)
	}
	if v, ok := content["alias"]; ok && v != nil {
		alias, ok := v.(string)
		if !ok {
			return mautrix.MInvalidParam.WithMessage("alias must be a string")
		}
		if alias != "" && alias != oldAlias {
			if err := s.aliasPointsTo(ctx, id.RoomAlias(alias), roomID); err != nil {
				return err
			}
		}
	}
	if v, ok := content["alt_aliases"]; ok {
		alts, ok := v.([]any)
		if !ok {
			return mautrix.MInvalidParam.WithMessage("alt_aliases must be a list of aliases")
		}
		for _, a := range alts {
			alias, ok := a.(string)
			if !ok {
				return mautrix.MInvalidParam.WithMessage("Each entry of alt_aliases must be a string")
			}
			if slices.Contains(oldAlts, any(alias)) {
				continue
			}
			if err := s.aliasPointsTo(ctx, id.RoomAlias(alias), roomID); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Service) aliasPointsTo(ctx context.Context, alias id.RoomAlias, roomID id.RoomID) error {
	if _, _, err := ParseAlias(alias); err != nil {
		var re mautrix.RespError
		errors.As(err, &re)
		return mautrix.MInvalidParam.WithMessage(fmt.Sprintf("Invalid alias %q: %s", alias, re.Err))
	}
	a, err := s.db.GetAlias(ctx, alias)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	if a == nil || a.RoomID != roomID {
		return errBadAlias.WithMessage(fmt.Sprintf("The alias %s does not point to this room", alias))
	}
	return nil
}

// canChangeRoomList tells whether a user may change a room's listing in the
// directory or delete others' aliases of it: as in Synapse, a joined member
// with the power to send m.room.canonical_alias (a moderator, by default).
// Server admins are let through by the callers.
func (s *Service) canChangeRoomList(ctx context.Context, r *room, user id.UserID) (bool, error) {
	m, _, err := s.db.Membership(ctx, r.ID, user)
	if err != nil || m != string(event.MembershipJoin) {
		return false, err
	}
	ids, err := s.db.CurrentStateOfTypes(ctx, r.ID, []string{event.StatePowerLevels.Type, event.StateCreate.Type})
	if err != nil {
		return false, err
	}
	state := StateMap{}
	for t, evID := range ids {
		state[pdu.StateKey{Type: t}] = evID
	}
	pl, err := s.powerLevels(ctx, r, state)
	if err != nil {
		return false, err
	}
	return pl.GetUserLevel(user) >= pl.GetEventLevel(event.StateCanonicalAlias), nil
}

// DirectoryVisibility tells whether a room is listed in the published room
// directory.
func (s *Service) DirectoryVisibility(ctx context.Context, roomID id.RoomID) (bool, error) {
	r, err := s.db.GetRoom(ctx, roomID)
	if errors.Is(err, storage.ErrNotFound) {
		return false, errRoomNotFound
	}
	if err != nil {
		return false, err
	}
	return r.Published, nil
}

// SetDirectoryVisibility lists a room in the published room directory or
// takes it out. Server admins and the room's moderators (who may send
// m.room.canonical_alias) may, as in Synapse.
func (s *Service) SetDirectoryVisibility(ctx context.Context, user id.UserID, isAdmin bool, roomID id.RoomID, visibility string) error {
	if visibility != "public" && visibility != "private" {
		return mautrix.MInvalidParam.WithMessage(`visibility must be "public" or "private"`)
	}
	r, err := s.room(ctx, roomID)
	if err != nil {
		return err
	}
	if !isAdmin {
		ok, err := s.canChangeRoomList(ctx, r, user)
		if err != nil {
			return err
		}
		if !ok {
			return mautrix.MForbidden.WithMessage("You need to be a moderator of the room to change its listing in the directory")
		}
	}
	if err := s.db.SetRoomPublished(ctx, r.ID, visibility == "public"); err != nil {
		return err
	}
	s.log.Info("room directory visibility changed", "room", r.ID, "user", user, "visibility", visibility)
	return nil
}

// movePublication hands an upgraded room's directory listing to its
// replacement, as Synapse does: the old room leaves the directory and the
// new one takes its place.
func (s *Service) movePublication(ctx context.Context, from, to id.RoomID) error {
	old, err := s.db.GetRoom(ctx, from)
	if err != nil || !old.Published {
		return err
	}
	if err := s.db.SetRoomPublished(ctx, to, true); err != nil {
		return err
	}
	return s.db.SetRoomPublished(ctx, from, false)
}

// RoomSummary is what the room directory, the space hierarchy and
// /room_summary tell about a room.
type RoomSummary struct {
	RoomID           id.RoomID      `json:"room_id"`
	Name             string         `json:"name,omitempty"`
	Topic            string         `json:"topic,omitempty"`
	CanonicalAlias   id.RoomAlias   `json:"canonical_alias,omitempty"`
	AvatarURL        string         `json:"avatar_url,omitempty"`
	NumJoinedMembers int            `json:"num_joined_members"`
	WorldReadable    bool           `json:"world_readable"`
	GuestCanJoin     bool           `json:"guest_can_join"`
	JoinRule         event.JoinRule `json:"join_rule,omitempty"`
	RoomType         event.RoomType `json:"room_type,omitempty"`
	// Added by the hierarchy and /room_summary (spec v1.15).
	RoomVersion    id.RoomVersion `json:"room_version,omitempty"`
	Encryption     id.Algorithm   `json:"encryption,omitempty"`
	AllowedRoomIDs []id.RoomID    `json:"allowed_room_ids,omitempty"`
}

// summaryTypes are the state events a summary reads.
var summaryTypes = []string{
	event.StateCreate.Type, event.StateRoomName.Type, event.StateTopic.Type, event.StateRoomAvatar.Type,
	event.StateCanonicalAlias.Type, event.StateJoinRules.Type, event.StateHistoryVisibility.Type,
	event.StateGuestAccess.Type, event.StateEncryption.Type,
}

// eventContent is an event's content as a map, redacted if a redaction
// applies (so a redacted name is no name).
func eventContent(ev *Event) map[string]any {
	p := ev.PDU
	if ev.RedactedBy != "" {
		p = p.Clone().Redact(ev.Version)
	}
	var c map[string]any
	_ = jsonUnmarshal(p.Content, &c)
	if c == nil {
		c = map[string]any{}
	}
	return c
}

// summarize builds a room's summary from its current state. Values of the
// wrong type (other servers' events may carry anything) count as absent.
func (s *Service) summarize(ctx context.Context, r *room) (*RoomSummary, error) {
	ids, err := s.db.CurrentStateOfTypes(ctx, r.ID, summaryTypes)
	if err != nil {
		return nil, err
	}
	evIDs := make([]id.EventID, 0, len(ids))
	for _, evID := range ids {
		evIDs = append(evIDs, evID)
	}
	evs, err := s.Events(ctx, evIDs)
	if err != nil {
		return nil, err
	}
	content := func(t string) map[string]any {
		if ev, ok := evs[ids[t]]; ok {
			return eventContent(ev)
		}
		return nil
	}
	str := func(c map[string]any, key string) string {
		v, _ := c[key].(string)
		return v
	}
	sum := &RoomSummary{RoomID: r.ID, RoomVersion: r.Version}
	sum.RoomType = event.RoomType(str(content(event.StateCreate.Type), "type"))
	sum.Name = str(content(event.StateRoomName.Type), "name")
	sum.Topic = plainTopic(content(event.StateTopic.Type))
	sum.AvatarURL = str(content(event.StateRoomAvatar.Type), "url")
	if a := str(content(event.StateCanonicalAlias.Type), "alias"); strings.HasPrefix(a, "#") {
		sum.CanonicalAlias = id.RoomAlias(a)
	}
	sum.WorldReadable = str(content(event.StateHistoryVisibility.Type), "history_visibility") == string(event.HistoryVisibilityWorldReadable)
	sum.GuestCanJoin = str(content(event.StateGuestAccess.Type), "guest_access") == string(event.GuestAccessCanJoin)
	sum.Encryption = id.Algorithm(str(content(event.StateEncryption.Type), "algorithm"))
	jr := content(event.StateJoinRules.Type)
	sum.JoinRule = event.JoinRule(str(jr, "join_rule"))
	if (sum.JoinRule == event.JoinRuleRestricted && r.Version.RestrictedJoins()) ||
		(sum.JoinRule == event.JoinRuleKnockRestricted && r.Version.KnockRestricted()) {
		allow, _ := jr["allow"].([]any)
		for _, a := range allow {
			m, _ := a.(map[string]any)
			if str(m, "type") == string(event.JoinRuleAllowRoomMembership) && strings.HasPrefix(str(m, "room_id"), "!") {
				sum.AllowedRoomIDs = append(sum.AllowedRoomIDs, id.RoomID(str(m, "room_id")))
			}
		}
	}
	if sum.NumJoinedMembers, err = s.db.JoinedMemberCount(ctx, r.ID); err != nil {
		return nil, err
	}
	return sum, nil
}

// plainTopic is a topic's plain text: the text/plain representation of
// m.topic if there is one, else the topic key.
func plainTopic(c map[string]any) string {
	if block, ok := c["m.topic"].(map[string]any); ok {
		texts, _ := block["m.text"].([]any)
		for _, t := range texts {
			m, _ := t.(map[string]any)
			mime, hasMime := m["mimetype"].(string)
			if body, ok := m["body"].(string); ok && (!hasMime || mime == "text/plain") {
				return body
			}
		}
	}
	topic, _ := c["topic"].(string)
	return topic
}

// PublicRoomsQueryFrom reads the GET form of a public rooms request
// (limit, since, third_party_instance_id, include_all_networks), for
// clients and other servers alike; a malformed value is M_INVALID_PARAM,
// as Synapse answers.
func PublicRoomsQueryFrom(q url.Values) (PublicRoomsQuery, error) {
	req := PublicRoomsQuery{Since: q.Get("since"), ThirdPartyInstanceID: q.Get("third_party_instance_id")}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return req, mautrix.MInvalidParam.WithMessage("limit must be an integer")
		}
		req.Limit = n
	}
	if v := q.Get("include_all_networks"); v != "" {
		if v != "true" && v != "false" {
			return req, mautrix.MInvalidParam.WithMessage("include_all_networks must be true or false")
		}
		req.IncludeAllNetworks = v == "true"
	}
	return req, nil
}

// PublicRoomsBody is the body of POST /publicRooms, in the client API and
// in federation alike.
type PublicRoomsBody struct {
	Limit                int                `json:"limit,omitempty"`
	Since                string             `json:"since,omitempty"`
	Filter               *PublicRoomsFilter `json:"filter,omitempty"`
	IncludeAllNetworks   bool               `json:"include_all_networks,omitempty"`
	ThirdPartyInstanceID string             `json:"third_party_instance_id,omitempty"`
}

// PublicRoomsFilter is a POST /publicRooms filter.
type PublicRoomsFilter struct {
	GenericSearchTerm string    `json:"generic_search_term,omitempty"`
	RoomTypes         []*string `json:"room_types,omitempty"`
}

// Query is the request a body makes.
func (b PublicRoomsBody) Query() PublicRoomsQuery {
	q := PublicRoomsQuery{Limit: b.Limit, Since: b.Since, IncludeAllNetworks: b.IncludeAllNetworks, ThirdPartyInstanceID: b.ThirdPartyInstanceID}
	if b.Filter != nil {
		q.SearchTerm, q.RoomTypes = b.Filter.GenericSearchTerm, b.Filter.RoomTypes
	}
	return q
}

// Body is the POST body that asks another server for q.
func (q PublicRoomsQuery) Body() PublicRoomsBody {
	return PublicRoomsBody{Limit: q.Limit, Since: q.Since, IncludeAllNetworks: q.IncludeAllNetworks, ThirdPartyInstanceID: q.ThirdPartyInstanceID,
		Filter: &PublicRoomsFilter{GenericSearchTerm: q.SearchTerm, RoomTypes: q.RoomTypes}}
}

// PublicRoomsQuery is a request for the published room directory.
type PublicRoomsQuery struct {
	// Limit bounds the rooms returned (0: the server's maximum).
	Limit int
	// Since is a next_batch or prev_batch token of an earlier answer.
	Since string
	// SearchTerm keeps rooms whose name, topic or canonical alias contain
	// it, case-insensitively.
	SearchTerm string
	// RoomTypes keeps rooms of these types; a nil entry stands for rooms
	// without a type. Empty keeps all.
	RoomTypes []*string
	// ThirdPartyInstanceID asks for an application service's network:
	// Palpo has none, so nothing is listed.
	ThirdPartyInstanceID string
	IncludeAllNetworks   bool
}

// PublicRoomsPage is an answer of /publicRooms.
type PublicRoomsPage struct {
	Chunk                  []*RoomSummary `json:"chunk"`
	NextBatch              string         `json:"next_batch,omitempty"`
	PrevBatch              string         `json:"prev_batch,omitempty"`
	TotalRoomCountEstimate int            `json:"total_room_count_estimate"`
}

// MaxPublicRooms bounds the rooms of one /publicRooms answer (Synapse's
// figure).
const MaxPublicRooms = 100

// directoryKey orders the directory: most joined members first, then by
// room ID, which makes the order total so that pagination tokens can name a
// position in it.
type directoryKey struct {
	joined int
	roomID id.RoomID
}

func (k directoryKey) compare(o directoryKey) int {
	if c := cmp.Compare(o.joined, k.joined); c != 0 {
		return c
	}
	return cmp.Compare(k.roomID, o.roomID)
}

// A directory token is 'n' (the rooms after) or 'p' (the rooms before),
// the joined count and the room ID of the position.
func (k directoryKey) token(dir byte) string {
	return string(dir) + strconv.Itoa(k.joined) + "_" + string(k.roomID)
}

// Past either end of the directory: every room comes before directoryEnd
// and after directoryStart.
var (
	directoryEnd   = directoryKey{joined: -1}
	directoryStart = directoryKey{joined: math.MaxInt32}
)

func parseDirectoryToken(tok string) (directoryKey, bool, error) {
	bad := mautrix.MInvalidParam.WithMessage("Invalid pagination token")
	if len(tok) < 3 || (tok[0] != 'n' && tok[0] != 'p') {
		return directoryKey{}, false, bad
	}
	num, roomID, ok := strings.Cut(tok[1:], "_")
	n, err := strconv.Atoi(num)
	if !ok || err != nil || n < -1 || n > math.MaxInt32 || (roomID != "" && !strings.HasPrefix(roomID, "!")) {
		return directoryKey{}, false, bad
	}
	return directoryKey{joined: n, roomID: id.RoomID(roomID)}, tok[0] == 'n', nil
}

// PublicRooms lists the published room directory. As in Synapse, a
// published room is listed only while people can find their way in:
// its join rule is public, knock or knock_restricted, or its history is
// world-readable. Tokens name a position in the order, so pages stay
// consistent while rooms come and go.
func (s *Service) PublicRooms(ctx context.Context, q PublicRoomsQuery) (*PublicRoomsPage, error) {
	if q.Limit < 0 {
		return nil, mautrix.MInvalidParam.WithMessage("limit must not be negative")
	}
	if q.IncludeAllNetworks && q.ThirdPartyInstanceID != "" {
		return nil, mautrix.MInvalidParam.WithMessage("include_all_networks cannot be combined with third_party_instance_id")
	}
	limit := q.Limit
	if limit == 0 || limit > MaxPublicRooms {
		limit = MaxPublicRooms
	}
	var since directoryKey
	forward := true
	if q.Since != "" {
		var err error
		if since, forward, err = parseDirectoryToken(q.Since); err != nil {
			return nil, err
		}
	}
	page := &PublicRoomsPage{Chunk: []*RoomSummary{}}
	if q.ThirdPartyInstanceID != "" {
		// No application service networks here.
		return page, nil
	}
	ids, err := s.db.PublishedRooms(ctx)
	if err != nil {
		return nil, err
	}
	var listed []*RoomSummary
	for _, roomID := range ids {
		r, err := s.room(ctx, roomID)
		if err != nil {
			return nil, err
		}
		sum, err := s.summarize(ctx, r)
		if err != nil {
			return nil, err
		}
		switch sum.JoinRule {
		case event.JoinRulePublic, event.JoinRuleKnock, event.JoinRuleKnockRestricted:
		default:
			if !sum.WorldReadable {
				continue
			}
		}
		// The directory's entries carry only the directory's fields.
		sum.RoomVersion, sum.Encryption, sum.AllowedRoomIDs = "", "", nil
		listed = append(listed, sum)
	}
	page.TotalRoomCountEstimate = len(listed)
	matched := listed[:0]
	for _, sum := range listed {
		if q.matches(sum) {
			matched = append(matched, sum)
		}
	}
	key := func(sum *RoomSummary) directoryKey { return directoryKey{sum.NumJoinedMembers, sum.RoomID} }
	slices.SortFunc(matched, func(a, b *RoomSummary) int { return key(a).compare(key(b)) })

	// The window of matched rooms this page shows.
	start, end := 0, len(matched)
	if q.Since != "" {
		cut, _ := slices.BinarySearchFunc(matched, since, func(sum *RoomSummary, k directoryKey) int { return key(sum).compare(k) })
		if forward {
			start = cut
			if cut < len(matched) && key(matched[cut]) == since {
				start++
			}
		} else {
			end = cut
		}
	}
	if end-start > limit {
		if forward {
			end = start + limit
		} else {
			start = end - limit
		}
	}
	page.Chunk = append(page.Chunk, matched[start:end]...)
	switch {
	case start < end:
		if start > 0 {
			page.PrevBatch = key(matched[start]).token('p')
		}
		if end < len(matched) {
			page.NextBatch = key(matched[end-1]).token('n')
		}
	case q.Since != "" && forward && len(matched) > 0:
		// Past the end: the way back is the whole directory.
		page.PrevBatch = directoryEnd.token('p')
	case q.Since != "" && !forward && len(matched) > 0:
		page.NextBatch = directoryStart.token('n')
	}
	return page, nil
}

// matches applies the query's filter (search term and room types) to a
// room of the directory.
func (q PublicRoomsQuery) matches(sum *RoomSummary) bool {
	term := strings.ToLower(strings.TrimSpace(q.SearchTerm))
	if term != "" && !strings.Contains(strings.ToLower(sum.Name), term) &&
		!strings.Contains(strings.ToLower(sum.Topic), term) &&
		!strings.Contains(strings.ToLower(string(sum.CanonicalAlias)), term) &&
		string(sum.RoomID) != q.SearchTerm {
		return false
	}
	return len(q.RoomTypes) == 0 || slices.ContainsFunc(q.RoomTypes, func(t *string) bool {
		return (t == nil && sum.RoomType == "") || (t != nil && *t == string(sum.RoomType))
	})
}

// Filtered tells whether the query has a filter (which only the POST form
// of /publicRooms carries).
func (q PublicRoomsQuery) Filtered() bool { return q.SearchTerm != "" || len(q.RoomTypes) > 0 }

// MaxUserDirectoryResults bounds one user directory search (Synapse's
// figure).
const MaxUserDirectoryResults = 50

// SearchUserDirectory finds users for POST /user_directory/search. The
// searcher sees the users who share a room with them and the members of
// public and world-readable rooms (the spec's minimum), and with
// UserDirectorySearchAll every local account. Each word of the term must
// appear, case-insensitively, in the user ID or the display name. Results
// come best match first: an exact name, then a name or word starting with
// the term, then the rest; users with a display name before those without.
// The searcher is never among them.
func (s *Service) SearchUserDirectory(ctx context.Context, searcher id.UserID, term string, limit int) ([]storage.DirectoryUser, bool, error) {
	if limit < 1 {
		return nil, false, mautrix.MInvalidParam.WithMessage("limit must be a positive number")
	}
	limit = min(limit, MaxUserDirectoryResults)
	words := strings.Fields(strings.ToLower(term))
	if len(words) == 0 {
		return []storage.DirectoryUser{}, false, nil
	}
	users, err := s.db.DirectoryUsers(ctx, searcher, s.UserDirectorySearchAll)
	if err != nil {
		return nil, false, err
	}
	whole := strings.Join(words, " ")
	type hit struct {
		u    storage.DirectoryUser
		rank int
	}
	var hits []hit
	for _, u := range users {
		if u.UserID == searcher {
			// People search the directory for others to talk to; finding
			// oneself only clutters the invite dialog.
			continue
		}
		name := strings.ToLower(u.DisplayName)
		uid := strings.ToLower(string(u.UserID))
		localpart := strings.TrimPrefix(uid, "@")
		localpart, _, _ = strings.Cut(localpart, ":")
		ok := true
		for _, w := range words {
			if !strings.Contains(name, w) && !strings.Contains(uid, w) {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		rank := 2
		switch {
		case name == whole || localpart == whole || uid == whole:
			rank = 0
		case strings.HasPrefix(name, whole) || strings.HasPrefix(localpart, whole) || strings.HasPrefix(uid, whole) ||
			slices.ContainsFunc(strings.Fields(name), func(f string) bool { return strings.HasPrefix(f, words[0]) }):
			rank = 1
		}
		hits = append(hits, hit{u, rank})
	}
	slices.SortFunc(hits, func(a, b hit) int {
		if c := cmp.Compare(a.rank, b.rank); c != 0 {
			return c
		}
		if ah, bh := a.u.DisplayName != "", b.u.DisplayName != ""; ah != bh {
			if ah {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.u.UserID, b.u.UserID)
	})
	limited := len(hits) > limit
	if limited {
		hits = hits[:limit]
	}
	out := make([]storage.DirectoryUser, len(hits))
	for i, h := range hits {
		out[i] = h.u
	}
	return out, limited, nil
}
