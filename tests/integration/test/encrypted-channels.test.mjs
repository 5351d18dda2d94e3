// End-to-end encrypted channels (private-encrypted-*). The backend encrypts
// each event's data with NaCl secretbox under a per-channel key, SHA-256 of
// the channel name followed by the app's 32-byte master key. The client gets
// that key as shared_secret from the app's auth endpoint, and neither key
// reaches Herald. Herald checks the private-channel signature, relays the
// {"nonce","ciphertext"} data string unchanged and rejects client events.
//
// Events come from the `pusher` Node SDK configured with
// encryptionMasterKeyBase64, or as the Pusher PHP SDK 7.2 that Laravel uses
// builds them (lib/laravel-app.mjs). Laravel Echo (broadcaster 'reverb')
// decrypts through the stand-in auth endpoint, and raw WebSocket clients
// show what the wire carries.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, afterEach, before, describe, it } from 'node:test';

import Pusher from 'pusher';
import nacl from 'tweetnacl';

import { startCluster } from '../lib/cluster.mjs';
import { ECHO_CONFIGS, EchoClient, subscribed } from '../lib/echo-client.mjs';
import { LaravelApp } from '../lib/laravel-app.mjs';
import { RawClient } from '../lib/raw-client.mjs';

// Client events are enabled, so a rejection on an encrypted channel comes
// from the channel type alone.
const APP = { id: 'vault-app', key: 'vault-key', secret: 'vault-secret', enable_client_messages: true };
const ENCRYPTION_MASTER_KEY_BASE64 = crypto.randomBytes(32).toString('base64');
const USER_TOKEN = 'alice-token';
const USERS = { [USER_TOKEN]: { id: 7, name: 'Alice' } };
const CHANNEL_ROUTES = {
  'vault.{vaultId}': () => true,
  'chat.{chatId}': () => true,
};
const REVERB_CONFIG = ECHO_CONFIGS.find((config) => config.broadcaster === 'reverb');

let cluster;
let laravel;
let clients = [];

async function rawClient(gatewayIndex, name) {
  const client = await RawClient.connect(cluster.gatewayUrl(gatewayIndex, { appKey: APP.key }), { name });
  clients.push(client);
  return client;
}

/** Subscribes a raw client to a private channel with the signature the app's backend gives it. */
function subscribeSigned(client, channelName) {
  return client.subscribe(channelName, { auth: laravel.sdk.authorizeChannel(client.socketId, channelName).auth });
}

async function echoClient(gatewayIndex, name) {
  const client = await EchoClient.connect(name, {
    ...REVERB_CONFIG.options({ key: APP.key, port: cluster.gatewayPort(gatewayIndex) }),
    authEndpoint: laravel.authEndpoint,
    auth: { headers: { Authorization: `Bearer ${USER_TOKEN}` } },
  });
  clients.push(client);
  return client;
}

/** Decrypts an event's data string with the key of `channelName`. Returns null when it does not open. */
function decrypt(channelName, dataText) {
  const { nonce, ciphertext } = JSON.parse(dataText);
  const plaintext = nacl.secretbox.open(
    Buffer.from(ciphertext, 'base64'),
    Buffer.from(nonce, 'base64'),
    laravel.sdk.channelSharedSecret(channelName),
  );
  return plaintext === null ? null : JSON.parse(Buffer.from(plaintext).toString('utf8'));
}

