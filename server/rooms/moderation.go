package rooms

import (
	"context"
	jsonv1 "encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"unicode/utf8"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/storage"
)

// This file holds the room side of the spec's moderation modules:
// reporting content (stored for the server's admins), server ACLs, and
// finding the event nearest a timestamp.

// errReportNotFound is the one answer for an event that does not exist, is
// in another room or is redacted, and for a reporter who is not joined to
// the room or may not see the event: telling them apart would leak what
// the room holds (the spec's 404, as Synapse answers).
var errReportNotFound = mautrix.MNotFound.WithMessage("Unable to report event: it does not exist or you aren't able to see it")

// maxUserReportReason bounds a user report's reason, as Synapse does.
const maxUserReportReason = 1000

// ReportEvent stores a report of an event for the server's admins. The
// reporter must be joined to the room and able to see the event. body is
// the request as sent, kept with the report (Synapse keeps it too).
func (s *Service) ReportEvent(ctx context.Context, reporter id.UserID, roomID id.RoomID, evID id.EventID, reason *string, score *int64, body []byte) error {
	if _, err := s.room(ctx, roomID); err != nil {
		if errors.Is(err, errRoomNotFound) {
			return errReportNotFound
		}
		return err
	}
	m, _, err := s.db.Membership(ctx, roomID, reporter)
	if err != nil {
		return err
	}
	if m != string(event.MembershipJoin) {
		return errReportNotFound
	}
	ev, err := s.event(ctx, evID)
	if errors.Is(err, errEventNotFound) {
		return errReportNotFound
	}
	if err != nil {
		return err
	}
	if ev.RoomID != roomID || ev.Rejected || ev.RedactedBy != "" {
		return errReportNotFound
	}
	if ok, err := s.canSee(ctx, reporter, ev); err != nil {
		return err
	} else if !ok {
		return errReportNotFound
	}
	_, err = s.db.AddReport(ctx, &storage.Report{
		Kind: storage.ReportEvent, Reporter: reporter, RoomID: roomID, EventID: evID, TargetUser: ev.PDU.Sender,
		Reason: reason, Score: score, Content: body, ReceivedTS: s.Now().UnixMilli(),
	})
	if err == nil {
		s.log.Info("Event reported", "reporter", reporter, "room", roomID, "event", evID)
	}
	return err
}

// ReportRoom stores a report of a room. The reporter need not be in it
// (the spec); an unknown room is M_NOT_FOUND, as Synapse answers.
func (s *Service) ReportRoom(ctx context.Context, reporter id.UserID, roomID id.RoomID, reason string, body []byte) error {
	if _, err := s.room(ctx, roomID); err != nil {
		return err
	}
	_, err := s.db.AddReport(ctx, &storage.Report{
		Kind: storage.ReportRoom, Reporter: reporter, RoomID: roomID, Reason: &reason, Content: body, ReceivedTS: s.Now().UnixMilli(),
	})
	if err == nil {
		s.log.Info("Room reported", "reporter", reporter, "room", roomID)
	}
	return err
}

// ReportUser stores a report of a local user. As Synapse does, a report of
// a remote or unknown user is accepted and dropped, which the spec allows
// so that reports cannot be used to probe which users exist.
func (s *Service) ReportUser(ctx context.Context, reporter, target id.UserID, reason string, body []byte) error {
	if _, _, err := target.ParseAndValidateRelaxed(); err != nil {
		return mautrix.MInvalidParam.WithMessage("Invalid user ID")
	}
	if utf8.RuneCountInString(reason) > maxUserReportReason {
		return mautrix.MBadJSON.WithMessage(fmt.Sprintf("The reason must be at most %d characters", maxUserReportReason))
	}
	if target.Homeserver() != s.serverName {
		return nil
	}
	exists, err := s.db.UserExists(ctx, target)
	if err != nil || !exists {
		return err
	}
	_, err = s.db.AddReport(ctx, &storage.Report{
		Kind: storage.ReportUser, Reporter: reporter, TargetUser: target, Reason: &reason, Content: body, ReceivedTS: s.Now().UnixMilli(),
	})
	if err == nil {
		s.log.Info("User reported", "reporter", reporter, "user", target)
	}
	return err
}

// EventReport is an event report as Synapse's admin API shows it.
type EventReport struct {
	ID             int64             `json:"id"`
	ReceivedTS     int64             `json:"received_ts"`
	RoomID         id.RoomID         `json:"room_id"`
	Name           *string           `json:"name"`
	EventID        id.EventID        `json:"event_id"`
	UserID         id.UserID         `json:"user_id"`
	Reason         *string           `json:"reason"`
	Score          *int64            `json:"score"`
	Sender         id.UserID         `json:"sender"`
	CanonicalAlias *string           `json:"canonical_alias"`
	EventJSON      jsonv1.RawMessage `json:"event_json,omitempty"`
}

// EventReportQuery selects event reports for the admin API.
type EventReportQuery struct {
	Reporter id.UserID
	RoomID   id.RoomID
	Sender   id.UserID
	Newest   bool
	From     int
	Limit    int
}

