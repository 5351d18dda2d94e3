// A loopback stand-in for the server side of a Laravel application that
// broadcasts with the `pusher` or `reverb` driver. Both drivers use
// Laravel's PusherBroadcaster with the Pusher PHP SDK 7.2, so the stand-in
// copies what that pair sends:
//
// - POST /broadcasting/auth responds like PusherBroadcaster::auth: 403 for
//   an unknown user or when no channel callback grants access, {auth} for
//   private channels, {auth, shared_secret} for private-encrypted- ones and
//   {auth, channel_data} for presence channels, with user_id as a string
//   and user_info set to what the channel callback returned.
// - JSON is encoded as PHP's json_encode does, which escapes "/" as "\/"
//   and non-ASCII characters as \uXXXX. A presence signature covers those
//   exact channel_data bytes.
// - broadcast() sends POST /apps/{id}/events in the shape of the PHP SDK:
//   "channel" for one channel, "channels" for several, socket_id when the
//   request is a toOthers() broadcast, and for a private-encrypted- channel
//   data encrypted as the SDK's PusherCrypto does it.
//
// Signatures come from the `pusher` Node SDK (authorizeChannel and its
// Token class), never from code shared with the server.

import assert from 'node:assert/strict';
import http from 'node:http';

import Pusher from 'pusher';
import nacl from 'tweetnacl';

import { signedPost } from './relay-request.mjs';

/**
 * Encodes `value` as PHP's json_encode does with its default flags: "/"
 * becomes "\/" and every UTF-16 code unit above U+007F becomes a lowercase
 * \uXXXX escape.
 */
