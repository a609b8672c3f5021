package federation

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/httpapi"
	"github.com/palpo-im/palpo-desktop/server/rooms"
)

// The room endpoints of the server-server API: transactions, joins and
// leaves, and what other servers may read of a room. Handlers are thin: the
// rooms service checks and stores events and decides what a server may see.

// Limits of one inbound transaction (spec: at most 50 PDUs and 100 EDUs).
const (
	maxTxnPDUs = 50
	maxTxnEDUs = 100
)

// EDUReceiver applies the EDUs of inbound transactions (typing, receipts,
// presence).
type EDUReceiver interface {
	ApplyEDU(ctx context.Context, origin string, edu json.RawMessage) error
}

// Waker hears that a server sent us something: it is up, so what we owe it
// is retried at once.
type Waker interface {
	Wake(destination string)
}

// ProfileLookup answers /query/profile for local users: the profile's
// fields, or M_NOT_FOUND.
type ProfileLookup func(ctx context.Context, user id.UserID) (map[string]json.RawMessage, error)

// RoomDeps are what the room endpoints need.
type RoomDeps struct {
	Rooms    *rooms.Service
	EDUs     EDUReceiver
	Waker    Waker
	Profiles ProfileLookup
}

// RegisterRooms serves the room endpoints and makes the rooms service able
// to reach other servers (its Remote and RemoteKeys), when federation is on.
func (s *Service) RegisterRooms(d RoomDeps) {
	h := &roomHandlers{s: s, d: d}
	if s.Enabled() {
		d.Rooms.Remote = remote{s}
		d.Rooms.RemoteKeys = s.keys.VerifyKey
	}
	const v1, v2 = "/_matrix/federation/v1", "/_matrix/federation/v2"
	// A transaction holds up to 50 PDUs of up to 64 KiB each, and EDUs.
	s.HandleAuthed(http.MethodPut, v1+"/send/{txnId}", h.send, httpapi.MaxBody(8<<20))
	s.HandleAuthed(http.MethodGet, v1+"/make_join/{roomId}/{userId}", h.makeJoin)
	s.HandleAuthed(http.MethodPut, v2+"/send_join/{roomId}/{eventId}", h.sendJoinV2)
	s.HandleAuthed(http.MethodPut, v1+"/send_join/{roomId}/{eventId}", h.sendJoinV1)
	s.HandleAuthed(http.MethodGet, v1+"/make_leave/{roomId}/{userId}", h.makeLeave)
	s.HandleAuthed(http.MethodPut, v2+"/send_leave/{roomId}/{eventId}", h.sendLeaveV2)
	s.HandleAuthed(http.MethodPut, v1+"/send_leave/{roomId}/{eventId}", h.sendLeaveV1)
	s.HandleAuthed(http.MethodGet, v1+"/make_knock/{roomId}/{userId}", h.makeKnock)
	s.HandleAuthed(http.MethodPut, v1+"/send_knock/{roomId}/{eventId}", h.sendKnock)
	s.HandleAuthed(http.MethodPut, v2+"/invite/{roomId}/{eventId}", h.invite)
	s.HandleAuthed(http.MethodGet, v1+"/event/{eventId}", h.event)
	s.HandleAuthed(http.MethodGet, v1+"/state/{roomId}", h.state)
	s.HandleAuthed(http.MethodGet, v1+"/state_ids/{roomId}", h.stateIDs)
	s.HandleAuthed(http.MethodGet, v1+"/event_auth/{roomId}/{eventId}", h.eventAuth)
	s.HandleAuthed(http.MethodGet, v1+"/backfill/{roomId}", h.backfill)
	s.HandleAuthed(http.MethodPost, v1+"/get_missing_events/{roomId}", h.missingEvents)
	s.HandleAuthed(http.MethodGet, v1+"/query/directory", h.queryDirectory)
	s.HandleAuthed(http.MethodGet, v1+"/query/profile", h.queryProfile)
}

type roomHandlers struct {
	s *Service
	d RoomDeps
}

// pduOrigin is the envelope of answers that carry PDUs.
func (h *roomHandlers) envelope(pdus []json.RawMessage) map[string]any {
	if pdus == nil {
		pdus = []json.RawMessage{}
	}
	return map[string]any{"origin": h.s.ServerName(), "origin_server_ts": time.Now().UnixMilli(), "pdus": pdus}
}

type inboundTxn struct {
	Origin string            `json:"origin"`
	PDUs   []json.RawMessage `json:"pdus"`
	EDUs   []json.RawMessage `json:"edus"`
}

type pduResult struct {
	Error string `json:"error,omitempty"`
}