// EventReports lists event reports, with the total matching.
func (s *Service) EventReports(ctx context.Context, q EventReportQuery) ([]*EventReport, int, error) {
	reports, total, err := s.db.ListReports(ctx, storage.ReportFilter{
		Kind: storage.ReportEvent, Reporter: q.Reporter, RoomID: q.RoomID, Target: q.Sender, Newest: q.Newest, From: q.From, Limit: q.Limit,
	})
	if err != nil {
		return nil, 0, err
	}
	out := make([]*EventReport, 0, len(reports))
	for _, r := range reports {
		er, err := s.eventReport(ctx, r)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, er)
	}
	return out, total, nil
}

// GetEventReport returns one event report with the reported event's JSON.
func (s *Service) GetEventReport(ctx context.Context, reportID int64) (*EventReport, error) {
	r, err := s.db.GetReport(ctx, storage.ReportEvent, reportID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, mautrix.MNotFound.WithMessage("Event report not found")
	}
	if err != nil {
		return nil, err
	}
	er, err := s.eventReport(ctx, r)
	if err != nil {
		return nil, err
	}
	if se, err := s.db.GetEvent(ctx, r.EventID); err == nil {
		er.EventJSON = se.PDU
	} else if !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	}
	return er, nil
}

// DeleteEventReport removes an event report.
func (s *Service) DeleteEventReport(ctx context.Context, reportID int64) error {
	err := s.db.DeleteReport(ctx, storage.ReportEvent, reportID)
	if errors.Is(err, storage.ErrNotFound) {
		return mautrix.MNotFound.WithMessage("Event report not found")
	}
	return err
}

// eventReport adds the room's current name and canonical alias.
func (s *Service) eventReport(ctx context.Context, r *storage.Report) (*EventReport, error) {
	er := &EventReport{
		ID: r.ID, ReceivedTS: r.ReceivedTS, RoomID: r.RoomID, EventID: r.EventID, UserID: r.Reporter,
		Reason: r.Reason, Score: r.Score, Sender: r.TargetUser,
	}
	if ev, err := s.CurrentStateEvent(ctx, r.RoomID, event.StateRoomName.Type, ""); err != nil {
		return nil, err
	} else if ev != nil {
		var c event.RoomNameEventContent
		if jsonUnmarshal(ev.PDU.Content, &c) == nil && c.Name != "" {
			er.Name = &c.Name
		}
	}
	if ev, err := s.CurrentStateEvent(ctx, r.RoomID, event.StateCanonicalAlias.Type, ""); err != nil {
		return nil, err
	} else if ev != nil {
		var c event.CanonicalAliasEventContent
		if jsonUnmarshal(ev.PDU.Content, &c) == nil && c.Alias != "" {
			alias := string(c.Alias)
			er.CanonicalAlias = &alias
		}
	}
	return er, nil
}

// serverACL is an m.room.server_acl's content read as the spec defaults
// it: allow_ip_literals true unless it is false, allow and deny empty
// when missing, entries that are not strings ignored.
type serverACL struct {
	allowIPLiterals bool
	allow, deny     []string
}

func parseServerACL(content []byte) serverACL {
	var raw struct {
		AllowIPLiterals jsonv1.RawMessage   `json:"allow_ip_literals"`
		Allow           []jsonv1.RawMessage `json:"allow"`
		Deny            []jsonv1.RawMessage `json:"deny"`
	}
	acl := serverACL{allowIPLiterals: true}
	if jsonUnmarshal(content, &raw) != nil {
		// Fields of the wrong type: read them one by one below.
		var fields map[string]jsonv1.RawMessage
		_ = jsonUnmarshal(content, &fields)
		raw.AllowIPLiterals = fields["allow_ip_literals"]
		_ = jsonUnmarshal(fields["allow"], &raw.Allow)
		_ = jsonUnmarshal(fields["deny"], &raw.Deny)
	}
	if string(raw.AllowIPLiterals) == "false" {
		acl.allowIPLiterals = false
	}
	strs := func(vals []jsonv1.RawMessage) []string {
		var out []string
		for _, v := range vals {
			var s string
			if jsonUnmarshal(v, &s) == nil {
				out = append(out, s)
			}
		}
		return out
	}
	acl.allow, acl.deny = strs(raw.Allow), strs(raw.Deny)
	return acl
}

// allows applies the spec's order: IP literals, then deny, then allow,
// otherwise deny. The port is never considered.
func (a serverACL) allows(serverName string) bool {
	host := serverHost(serverName)
	if !a.allowIPLiterals && isIPLiteral(host) {
		return false
	}
	for _, p := range a.deny {
		if globMatch(p, host) {
			return false
		}
	}
	for _, p := range a.allow {
		if globMatch(p, host) {
			return true
		}
	}
	return false
}

