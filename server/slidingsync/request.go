package slidingsync

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
)

// The request body of simplified sliding sync (MSC4186). Two generations
// of the MSC are in use: what Element X (matrix-rust-sdk, through ruma)
// and Synapse speak today — "ranges", required_state as [type, state_key]
// pairs with "*", "$LAZY" and "$ME", "is_invite", pos and timeout in the
// query string — and the MSC's current text — "range", required_state as
// {include, exclude, lazy_members}, "is_invited", pos and timeout in the
// body. Both are accepted and read into the same form.

// Request is one sliding sync call.
type Request struct {
	ConnID            string                    `json:"conn_id"`
	TxnID             string                    `json:"txn_id"`
	Pos               *string                   `json:"pos"`
	Timeout           *int64                    `json:"timeout"`
	SetPresence       string                    `json:"set_presence"`
	Lists             map[string]*ListConfig    `json:"lists"`
	RoomSubscriptions map[id.RoomID]*RoomConfig `json:"room_subscriptions"`
	Extensions        Extensions                `json:"extensions"`
}

// RoomConfig is what to send of a room: a list's or a subscription's.
type RoomConfig struct {
	TimelineLimit *int          `json:"timeline_limit"`
	RequiredState RequiredState `json:"required_state"`
}

// ListConfig is one sliding window over the user's sorted, filtered rooms.
type ListConfig struct {
	RoomConfig
	Ranges  [][2]int     `json:"ranges"`
	Range   *[2]int      `json:"range"`
	Filters *ListFilters `json:"filters"`
}

// ListFilters narrow a list; every field set must hold (AND).
type ListFilters struct {
	IsDM         *bool       `json:"is_dm"`
	IsEncrypted  *bool       `json:"is_encrypted"`
	IsInvite     *bool       `json:"is_invite"`
	IsInvited    *bool       `json:"is_invited"`
	Spaces       []id.RoomID `json:"spaces"`
	RoomTypes    []*string   `json:"room_types"`
	NotRoomTypes []*string   `json:"not_room_types"`
	Tags         []string    `json:"tags"`
	NotTags      []string    `json:"not_tags"`
}

// invited is the filter on invites, under either of its names.
func (f *ListFilters) invited() *bool {
	if f.IsInvited != nil {
		return f.IsInvited
	}
	return f.IsInvite
}

// Extensions configure the non-room data of a response.
type Extensions struct {
	ToDevice    *ToDeviceConfig `json:"to_device"`
	E2EE        *EnabledConfig  `json:"e2ee"`
	AccountData *ScopedConfig   `json:"account_data"`
	Receipts    *ScopedConfig   `json:"receipts"`
	Typing      *ScopedConfig   `json:"typing"`
}

// EnabledConfig turns an extension on.
type EnabledConfig struct {
	Enabled *bool `json:"enabled"`
}

func (c *EnabledConfig) on() bool { return c != nil && c.Enabled != nil && *c.Enabled }

// ToDeviceConfig configures the to-device extension.
type ToDeviceConfig struct {
	EnabledConfig
	Limit *int   `json:"limit"`
	Since string `json:"since"`
}

// ScopedConfig configures an extension about rooms: which lists' windows
// and which subscribed rooms it covers. Absent lists means every list;
// absent rooms, or "*", every subscribed room.
type ScopedConfig struct {
	EnabledConfig
	Lists *[]string `json:"lists"`
	Rooms *[]string `json:"rooms"`
}

// RequiredState says which state events to send with a room.
type RequiredState struct {
	Include     []StatePattern
	Exclude     []StatePattern
	LazyMembers bool
}

// StatePattern matches state by type and state key; an empty Type or
// StateKey matches any. StateKey "$ME" is the syncing user's ID.
type StatePattern struct {
	Type     string
	StateKey string
	AnyType  bool
	AnyKey   bool
}

const (
	wildcard  = "*"
	lazyKey   = "$LAZY"
	meKey     = "$ME"
	memberTyp = "m.room.member"
)

// UnmarshalJSON reads either form of required_state.
func (rs *RequiredState) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	if bytes.Equal(data, []byte("null")) {
		return nil
	}
	if len(data) > 0 && data[0] == '[' {
		var pairs [][]string
		if err := json.Unmarshal(data, &pairs); err != nil {
			return fmt.Errorf("required_state must be a list of [type, state_key] pairs: %w", err)
		}
		for _, p := range pairs {
			if len(p) != 2 {
				return fmt.Errorf("required_state entries must be [type, state_key] pairs")
			}
			if p[0] == memberTyp && p[1] == lazyKey {
				rs.LazyMembers = true
				continue
			}
			rs.Include = append(rs.Include, pattern(&p[0], &p[1]))
		}
		return nil
	}
	var obj struct {
		Include []struct {
			Type     *string `json:"type"`
			StateKey *string `json:"state_key"`
		} `json:"include"`
		Exclude []struct {
			Type     *string `json:"type"`
			StateKey *string `json:"state_key"`
		} `json:"exclude"`
		LazyMembers bool `json:"lazy_members"`
	}
	if err := json.Unmarshal(data, &obj); err != nil {
		return fmt.Errorf("required_state must be an object or a list of pairs: %w", err)
	}
	for _, e := range obj.Include {
		rs.Include = append(rs.Include, pattern(e.Type, e.StateKey))
	}
	for _, e := range obj.Exclude {
		rs.Exclude = append(rs.Exclude, pattern(e.Type, e.StateKey))
	}
	rs.LazyMembers = obj.LazyMembers
	return nil
}

