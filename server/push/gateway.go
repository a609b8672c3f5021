package push

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/rooms"
	"github.com/palpo-im/palpo-desktop/server/storage"
)

// The request a push gateway receives (spec: Push Gateway API, POST
// /_matrix/push/v1/notify), and how one is made from a notification.

type gatewayRequest struct {
	Notification gatewayNotification `json:"notification"`
}

type gatewayNotification struct {
	EventID           id.EventID      `json:"event_id,omitempty"`
	RoomID            id.RoomID       `json:"room_id,omitempty"`
	Type              string          `json:"type,omitempty"`
	Sender            id.UserID       `json:"sender,omitempty"`
	SenderDisplayName string          `json:"sender_display_name,omitempty"`
	RoomName          string          `json:"room_name,omitempty"`
	RoomAlias         id.RoomAlias    `json:"room_alias,omitempty"`
	UserIsTarget      bool            `json:"user_is_target,omitempty"`
	Prio              string          `json:"prio,omitempty"`
	Content           json.RawMessage `json:"content,omitempty"`
	Counts            gatewayCounts   `json:"counts"`
	Devices           []gatewayDevice `json:"devices"`
}

// gatewayCounts always carries unread, zero included, as Synapse does:
// a badge-only update to zero is how a gateway learns to clear the app's
// badge. Missed calls are not counted (Synapse does not either), so that
// count is left out as the spec asks of zero counts.
type gatewayCounts struct {
	Unread int `json:"unread"`
}

type gatewayDevice struct {
	AppID     string                     `json:"app_id"`
	PushKey   string                     `json:"pushkey"`
	PushKeyTS int64                      `json:"pushkey_ts"`
	Data      map[string]json.RawMessage `json:"data"`
	Tweaks    map[string]json.RawMessage `json:"tweaks,omitempty"`
}

type gatewayResponse struct {
	Rejected []string `json:"rejected"`
}

// formatEventIDOnly is the pusher data format that leaves out everything
// but the event's and room's IDs and the counts (for gateways that should
// not see message content, such as ones relaying to a third party).
const formatEventIDOnly = "event_id_only"

// gatewayPusher is what a request needs from a pusher: where to send it and
// the device entry naming the pusher.
type gatewayPusher struct {
	url    string
	format string
	device gatewayDevice
}

// newGatewayPusher reads a stored pusher's data: its url, format, and the
// rest, which goes to the gateway as the device's data (the spec's "data
// dictionary minus the url key"; format stays, as the spec lists it among
// the device data's fields and Synapse sends it).
func newGatewayPusher(p storage.Pusher) (gatewayPusher, error) {
	var data map[string]json.RawMessage
	if err := json.Unmarshal(p.Data, &data); err != nil {
		return gatewayPusher{}, fmt.Errorf("pusher data: %w", err)
	}
	if data == nil {
		data = map[string]json.RawMessage{}
	}
	gp := gatewayPusher{device: gatewayDevice{AppID: p.AppID, PushKey: p.PushKey, PushKeyTS: p.CreatedTS / 1000}}
	if err := json.Unmarshal(data["url"], &gp.url); err != nil || gp.url == "" {
		return gatewayPusher{}, errors.New("pusher data has no url")
	}
	if raw, ok := data["format"]; ok {
		_ = json.Unmarshal(raw, &gp.format)
	}
	delete(data, "url")
	gp.device.Data = data
	return gp, nil
}

// tweaksOf collects the set_tweak actions of a notification; a tweak
// without a value is true (the spec's highlight rule, and Synapse's).
func tweaksOf(actions []byte) map[string]json.RawMessage {
	var list []json.RawMessage
	_ = json.Unmarshal(actions, &list)
	tweaks := map[string]json.RawMessage{}
	for _, a := range list {
		var t struct {
			SetTweak string          `json:"set_tweak"`
			Value    json.RawMessage `json:"value"`
		}
		if json.Unmarshal(a, &t) != nil || t.SetTweak == "" {
			continue
		}
		if len(bytes.TrimSpace(t.Value)) == 0 {
			t.Value = json.RawMessage("true")
		}
		tweaks[t.SetTweak] = t.Value
	}
	return tweaks
}

