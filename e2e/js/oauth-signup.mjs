// A new user signs up through Palpo's OAuth 2.0 server with Element's SDK
// (matrix-js-sdk's OAuth2 class, the OAuth 2.0 API as Element's apps use
// it), then a second device signs in with the device authorization grant.
// Run by server/oauth/element_sdk_test.go, which plays the person's browser:
//   node oauth-signup.mjs BASE_URL
// This script prints one JSON object per line for the test to act on:
//   {"authorize": URL}  open URL in the browser, sign up, allow; the test
//                       answers on stdin with {"code": CODE}
//   {"user_code": CODE} approve this device code on the /link page
//   {"ok": true}        every step passed
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
const verbose = !!process.env.PALPO_E2E_DEBUG;
const quiet = {
  trace() {}, debug(...a) { if (verbose) console.error(...a); }, info(...a) { if (verbose) console.error(...a); },
  warn: console.error, error: console.error, getChild() { return quiet; },
};

const [baseUrl] = process.argv.slice(2);
function fail(msg) {
  console.error("FAIL: " + msg);
  process.exit(1);
}
setTimeout(() => fail("timed out"), 60_000).unref();
const say = (obj) => console.log(JSON.stringify(obj));

// Lines from the test, one at a time.
const lines = (async function* () {
  let buf = "";
  for await (const chunk of process.stdin) {
    buf += chunk;
    let i;
    while ((i = buf.indexOf("\n")) >= 0) {
      yield JSON.parse(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  }
})();

async function expectUnknownToken(client, what) {
  try {
    await client.whoami();
  } catch (e) {
    if (e.errcode === "M_UNKNOWN_TOKEN") return;
    fail(`${what}: ${e.errcode} ${e.message}`);
  }
  fail(`${what}: the token still works`);
}

const anon = sdk.createClient({ baseUrl, logger: quiet });
const versions = await anon.getVersions();
if (!versions.versions.includes("v1.15")) fail("v1.15 not advertised: " + versions.versions);
const metadata = await anon.getAuthMetadata(); // validated by the SDK

const redirectUri = "https://app.example.org/callback";
const clientId = await sdk.OAuth2.registerClient(metadata, {
  client_name: "JS SDK test",
  client_uri: "https://app.example.org/",
  redirect_uris: [redirectUri],
  application_type: "web",
  tos_uri: "https://app.example.org/tos",
}, quiet);

// Sign up (prompt=create) in the browser.
const oauth = new sdk.OAuth2(metadata, { clientId, deviceId: "JSSDKDEV01" }, quiet);
say({ authorize: await oauth.generateAuthorizationCodeGrantUrl("js-state-1", redirectUri, "fragment", "create") });
const { value: answer } = await lines.next();
if (answer.state !== "js-state-1") fail("state not returned: " + JSON.stringify(answer));
const tokens = await oauth.completeAuthorizationCodeGrant(answer.code, redirectUri);
if (!tokens.refresh_token || !tokens.expires_in) fail("no refresh token or expiry: " + JSON.stringify(tokens));

const client = sdk.createClient({ baseUrl, accessToken: tokens.access_token, logger: quiet });
const me = await client.whoami();
if (me.device_id !== "JSSDKDEV01" || !me.user_id.startsWith("@erin:")) fail("whoami " + JSON.stringify(me));
client.credentials.userId = me.user_id;
client.deviceId = me.device_id;
await client.createRoom({ name: "From the SDK" });
const prepared = new Promise((resolve) => client.on(sdk.ClientEvent.Sync, (s) => s === "PREPARED" && resolve()));
await client.startClient({ initialSyncLimit: 5 });
await prepared;
client.stopClient();
if (!client.getRooms().some((r) => r.name === "From the SDK")) fail("the room is not in the sync");

// Refresh, then the old access token is refused once the new one is used.
const refreshed = await oauth.performRefreshTokenGrant(tokens.refresh_token);
const client2 = sdk.createClient({ baseUrl, accessToken: refreshed.access_token, logger: quiet });
if ((await client2.whoami()).device_id !== "JSSDKDEV01") fail("refreshed token is another device");
await expectUnknownToken(sdk.createClient({ baseUrl, accessToken: tokens.access_token, logger: quiet }), "old access token");

// A second device signs in with the device authorization grant.
const tv = new sdk.OAuth2(metadata, { clientId, deviceId: "JSSDKTV001" }, quiet);
const session = await tv.startDeviceAuthorizationGrant();
say({ user_code: session.user_code, verification_uri_complete: session.verification_uri_complete });
const tvTokens = await tv.waitForDeviceAuthorizationGrant(session);
if (tvTokens.error) fail("device grant: " + JSON.stringify(tvTokens));
const tvClient = sdk.createClient({ baseUrl, accessToken: tvTokens.access_token, logger: quiet });
const tvMe = await tvClient.whoami();
if (tvMe.device_id !== "JSSDKTV001" || tvMe.user_id !== me.user_id) fail("device grant whoami " + JSON.stringify(tvMe));

// Sign out: revoke each session's token.
await oauth.revokeToken(refreshed.access_token, "access_token");
await expectUnknownToken(client2, "revoked access token");
await tv.revokeToken(tvTokens.refresh_token, "refresh_token");
await expectUnknownToken(tvClient, "access token of a revoked refresh token");
say({ ok: true });
process.exit(0);