// pattern reads a type and state key, where absent or "*" matches any.
func pattern(typ, key *string) StatePattern {
	p := StatePattern{AnyType: typ == nil || *typ == wildcard, AnyKey: key == nil || *key == wildcard}
	if !p.AnyType {
		p.Type = *typ
	}
	if !p.AnyKey {
		p.StateKey = *key
	}
	return p
}

// maxLists bounds the lists of one request (the MSC's limit).
const maxLists = 100

// maxTimelineLimit bounds timeline_limit, as /sync filters are bounded.
const maxTimelineLimit = 1000

// validate checks what JSON decoding cannot, with the spec's error codes.
func (r *Request) validate() error {
	if len(r.Lists) > maxLists {
		return mautrix.MInvalidParam.WithMessage(fmt.Sprintf("At most %d lists are allowed", maxLists))
	}
	if len(r.ConnID) > 255 {
		return mautrix.MInvalidParam.WithMessage("conn_id is too long")
	}
	switch r.SetPresence {
	case "", "online", "offline", "unavailable":
	default:
		return mautrix.MInvalidParam.WithMessage("set_presence must be online, offline or unavailable")
	}
	if r.Timeout != nil && *r.Timeout < 0 {
		return mautrix.MInvalidParam.WithMessage("timeout must be a non-negative number of milliseconds")
	}
	for name, l := range r.Lists {
		if l == nil {
			return mautrix.MInvalidParam.WithMessage(fmt.Sprintf("List %q must be an object", name))
		}
		if name == "" || len(name) > 255 {
			return mautrix.MInvalidParam.WithMessage("List names must be 1 to 255 characters")
		}
		if err := l.RoomConfig.validate("list " + name); err != nil {
			return err
		}
		for _, rg := range l.ranges() {
			if rg[0] < 0 || rg[1] < rg[0] {
				return mautrix.MInvalidParam.WithMessage(fmt.Sprintf("List %q has an invalid range [%d, %d]", name, rg[0], rg[1]))
			}
		}
	}
	for roomID, sub := range r.RoomSubscriptions {
		if !strings.HasPrefix(string(roomID), "!") {
			return mautrix.MInvalidParam.WithMessage(fmt.Sprintf("%q is not a room ID", roomID))
		}
		if sub == nil {
			return mautrix.MInvalidParam.WithMessage("Room subscriptions must be objects")
		}
		if err := sub.validate("room subscription " + string(roomID)); err != nil {
			return err
		}
	}
	for _, sc := range []*ScopedConfig{r.Extensions.AccountData, r.Extensions.Receipts, r.Extensions.Typing} {
		if sc == nil || sc.Rooms == nil {
			continue
		}
		for _, room := range *sc.Rooms {
			if room != wildcard && !strings.HasPrefix(room, "!") {
				return mautrix.MInvalidParam.WithMessage(fmt.Sprintf("Extension rooms must be room IDs or \"*\", not %q", room))
			}
		}
	}
	if td := r.Extensions.ToDevice; td != nil && td.Limit != nil && *td.Limit < 0 {
		return mautrix.MInvalidParam.WithMessage("to_device.limit must not be negative")
	}
	return nil
}

func (c *RoomConfig) validate(what string) error {
	if c.TimelineLimit == nil {
		return mautrix.MInvalidParam.WithMessage(what + ": timeline_limit is required")
	}
	if *c.TimelineLimit < 0 {
		return mautrix.MInvalidParam.WithMessage(what + ": timeline_limit must not be negative")
	}
	return nil
}

// ranges are the list's windows, under either name; nil means the whole
// list.
func (l *ListConfig) ranges() [][2]int {
	if l.Range != nil {
		return append(slices.Clone(l.Ranges), *l.Range)
	}
	return l.Ranges
}

// inRange tells whether index i of the filtered list is in a window.
func (l *ListConfig) inRange(i int) bool {
	rgs := l.ranges()
	if rgs == nil {
		return true
	}
	for _, rg := range rgs {
		if i >= rg[0] && i <= rg[1] {
			return true
		}
	}
	return false
}
