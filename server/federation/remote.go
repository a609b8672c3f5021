package federation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"

	"maunium.net/go/mautrix"
	mfed "maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/rooms"
)

// remote lets the rooms service reach other servers through the signed
// client (rooms.Remote).
type remote struct{ s *Service }

var (
	_ rooms.Remote     = remote{}
	_ rooms.Inviter    = remote{}
	_ rooms.Backfiller = remote{}
	_ rooms.Knocker    = remote{}
)

// remoteErr turns another server's Matrix error into one the rooms service
// can pass on to a client (a 403 stays a 403).
func remoteErr(server string, err error) error {
	if err == nil {
		return nil
	}
	var httpErr mautrix.HTTPError
	if errors.As(err, &httpErr) && httpErr.RespError != nil {
		re := *httpErr.RespError
		if re.StatusCode == 0 && httpErr.Response != nil {
			re.StatusCode = httpErr.Response.StatusCode
		}
		return re
	}
	return fmt.Errorf("%s: %w", server, err)
}

func (r remote) allowed(server string) error {
	if !r.s.AllowedServer(server) {
		return fmt.Errorf("%s is not allowed by this server's allow_servers/deny_servers", server)
	}
	return nil
}

func (r remote) Event(ctx context.Context, server string, evID id.EventID) (json.RawMessage, error) {
	if err := r.allowed(server); err != nil {
		return nil, err
	}
	resp, err := r.s.client.GetEvent(ctx, server, evID)
	if err != nil {
		return nil, remoteErr(server, err)
	}
	if len(resp.PDUs) != 1 {
		return nil, fmt.Errorf("%s answered %d events for one", server, len(resp.PDUs))
	}
	return resp.PDUs[0], nil
}

func (r remote) MissingEvents(ctx context.Context, server string, roomID id.RoomID, earliest, latest []id.EventID, limit int) ([]json.RawMessage, error) {
	if err := r.allowed(server); err != nil {
		return nil, err
	}
	resp, err := r.s.client.GetMissingEvents(ctx, &mfed.ReqGetMissingEvents{ServerName: server, RoomID: roomID, EarliestEvents: earliest, LatestEvents: latest, Limit: limit})
	if err != nil {
		return nil, remoteErr(server, err)
	}
	return resp.Events, nil
}

func (r remote) StateIDs(ctx context.Context, server string, roomID id.RoomID, evID id.EventID) ([]id.EventID, []id.EventID, error) {
	if err := r.allowed(server); err != nil {
		return nil, nil, err
	}
	resp, err := r.s.client.GetStateIDs(ctx, server, roomID, evID)
	if err != nil {
		return nil, nil, remoteErr(server, err)
	}
	return resp.PDUs, resp.AuthChain, nil
}

func (r remote) MakeJoin(ctx context.Context, server string, roomID id.RoomID, user id.UserID, versions []id.RoomVersion) (id.RoomVersion, json.RawMessage, error) {
	if err := r.allowed(server); err != nil {
		return "", nil, err
	}
	resp, err := r.s.client.MakeJoin(ctx, &mfed.ReqMakeJoin{RoomID: roomID, UserID: user, Via: server, SupportedVersions: versions})
	if err != nil {
		return "", nil, remoteErr(server, err)
	}
	v := resp.RoomVersion
	if v == "" {
		v = id.RoomV1
	}
	return v, resp.Event, nil
}

func (r remote) SendJoin(ctx context.Context, server string, roomID id.RoomID, evID id.EventID, ev json.RawMessage) (*rooms.SendJoinResult, error) {
	if err := r.allowed(server); err != nil {
		return nil, err
	}
	resp, err := r.s.client.SendJoin(ctx, &mfed.ReqSendJoin{RoomID: roomID, EventID: evID, Event: ev, Via: server})
	if err != nil {
		return nil, remoteErr(server, err)
	}
	return &rooms.SendJoinResult{Event: resp.Event, State: resp.State, AuthChain: resp.AuthChain, ServersInRoom: resp.ServersInRoom}, nil
}

func (r remote) QueryDirectory(ctx context.Context, server string, alias id.RoomAlias) (id.RoomID, []string, error) {
	if err := r.allowed(server); err != nil {
		return "", nil, err
	}
	resp, err := r.s.client.QueryDirectory(ctx, server, alias)
	if err != nil {
		return "", nil, remoteErr(server, err)
	}
	return resp.RoomID, resp.Servers, nil
}