// send takes a transaction: each PDU checked and stored (or rejected, with
// the reason in the answer), each EDU applied; a retried transaction is
// answered as the first time without processing it again.
func (h *roomHandlers) send(w http.ResponseWriter, r *http.Request, origin string) error {
	txnID := r.PathValue("txnId")
	ctx := r.Context()
	if h.d.Waker != nil {
		h.d.Waker.Wake(origin)
	}
	if prev, ok, err := h.s.db.InboundTxn(ctx, origin, txnID); err != nil {
		return err
	} else if ok {
		w.Header().Set("Content-Type", "application/json")
		_, err := w.Write(prev)
		return err
	}
	var txn inboundTxn
	if err := httpapi.ReadJSON(r, &txn); err != nil {
		return err
	}
	if txn.Origin != "" && txn.Origin != origin {
		return mautrix.MForbidden.WithMessage("The transaction's origin is not the server that signed the request")
	}
	if len(txn.PDUs) > maxTxnPDUs || len(txn.EDUs) > maxTxnEDUs {
		return mautrix.MBadJSON.WithMessage("A transaction carries at most 50 PDUs and 100 EDUs")
	}
	results := map[id.EventID]pduResult{}
	for _, raw := range txn.PDUs {
		// The rooms service works on after the request is answered: the
		// sender is owed an answer, not a cancelled store.
		evID, err := h.d.Rooms.ReceivePDU(context.WithoutCancel(ctx), origin, raw)
		if evID == "" {
			if err != nil {
				h.s.log.Info("dropped a PDU", "origin", origin, "error", err)
			}
			continue
		}
		if err != nil {
			h.s.log.Info("refused a PDU", "origin", origin, "event", evID, "error", err)
			results[evID] = pduResult{Error: err.Error()}
		} else {
			results[evID] = pduResult{}
		}
	}
	for _, edu := range txn.EDUs {
		if h.d.EDUs == nil {
			break
		}
		if err := h.d.EDUs.ApplyEDU(ctx, origin, edu); err != nil {
			h.s.log.Debug("ignored an EDU", "origin", origin, "error", err)
		}
	}
	body, err := json.Marshal(map[string]any{"pdus": results})
	if err != nil {
		return err
	}
	if err := h.s.db.PutInboundTxn(ctx, origin, txnID, body, time.Now().UnixMilli()); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	_, err = w.Write(body)
	return err
}

// userOfOrigin checks that a user in the path belongs to the requesting
// server.
func userOfOrigin(r *http.Request, origin string) (id.UserID, error) {
	user := id.UserID(r.PathValue("userId"))
	if user.Homeserver() != origin {
		return "", mautrix.MForbidden.WithMessage("The user is not of the requesting server")
	}
	return user, nil
}

func versionsOf(r *http.Request) []id.RoomVersion {
	vs := r.URL.Query()["ver"]
	out := make([]id.RoomVersion, 0, len(vs)+1)
	for _, v := range vs {
		out = append(out, id.RoomVersion(v))
	}
	if len(out) == 0 {
		// A server that names none supports version 1 only (spec).
		out = append(out, id.RoomV1)
	}
	return out
}

// incompatible turns the rooms service's version error into the spec's.
func incompatible(err error) error {
	var iv rooms.ErrIncompatibleVersion
	if errors.As(err, &iv) {
		return mautrix.RespError{ErrCode: "M_INCOMPATIBLE_ROOM_VERSION", Err: iv.Error(), StatusCode: http.StatusBadRequest,
			ExtraData: map[string]any{"room_version": string(iv.Version)}}
	}
	return err
}

func (h *roomHandlers) makeMembership(w http.ResponseWriter, r *http.Request, origin string, m event.Membership) error {
	user, err := userOfOrigin(r, origin)
	if err != nil {
		return err
	}
	roomID := id.RoomID(r.PathValue("roomId"))
	ctx := r.Context()
	if err := h.d.Rooms.CheckServerACL(ctx, roomID, origin); err != nil {
		return err
	}
	var version id.RoomVersion
	var tmpl json.RawMessage
	switch m {
	case event.MembershipJoin:
		version, tmpl, err = h.d.Rooms.MakeJoin(ctx, roomID, user, versionsOf(r))
	case event.MembershipKnock:
		version, tmpl, err = h.d.Rooms.MakeKnock(ctx, roomID, user, versionsOf(r))
	default:
		version, tmpl, err = h.d.Rooms.MakeLeave(ctx, roomID, user)
	}
	if err != nil {
		return incompatible(err)
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string]any{"room_version": version, "event": tmpl})
}

func (h *roomHandlers) makeJoin(w http.ResponseWriter, r *http.Request, origin string) error {
	return h.makeMembership(w, r, origin, event.MembershipJoin)
}

func (h *roomHandlers) makeLeave(w http.ResponseWriter, r *http.Request, origin string) error {
	return h.makeMembership(w, r, origin, event.MembershipLeave)
}

