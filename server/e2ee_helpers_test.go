//go:build goolm

package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto"
	"maunium.net/go/mautrix/crypto/backup"
	"maunium.net/go/mautrix/crypto/signatures"
	"maunium.net/go/mautrix/crypto/verificationhelper"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
)

// Helpers for the mautrix-crypto (goolm) end-to-end encryption tests in
// e2ee_goolm_test.go. Each e2eeDevice is what a Matrix client session is,
// minus the UI: a logged-in device with its own Olm machine over an
// in-memory crypto store, its own room state store, and its own sync
// position. Tests drive every sync one at a time from the test goroutine,
// so nothing happens behind their back, and every wait is "sync until a
// condition holds", bounded by e2eeWait: no sleeps.

// e2eeWait bounds each wait for something the server must deliver.
const e2eeWait = 30 * time.Second

// e2eePoll is the long-poll timeout of each sync while waiting: the whole
// wait. Each wait is for something another device already did, so the
// server has the data and must answer at once; a sync that long-polls
// instead ends in the deadline.
const e2eePoll = e2eeWait

// e2eeLogs collects the Olm machines' logs of one test and prints them if
// the test fails: mautrix explains at debug level why it did or did not
// share a key, which is what a failure here needs.
type e2eeLogs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *e2eeLogs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func newE2EELogs(t *testing.T) *e2eeLogs {
	l := &e2eeLogs{}
	t.Cleanup(func() {
		if t.Failed() {
			l.mu.Lock()
			defer l.mu.Unlock()
			t.Logf("mautrix crypto log:\n%s", l.buf.String())
		}
	})
	return l
}

// e2eeDevice is one device of a test: a logged-in client, its Olm
// machine and state store, and its sync position.
type e2eeDevice struct {
	t      *testing.T
	name   string
	cli    *mautrix.Client
	mach   *crypto.OlmMachine
	state  *mautrix.MemoryStateStore
	syncer *mautrix.DefaultSyncer
	since  string

	// events holds the m.room.encrypted events seen in timelines.
	events map[id.EventID]*event.Event
	// changed counts the users seen in device_lists.changed since the
	// last resetDeviceLists.
	changed map[id.UserID]int
	// toDevice counts each to-device message received (by sender, type
	// and content), to catch one delivered twice.
	toDevice map[string]int
}

// newE2EEDevice sets up crypto for a logged-in client the way mautrix's
// cryptohelper does (load the account, upload the device and one-time
// keys) and wires its syncs the same way: the Olm machine sees each whole
// sync response first (to-device messages, device lists, one-time key
// counts), then the room events update the state store.
func newE2EEDevice(t *testing.T, logs *e2eeLogs, name string, cli *mautrix.Client) *e2eeDevice {
	t.Helper()
	ctx := context.Background()
	state := mautrix.NewMemoryStateStore().(*mautrix.MemoryStateStore)
	cli.StateStore = state
	log := zerolog.New(zerolog.ConsoleWriter{Out: logs, NoColor: true, TimeFormat: "15:04:05"}).
		Level(zerolog.DebugLevel).With().Timestamp().Str("device", name).Logger()
	mach := crypto.NewOlmMachine(cli, &log, crypto.NewMemoryStore(nil), state)
	if err := mach.Load(ctx); err != nil {
		t.Fatalf("%s: load olm machine: %v", name, err)
	}
	t.Cleanup(mach.Destroy)
	if err := mach.ShareKeys(ctx, -1); err != nil {
		t.Fatalf("%s: upload device keys: %v", name, err)
	}
	d := &e2eeDevice{
		t: t, name: name, cli: cli, mach: mach, state: state,
		syncer:   mautrix.NewDefaultSyncer(),
		events:   map[id.EventID]*event.Event{},
		changed:  map[id.UserID]int{},
		toDevice: map[string]int{},
	}
	// Count device-list changes before the Olm machine sees them: its
	// in-memory store filters device_lists.changed in place.
	d.syncer.OnSync(func(_ context.Context, resp *mautrix.RespSync, _ string) bool {
		for _, u := range resp.DeviceLists.Changed {
			d.changed[u]++
		}
		for _, evt := range resp.ToDevice.Events {
			d.toDevice[string(evt.Sender)+" "+evt.Type.Type+" "+string(evt.Content.VeryRaw)]++
		}
		return true
	})
	d.syncer.OnSync(mach.ProcessSyncResponse)
	d.syncer.OnEvent(func(ctx context.Context, evt *event.Event) {
		mautrix.UpdateStateStore(ctx, state, evt)
	})
	d.syncer.OnEventType(event.StateMember, mach.HandleMemberEvent)
	d.syncer.OnEventType(event.StateHistoryVisibility, mach.HandleHistoryVisibility)
	d.syncer.OnEventType(event.EventEncrypted, func(_ context.Context, evt *event.Event) {
		d.events[evt.ID] = evt
	})
	// The client starts: from here on it syncs incrementally, so it must
	// hear of every later device of users it tracks.
	if err := d.syncOnce(ctx, 0); err != nil {
		t.Fatalf("%s: initial sync: %v", name, err)
	}
	return d
}