describe('encrypted channels', () => {
  before(async () => {
    cluster = await startCluster('encrypted-channels', { env: { HERALD_APPS: JSON.stringify([APP]) } });
    laravel = await LaravelApp.start(cluster, APP, {
      users: USERS,
      channels: CHANNEL_ROUTES,
      encryptionMasterKeyBase64: ENCRYPTION_MASTER_KEY_BASE64,
    });
  });

  afterEach(() => {
    for (const client of clients) {
      if (client instanceof EchoClient) {
        client.disconnect();
      } else {
        client.close();
      }
    }
    clients = [];
  });

  after(async () => {
    laravel?.close();
    if (cluster) {
      try {
        cluster.assertAllRunning();
      } finally {
        await cluster.stop();
      }
    }
  });

  it('carries only nonce and ciphertext', async () => {
    const channelName = 'private-encrypted-vault.1';
    const echo = await echoClient(0, 'echo subscriber');
    await subscribed(echo.echo.encryptedPrivate('vault.1').listen('SecretRotated', echo.recorder('SecretRotated')));
    const raw = await rawClient(1, 'raw subscriber');
    await subscribeSigned(raw, channelName);

    const payload = { vault_id: 1, secret: 'correct horse battery staple', label: 'Schlüssel / 🔑' };
    await laravel.sdk.trigger(channelName, 'App\\Events\\SecretRotated', payload);

    const received = await echo.waitFor('SecretRotated');
    assert.deepEqual(received.payload, payload, 'payload decrypted by pusher-js');

    const item = await raw.waitForEvent('App\\Events\\SecretRotated', { channel: channelName });
    assert.deepEqual(Object.keys(item.frame).sort(), ['channel', 'data', 'event'], `frame: ${item.text}`);
    assert.equal(typeof item.frame.data, 'string', 'event data must be a JSON-encoded string');
    const encrypted = JSON.parse(item.frame.data);
    assert.deepEqual(Object.keys(encrypted).sort(), ['ciphertext', 'nonce'], `data: ${item.frame.data}`);
    assert.equal(Buffer.from(encrypted.nonce, 'base64').length, nacl.secretbox.nonceLength, 'nonce bytes');
    assert.equal(
      Buffer.from(encrypted.ciphertext, 'base64').length,
      Buffer.byteLength(JSON.stringify(payload)) + nacl.secretbox.overheadLength,
      'ciphertext bytes',
    );
    assert.ok(!item.text.includes('correct horse'), `plaintext on the wire: ${item.text}`);
    assert.deepEqual(decrypt(channelName, item.frame.data), payload, 'payload decrypted from the raw frame');
  });

  it('forwards PHP SDK ciphertext unchanged', async () => {
    const channelName = 'private-encrypted-vault.2';
    const echo = await echoClient(1, 'echo subscriber');
    await subscribed(echo.echo.encryptedPrivate('vault.2').listen('SecretRotated', echo.recorder('SecretRotated')));
    const raw = await rawClient(0, 'raw subscriber');
    await subscribeSigned(raw, channelName);

    // json_encode escapes each "/" of the base64 text as "\/", and those
    // escapes must reach the client as sent.
    const payload = { vault_id: 2, url: 'https://vault.example.test/v/2', owner: 'Zoë' };
    const { dataText } = await laravel.broadcast({ channels: [channelName], event: 'App\\Events\\SecretRotated', data: payload });

    const item = await raw.waitForEvent('App\\Events\\SecretRotated', { channel: channelName });
    assert.equal(item.frame.data, dataText, 'event data differs from the data string sent to the relay');
    const received = await echo.waitFor('SecretRotated');
    assert.deepEqual(received.payload, payload, 'payload decrypted by pusher-js');
  });

  it('keeps batch events on their channels', async () => {
    const vaultA = 'private-encrypted-vault.3';
    const vaultB = 'private-encrypted-vault.4';
    const raw = await rawClient(1, 'raw subscriber');
    await subscribeSigned(raw, vaultA);
    await subscribeSigned(raw, vaultB);
    await raw.subscribe('vault-news');

    await laravel.sdk.triggerBatch([
      { channel: vaultA, name: 'App\\Events\\SecretRotated', data: { vault_id: 3 } },
      { channel: vaultB, name: 'App\\Events\\SecretRotated', data: { vault_id: 4 } },
      { channel: 'vault-news', name: 'App\\Events\\SecretRotated', data: { vault_id: 'public' } },
    ]);

    const atA = await raw.waitForEvent('App\\Events\\SecretRotated', { channel: vaultA });
    const atB = await raw.waitForEvent('App\\Events\\SecretRotated', { channel: vaultB });
    const atNews = await raw.waitForEvent('App\\Events\\SecretRotated', { channel: 'vault-news' });
    // Each event must open with its own channel's key, which shows that no
    // event was delivered on another event's channel.
    assert.deepEqual(decrypt(vaultA, atA.frame.data), { vault_id: 3 }, `${vaultA} data: ${atA.frame.data}`);
    assert.deepEqual(decrypt(vaultB, atB.frame.data), { vault_id: 4 }, `${vaultB} data: ${atB.frame.data}`);
    assert.deepEqual(JSON.parse(atNews.frame.data), { vault_id: 'public' });
  });

  it('requires a valid signature to subscribe', async () => {
    const channelName = 'private-encrypted-vault.5';
    // A subscriber on the same gateway makes the gateway receive the
    // channel's events, so only the check per connection keeps them away.
    const member = await rawClient(0, 'signed subscriber');
    await subscribeSigned(member, channelName);
    const outsider = await rawClient(0, 'outsider');
    await outsider.subscribe('vault-news');

    const wrongSecret = new Pusher({
      appId: APP.id,
      key: APP.key,
      secret: 'not-the-app-secret',
      encryptionMasterKeyBase64: ENCRYPTION_MASTER_KEY_BASE64,
    });
    const attempts = {
      'no auth': {},
      'empty auth': { auth: '' },
      'auth of another socket': { auth: laravel.sdk.authorizeChannel('1234.5678', channelName).auth },
      'auth of another channel': { auth: laravel.sdk.authorizeChannel(outsider.socketId, 'private-encrypted-vault.6').auth },
      'auth signed with another secret': { auth: wrongSecret.authorizeChannel(outsider.socketId, channelName).auth },
    };
    for (const [label, extra] of Object.entries(attempts)) {
      await assert.rejects(outsider.subscribe(channelName, extra), /subscribing to .* failed/, `subscription with ${label}`);
    }

    await laravel.sdk.trigger(channelName, 'App\\Events\\SecretRotated', { vault_id: 5 });
    await member.waitForEvent('App\\Events\\SecretRotated', { channel: channelName });
    // Published after the encrypted event, so that event would reach the outsider first.
    await laravel.sdk.trigger('vault-news', 'Marker', {});
    await outsider.waitForEvent('Marker', { channel: 'vault-news' });
    assert.equal(outsider.events('App\\Events\\SecretRotated').length, 0, 'events the outsider received');
  });

  it('rejects client events', async () => {
    const encrypted = 'private-encrypted-chat.1';
    const plain = 'private-chat.1';
    const sender = await rawClient(0, 'sender');
    const receiver = await rawClient(1, 'receiver');
    for (const client of [sender, receiver]) {
      await subscribeSigned(client, encrypted);
      await subscribeSigned(client, plain);
    }

    const since = sender.mark();
    sender.send({ event: 'client-typing', channel: encrypted, data: { typing: true } });
    const error = await sender.waitForEvent('pusher:error', { since });
    assert.equal(error.frame.data?.code, 4301, `error frame: ${error.text}`);

    // The same client event on the plain private channel is relayed, so the
    // app allows client events and the rejection is due to the channel type.
    sender.send({ event: 'client-typing', channel: plain, data: { typing: true } });
    await receiver.waitForEvent('client-typing', { channel: plain });
    // Published after both client events, so a relayed encrypted one would arrive first.
    await laravel.sdk.trigger(encrypted, 'Marker', {});
    await receiver.waitForEvent('Marker', { channel: encrypted });
    assert.equal(receiver.events('client-typing', { channel: encrypted }).length, 0, 'client events relayed on the encrypted channel');
    assert.equal(sender.events('pusher:error', { since }).length, 1, 'errors the sender received');
    await sender.ping();
  });
});