// truthy tells whether a tweak's value is set and not false, null, 0 or "".
func truthy(v json.RawMessage) bool {
	switch string(bytes.TrimSpace(v)) {
	case "", "false", "null", "0", `""`:
		return false
	}
	return true
}

// priority is "high" for a notification that makes a sound or highlights,
// or may (an encrypted event, whose rules the server cannot see), else
// "low": Synapse's rule, which lets gateways save battery on group chatter.
func priority(evType string, tweaks map[string]json.RawMessage) string {
	if evType == event.EventEncrypted.Type || truthy(tweaks["highlight"]) || truthy(tweaks["sound"]) {
		return "high"
	}
	return "low"
}

// eventNotification builds the request for a notification about ev to a
// pusher of user, with the user's badge count.
func (s *Service) eventNotification(ctx context.Context, user id.UserID, gp gatewayPusher, a storage.PushAction, ev *rooms.Event, badge int) (*gatewayRequest, error) {
	tweaks := tweaksOf(a.Actions)
	n := gatewayNotification{
		EventID: ev.ID, RoomID: ev.RoomID, Prio: priority(ev.PDU.Type, tweaks),
		Counts: gatewayCounts{Unread: badge},
	}
	dev := gp.device
	if gp.format == formatEventIDOnly {
		// Only the IDs and counts: the gateway must not learn more, and
		// tweaks are left out with the rest, as Synapse does.
		n.Devices = []gatewayDevice{dev}
		return &gatewayRequest{Notification: n}, nil
	}
	dev.Tweaks = tweaks
	n.Devices = []gatewayDevice{dev}
	n.Type = ev.PDU.Type
	n.Sender = ev.PDU.Sender
	if ev.PDU.Type == event.StateMember.Type && ev.IsState() {
		n.UserIsTarget = ev.StateKey() == string(user)
	}
	// A redacted event's content is gone; an empty one is left out.
	if ev.RedactedBy == "" {
		if c := bytes.TrimSpace(ev.PDU.Content); len(c) > 0 && !bytes.Equal(c, []byte("{}")) {
			n.Content = json.RawMessage(c)
		}
	}
	if err := s.describeRoom(ctx, user, ev, &n); err != nil {
		return nil, err
	}
	return &gatewayRequest{Notification: n}, nil
}

// describeRoom fills in the names a notification shows, from the room's
// state at the event: the sender's display name, and the room's name as
// Synapse computes it for pushes (m.room.name, else the canonical alias,
// else the other members when there are at least two; a one-to-one room
// gets no name, since the sender's name says it all).
func (s *Service) describeRoom(ctx context.Context, user id.UserID, ev *rooms.Event, n *gatewayNotification) error {
	state, err := s.rooms.StateAfter(ctx, ev)
	if err != nil {
		return err
	}
	nameKey := pdu.StateKey{Type: event.StateRoomName.Type}
	aliasKey := pdu.StateKey{Type: event.StateCanonicalAlias.Type}
	senderKey := pdu.StateKey{Type: event.StateMember.Type, StateKey: string(ev.PDU.Sender)}
	userKey := pdu.StateKey{Type: event.StateMember.Type, StateKey: string(user)}
	evs, err := s.rooms.StateEvents(ctx, state, []pdu.StateKey{nameKey, aliasKey, senderKey, userKey})
	if err != nil {
		return err
	}
	var mine *rooms.Event
	for _, se := range evs {
		switch {
		case se.PDU.Type == nameKey.Type:
			var c struct {
				Name string `json:"name"`
			}
			if json.Unmarshal(se.PDU.Content, &c) == nil {
				n.RoomName = c.Name
			}
		case se.PDU.Type == aliasKey.Type:
			var c struct {
				Alias id.RoomAlias `json:"alias"`
			}
			if json.Unmarshal(se.PDU.Content, &c) == nil {
				n.RoomAlias = c.Alias
			}
		case se.StateKey() == senderKey.StateKey:
			n.SenderDisplayName = memberName(se)
		}
		if se.PDU.Type == userKey.Type && se.StateKey() == userKey.StateKey {
			mine = se
		}
	}
	if n.RoomName == "" {
		n.RoomName = string(n.RoomAlias)
	}
	if n.RoomName != "" || (mine != nil && mine.Membership() == event.MembershipInvite) {
		return nil
	}
	name, err := s.membersName(ctx, user, ev.RoomID, state)
	if err != nil {
		return err
	}
	n.RoomName = name
	return nil
}

