// Two users chat in an encrypted room through Palpo, each with Element's SDK
// (matrix-js-sdk and its Rust crypto), and each must decrypt the other's
// message. Run by server/element_sdk_test.go, which starts the server and
// creates the accounts: node encrypted-chat.mjs BASE_URL CREDENTIALS_JSON [sliding]
// A user's credentials may carry their own baseUrl: with alice and bob on
// two federating servers, the invite, the join, the device lists, the keys
// and the room keys all cross between the servers.
// With "sliding", both clients sync with simplified sliding sync (MSC4186),
// as Element Web's sliding sync mode does, instead of /sync.
//
// The SDK declares Node 22; on Node 20 it needs Promise.withResolvers.
if (!Promise.withResolvers) {
  Promise.withResolvers = function () {
    let resolve, reject;
    const promise = new Promise((res, rej) => { resolve = res; reject = rej; });
    return { promise, resolve, reject };
  };
}

const sdk = await import("matrix-js-sdk");
// The SDK logs every step at debug level; keep warnings unless asked.
const verbose = !!process.env.PALPO_E2E_DEBUG;
const quiet = {
  trace() {}, debug(...a) { if (verbose) console.debug(...a); }, info(...a) { if (verbose) console.info(...a); },
  warn: console.warn, error: console.error, getChild() { return quiet; },
};

const [defaultBaseUrl, credsJSON, mode] = process.argv.slice(2);
const sliding = mode === "sliding";
const { SlidingSync } = await import("matrix-js-sdk/lib/sliding-sync.js");
const creds = JSON.parse(credsJSON);
const deadline = Date.now() + 60_000;

function fail(msg) {
  console.error("FAIL: " + msg);
  process.exit(1);
}
setTimeout(() => fail("timed out"), 60_000).unref();

async function start({ userId, accessToken, deviceId, baseUrl = defaultBaseUrl }) {
  const client = sdk.createClient({ baseUrl, userId, accessToken, deviceId, logger: quiet });
  await client.initRustCrypto({ useIndexedDB: false });
  const ready = new Promise((resolve) => {
    client.on(sdk.ClientEvent.Sync, (state) => {
      if (state === "PREPARED") resolve();
    });
  });
  if (sliding) {
    // One list over every room, with all state (the crypto needs the
    // members), and the to-device, e2ee, account data, receipts and typing
    // extensions the SDK registers by itself.
    const everything = { timeline_limit: 20, required_state: [["*", "*"]] };
    const lists = new Map([["all", { ranges: [[0, 99]], ...everything }]]);
    const slidingSync = new SlidingSync(baseUrl, lists, everything, client, 5000);
    await client.startClient({ slidingSync });
  } else {
    await client.startClient({ initialSyncLimit: 20 });
  }
  await ready;
  return client;
}

// waitForMessage resolves with the first decrypted m.room.message in roomId
// whose body is wanted.
function waitForMessage(client, roomId, wanted) {
  return new Promise((resolve, reject) => {
    const check = (ev) => {
      if (ev.getRoomId() !== roomId || ev.getType() !== "m.room.message") return;
      if (ev.isDecryptionFailure()) {
        reject(new Error(`${client.getUserId()} could not decrypt ${ev.getId()}: ${ev.decryptionFailureReason}`));
        return;
      }
      if (ev.getContent().body === wanted) resolve(ev);
    };
    client.on(sdk.MatrixEventEvent.Decrypted, check);
    client.on(sdk.RoomEvent.Timeline, (ev) => {
      if (!ev.isEncrypted()) check(ev);
    });
  });
}

async function waitFor(what, cond) {
  while (!(await cond())) {
    if (Date.now() > deadline) fail("timed out waiting for " + what);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const alice = await start(creds.alice);
const bob = await start(creds.bob);

const { room_id: roomId } = await alice.createRoom({
  invite: [creds.bob.userId],
  initial_state: [{ type: "m.room.encryption", state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } }],
});
await waitFor("bob's invite", () => bob.getRoom(roomId)?.getMyMembership() === "invite");
await bob.joinRoom(roomId);
await waitFor("alice to see bob join", () => alice.getRoom(roomId)?.getMember(creds.bob.userId)?.membership === "join");
await waitFor("both to know the room is encrypted", async () =>
  (await alice.getCrypto().isEncryptionEnabledInRoom(roomId)) && (await bob.getCrypto().isEncryptionEnabledInRoom(roomId)));

const bobGets = waitForMessage(bob, roomId, "hello bob");
const sent = await alice.sendMessage(roomId, { msgtype: "m.text", body: "hello bob" });
const got = await bobGets;
if (!got.isEncrypted()) fail("alice's message was not encrypted");
console.log(`bob decrypted ${sent.event_id}`);

const aliceGets = waitForMessage(alice, roomId, "hello alice");
await bob.sendMessage(roomId, { msgtype: "m.text", body: "hello alice" });
const back = await aliceGets;
if (!back.isEncrypted()) fail("bob's message was not encrypted");
console.log(`alice decrypted ${back.getId()}`);

alice.stopClient();
bob.stopClient();
console.log("ok");
process.exit(0);
