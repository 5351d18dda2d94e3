// Writes signature vectors produced by the official `pusher` Node SDK, so
// that herald-unit-tests --sdk-vectors FILE can check Herald's signature code
// against a real client instead of against itself.
//
// Usage: node sdk-vectors.mjs [OUTPUT_FILE]   (stdout when no file is given)
//
// HTTP API requests are captured as the SDK sends them: the SDK talks to a
// loopback HTTP server started here, which records the method, path, raw
// query string and body of each request and replies 200 {}.
import { createServer } from "node:http";
import { writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import Pusher from "pusher";

const require = createRequire(import.meta.url);
const sdkVersion = require("pusher/package.json").version;

const app = { id: "42", key: "app-key", secret: "app-secret" };

// A fixed 32-byte master key, needed only so the SDK agrees to authorize
// private-encrypted- channels. The signature does not cover shared_secret.
const encryptionMasterKeyBase64 = Buffer.alloc(32, 7).toString("base64");

function startRecorder() {
  const requests = [];
  const server = createServer((req, res) => {
    const chunks = [];
    req.on("data", (chunk) => chunks.push(chunk));
    req.on("end", () => {
      const questionMark = req.url.indexOf("?");
      requests.push({
        method: req.method,
        path: questionMark < 0 ? req.url : req.url.slice(0, questionMark),
        query: questionMark < 0 ? "" : req.url.slice(questionMark + 1),
        body: Buffer.concat(chunks).toString("utf8"),
      });
      res.writeHead(200, { "content-type": "application/json" });
      res.end("{}");
    });
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => resolve({ server, requests }));
  });
}

function channelAuthVectors(pusher) {
  const cases = [
    ["1234.5678", "private-orders.7"],
    ["1234.5678", "private-cache-ticker"],
    ["99.1", "private-encrypted-vault.7"],
    ["99.1", "private-encrypted-cache-vault.7"],
    ["1234.5678", "presence-room.7", { user_id: "7", user_info: { name: "Alice" } }],
    ["1234.5678", "presence-room.7", { user_id: 7, user_info: { name: "Alice" } }],
    ["55.66", "presence-cache-room.9", { user_id: "8" }],
    // Non-ASCII text and a slash: JSON.stringify keeps both as they are,
    // so the HMAC is over UTF-8 bytes.
    ["55.66", "presence-room.7", { user_id: "9", user_info: { name: "Zoë / 東京" } }],
    ["1.2", "private-App.Models.User.7"],
  ];
  return cases.map(([socketId, channel, data]) => {
    const result = pusher.authorizeChannel(socketId, channel, data);
    return {
      socket_id: socketId,
      channel,
      channel_data: result.channel_data ?? null,
      auth: result.auth,
    };
  });
}

function userAuthVectors(pusher) {
  const cases = [
    ["1234.5678", { id: "7", user_info: { name: "Alice" } }],
    ["1234.5678", { id: "7", user_info: { name: "Alice" }, watchlist: ["8", "9"] }],
    ["3.4", { id: "user@example.com" }],
  ];
  return cases.map(([socketId, userData]) => {
    const result = pusher.authenticateUser(socketId, userData);
    return { socket_id: socketId, user_data: result.user_data, auth: result.auth };
  });
}

function webhookVectors(pusher) {
  const bodies = [
    '{"time_ms":1700000000123,"events":[{"name":"channel_occupied","channel":"presence-room.7"}]}',
    '{"time_ms":1700000000456,"events":[{"name":"member_added","channel":"presence-room.7","user_id":"8"}]}',
  ];
  const token = new Pusher.Token(app.key, app.secret);
  return bodies.map((body) => {
    const signature = token.sign(body);
    const webhook = pusher.webhook({
      headers: {
        "x-pusher-key": app.key,
        "x-pusher-signature": signature,
        "content-type": "application/json",
      },
      rawBody: body,
    });
    if (!webhook.isValid()) {
      throw new Error("the SDK rejected a webhook signature it produced itself");
    }
    return { body, signature };
  });
}

async function requestVectors(options) {
  const calls = [
    ["trigger one channel with socket_id", (client) =>
      client.trigger("private-orders.7", "App\\Events\\OrderShipped", { order_id: 7 },
                     { socket_id: "1234.5678" })],
    ["trigger several channels", (client) =>
      client.trigger(["news", "cache-ticker", "presence-room.7"], "price-updated", "{\"p\":101}")],
    ["trigger with info", (client) =>
      client.trigger("presence-room.7", "typing", { x: 1 },
                     { info: "user_count,subscription_count" })],
    ["trigger non-ASCII data", (client) =>
      client.trigger("news", "greeting", { text: "héllo ✓ 東京" })],
    ["batch trigger", (client) =>
      client.triggerBatch([
        { name: "typing", channel: "private-orders.7", data: { x: 1 }, socket_id: "1234.5678" },
        { name: "typing", channel: "private-orders.8", data: { x: 2 }, info: "subscription_count" },
      ])],
    ["send to user", (client) => client.sendToUser("7", "notice", { n: 1 })],
    ["terminate user connections", (client) => client.terminateUserConnections("7")],
    ["list channels with prefix and info", (client) =>
      client.get({ path: "/channels", params: { filter_by_prefix: "presence-", info: "user_count" } })],
    ["channel info with two attributes", (client) =>
      client.get({ path: "/channels/presence-room.7",
                   params: { info: "user_count,subscription_count" } })],
    ["presence users", (client) => client.get({ path: "/channels/presence-room.7/users" })],
  ];

  const { server, requests } = await startRecorder();
  const { port } = server.address();
  const client = new Pusher({ ...options, host: "127.0.0.1", port, useTLS: false });
  const vectors = [];
  try {
    for (const [name, call] of calls) {
      const before = requests.length;
      await call(client);
      if (requests.length !== before + 1) {
        throw new Error(`${name}: expected one HTTP request, saw ${requests.length - before}`);
      }
      vectors.push({ name, ...requests[before] });
    }
  } finally {
    server.close();
  }
  return vectors;
}

async function main() {
  const options = {
    appId: app.id,
    key: app.key,
    secret: app.secret,
    encryptionMasterKeyBase64,
  };
  const pusher = new Pusher(options);

  const vectors = {
    sdk: `pusher (Node) ${sdkVersion}`,
    app,
    channel_auth: channelAuthVectors(pusher),
    user_auth: userAuthVectors(pusher),
    webhooks: webhookVectors(pusher),
    requests: await requestVectors(options),
  };

  const text = JSON.stringify(vectors, null, 2) + "\n";
  if (process.argv[2]) {
    writeFileSync(process.argv[2], text);
  } else {
    process.stdout.write(text);
  }
}

await main();
