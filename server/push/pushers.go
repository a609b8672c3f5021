package push

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/storage"
)

// Pushers (spec: "Client behaviour" of push notifications): stored and
// listed here, delivered to by delivery.go.

// PusherBody is the body of POST /pushers/set. Kind is raw JSON because
// null (delete) and absent (an error) differ.
type PusherBody struct {
	Kind              json.RawMessage `json:"kind"`
	AppID             *string         `json:"app_id"`
	PushKey           *string         `json:"pushkey"`
	AppDisplayName    *string         `json:"app_display_name"`
	DeviceDisplayName *string         `json:"device_display_name"`
	ProfileTag        *string         `json:"profile_tag"`
	Lang              *string         `json:"lang"`
	Data              json.RawMessage `json:"data"`
	Append            bool            `json:"append"`
}

// Pusher is a pusher as GET /pushers lists it.
type Pusher struct {
	PushKey           string          `json:"pushkey"`
	Kind              string          `json:"kind"`
	AppID             string          `json:"app_id"`
	AppDisplayName    string          `json:"app_display_name"`
	DeviceDisplayName string          `json:"device_display_name"`
	ProfileTag        string          `json:"profile_tag,omitempty"`
	Lang              string          `json:"lang"`
	Data              json.RawMessage `json:"data"`
}

// Limits from the spec's pusher definition.
const (
	maxAppIDChars   = 64
	maxPushKeyBytes = 512
	// notifyPath is the one path a push gateway URL may have.
	notifyPath = "/_matrix/push/v1/notify"
)

// SetPusher creates, replaces or (kind null) deletes a pusher of the user.
func (s *Service) SetPusher(ctx context.Context, user id.UserID, device id.DeviceID, b PusherBody) error {
	var missing []string
	if b.Kind == nil {
		missing = append(missing, "kind")
	}
	if b.AppID == nil {
		missing = append(missing, "app_id")
	}
	if b.PushKey == nil {
		missing = append(missing, "pushkey")
	}
	if len(missing) > 0 {
		return mMissingParam.WithMessage("Missing parameters: " + strings.Join(missing, ", "))
	}
	switch {
	case *b.AppID == "":
		return mautrix.MInvalidParam.WithMessage("app_id must not be empty")
	case utf8.RuneCountInString(*b.AppID) > maxAppIDChars:
		return mautrix.MInvalidParam.WithMessage(fmt.Sprintf("app_id must be at most %d characters", maxAppIDChars))
	case *b.PushKey == "":
		return mautrix.MInvalidParam.WithMessage("pushkey must not be empty")
	case len(*b.PushKey) > maxPushKeyBytes:
		return mautrix.MInvalidParam.WithMessage(fmt.Sprintf("pushkey must be at most %d bytes", maxPushKeyBytes))
	}
	if string(b.Kind) == "null" {
		if err := s.db.DeletePusher(ctx, user, *b.AppID, *b.PushKey); err != nil {
			return err
		}
		s.pushersChanged(ctx, user, *b.AppID, *b.PushKey, false)
		return nil
	}
	var kind string
	if json.Unmarshal(b.Kind, &kind) != nil {
		return mautrix.MBadJSON.WithMessage("kind must be a string or null")
	}
	switch kind {
	case "http":
	case "email":
		return mautrix.MInvalidParam.WithMessage("Email pushers are not available: this server does not send email")
	default:
		return mautrix.MInvalidParam.WithMessage(fmt.Sprintf("Unknown pusher kind %q: only http is supported", kind))
	}
	for name, v := range map[string]*string{"app_display_name": b.AppDisplayName, "device_display_name": b.DeviceDisplayName, "lang": b.Lang} {
		if v == nil {
			missing = append(missing, name)
		}
	}
	if b.Data == nil || string(b.Data) == "null" {
		missing = append(missing, "data")
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return mMissingParam.WithMessage("Missing parameters: " + strings.Join(missing, ", "))
	}
	var data map[string]json.RawMessage
	if json.Unmarshal(b.Data, &data) != nil {
		return mautrix.MBadJSON.WithMessage("data must be an object")
	}
	if err := checkHTTPData(data); err != nil {
		return err
	}
	p := storage.Pusher{
		UserID: user, AppID: *b.AppID, PushKey: *b.PushKey, Kind: kind,
		AppDisplayName: *b.AppDisplayName, DeviceDisplayName: *b.DeviceDisplayName, Lang: *b.Lang,
		Data: b.Data, DeviceID: device, CreatedTS: s.Now().UnixMilli(),
	}
	if b.ProfileTag != nil {
		p.ProfileTag = *b.ProfileTag
	}
	if err := s.db.SetPusher(ctx, p, b.Append); err != nil {
		return err
	}
	s.pushersChanged(ctx, user, p.AppID, p.PushKey, true)
	return nil
}

// checkHTTPData checks an http pusher's data: a url to a push gateway's
// notify endpoint and, if given, a known format. The spec asks for HTTPS;
// like Synapse we also accept http, for push gateways on the local
// network (a self-hosted ntfy or UnifiedPush distributor).
func checkHTTPData(data map[string]json.RawMessage) error {
	raw, ok := data["url"]
	if !ok {
		return mMissingParam.WithMessage("An http pusher needs data.url")
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return mautrix.MBadJSON.WithMessage("data.url must be a string")
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return mautrix.MInvalidParam.WithMessage("data.url must be an absolute https URL")
	}
	if u.Path != notifyPath {
		return mautrix.MInvalidParam.WithMessage("data.url must have the path " + notifyPath)
	}
	if raw, ok := data["format"]; ok {
		var f string
		if json.Unmarshal(raw, &f) != nil || f != "event_id_only" {
			return mautrix.MInvalidParam.WithMessage(`data.format must be "event_id_only" when given`)
		}
	}
	return nil
}

// Pushers lists the user's pushers.
func (s *Service) Pushers(ctx context.Context, user id.UserID) ([]Pusher, error) {
	stored, err := s.db.Pushers(ctx, user)
	if err != nil {
		return nil, err
	}
	out := make([]Pusher, 0, len(stored))
	for _, p := range stored {
		out = append(out, Pusher{
			PushKey: p.PushKey, Kind: p.Kind, AppID: p.AppID, AppDisplayName: p.AppDisplayName,
			DeviceDisplayName: p.DeviceDisplayName, ProfileTag: p.ProfileTag, Lang: p.Lang, Data: p.Data,
		})
	}
	return out, nil
}