// syncOnce runs one /sync and feeds it to the device.
func (d *e2eeDevice) syncOnce(ctx context.Context, timeout time.Duration) error {
	resp, err := d.cli.FullSyncRequest(ctx, mautrix.ReqSync{Since: d.since, Timeout: int(timeout.Milliseconds())})
	if err != nil {
		return err
	}
	if err := d.syncer.ProcessResponse(ctx, resp, d.since); err != nil {
		return err
	}
	initial := d.since == ""
	d.since = resp.NextBatch
	if initial {
		// An initial sync carries no device_lists: a client starting up
		// queries the devices of its own user itself (Element does), and
		// from then on learns of changes from device_lists.changed.
		// mautrix leaves this to the application.
		if _, err := d.mach.FetchKeys(ctx, []id.UserID{d.cli.UserID}, true); err != nil {
			return fmt.Errorf("query own devices after the initial sync: %w", err)
		}
	}
	return nil
}

// syncUntil syncs until cond returns nil; cond's last error says what was
// still missing when the deadline passed.
func (d *e2eeDevice) syncUntil(what string, cond func() error) {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), e2eeWait)
	defer cancel()
	for {
		last := cond()
		if last == nil {
			return
		}
		if err := d.syncOnce(ctx, e2eePoll); err != nil {
			d.t.Fatalf("%s: waiting for %s: %v (last: %v)", d.name, what, err, last)
		}
	}
}

// waitRoomReady syncs until the device knows the room is encrypted and
// every one of members has joined it.
func (d *e2eeDevice) waitRoomReady(roomID id.RoomID, members ...id.UserID) {
	d.t.Helper()
	ctx := context.Background()
	d.syncUntil("the encrypted room "+string(roomID), func() error {
		if enc, _ := d.state.IsEncrypted(ctx, roomID); !enc {
			return errors.New("room not known to be encrypted")
		}
		for _, u := range members {
			if !d.state.IsMembership(ctx, roomID, u, event.MembershipJoin) {
				return fmt.Errorf("%s not joined", u)
			}
		}
		return nil
	})
}

