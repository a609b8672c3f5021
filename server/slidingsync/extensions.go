package slidingsync

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"strconv"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/syncer"
)

// The extensions: to-device messages (MSC3885), end-to-end encryption
// (MSC3884), account data (MSC3959), receipts (MSC3960) and typing
// (MSC3961). Each is sent only when enabled in the request; the room
// extensions cover the rooms of the lists and subscriptions they name.

// toDeviceDefaultLimit is how many to-device messages one response
// carries unless the client asks for fewer (the /sync engine's limit).
const toDeviceDefaultLimit = 100

func (b *builder) extensions(ctx context.Context, resp *Response) error {
	ext := b.req.Extensions
	if ext.ToDevice != nil && ext.ToDevice.on() {
		if err := b.toDevice(ctx, resp); err != nil {
			return err
		}
	}
	if ext.E2EE.on() {
		if err := b.e2ee(ctx, resp); err != nil {
			return err
		}
	}
	if ext.AccountData != nil && ext.AccountData.on() {
		if err := b.accountData(ctx, resp, b.scope(ext.AccountData, false)); err != nil {
			return err
		}
	}
	if ext.Receipts != nil && ext.Receipts.on() {
		if err := b.receipts(ctx, resp, b.scope(ext.Receipts, true)); err != nil {
			return err
		}
	}
	if ext.Typing != nil && ext.Typing.on() {
		b.typing(resp, b.scope(ext.Typing, true))
	}
	return nil
}

// scope lists the rooms a room extension covers: those in the windows of
// the lists it names (every list when it names none) and the subscribed
// rooms it names (all of them for "*" or when it names none). With
// joinedOnly, rooms the user is not in are left out.
func (b *builder) scope(sc *ScopedConfig, joinedOnly bool) []id.RoomID {
	var out []id.RoomID
	for roomID, m := range b.matched {
		if m.room.stripped() || (joinedOnly && !m.room.joined()) {
			continue
		}
		in := false
		if sc.Lists == nil {
			in = len(m.lists) > 0
		} else {
			for _, l := range m.lists {
				in = in || slices.Contains(*sc.Lists, l)
			}
		}
		if sc.Rooms == nil || slices.Contains(*sc.Rooms, wildcard) {
			in = in || m.subscribed
		}
		if sc.Rooms != nil && slices.Contains(*sc.Rooms, string(roomID)) {
			in = true
		}
		if in {
			out = append(out, roomID)
		}
	}
	slices.Sort(out)
	return out
}

// fresh splits rooms into those this response sends from scratch (new to
// the connection, or with an expanded timeline), which get their current
// ephemeral data in full, and the others, which get what changed.
func (b *builder) fresh(resp *Response, roomIDs []id.RoomID) (fresh, others []id.RoomID) {
	for _, roomID := range roomIDs {
		if rr := resp.Rooms[roomID]; b.newConnection() || (rr != nil && (rr.Initial || rr.ExpandedTimeline)) {
			fresh = append(fresh, roomID)
		} else {
			others = append(others, roomID)
		}
	}
	return fresh, others
}

