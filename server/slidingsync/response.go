package slidingsync

import (
	"encoding/json"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// Response is a sliding sync answer. Room field names are those Element X
// and Synapse use ("timeline", "invite_state"); where the MSC's current
// text renamed a field, the new name is sent as well when it is small
// (stripped_state, expanded_timeline).
type Response struct {
	TxnID      string                    `json:"txn_id,omitempty"`
	Pos        string                    `json:"pos"`
	Lists      map[string]ListResult     `json:"lists"`
	Rooms      map[id.RoomID]*RoomResult `json:"rooms"`
	Extensions ExtensionsResult          `json:"extensions"`
}

// ListResult is a list's size: the rooms its filters match, ignoring the
// range.
type ListResult struct {
	Count int `json:"count"`
}

// RoomResult is one room's news. With initial unset, an absent field means
// unchanged.
type RoomResult struct {
	// Name and Avatar are JSON strings, or null once removed.
	Name                     json.RawMessage `json:"name,omitempty"`
	Avatar                   json.RawMessage `json:"avatar,omitempty"`
	Heroes                   []Hero          `json:"heroes,omitempty"`
	Initial                  bool            `json:"initial,omitempty"`
	ExpandedTimeline         bool            `json:"expanded_timeline,omitempty"`
	UnstableExpandedTimeline bool            `json:"unstable_expanded_timeline,omitempty"`
	IsDM                     *bool           `json:"is_dm,omitempty"`
	RequiredState            []any           `json:"required_state,omitempty"` // events, or stubs for removed state
	Timeline                 []*event.Event  `json:"timeline,omitempty"`
	InviteState              []*event.Event  `json:"invite_state,omitempty"`
	StrippedState            []*event.Event  `json:"stripped_state,omitempty"`
	PrevBatch                string          `json:"prev_batch,omitempty"`
	Limited                  *bool           `json:"limited,omitempty"` // set for every room with a timeline, false included (as Synapse)
	NumLive                  *int            `json:"num_live,omitempty"`
	JoinedCount              *int            `json:"joined_count,omitempty"`
	InvitedCount             *int            `json:"invited_count,omitempty"`
	NotificationCount        *int            `json:"notification_count,omitempty"`
	HighlightCount           *int            `json:"highlight_count,omitempty"`
	BumpStamp                *int64          `json:"bump_stamp,omitempty"`
	Membership               string          `json:"membership,omitempty"`
	Lists                    []string        `json:"lists,omitempty"`
}

// Hero is a member a client may name a nameless room after.
type Hero struct {
	UserID      id.UserID `json:"user_id"`
	DisplayName string    `json:"displayname,omitempty"`
	AvatarURL   string    `json:"avatar_url,omitempty"`
}

// ExtensionsResult holds the enabled extensions' news.
type ExtensionsResult struct {
	ToDevice    *ToDeviceResult    `json:"to_device,omitempty"`
	E2EE        *E2EEResult        `json:"e2ee,omitempty"`
	AccountData *AccountDataResult `json:"account_data,omitempty"`
	Receipts    *RoomEventsResult  `json:"receipts,omitempty"`
	Typing      *RoomEventsResult  `json:"typing,omitempty"`
}

// ToDeviceResult carries the device's to-device messages.
type ToDeviceResult struct {
	NextBatch string         `json:"next_batch"`
	Events    []*event.Event `json:"events"`
}

// E2EEResult carries device-list changes and the device's key counts.
type E2EEResult struct {
	DeviceLists                  *DeviceLists            `json:"device_lists,omitempty"`
	DeviceOneTimeKeysCount       map[id.KeyAlgorithm]int `json:"device_one_time_keys_count"`
	DeviceUnusedFallbackKeyTypes []id.KeyAlgorithm       `json:"device_unused_fallback_key_types"`
}

// DeviceLists are the users whose devices to fetch again, and those no
// longer sharing a room.
type DeviceLists struct {
	Changed []id.UserID `json:"changed"`
	Left    []id.UserID `json:"left"`
}

// AccountDataResult carries changed global and room account data.
type AccountDataResult struct {
	Global []*event.Event               `json:"global,omitempty"`
	Rooms  map[id.RoomID][]*event.Event `json:"rooms,omitempty"`
}

// RoomEventsResult carries one ephemeral event per room (m.receipt or
// m.typing).
type RoomEventsResult struct {
	Rooms map[id.RoomID]*event.Event `json:"rooms"`
}

// hasNews tells whether the extensions carry anything a client waits for
// (key counts alone are not news: they come with every response).
func (e *ExtensionsResult) hasNews() bool {
	return (e.ToDevice != nil && len(e.ToDevice.Events) > 0) ||
		(e.E2EE != nil && e.E2EE.DeviceLists != nil) ||
		(e.AccountData != nil && (len(e.AccountData.Global) > 0 || len(e.AccountData.Rooms) > 0)) ||
		(e.Receipts != nil && len(e.Receipts.Rooms) > 0) ||
		(e.Typing != nil && len(e.Typing.Rooms) > 0)
}