// sendEncrypted sends a Megolm-encrypted text message the way mautrix's
// cryptohelper does: if the room has no usable outbound session (none
// yet, or invalidated by a device-list or membership change), share a new
// one with every device of the joined members over to-device first. It
// returns the event ID and the Megolm session ID used.
func (d *e2eeDevice) sendEncrypted(roomID id.RoomID, body string) (id.EventID, id.SessionID) {
	d.t.Helper()
	ctx := context.Background()
	content := &event.MessageEventContent{MsgType: event.MsgText, Body: body}
	enc, err := d.mach.EncryptMegolmEvent(ctx, roomID, event.EventMessage, content)
	if crypto.IsShareError(err) {
		members, merr := d.state.GetRoomJoinedOrInvitedMembers(ctx, roomID)
		if merr != nil {
			d.t.Fatalf("%s: members of %s: %v", d.name, roomID, merr)
		}
		if err := d.mach.ShareGroupSession(ctx, roomID, members); err != nil {
			d.t.Fatalf("%s: share megolm session: %v", d.name, err)
		}
		enc, err = d.mach.EncryptMegolmEvent(ctx, roomID, event.EventMessage, content)
	}
	if err != nil {
		d.t.Fatalf("%s: encrypt: %v", d.name, err)
	}
	resp, err := d.cli.SendMessageEvent(ctx, roomID, event.EventEncrypted, enc)
	if err != nil {
		d.t.Fatalf("%s: send encrypted event: %v", d.name, err)
	}
	return resp.EventID, enc.SessionID
}

// waitDecrypt syncs until the device has received eventID in a timeline
// and decrypts it (its key may come in the same sync or a later one), and
// checks the plaintext is the text message body.
func (d *e2eeDevice) waitDecrypt(eventID id.EventID, body string) *event.Event {
	d.t.Helper()
	ctx := context.Background()
	var dec *event.Event
	d.syncUntil("decrypting "+string(eventID), func() error {
		evt := d.events[eventID]
		if evt == nil {
			return errors.New("event not received yet")
		}
		var err error
		dec, err = d.mach.DecryptMegolmEvent(ctx, evt)
		return err
	})
	checkPlaintext(d.t, d.name, dec, body)
	return dec
}

// checkPlaintext checks a decrypted event is the m.room.message with body.
func checkPlaintext(t *testing.T, who string, dec *event.Event, body string) {
	t.Helper()
	msg := dec.Content.AsMessage()
	if dec.Type != event.EventMessage || msg == nil || msg.Body != body {
		t.Fatalf("%s decrypted %s to %s %s, want m.room.message %q", who, dec.ID, dec.Type.Type, dec.Content.VeryRaw, body)
	}
}

// fetchEncrypted gets an event as the server serves it to c (GET
// /rooms/{roomId}/event/{eventId}), checks it is Megolm ciphertext with no
// plaintext left in it, and returns it ready for DecryptMegolmEvent.
func fetchEncrypted(t *testing.T, c *mautrix.Client, roomID id.RoomID, eventID id.EventID) *event.Event {
	t.Helper()
	evt, err := c.GetEvent(context.Background(), roomID, eventID)
	if err != nil {
		t.Fatalf("get event %s: %v", eventID, err)
	}
	evt.Type.Class = event.MessageEventType
	if evt.Type != event.EventEncrypted {
		t.Fatalf("event %s is %s, want m.room.encrypted", eventID, evt.Type.Type)
	}
	if _, has := evt.Content.Raw["body"]; has {
		t.Fatalf("encrypted event %s carries a plaintext body: %s", eventID, evt.Content.VeryRaw)
	}
	if err := evt.Content.ParseRaw(evt.Type); err != nil {
		t.Fatalf("parse encrypted event %s: %v", eventID, err)
	}
	if alg := evt.Content.AsEncrypted().Algorithm; alg != id.AlgorithmMegolmV1 {
		t.Fatalf("event %s algorithm %s, want %s", eventID, alg, id.AlgorithmMegolmV1)
	}
	return evt
}

// knownDevices lists the devices of user in the device's crypto store:
// what its Olm machine would share a Megolm session with.
func (d *e2eeDevice) knownDevices(user id.UserID) []id.DeviceID {
	d.t.Helper()
	devices, err := d.mach.CryptoStore.GetDevices(context.Background(), user)
	if err != nil {
		d.t.Fatalf("%s: devices of %s in the crypto store: %v", d.name, user, err)
	}
	var out []id.DeviceID
	for dev := range devices {
		out = append(out, dev)
	}
	slices.Sort(out)
	return out
}