func (b *builder) toDevice(ctx context.Context, resp *Response) error {
	cfg := b.req.Extensions.ToDevice
	since := b.prev.token.ToDevice
	if cfg.Since != "" {
		n, err := strconv.ParseInt(cfg.Since, 10, 64)
		if err != nil || n < 0 {
			return mautrix.MInvalidParam.WithMessage("to_device.since must be a next_batch this server gave")
		}
		// A position beyond the stream comes from another database (one
		// restored from an older backup): acknowledge nothing, send what
		// is pending. Refusing would leave the client stuck, since it keeps
		// its since across connections.
		if n <= b.cur.ToDevice {
			since = n
		}
	}
	limit := toDeviceDefaultLimit
	if cfg.Limit != nil && *cfg.Limit > 0 {
		limit = min(*cfg.Limit, toDeviceDefaultLimit)
	}
	out := &ToDeviceResult{NextBatch: strconv.FormatInt(b.cur.ToDevice, 10), Events: []*event.Event{}}
	resp.Extensions.ToDevice = out
	b.next.token.ToDevice = b.cur.ToDevice
	if b.who.Device == "" {
		return nil
	}
	// Asking from a position acknowledges every message up to it; the rest
	// stay until acknowledged, so a lost response is sent again.
	if err := b.s.db.AckToDevice(ctx, b.who.User, b.who.Device, since); err != nil {
		return err
	}
	msgs, more, err := b.s.db.ToDeviceEvents(ctx, b.who.User, b.who.Device, since, b.cur.ToDevice, limit)
	if err != nil {
		return err
	}
	for _, m := range msgs {
		out.Events = append(out.Events, &event.Event{
			Sender:  m.Sender,
			Type:    event.Type{Type: m.Type, Class: event.ToDeviceEventType},
			Content: event.Content{VeryRaw: m.Content},
		})
	}
	if more {
		last := msgs[len(msgs)-1].StreamID
		out.NextBatch = strconv.FormatInt(last, 10)
		b.next.token.ToDevice = last
	}
	return nil
}