func (h *roomHandlers) makeKnock(w http.ResponseWriter, r *http.Request, origin string) error {
	return h.makeMembership(w, r, origin, event.MembershipKnock)
}

// readEvent reads the PDU body of a send_* request.
func readEvent(r *http.Request) (id.RoomID, id.EventID, json.RawMessage, error) {
	var raw json.RawMessage
	if err := httpapi.ReadJSON(r, &raw); err != nil {
		return "", "", nil, err
	}
	return id.RoomID(r.PathValue("roomId")), id.EventID(r.PathValue("eventId")), raw, nil
}

func (h *roomHandlers) sendJoin(r *http.Request, origin string) (map[string]any, error) {
	roomID, evID, raw, err := readEvent(r)
	if err != nil {
		return nil, err
	}
	ctx := r.Context()
	if err := h.d.Rooms.CheckServerACL(ctx, roomID, origin); err != nil {
		return nil, err
	}
	res, err := h.d.Rooms.SendJoin(context.WithoutCancel(ctx), origin, roomID, evID, raw)
	if err != nil {
		return nil, err
	}
	return map[string]any{
		"origin": h.s.ServerName(), "event": res.Event, "state": nonNil(res.State), "auth_chain": nonNil(res.AuthChain),
		"servers_in_room": res.ServersInRoom, "members_omitted": false,
	}, nil
}

func nonNil(pdus []json.RawMessage) []json.RawMessage {
	if pdus == nil {
		return []json.RawMessage{}
	}
	return pdus
}

func (h *roomHandlers) sendJoinV2(w http.ResponseWriter, r *http.Request, origin string) error {
	resp, err := h.sendJoin(r, origin)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, resp)
}

// sendJoinV1 is the deprecated v1 answer: [200, body].
func (h *roomHandlers) sendJoinV1(w http.ResponseWriter, r *http.Request, origin string) error {
	resp, err := h.sendJoin(r, origin)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, []any{200, resp})
}

func (h *roomHandlers) sendLeave(r *http.Request, origin string) error {
	roomID, evID, raw, err := readEvent(r)
	if err != nil {
		return err
	}
	if err := h.d.Rooms.CheckServerACL(r.Context(), roomID, origin); err != nil {
		return err
	}
	return h.d.Rooms.SendLeave(context.WithoutCancel(r.Context()), origin, roomID, evID, raw)
}

func (h *roomHandlers) sendLeaveV2(w http.ResponseWriter, r *http.Request, origin string) error {
	if err := h.sendLeave(r, origin); err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, struct{}{})
}

func (h *roomHandlers) sendLeaveV1(w http.ResponseWriter, r *http.Request, origin string) error {
	if err := h.sendLeave(r, origin); err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, []any{200, struct{}{}})
}

func (h *roomHandlers) sendKnock(w http.ResponseWriter, r *http.Request, origin string) error {
	roomID, evID, raw, err := readEvent(r)
	if err != nil {
		return err
	}
	if err := h.d.Rooms.CheckServerACL(r.Context(), roomID, origin); err != nil {
		return err
	}
	stripped, err := h.d.Rooms.SendKnock(context.WithoutCancel(r.Context()), origin, roomID, evID, raw)
	if err != nil {
		return err
	}
	if stripped == nil {
		stripped = []*event.Event{}
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string]any{"knock_room_state": stripped})
}

// invite signs an invite of one of our users (PUT /v2/invite).
func (h *roomHandlers) invite(w http.ResponseWriter, r *http.Request, origin string) error {
	var req struct {
		Event           json.RawMessage   `json:"event"`
		InviteRoomState []json.RawMessage `json:"invite_room_state"`
		RoomVersion     id.RoomVersion    `json:"room_version"`
	}
	if err := httpapi.ReadJSON(r, &req); err != nil {
		return err
	}
	if len(req.Event) == 0 {
		return mautrix.MBadJSON.WithMessage("event is required")
	}
	roomID := id.RoomID(r.PathValue("roomId"))
	if _, err := h.d.Rooms.RoomVersion(r.Context(), roomID); err == nil {
		if err := h.d.Rooms.CheckServerACL(r.Context(), roomID, origin); err != nil {
			return err
		}
	}
	signed, err := h.d.Rooms.ReceiveInvite(context.WithoutCancel(r.Context()), origin, roomID, id.EventID(r.PathValue("eventId")), req.Event, req.RoomVersion, req.InviteRoomState)
	if err != nil {
		return incompatible(err)
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string]any{"event": signed})
}

func (h *roomHandlers) event(w http.ResponseWriter, r *http.Request, origin string) error {
	raw, err := h.d.Rooms.EventForServer(r.Context(), origin, id.EventID(r.PathValue("eventId")))
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, h.envelope([]json.RawMessage{raw}))
}