func (r remote) Invite(ctx context.Context, server string, roomID id.RoomID, evID id.EventID, ev json.RawMessage, version id.RoomVersion, stripped []json.RawMessage) (json.RawMessage, error) {
	if err := r.allowed(server); err != nil {
		return nil, err
	}
	var target struct {
		StateKey id.UserID `json:"state_key"`
	}
	_ = json.Unmarshal(ev, &target)
	if stripped == nil {
		stripped = []json.RawMessage{}
	}
	resp, err := r.s.client.SendInvite(ctx, &mfed.ReqSendInvite{RoomID: roomID, UserID: target.StateKey, EventID: evID, Event: ev, InviteRoomState: stripped, RoomVersion: version})
	if err != nil {
		return nil, remoteErr(server, err)
	}
	return resp.Event, nil
}

func (r remote) MakeLeave(ctx context.Context, server string, roomID id.RoomID, user id.UserID) (id.RoomVersion, json.RawMessage, error) {
	if err := r.allowed(server); err != nil {
		return "", nil, err
	}
	resp, err := r.s.client.MakeLeave(ctx, &mfed.ReqMakeLeave{RoomID: roomID, UserID: user, Via: server})
	if err != nil {
		return "", nil, remoteErr(server, err)
	}
	return resp.RoomVersion, resp.Event, nil
}

func (r remote) SendLeave(ctx context.Context, server string, roomID id.RoomID, evID id.EventID, ev json.RawMessage) error {
	if err := r.allowed(server); err != nil {
		return err
	}
	return remoteErr(server, r.s.client.SendLeave(ctx, &mfed.ReqSendLeave{RoomID: roomID, EventID: evID, Event: ev, Via: server}))
}

// QueryProfile asks another server for its user's profile (the client
// API's /profile of a remote user). A server that cannot be reached makes
// the profile unknown, as Synapse answers.
func (s *Service) QueryProfile(ctx context.Context, user id.UserID) (map[string]json.RawMessage, error) {
	server := user.Homeserver()
	if !s.Enabled() || !s.AllowedServer(server) {
		return nil, mautrix.MNotFound.WithMessage("Profile not found")
	}
	var out map[string]json.RawMessage
	err := s.client.Query(ctx, server, "profile", url.Values{"user_id": {string(user)}}, &out)
	if err != nil {
		var re mautrix.RespError
		if errors.As(remoteErr(server, err), &re) {
			return nil, re
		}
		return nil, mautrix.MNotFound.WithMessage("Profile not found: " + server + " could not be reached")
	}
	if out == nil {
		out = map[string]json.RawMessage{}
	}
	return out, nil
}

func (r remote) Backfill(ctx context.Context, server string, roomID id.RoomID, from []id.EventID, limit int) ([]json.RawMessage, error) {
	if err := r.allowed(server); err != nil {
		return nil, err
	}
	resp, err := r.s.client.Backfill(ctx, &mfed.ReqBackfill{ServerName: server, RoomID: roomID, Limit: limit, BackfillFrom: from})
	if err != nil {
		return nil, remoteErr(server, err)
	}
	return resp.PDUs, nil
}

func (r remote) MakeKnock(ctx context.Context, server string, roomID id.RoomID, user id.UserID, versions []id.RoomVersion) (id.RoomVersion, json.RawMessage, error) {
	if err := r.allowed(server); err != nil {
		return "", nil, err
	}
	resp, err := r.s.client.MakeKnock(ctx, &mfed.ReqMakeKnock{RoomID: roomID, UserID: user, Via: server, SupportedVersions: versions})
	if err != nil {
		return "", nil, remoteErr(server, err)
	}
	return resp.RoomVersion, resp.Event, nil
}

func (r remote) SendKnock(ctx context.Context, server string, roomID id.RoomID, evID id.EventID, ev json.RawMessage) ([]json.RawMessage, error) {
	if err := r.allowed(server); err != nil {
		return nil, err
	}
	resp, err := r.s.client.SendKnock(ctx, &mfed.ReqSendKnock{RoomID: roomID, EventID: evID, Event: ev, Via: server})
	if err != nil {
		return nil, remoteErr(server, err)
	}
	return resp.KnockRoomState, nil
}