// serverHost strips the port from a server name ("host", "host:port",
// "[v6]" or "[v6]:port").
func serverHost(serverName string) string {
	if strings.HasPrefix(serverName, "[") {
		if i := strings.IndexByte(serverName, ']'); i >= 0 {
			return serverName[:i+1]
		}
		return serverName
	}
	if strings.Count(serverName, ":") == 1 {
		return serverName[:strings.IndexByte(serverName, ':')]
	}
	return serverName
}

func isIPLiteral(host string) bool {
	return net.ParseIP(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")) != nil
}

// globMatch matches the spec's glob patterns ('*' any run of characters,
// '?' exactly one), case-insensitively.
func globMatch(pattern, s string) bool {
	p := []rune(strings.ToLower(pattern))
	t := []rune(strings.ToLower(s))
	// The classic two-pointer match with backtracking to the last '*'.
	pi, ti, star, mark := 0, 0, -1, 0
	for ti < len(t) {
		switch {
		case pi < len(p) && (p[pi] == '?' || p[pi] == t[ti]):
			pi++
			ti++
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, ti
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			ti = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// ServerAllowed tells whether a server may take part in a room under its
// current m.room.server_acl (allowed when the room has none). Federation
// calls it for every request that names a room (the server-server API's
// "Server ACLs" section): incoming transactions' PDUs and EDUs, joins,
// backfill and state requests.
func (s *Service) ServerAllowed(ctx context.Context, roomID id.RoomID, serverName string) (bool, error) {
	ev, err := s.CurrentStateEvent(ctx, roomID, event.StateServerACL.Type, "")
	if err != nil || ev == nil {
		return err == nil, err
	}
	return parseServerACL(ev.PDU.Content).allows(serverName), nil
}

// checkStateContent validates the content of state a local user sends,
// beyond the auth rules, where the spec gives the content a meaning the
// server acts on. Events from other servers are read leniently instead.
func (s *Service) checkStateContent(evType, stateKey string, content []byte) error {
	if evType == event.StateServerACL.Type && stateKey == "" {
		return s.checkServerACL(content)
	}
	return checkOneLine(evType, content)
}

// checkServerACL refuses an m.room.server_acl whose fields have the wrong
// types, and, as Synapse does, one that would shut this server out of the
// room (and so make the room unusable for its local members).
func (s *Service) checkServerACL(content []byte) error {
	var fields map[string]jsonv1.RawMessage
	if err := jsonUnmarshal(content, &fields); err != nil {
		return mautrix.MBadJSON.WithMessage("m.room.server_acl content must be an object")
	}
	for _, name := range []string{"allow", "deny"} {
		raw, ok := fields[name]
		if !ok {
			continue
		}
		var list []string
		if err := jsonUnmarshal(raw, &list); err != nil || list == nil {
			return mautrix.MBadJSON.WithMessage(fmt.Sprintf("m.room.server_acl %s must be a list of strings", name))
		}
	}
	if raw, ok := fields["allow_ip_literals"]; ok {
		var b bool
		if err := jsonUnmarshal(raw, &b); err != nil {
			return mautrix.MBadJSON.WithMessage("m.room.server_acl allow_ip_literals must be a boolean")
		}
	}
	if !parseServerACL(content).allows(s.serverName) {
		return mautrix.MInvalidParam.WithMessage(fmt.Sprintf("This server ACL would deny this server (%s) from the room", s.serverName))
	}
	return nil
}

// timestampScan bounds how far EventByTimestamp looks for an event the
// user may see: pages of timestampPage events.
const (
	timestampScan = 10
	timestampPage = 50
)

// EventByTimestamp finds the event of a room nearest a timestamp in a
// direction (at or after it forwards, at or before it backwards) that the
// user may see. The user must be in the room, have been in it, or the room
// must be world-readable.
func (s *Service) EventByTimestamp(ctx context.Context, user id.UserID, roomID id.RoomID, ts int64, backwards bool) (*Event, error) {
	if _, err := s.room(ctx, roomID); err != nil {
		return nil, err
	}
	m, _, err := s.db.Membership(ctx, roomID, user)
	if err != nil {
		return nil, err
	}
	if m == "" {
		if readable, err := s.worldReadable(ctx, roomID); err != nil {
			return nil, err
		} else if !readable {
			return nil, errNotInRoom
		}
	}
	var after *[2]int64
	for range timestampScan {
		batch, err := s.db.EventsNearTimestamp(ctx, roomID, ts, backwards, after, timestampPage)
		if err != nil {
			return nil, err
		}
		for _, se := range batch {
			ev, err := s.fromStored(ctx, se)
			if err != nil {
				return nil, err
			}
			if ok, err := s.canSee(ctx, user, ev); err != nil {
				return nil, err
			} else if ok {
				return ev, nil
			}
			after = &[2]int64{se.OriginServerTS, se.StreamPos}
		}
		if len(batch) < timestampPage {
			break
		}
	}
	dir := "forward"
	if backwards {
		dir = "backward"
	}
	return nil, mautrix.MNotFound.WithMessage(fmt.Sprintf("Unable to find event from %d in %s direction", ts, dir))
}