// waitKnowsDevices syncs until the device's crypto store lists every one
// of devices for user.
func (d *e2eeDevice) waitKnowsDevices(user id.UserID, devices ...id.DeviceID) {
	d.t.Helper()
	d.syncUntil(fmt.Sprintf("devices %v of %s", devices, user), func() error {
		known := d.knownDevices(user)
		for _, dev := range devices {
			if !slices.Contains(known, dev) {
				return fmt.Errorf("knows only %v", known)
			}
		}
		return nil
	})
}

// checkToDeviceOnce checks that every to-device message the device got
// came exactly once, and that after one more sync, which acknowledges
// them, the server holds none for it any more.
func (d *e2eeDevice) checkToDeviceOnce(ts *testserver.Server) {
	d.t.Helper()
	ctx := context.Background()
	if err := d.syncOnce(ctx, 0); err != nil {
		d.t.Fatalf("%s: sync: %v", d.name, err)
	}
	if len(d.toDevice) == 0 {
		d.t.Errorf("%s received no to-device message", d.name)
	}
	for msg, n := range d.toDevice {
		if n != 1 {
			d.t.Errorf("%s received a to-device message %d times: %.200s", d.name, n, msg)
		}
	}
	if n, err := ts.DB().CountToDevice(ctx, d.cli.UserID, d.cli.DeviceID); err != nil || n != 0 {
		d.t.Errorf("%s: %d to-device messages still held after they were acknowledged (%v)", d.name, n, err)
	}
}

// resetDeviceLists forgets the device-list changes seen so far.
func (d *e2eeDevice) resetDeviceLists() { clear(d.changed) }

// passwordUIA answers a user-interactive auth challenge with the test
// password, the way a client asks its user; calls counts the challenges.
func passwordUIA(user id.UserID, password string, calls *int) mautrix.UIACallback {
	return func(resp *mautrix.RespUserInteractive) any {
		*calls++
		return &mautrix.ReqUIAuthLogin{
			BaseAuthData: mautrix.BaseAuthData{Type: mautrix.AuthTypePassword, Session: resp.Session},
			User:         string(user),
			Password:     password,
		}
	}
}

// createEncryptedRoom has creator create a private room with
// m.room.encryption in its initial state, invite the others and have them
// join it.
func createEncryptedRoom(t *testing.T, creator *mautrix.Client, others ...*mautrix.Client) id.RoomID {
	t.Helper()
	return createEncryptedRoomVersion(t, "", creator, others...)
}

// createEncryptedRoomVersion is createEncryptedRoom with a room version
// ("" for the server's default). The others join through the creator's
// server, which may be another one than theirs.
func createEncryptedRoomVersion(t *testing.T, version id.RoomVersion, creator *mautrix.Client, others ...*mautrix.Client) id.RoomID {
	t.Helper()
	ctx := context.Background()
	var invite []id.UserID
	for _, c := range others {
		invite = append(invite, c.UserID)
	}
	resp, err := creator.CreateRoom(ctx, &mautrix.ReqCreateRoom{
		Preset:      "private_chat",
		RoomVersion: version,
		Invite:      invite,
		InitialState: []*event.Event{{
			Type:    event.StateEncryption,
			Content: event.Content{Parsed: &event.EncryptionEventContent{Algorithm: id.AlgorithmMegolmV1}},
		}},
	})
	if err != nil {
		t.Fatalf("create encrypted room: %v", err)
	}
	via := []string{creator.UserID.Homeserver()}
	for _, c := range others {
		if _, err := c.JoinRoom(ctx, resp.RoomID.String(), &mautrix.ReqJoinRoom{Via: via}); err != nil {
			t.Fatalf("%s joins: %v", c.UserID, err)
		}
	}
	return resp.RoomID
}

