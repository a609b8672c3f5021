package stateres

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"encoding/json/jsontext"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/rooms/authrules"
)

// testT is what the harness needs from *testing.T, *testing.B and *rapid.T.
type testT interface {
	Helper()
	Fatalf(format string, args ...any)
}

// testRoom builds real, signed PDUs for one room and keeps every event it made,
// so it doubles as the in-memory Loader.
type testRoom struct {
	version id.RoomVersion
	roomID  id.RoomID
	create  id.EventID

	mu     sync.Mutex
	events map[id.EventID]*pdu.PDU
	clock  int64
	nextTS *int64
	count  int

	// loads counts Loader calls and loaded events, for tests of what the
	// resolver touches.
	loadCalls  int
	loadEvents int
}

const testServer = "example.org"

var testKeyID = id.KeyID("ed25519:test")

// serverKey derives a fixed ed25519 key per server name, so event IDs are
// reproducible across runs.
func serverKey(server string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("stateres test key " + server))
	return ed25519.NewKeyFromSeed(seed[:])
}

func testGetKey(server string, keyID id.KeyID, _ time.Time) (id.SigningKey, time.Time, error) {
	if keyID != testKeyID {
		return "", time.Time{}, nil
	}
	pub := serverKey(server).Public().(ed25519.PublicKey)
	return id.SigningKey(base64.RawStdEncoding.EncodeToString(pub)), time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), nil
}

func user(name string) id.UserID { return id.UserID("@" + name + ":" + testServer) }

// branch is one line of the DAG: the state after its latest events and those
// events as prev_events for the next one.
type branch struct {
	room  *testRoom
	state StateMap
	heads []id.EventID
	depth int64
}

// newTestRoom creates a room: the create event by creator (with extra create
// content, e.g. additional_creators) and returns the branch holding it.
func newTestRoom(tb testT, version id.RoomVersion, creator id.UserID, extraCreate map[string]any) (*testRoom, *branch) {
	tb.Helper()
	r := &testRoom{version: version, events: make(map[id.EventID]*pdu.PDU), clock: 1_700_000_000_000}
	content := map[string]any{"room_version": string(version)}
	if version.CreatorInContent() {
		content["creator"] = creator.String()
	}
	maps.Copy(content, extraCreate)
	evt := &pdu.PDU{
		AuthEvents:     []id.EventID{},
		Content:        mustJSON(content),
		Depth:          1,
		OriginServerTS: r.tick(),
		PrevEvents:     []id.EventID{},
		Sender:         creator,
		StateKey:       new(""),
		Type:           typeCreate,
	}
	if version.RoomIDIsCreateEventID() {
		r.finish(tb, evt)
		roomID, err := evt.GetRoomID()
		if err != nil {
			tb.Fatalf("room ID: %v", err)
		}
		r.roomID = roomID
	} else {
		r.roomID = id.RoomID("!room:" + testServer)
		evt.RoomID = r.roomID
		r.finish(tb, evt)
	}
	r.create = evt.InternalMeta.EventID
	b := &branch{room: r, state: StateMap{{Type: typeCreate}: r.create}, heads: []id.EventID{r.create}, depth: 1}
	return r, b
}

func mustJSON(v any) jsontext.Value {
	raw, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return raw
}

func (r *testRoom) tick() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.nextTS != nil {
		ts := *r.nextTS
		r.nextTS = nil
		return ts
	}
	r.clock += 1000
	return r.clock
}

// at makes the next event carry the given origin_server_ts.
func (r *testRoom) at(ts int64) *testRoom {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.nextTS = &ts
	return r
}

// sign fills the content hash and signs the event as its sender's server.
func (r *testRoom) sign(tb testT, evt *pdu.PDU) {
	tb.Helper()
	if err := evt.Sign(r.version, evt.Sender.Homeserver(), testKeyID, serverKey(evt.Sender.Homeserver())); err != nil {
		tb.Fatalf("sign: %v", err)
	}
}