export function phpJsonEncode(value) {
  // Both characters can occur only inside JSON strings, so replacing them
  // anywhere in the text is safe.
  return JSON.stringify(value)
    .replace(/\//g, '\\/')
    .replace(/[\u0080-\uffff]/g, (character) => `\\u${character.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Converts a Laravel channel pattern such as 'orders.{orderId}' to an anchored RegExp. */
function channelPatternRegExp(pattern) {
  const parts = pattern.split(/\{[^}]*\}/).map((part) => part.replace(/[.*+?^$()|[\]\\]/g, '\\$&'));
  return new RegExp(`^${parts.join('([^.]+)')}$`);
}

// The channel name a routes/channels.php pattern matches, as
// PusherBroadcaster::normalizeChannelName computes it.
function normalizeChannelName(channelName) {
  for (const prefix of ['private-encrypted-', 'private-', 'presence-']) {
    if (channelName.startsWith(prefix)) {
      return channelName.slice(prefix.length);
    }
  }
  return channelName;
}

function readBody(request) {
  return new Promise((resolve, reject) => {
    let body = '';
    request.setEncoding('utf8');
    request.on('data', (chunk) => {
      body += chunk;
    });
    request.on('end', () => resolve(body));
    request.on('error', reject);
  });
}

export class LaravelApp {
  /**
   * cluster: the Herald cluster whose relay the app publishes to.
   * app: { id, key, secret } of the Herald app.
   * users: map from bearer token to the user object (with an `id`).
   * channels: map from a routes/channels.php pattern to its callback
   *   (user, ...parameters), which returns a falsy value to deny access and
   *   otherwise true or the presence user_info.
   * encryptionMasterKeyBase64: 32-byte master key of private-encrypted-
   *   channels, as in the `pusher` SDK options.
   */
  constructor(cluster, app, { users, channels, encryptionMasterKeyBase64 }) {
    this.cluster = cluster;
    this.app = app;
    this.users = users;
    this.routes = Object.entries(channels).map(([pattern, callback]) => ({
      pattern,
      regExp: channelPatternRegExp(pattern),
      callback,
    }));
    this.sdk = new Pusher({
      appId: app.id,
      key: app.key,
      secret: app.secret,
      host: '127.0.0.1',
      port: String(cluster.relayPort),
      useTLS: false,
      timeout: 10000,
      encryptionMasterKeyBase64,
    });
    // One entry per request to /broadcasting/auth:
    // { token, socketId, channelName, contentType, status, body }.
    this.authRequests = [];
    this.server = http.createServer((request, response) => {
      this.#handle(request, response).catch((error) => {
        response.writeHead(500, { 'content-type': 'text/plain' }).end(String(error.stack));
      });
    });
  }

  /** Starts the app's HTTP server on a free loopback port and returns the app. */
  static async start(cluster, app, options) {
    const laravel = new LaravelApp(cluster, app, options);
    await new Promise((resolve) => {
      laravel.server.listen(0, '127.0.0.1', resolve);
    });
    return laravel;
  }

  /** URL for Echo's authEndpoint option. */
  get authEndpoint() {
    return `http://127.0.0.1:${this.server.address().port}/broadcasting/auth`;
  }

  /** Auth requests made for `channelName`. */
  authRequestsFor(channelName) {
    return this.authRequests.filter((entry) => entry.channelName === channelName);
  }

  async #handle(request, response) {
    const body = await readBody(request);
    if (request.method !== 'POST' || request.url !== '/broadcasting/auth') {
      response.writeHead(404, { 'content-type': 'application/json' }).end('{"message":"Not Found"}');
      return;
    }

    const form = new URLSearchParams(body);
    const socketId = form.get('socket_id');
    const channelName = form.get('channel_name');
    const token = /^Bearer (.+)$/.exec(request.headers.authorization ?? '')?.[1] ?? null;
    const entry = { token, socketId, channelName, contentType: request.headers['content-type'], status: 0, body: null };
    this.authRequests.push(entry);

    const reply = (status, payload) => {
      entry.status = status;
      entry.body = phpJsonEncode(payload);
      response.writeHead(status, { 'content-type': 'application/json' }).end(entry.body);
    };

    const user = token === null ? undefined : this.users[token];
    const userInfo = user && socketId && channelName ? this.#authorize(user, channelName) : null;
    if (userInfo === null) {
      // Laravel throws AccessDeniedHttpException, a 403 response whose body
      // pusher-js does not read.
      reply(403, { message: 'Forbidden' });
      return;
    }

    if (channelName.startsWith('private')) {
      reply(200, this.sdk.authorizeChannel(socketId, channelName));
      return;
    }

    // Presence: the PHP SDK 7 types the user id as a string and signs the
    // JSON it encoded.
    const channelDataText = phpJsonEncode({ user_id: String(user.id), user_info: userInfo });
    const signature = new Pusher.Token(this.app.key, this.app.secret).sign(`${socketId}:${channelName}:${channelDataText}`);
    reply(200, { auth: `${this.app.key}:${signature}`, channel_data: channelDataText });
  }

  // Returns null when access is denied, else the granting callback's result.
  // As in Laravel's Broadcaster::verifyUserCanAccessChannel, the first
  // matching pattern whose callback returns a truthy value grants access.
  #authorize(user, channelName) {
    const name = normalizeChannelName(channelName);
    for (const route of this.routes) {
      const match = route.regExp.exec(name);
      const result = match ? route.callback(user, ...match.slice(1)) : null;
      if (result) {
        return result;
      }
    }
    return null;
  }

  /**
   * Encrypts `plaintext` for `channelName` as PusherCrypto::encrypt_payload
   * in the PHP SDK 7.2 does: XSalsa20-Poly1305 (NaCl secretbox) with a
   * random nonce and the channel's shared secret, returned as the JSON
   * object {"nonce":…,"ciphertext":…} in base64, encoded by json_encode.
   */
  encryptPayload(channelName, plaintext) {
    const nonce = nacl.randomBytes(nacl.secretbox.nonceLength);
    const ciphertext = nacl.secretbox(Buffer.from(plaintext, 'utf8'), nonce, this.sdk.channelSharedSecret(channelName));
    return phpJsonEncode({ nonce: Buffer.from(nonce).toString('base64'), ciphertext: Buffer.from(ciphertext).toString('base64') });
  }

  /**
   * Publishes `data` as Laravel's broadcaster does: one POST /events whose
   * body the PHP SDK 7.2 would build, with socket_id set for toOthers().
   * Throws unless the relay responds with 200. Returns { status, body, dataText },
   * where dataText is the event's data string as sent.
   */
  async broadcast({ channels, event, data, socketId }) {
    let dataText = phpJsonEncode(data);
    if (channels.some((channel) => channel.startsWith('private-encrypted-'))) {
      // The PHP SDK rejects this too, because each channel has its own key.
      assert.equal(channels.length, 1, 'an encrypted event can go to one channel only');
      dataText = this.encryptPayload(channels[0], dataText);
    }
    const body = { name: event, data: dataText };
    if (channels.length === 1) {
      body.channel = channels[0];
    } else {
      body.channels = channels;
    }
    if (socketId !== undefined) {
      body.socket_id = socketId;
    }
    const response = await signedPost(this.cluster, '/events', phpJsonEncode(body), { sdk: this.sdk, appId: this.app.id });
    assert.equal(response.status, 200, `broadcast of ${event} to ${channels.join(', ')} failed: HTTP ${response.status} ${response.body}`);
    return { ...response, dataText };
  }

  close() {
    this.server.closeAllConnections();
    this.server.close();
  }
}