// e2eeChat is the two-users-two-devices-each setup: alice (alice1,
// alice2) and bob (bob1, bob2) in an encrypted room, every device with
// its own crypto, keys uploaded and the room synced.
type e2eeChat struct {
	ts                         *testserver.Server
	logs                       *e2eeLogs
	room                       id.RoomID
	alice, bob                 id.UserID
	alice1, alice2, bob1, bob2 *e2eeDevice
}

func newE2EEChat(t *testing.T) *e2eeChat {
	t.Helper()
	ts := testserver.New(t)
	return newE2EEChatOn(t, ts, ts)
}

// newE2EEChatOn is newE2EEChat with alice's devices on server a and bob's
// on b (the same server, or two federating ones).
func newE2EEChatOn(t *testing.T, a, b *testserver.Server) *e2eeChat {
	t.Helper()
	logs := newE2EELogs(t)
	c := &e2eeChat{ts: a, logs: logs}
	c.alice1 = newE2EEDevice(t, logs, "alice1", a.RegisterUser("alice"))
	c.alice2 = newE2EEDevice(t, logs, "alice2", a.Login("alice", testserver.DefaultPassword))
	c.bob1 = newE2EEDevice(t, logs, "bob1", b.RegisterUser("bob"))
	c.bob2 = newE2EEDevice(t, logs, "bob2", b.Login("bob", testserver.DefaultPassword))
	c.alice, c.bob = c.alice1.cli.UserID, c.bob1.cli.UserID
	c.room = createEncryptedRoom(t, c.alice1.cli, c.bob1.cli)
	for _, d := range c.devices() {
		d.waitRoomReady(c.room, c.alice, c.bob)
	}
	// alice1 and bob1 were already syncing when alice2 and bob2 uploaded
	// their keys: they learn of them from device_lists.changed (other
	// users' devices are fetched when a room key is first shared).
	own := map[id.UserID][]id.DeviceID{
		c.alice: {c.alice1.cli.DeviceID, c.alice2.cli.DeviceID},
		c.bob:   {c.bob1.cli.DeviceID, c.bob2.cli.DeviceID},
	}
	for _, d := range c.devices() {
		d.waitKnowsDevices(d.cli.UserID, own[d.cli.UserID]...)
	}
	return c
}

func (c *e2eeChat) devices() []*e2eeDevice {
	return []*e2eeDevice{c.alice1, c.alice2, c.bob1, c.bob2}
}

// addDevice logs user in on a new device with its own crypto and syncs
// it into the room.
func (c *e2eeChat) addDevice(t *testing.T, name, localpart string) *e2eeDevice {
	t.Helper()
	d := newE2EEDevice(t, c.logs, name, c.ts.Login(localpart, testserver.DefaultPassword))
	d.waitRoomReady(c.room, c.alice, c.bob)
	return d
}

// deleteDeviceWithUIA deletes a device through DELETE /devices/{deviceId}:
// the first request must be challenged with m.login.password, and the
// answer with the account password must succeed.
func deleteDeviceWithUIA(t *testing.T, c *mautrix.Client, deviceID id.DeviceID) {
	t.Helper()
	ctx := context.Background()
	body, err := c.MakeFullRequest(ctx, mautrix.FullRequest{
		Method: http.MethodDelete, URL: c.BuildClientURL("v3", "devices", deviceID), RequestJSON: struct{}{},
	})
	var httpErr mautrix.HTTPError
	if !errors.As(err, &httpErr) || httpErr.Response == nil || httpErr.Response.StatusCode != http.StatusUnauthorized {
		t.Fatalf("delete device without auth: want a 401 user-interactive auth challenge, got %v", err)
	}
	var calls int
	uia := passwordUIA(c.UserID, testserver.DefaultPassword, &calls)
	var challenge mautrix.RespUserInteractive
	if err := json.Unmarshal(body, &challenge); err != nil || challenge.Session == "" {
		t.Fatalf("delete device: bad UIA challenge %q: %v", body, err)
	}
	if !challenge.HasSingleStageFlow(mautrix.AuthTypePassword) {
		t.Fatalf("delete device: challenge offers no m.login.password flow: %+v", challenge.Flows)
	}
	if err := c.DeleteDevice(ctx, deviceID, &mautrix.ReqDeleteDevice[any]{Auth: uia(&challenge)}); err != nil {
		t.Fatalf("delete device with password auth: %v", err)
	}
}