func (b *builder) e2ee(ctx context.Context, resp *Response) error {
	out := &E2EEResult{DeviceOneTimeKeysCount: map[id.KeyAlgorithm]int{id.KeyAlgorithmSignedCurve25519: 0}, DeviceUnusedFallbackKeyTypes: []id.KeyAlgorithm{}}
	resp.Extensions.E2EE = out
	if b.who.Device != "" {
		counts, types, err := b.s.db.DeviceKeyCounts(ctx, b.who.User, b.who.Device)
		if err != nil {
			return err
		}
		for alg, n := range counts {
			out.DeviceOneTimeKeysCount[id.KeyAlgorithm(alg)] = n
		}
		for _, t := range types {
			out.DeviceUnusedFallbackKeyTypes = append(out.DeviceUnusedFallbackKeyTypes, id.KeyAlgorithm(t))
		}
	}
	// Device-list changes are for a continuing connection: after its first
	// response a client queries the keys of everyone it tracks anyway.
	if b.newConnection() {
		return nil
	}
	changed, left, err := b.s.sync.DeviceListChanges(ctx, b.who.User, b.prev.token, b.cur)
	if err != nil {
		return err
	}
	if len(changed) > 0 || len(left) > 0 {
		out.DeviceLists = &DeviceLists{Changed: nonNil(changed), Left: nonNil(left)}
	}
	return nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// accountData sends global account data that changed (all of it, with the
// push rules, on a new connection) and the room account data of the
// covered rooms: what changed, or all of it for rooms sent from scratch.
func (b *builder) accountData(ctx context.Context, resp *Response, roomIDs []id.RoomID) error {
	fresh, _ := b.fresh(resp, roomIDs)
	inScope := map[id.RoomID]bool{}
	for _, r := range roomIDs {
		inScope[r] = true
	}
	isFresh := map[id.RoomID]bool{}
	for _, r := range fresh {
		isFresh[r] = true
	}
	from := b.prev.token.AccountData
	if len(fresh) > 0 {
		from = 0 // a fresh room's older account data is needed too
	}
	items, err := b.s.db.AccountDataSince(ctx, b.who.User, from, b.cur.AccountData)
	if err != nil {
		return err
	}
	out := &AccountDataResult{}
	resp.Extensions.AccountData = out
	sawPushRules := false
	for _, it := range items {
		changed := it.StreamID > b.prev.token.AccountData
		ev := &event.Event{Type: event.Type{Type: it.Type, Class: event.AccountDataEventType}}
		if json.Unmarshal(it.Content, &ev.Content) != nil {
			continue
		}
		switch {
		case it.RoomID == "":
			if changed {
				out.Global = append(out.Global, ev)
				sawPushRules = sawPushRules || it.Type == event.AccountDataPushRules.Type
			}
		case inScope[it.RoomID] && (changed || isFresh[it.RoomID]):
			if out.Rooms == nil {
				out.Rooms = map[id.RoomID][]*event.Event{}
			}
			out.Rooms[it.RoomID] = append(out.Rooms[it.RoomID], ev)
		}
	}
	if b.newConnection() && !sawPushRules {
		// The push rules are always there for a new connection, computed
		// afresh (a new account has stored none).
		ev, err := b.s.sync.PushRulesEvent(ctx, b.who.User)
		if err != nil {
			return err
		}
		out.Global = append(out.Global, ev)
	}
	return nil
}

// receipts sends, for covered rooms sent from scratch, the receipts on
// their timeline events and the user's own; for the others, the receipts
// that changed. Other users' private receipts never leave the server.
func (b *builder) receipts(ctx context.Context, resp *Response, roomIDs []id.RoomID) error {
	out := &RoomEventsResult{Rooms: map[id.RoomID]*event.Event{}}
	resp.Extensions.Receipts = out
	fresh, others := b.fresh(resp, roomIDs)
	add := func(roomID id.RoomID, content map[string]any) {
		if len(content) > 0 {
			out.Rooms[roomID] = &event.Event{
				Type:    event.Type{Type: event.EphemeralEventReceipt.Type, Class: event.EphemeralEventType},
				Content: event.Content{Raw: content},
			}
		}
	}
	if len(fresh) > 0 {
		all, err := b.s.sync.ReceiptContents(ctx, b.who.User, fresh, syncer.Token{}, b.cur, true)
		if err != nil {
			return err
		}
		for _, roomID := range fresh {
			onTimeline := map[string]bool{}
			if rr := resp.Rooms[roomID]; rr != nil {
				for _, ev := range rr.Timeline {
					onTimeline[string(ev.ID)] = true
				}
			}
			add(roomID, b.relevantReceipts(all[roomID], onTimeline))
		}
	}
	if len(others) > 0 && b.prev.token.Receipts < b.cur.Receipts {
		changed, err := b.s.sync.ReceiptContents(ctx, b.who.User, others, b.prev.token, b.cur, false)
		if err != nil {
			return err
		}
		for _, roomID := range others {
			add(roomID, changed[roomID])
		}
	}
	return nil
}

// relevantReceipts keeps from a room's receipts (event → type → user →
// receipt) those on the given events, and all of the user's own.
func (b *builder) relevantReceipts(content map[string]any, onTimeline map[string]bool) map[string]any {
	out := map[string]any{}
	for evID, byType := range content {
		if onTimeline[evID] {
			out[evID] = byType
			continue
		}
		types, _ := byType.(map[string]any)
		for typ, byUser := range types {
			users, _ := byUser.(map[string]any)
			if r, ok := users[string(b.who.User)]; ok {
				own, _ := out[evID].(map[string]any)
				if own == nil {
					own = map[string]any{}
					out[evID] = own
				}
				own[typ] = map[string]any{string(b.who.User): r}
			}
		}
	}
	return out
}

// typing sends who is typing in covered rooms: where it changed, and in
// rooms sent from scratch where anyone is.
func (b *builder) typing(resp *Response, roomIDs []id.RoomID) {
	out := &RoomEventsResult{Rooms: map[id.RoomID]*event.Event{}}
	resp.Extensions.Typing = out
	fresh, others := b.fresh(resp, roomIDs)
	typing := b.s.sync.TypingSince(others, b.prev.token.Typing, false)
	maps.Copy(typing, b.s.sync.TypingSince(fresh, 0, true))
	for roomID, users := range typing {
		ids := make([]any, len(users))
		for i, u := range users {
			ids[i] = string(u)
		}
		out.Rooms[roomID] = &event.Event{
			Type:    event.Type{Type: event.EphemeralEventTyping.Type, Class: event.EphemeralEventType},
			Content: event.Content{Raw: map[string]any{"user_ids": ids}},
		}
	}
}