// membersName names a room after its other joined and invited members:
// "A and B", or "A and N others" ("" with fewer than two). Members are
// taken in user ID order, which costs only the two events named (Synapse
// orders them by join time, which means loading every member event).
func (s *Service) membersName(ctx context.Context, user id.UserID, roomID id.RoomID, state rooms.StateMap) (string, error) {
	members, err := s.db.CurrentMembers(ctx, roomID, "")
	if err != nil {
		return "", err
	}
	var others []pdu.StateKey
	for _, m := range members {
		if m.UserID != user && (m.Membership == string(event.MembershipJoin) || m.Membership == string(event.MembershipInvite)) {
			others = append(others, pdu.StateKey{Type: event.StateMember.Type, StateKey: string(m.UserID)})
		}
	}
	if len(others) < 2 {
		return "", nil
	}
	first, err := s.rooms.StateEvents(ctx, state, others[:2])
	if err != nil {
		return "", err
	}
	names := make([]string, 0, 2)
	for _, ev := range first {
		names = append(names, memberName(ev))
	}
	for len(names) < 2 {
		// A member of the current state not yet in the event's state.
		names = append(names, others[len(names)].StateKey)
	}
	if len(others) == 2 {
		return names[0] + " and " + names[1], nil
	}
	return names[0] + " and " + strconv.Itoa(len(others)-1) + " others", nil
}

// memberName is a member's display name, or their user ID without one.
func memberName(ev *rooms.Event) string {
	var c struct {
		DisplayName string `json:"displayname"`
	}
	if json.Unmarshal(ev.PDU.Content, &c) == nil && c.DisplayName != "" {
		return c.DisplayName
	}
	return ev.StateKey()
}

// maxGatewayResponse bounds how much of a gateway's answer is read.
const maxGatewayResponse = 64 << 10

// postOutcome is what a push gateway's answer means for a notification.
type postOutcome int

const (
	postDelivered postOutcome = iota // accepted (rejected pushkeys aside)
	postRetry                        // network error, 5xx, 408 or 429: try again later
	postDrop                         // another 4xx: this notification will never be accepted
)

// post sends a request to a push gateway. Loopback and private addresses
// are allowed on purpose: a family's push gateway (ntfy, a UnifiedPush
// distributor) often runs on the home network beside Palpo, and only the
// user who set the pusher chooses where it points.
func (d *delivery) post(ctx context.Context, url string, req *gatewayRequest) (postOutcome, []string, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return postDrop, nil, err
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return postDrop, nil, fmt.Errorf("push gateway request: %w", err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("User-Agent", "Palpo")
	resp, err := d.client.Do(hreq)
	if err != nil {
		return postRetry, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxGatewayResponse))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		if err != nil {
			// The gateway took the notification; only its list of
			// rejected keys is lost.
			return postDelivered, nil, nil
		}
		var gr gatewayResponse
		_ = json.Unmarshal(raw, &gr)
		return postDelivered, gr.Rejected, nil
	case resp.StatusCode >= 500, resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode == http.StatusRequestTimeout:
		return postRetry, nil, fmt.Errorf("push gateway answered %s", resp.Status)
	default:
		return postDrop, nil, fmt.Errorf("push gateway answered %s", resp.Status)
	}
}