// finish signs the event, gives it its ID and stores it.
func (r *testRoom) finish(tb testT, evt *pdu.PDU) {
	tb.Helper()
	if len(evt.Signatures) == 0 {
		r.sign(tb, evt)
	}
	var evID id.EventID
	if r.version.EventIDFormat() == id.EventIDFormatCustom {
		// Room version 2 event IDs are chosen by the origin server.
		r.mu.Lock()
		r.count++
		evID = id.EventID(fmt.Sprintf("$%d:%s", r.count, testServer))
		r.mu.Unlock()
	} else {
		var err error
		if evID, err = evt.GetEventID(r.version); err != nil {
			tb.Fatalf("event ID: %v", err)
		}
	}
	evt.InternalMeta.EventID = evID
	r.mu.Lock()
	r.events[evID] = evt
	r.mu.Unlock()
}

func (r *testRoom) get(evID id.EventID) *pdu.PDU {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.events[evID]
}

// Events implements Loader.
func (r *testRoom) Events(_ context.Context, ids []id.EventID) (map[id.EventID]*pdu.PDU, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.loadCalls++
	r.loadEvents += len(ids)
	out := make(map[id.EventID]*pdu.PDU, len(ids))
	for _, evID := range ids {
		if evt, ok := r.events[evID]; ok {
			out[evID] = evt
		}
	}
	return out, nil
}

// fork starts a new branch from the current end of b.
func (b *branch) fork() *branch {
	return &branch{room: b.room, state: maps.Clone(b.state), heads: slices.Clone(b.heads), depth: b.depth}
}

// build makes an event on top of the branch with auth events chosen from the
// branch's state by the auth events selection, without checking it.
func (b *branch) build(tb testT, sender id.UserID, typ, stateKey string, content any) *pdu.PDU {
	tb.Helper()
	evt := &pdu.PDU{
		Content:        mustJSON(content),
		Depth:          b.depth + 1,
		OriginServerTS: b.room.tick(),
		PrevEvents:     slices.Clone(b.heads),
		RoomID:         b.room.roomID,
		Sender:         sender,
		StateKey:       &stateKey,
		Type:           typ,
	}
	evt.AuthEvents = []id.EventID{}
	for _, k := range evt.AuthEventSelection(b.room.version) {
		if evID, ok := b.state[k]; ok {
			evt.AuthEvents = append(evt.AuthEvents, evID)
		}
	}
	return evt
}

// check runs the authorisation rules on evt against its auth events, as a
// receiving server would.
func (b *branch) check(evt *pdu.PDU) error {
	r := b.room
	getEvents := func(ids []id.EventID) ([]*pdu.PDU, error) {
		out := make([]*pdu.PDU, 0, len(ids))
		for _, evID := range ids {
			if evt := r.get(evID); evt != nil {
				out = append(out, evt)
			}
		}
		return out, nil
	}
	return authrules.Authorize(r.version, evt, nil, getEvents, testGetKey)
}

// trySend builds, signs and authorises an event on the branch. If the event is
// not allowed it is not stored and the branch does not change.
func (b *branch) trySend(tb testT, sender id.UserID, typ, stateKey string, content any) (id.EventID, error) {
	tb.Helper()
	evt := b.build(tb, sender, typ, stateKey, content)
	b.room.sign(tb, evt)
	if err := b.check(evt); err != nil {
		return "", err
	}
	b.room.finish(tb, evt)
	b.apply(evt)
	return evt.InternalMeta.EventID, nil
}

func (b *branch) apply(evt *pdu.PDU) {
	b.state[pdu.StateKey{Type: evt.Type, StateKey: *evt.StateKey}] = evt.InternalMeta.EventID
	b.heads = []id.EventID{evt.InternalMeta.EventID}
	b.depth = evt.Depth
}

// send is trySend for events the test expects to be allowed.
func (b *branch) send(tb testT, sender id.UserID, typ, stateKey string, content any) id.EventID {
	tb.Helper()
	evID, err := b.trySend(tb, sender, typ, stateKey, content)
	if err != nil {
		tb.Fatalf("%s %s/%q by %s not allowed: %v", b.room.version, typ, stateKey, sender, err)
	}
	return evID
}