// e2eeBackup is a key backup version (m.megolm_backup.v1.curve25519-aes-sha2)
// with its private key, and the recovery key of the secret storage that
// holds that private key.
type e2eeBackup struct {
	version     id.KeyBackupVersion
	key         *backup.MegolmBackupKey
	recoveryKey string
}

// createBackupWithRecoveryKey does what a client's "set up secure backup"
// does: a new backup version whose auth_data is the backup public key
// signed by the device, and the backup's private key put in secret
// storage under a new default key, opened by a recovery key.
func (d *e2eeDevice) createBackupWithRecoveryKey() *e2eeBackup {
	d.t.Helper()
	ctx := context.Background()
	key, err := backup.NewMegolmBackupKey()
	if err != nil {
		d.t.Fatal(err)
	}
	authData := backup.MegolmAuthData{PublicKey: id.Ed25519(base64.RawStdEncoding.EncodeToString(key.PublicKey().Bytes()))}
	sig, err := d.mach.GetAccount().SignJSON(authData)
	if err != nil {
		d.t.Fatal(err)
	}
	authData.Signatures = signatures.NewSingleSignature(d.cli.UserID, id.KeyAlgorithmEd25519, d.cli.DeviceID.String(), sig)
	created, err := d.cli.CreateKeyBackupVersion(ctx, &mautrix.ReqRoomKeysVersionCreate[backup.MegolmAuthData]{
		Algorithm: id.KeyBackupAlgorithmMegolmBackupV1, AuthData: authData,
	})
	if err != nil {
		d.t.Fatalf("%s: create backup version: %v", d.name, err)
	}
	ssssKey, err := d.mach.SSSS.GenerateAndUploadKey(ctx, "")
	if err != nil {
		d.t.Fatalf("%s: secret storage key: %v", d.name, err)
	}
	if err := d.mach.SSSS.SetEncryptedAccountData(ctx, event.AccountDataMegolmBackupKey, key.Bytes(), ssssKey); err != nil {
		d.t.Fatalf("%s: backup key into secret storage: %v", d.name, err)
	}
	if err := d.mach.SSSS.SetDefaultKeyID(ctx, ssssKey.ID); err != nil {
		d.t.Fatalf("%s: default secret storage key: %v", d.name, err)
	}
	return &e2eeBackup{version: created.Version, key: key, recoveryKey: ssssKey.RecoveryKey()}
}

// backUpRoom uploads every inbound Megolm session the device holds for
// room, encrypted to the backup's public key. It returns the sessions
// uploaded and the number of keys the server then counts in the backup.
func (d *e2eeDevice) backUpRoom(bk *e2eeBackup, room id.RoomID) ([]id.SessionID, int) {
	d.t.Helper()
	ctx := context.Background()
	sessions, err := d.mach.CryptoStore.GetGroupSessionsForRoom(ctx, room).AsList()
	if err != nil {
		d.t.Fatalf("%s: sessions of %s: %v", d.name, room, err)
	}
	req := &mautrix.ReqKeyBackup{Rooms: map[id.RoomID]mautrix.ReqRoomKeyBackup{room: {Sessions: map[id.SessionID]mautrix.ReqKeyBackupData{}}}}
	var ids []id.SessionID
	for _, igs := range sessions {
		req.Rooms[room].Sessions[igs.ID()] = backupSession(d.t, bk.key, igs)
		ids = append(ids, igs.ID())
	}
	upd, err := d.cli.PutKeysInBackup(ctx, bk.version, req)
	if err != nil {
		d.t.Fatalf("%s: upload keys to backup: %v", d.name, err)
	}
	if upd.ETag == "" {
		d.t.Errorf("%s: backup upload answered no etag", d.name)
	}
	return ids, upd.Count
}