func eventIDParam(r *http.Request) (id.EventID, error) {
	evID := id.EventID(r.URL.Query().Get("event_id"))
	if evID == "" {
		return "", accounts.MMissingParam.WithMessage("event_id is required")
	}
	return evID, nil
}

func (h *roomHandlers) state(w http.ResponseWriter, r *http.Request, origin string) error {
	evID, err := eventIDParam(r)
	if err != nil {
		return err
	}
	pdus, chain, err := h.d.Rooms.StateForServer(r.Context(), origin, id.RoomID(r.PathValue("roomId")), evID)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string]any{"pdus": nonNil(pdus), "auth_chain": nonNil(chain)})
}

func (h *roomHandlers) stateIDs(w http.ResponseWriter, r *http.Request, origin string) error {
	evID, err := eventIDParam(r)
	if err != nil {
		return err
	}
	ids, chain, err := h.d.Rooms.StateIDsForServer(r.Context(), origin, id.RoomID(r.PathValue("roomId")), evID)
	if err != nil {
		return err
	}
	if ids == nil {
		ids = []id.EventID{}
	}
	if chain == nil {
		chain = []id.EventID{}
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string]any{"pdu_ids": ids, "auth_chain_ids": chain})
}

func (h *roomHandlers) eventAuth(w http.ResponseWriter, r *http.Request, origin string) error {
	chain, err := h.d.Rooms.EventAuthForServer(r.Context(), origin, id.RoomID(r.PathValue("roomId")), id.EventID(r.PathValue("eventId")))
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string]any{"auth_chain": nonNil(chain)})
}

func (h *roomHandlers) backfill(w http.ResponseWriter, r *http.Request, origin string) error {
	q := r.URL.Query()
	var from []id.EventID
	for _, v := range q["v"] {
		from = append(from, id.EventID(v))
	}
	if len(from) == 0 {
		return accounts.MMissingParam.WithMessage("v is required")
	}
	if q.Get("limit") == "" {
		return accounts.MMissingParam.WithMessage("limit is required")
	}
	limit, err := strconv.Atoi(q.Get("limit"))
	if err != nil {
		return mautrix.MInvalidParam.WithMessage("limit must be a number")
	}
	pdus, err := h.d.Rooms.BackfillForServer(r.Context(), origin, id.RoomID(r.PathValue("roomId")), from, limit)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, h.envelope(pdus))
}

func (h *roomHandlers) missingEvents(w http.ResponseWriter, r *http.Request, origin string) error {
	var req struct {
		Earliest []id.EventID `json:"earliest_events"`
		Latest   []id.EventID `json:"latest_events"`
		Limit    *int         `json:"limit"`
		MinDepth int64        `json:"min_depth"`
	}
	if err := httpapi.ReadJSON(r, &req); err != nil {
		return err
	}
	if req.Earliest == nil || req.Latest == nil {
		return mautrix.MBadJSON.WithMessage("earliest_events and latest_events are required")
	}
	limit := 10
	if req.Limit != nil {
		limit = *req.Limit
	}
	pdus, err := h.d.Rooms.MissingEventsForServer(r.Context(), origin, id.RoomID(r.PathValue("roomId")), req.Earliest, req.Latest, limit, req.MinDepth)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string]any{"events": nonNil(pdus)})
}

func (h *roomHandlers) queryDirectory(w http.ResponseWriter, r *http.Request, _ string) error {
	alias := id.RoomAlias(r.URL.Query().Get("room_alias"))
	if alias == "" {
		return accounts.MMissingParam.WithMessage("room_alias is required")
	}
	if _, server, ok := strings.Cut(string(alias), ":"); !ok || server != h.s.ServerName() {
		return mautrix.MNotFound.WithMessage("That alias is not of this server")
	}
	roomID, err := h.d.Rooms.ResolveAlias(r.Context(), alias)
	if err != nil {
		return err
	}
	servers, err := h.d.Rooms.ServersInRoom(r.Context(), roomID)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string]any{"room_id": roomID, "servers": servers})
}

func (h *roomHandlers) queryProfile(w http.ResponseWriter, r *http.Request, _ string) error {
	q := r.URL.Query()
	user := id.UserID(q.Get("user_id"))
	if user == "" {
		return accounts.MMissingParam.WithMessage("user_id is required")
	}
	field := q.Get("field")
	if user.Homeserver() != h.s.ServerName() || h.d.Profiles == nil {
		return mautrix.MNotFound.WithMessage("No such user on this server")
	}
	fields, err := h.d.Profiles(r.Context(), user)
	if err != nil {
		return err
	}
	out := fields
	if field != "" {
		out = map[string]json.RawMessage{}
		if v, ok := fields[field]; ok {
			out[field] = v
		}
	}
	return httpapi.WriteJSON(w, http.StatusOK, out)
}