func (b *branch) member(tb testT, sender, target id.UserID, membership event.Membership) id.EventID {
	tb.Helper()
	return b.send(tb, sender, typeMember, target.String(), map[string]any{"membership": membership})
}

func (b *branch) join(tb testT, u id.UserID) id.EventID {
	tb.Helper()
	return b.member(tb, u, u, event.MembershipJoin)
}

func (b *branch) joinRules(tb testT, sender id.UserID, rule event.JoinRule) id.EventID {
	tb.Helper()
	return b.send(tb, sender, typeJoinRules, "", map[string]any{"join_rule": rule})
}

func (b *branch) topic(tb testT, sender id.UserID, topic string) id.EventID {
	tb.Helper()
	return b.send(tb, sender, "m.room.topic", "", map[string]any{"topic": topic})
}

// powerLevels sets the power levels: users and, optionally, other top-level
// fields (ban, kick, state_default, …).
func (b *branch) powerLevels(tb testT, sender id.UserID, users map[id.UserID]int, extra map[string]any) id.EventID {
	tb.Helper()
	content := map[string]any{"users": users}
	maps.Copy(content, extra)
	return b.send(tb, sender, typePowerLevels, "", content)
}

// merge resolves the branches' states with Resolve and continues from all of
// their heads, like an event whose prev_events are the branches' ends.
func merge(tb testT, branches ...*branch) *branch {
	tb.Helper()
	r := branches[0].room
	states := make([]StateMap, len(branches))
	out := &branch{room: r}
	for i, b := range branches {
		states[i] = b.state
		out.heads = append(out.heads, b.heads...)
		out.depth = max(out.depth, b.depth)
	}
	resolved, err := Resolve(context.Background(), r.version, states, r)
	if err != nil {
		tb.Fatalf("resolve: %v", err)
	}
	out.state = resolved
	slices.Sort(out.heads)
	out.heads = slices.Compact(out.heads)
	return out
}

// resolve runs Resolve with the room as Loader, failing the test on error.
func (r *testRoom) resolve(tb testT, states ...StateMap) StateMap {
	tb.Helper()
	got, err := Resolve(context.Background(), r.version, states, r)
	if err != nil {
		tb.Fatalf("resolve: %v", err)
	}
	return got
}

// standardRoom is a room with admin (100, the creator), mod (50) and the given
// members, public join rules and default power levels otherwise. In room
// version 12 the creator has infinite power and is not listed in users.
func standardRoom(tb testT, version id.RoomVersion, members ...id.UserID) (*testRoom, *branch) {
	tb.Helper()
	admin, mod := user("admin"), user("mod")
	r, b := newTestRoom(tb, version, admin, nil)
	b.join(tb, admin)
	b.powerLevels(tb, admin, levels(version, admin, map[id.UserID]int{mod: 50}), nil)
	b.joinRules(tb, admin, event.JoinRulePublic)
	b.join(tb, mod)
	for _, m := range members {
		b.join(tb, m)
	}
	return r, b
}

// levels returns the users map for a power levels event: the given levels plus
// 100 for the creator, except in room version 12 where creators must not be
// listed.
func levels(version id.RoomVersion, creator id.UserID, users map[id.UserID]int) map[id.UserID]int {
	out := maps.Clone(users)
	if out == nil {
		out = make(map[id.UserID]int)
	}
	if !version.PrivilegedRoomCreators() {
		out[creator] = 100
	}
	return out
}

func stateKeyOf(typ, stateKey string) pdu.StateKey {
	return pdu.StateKey{Type: typ, StateKey: stateKey}
}

func memberKey(u id.UserID) pdu.StateKey { return stateKeyOf(typeMember, u.String()) }

var (
	plKey    = stateKeyOf(typePowerLevels, "")
	jrKey    = stateKeyOf(typeJoinRules, "")
	topicKey = stateKeyOf("m.room.topic", "")
)