// restoreBackup does what a new login's "restore from backup" does: the
// user types the recovery key, secret storage gives the backup's private
// key, and the latest backup gives the sessions, which must be version's.
func (d *e2eeDevice) restoreBackup(recoveryKey string, version id.KeyBackupVersion) {
	d.t.Helper()
	ctx := context.Background()
	keyID, keyData, err := d.mach.SSSS.GetDefaultKeyData(ctx)
	if err != nil {
		d.t.Fatalf("%s reads secret storage: %v", d.name, err)
	}
	key, err := keyData.VerifyRecoveryKey(keyID, recoveryKey)
	if err != nil {
		d.t.Fatalf("%s: recovery key: %v", d.name, err)
	}
	raw, err := d.mach.SSSS.GetDecryptedAccountData(ctx, event.AccountDataMegolmBackupKey, key)
	if err != nil {
		d.t.Fatalf("%s: backup key from secret storage: %v", d.name, err)
	}
	restoredKey, err := backup.MegolmBackupKeyFromBytes(raw)
	if err != nil {
		d.t.Fatal(err)
	}
	got, err := d.mach.DownloadAndStoreLatestKeyBackup(ctx, restoredKey)
	if err != nil || got != version {
		d.t.Fatalf("%s: restore backup: version %q (%v), want %q", d.name, got, err, version)
	}
}

// backupSession encrypts an inbound Megolm session for the backup, as
// KeyBackupData with m.megolm_backup.v1 session_data.
func backupSession(t *testing.T, key *backup.MegolmBackupKey, igs *crypto.InboundGroupSession) mautrix.ReqKeyBackupData {
	t.Helper()
	first := igs.Internal.FirstKnownIndex()
	exported, err := igs.Internal.Export(first)
	if err != nil {
		t.Fatal(err)
	}
	data, err := backup.EncryptSessionData(key, backup.MegolmSessionData{
		Algorithm:          id.AlgorithmMegolmV1,
		ForwardingKeyChain: igs.ForwardingChains,
		SenderClaimedKeys:  backup.SenderClaimedKeys{Ed25519: igs.SigningKey},
		SenderKey:          igs.SenderKey,
		SessionKey:         string(exported),
		SharedHistory:      igs.SharedHistory,
	})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(data)
	if err != nil {
		t.Fatal(err)
	}
	return mautrix.ReqKeyBackupData{
		FirstMessageIndex: int(first),
		ForwardedCount:    len(igs.ForwardingChains),
		IsVerified:        true,
		SessionData:       raw,
	}
}

// e2eeVerifier is a device's interactive verification: mautrix's
// verification helper wired to the device's syncer, and what its
// callbacks reported, for the test to act on between syncs (the helper
// calls some callbacks with its lock held, so acting inside them would
// deadlock).
type e2eeVerifier struct {
	d  *e2eeDevice
	vh *verificationhelper.VerificationHelper

	mu        sync.Mutex
	requested id.VerificationTransactionID
	ready     bool
	sas       *e2eeSAS
	done      bool
	cancelled string
}

// e2eeSAS is the short authentication string a device showed.
type e2eeSAS struct {
	emojis   string
	decimals []int
}

func (v *e2eeVerifier) VerificationRequested(_ context.Context, txn id.VerificationTransactionID, _ id.UserID, _ id.DeviceID) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.requested = txn
}

func (v *e2eeVerifier) VerificationReady(context.Context, id.VerificationTransactionID, id.DeviceID, bool, bool, *verificationhelper.QRCode) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.ready = true
}

func (v *e2eeVerifier) VerificationCancelled(_ context.Context, _ id.VerificationTransactionID, code event.VerificationCancelCode, reason string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.cancelled = fmt.Sprintf("%s: %s", code, reason)
}

func (v *e2eeVerifier) VerificationDone(context.Context, id.VerificationTransactionID, event.VerificationMethod) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.done = true
}

func (v *e2eeVerifier) ShowSAS(_ context.Context, _ id.VerificationTransactionID, emojis []rune, _ []string, decimals []int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.sas = &e2eeSAS{emojis: string(emojis), decimals: decimals}
}

// state is a snapshot of what the callbacks reported.
func (v *e2eeVerifier) state() (requested id.VerificationTransactionID, ready bool, sas *e2eeSAS, done bool, cancelled string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.requested, v.ready, v.sas, v.done, v.cancelled
}

// newVerifier gives the device mautrix's verification helper (SAS only,
// over to-device messages), fed by the device's own syncs.
func (d *e2eeDevice) newVerifier() *e2eeVerifier {
	d.t.Helper()
	v := &e2eeVerifier{d: d}
	// The helper registers its handlers on the client's syncer and wants
	// a crypto helper on the client (for in-room verification only).
	d.cli.Syncer = d.syncer
	d.cli.Crypto = e2eeCrypto{d.mach}
	v.vh = verificationhelper.NewVerificationHelper(d.cli, d.mach, nil, v, false, false, true)
	if err := v.vh.Init(context.Background()); err != nil {
		d.t.Fatalf("%s: init verification helper: %v", d.name, err)
	}
	return v
}

// e2eeCrypto is the mautrix.CryptoHelper of a test device: its Olm
// machine, without the automatic key requests a real client makes.
type e2eeCrypto struct{ mach *crypto.OlmMachine }

func (c e2eeCrypto) Encrypt(ctx context.Context, roomID id.RoomID, evtType event.Type, content any) (*event.EncryptedEventContent, error) {
	return c.mach.EncryptMegolmEvent(ctx, roomID, evtType, content)
}

func (c e2eeCrypto) Decrypt(ctx context.Context, evt *event.Event) (*event.Event, error) {
	return c.mach.DecryptMegolmEvent(ctx, evt)
}

func (c e2eeCrypto) WaitForSession(ctx context.Context, roomID id.RoomID, senderKey id.SenderKey, sessionID id.SessionID, timeout time.Duration) bool {
	return c.mach.WaitForSession(ctx, roomID, senderKey, sessionID, timeout)
}

func (e2eeCrypto) RequestSession(context.Context, id.RoomID, id.SenderKey, id.SessionID, id.UserID, id.DeviceID) {
}

func (e2eeCrypto) Init(context.Context) error { return nil }

// syncBothUntil syncs two devices in turns until cond holds: each waits
// on the other (a verification is a dialogue), so neither may long-poll
// for the whole wait. Each sync long-polls briefly and returns as soon as
// the server has something for the device.
func syncBothUntil(t *testing.T, what string, a, b *e2eeDevice, cond func() error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), e2eeWait)
	defer cancel()
	for {
		last := cond()
		if last == nil {
			return
		}
		for _, d := range []*e2eeDevice{a, b} {
			if err := d.syncOnce(ctx, 500*time.Millisecond); err != nil {
				t.Fatalf("waiting for %s: %s: %v (last: %v)", what, d.name, err, last)
			}
		}
	}
}

// receivedToDevice reports whether the device got a to-device message of
// type evType.
func (d *e2eeDevice) receivedToDevice(evType event.Type) bool {
	for msg := range d.toDevice {
		if parts := strings.SplitN(msg, " ", 3); len(parts) == 3 && parts[1] == evType.Type {
			return true
		}
	}
	return false
}
