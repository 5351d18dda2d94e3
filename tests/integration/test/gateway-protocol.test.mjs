// The gateway's Pusher protocol (version 7) at the frame level, driven with
// raw `ws` connections against a real cluster.

import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';

import Pusher from 'pusher';

import { startCluster } from '../lib/cluster.mjs';
import { RawClient, SOCKET_ID_PATTERN } from '../lib/raw-client.mjs';

const DEFAULT_MAX_MESSAGE_BYTES = 16384;

let cluster;
const clients = [];

async function connect(gatewayIndex = 0, options = {}) {
  const client = await RawClient.connect(cluster.gatewayUrl(gatewayIndex, options.url), options);
  clients.push(client);
  return client;
}

function open(url, options = {}) {
  const client = new RawClient(url, options);
  clients.push(client);
  return client;
}

/**
 * Asserts that `frame` is a pusher:error whose data is an object (as Pusher
 * sends it) with a message and, unless `code` is undefined, that code.
 * Returns the data object.
 */
function assertPusherError(frame, code) {
  assert.equal(frame.event, 'pusher:error');
  assert.equal(typeof frame.data, 'object', `pusher:error data must be an object: ${JSON.stringify(frame)}`);
  assert.notEqual(frame.data, null);
  assert.equal(typeof frame.data.message, 'string');
  if (code === undefined) {
    assert.ok(frame.data.code === null || Number.isInteger(frame.data.code), `invalid error code in ${JSON.stringify(frame)}`);
  } else {
    assert.equal(frame.data.code, code, `unexpected error code in ${JSON.stringify(frame)}`);
  }
  return frame.data;
}

// Each request uses a new connection (agent: false), so one response that
// closes its connection cannot break the next request.
function httpGet(port, path) {
  return new Promise((resolve, reject) => {
    const request = http.get({ host: '127.0.0.1', port, path, agent: false }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk) => {
        body += chunk;
      });
      response.on('end', () => resolve({ status: response.statusCode, body }));
    });
    request.on('error', reject);
    request.setTimeout(5000, () => request.destroy(new Error(`GET ${path} timed out`)));
  });
}

/**
 * Triggers `event` on `channel`, then a marker event on `markerChannel`, and
 * returns once `client` has the marker. A gateway delivers a client's frames
 * in the order Redis published them, so anything sent on `channel` would have
 * arrived before the marker.
 */
async function triggerThenMarker(client, channel, event, markerChannel) {
  const backend = cluster.sdk();
  const markerEvent = `marker-${Date.now()}-${Math.random().toString(16).slice(2)}`;
  await backend.trigger(channel, event, { unwanted: true });
  await backend.trigger(markerChannel, markerEvent, { marker: true });
  await client.waitForEvent(markerEvent, { channel: markerChannel });
}

describe('gateway protocol', () => {
  before(async () => {
    cluster = await startCluster('gateway-protocol');
  });

  after(async () => {
    for (const client of clients) {
      client.close();
    }
    if (cluster) {
      try {
        cluster.assertAllRunning();
      } finally {
        await cluster.stop();
      }
    }
  });

  describe('connecting', () => {
    it('sends connection_established with socket_id and activity_timeout', async () => {
      const client = open(cluster.gatewayUrl(0));
      const item = await client.waitForEvent('pusher:connection_established');
      assert.equal(typeof item.frame.data, 'string', 'connection_established data must be a JSON-encoded string');
      const data = JSON.parse(item.frame.data);
      assert.match(data.socket_id, SOCKET_ID_PATTERN);
      assert.equal(typeof data.activity_timeout, 'number');
      assert.ok(data.activity_timeout > 0, `activity_timeout must be > 0, got ${data.activity_timeout}`);
    });

    it('gives each connection its own socket_id', async () => {
      const first = await connect(0);
      const second = await connect(0);
      const third = await connect(1);
      const ids = new Set([first.socketId, second.socketId, third.socketId]);
      assert.equal(ids.size, 3, `socket ids repeat: ${[...ids].join(', ')}`);
    });

    it('rejects an unknown app key with 4001', async () => {
      const client = open(cluster.gatewayUrl(0, { appKey: 'no-such-key' }));
      const item = await client.waitForEvent('pusher:error');
      assertPusherError(item.frame, 4001);
      const { code } = await client.waitForClose();
      assert.equal(code, 4001);
      assert.equal(client.events('pusher:connection_established').length, 0);
    });

    it('rejects protocol=3 with 4007', async () => {
      const client = open(cluster.gatewayUrl(0, { query: 'protocol=3&client=js&version=8.6.0' }));
      const { code } = await client.waitForClose();
      assert.equal(code, 4007);
      for (const item of client.events('pusher:error')) {
        assertPusherError(item.frame, 4007);
      }
      assert.equal(client.events('pusher:connection_established').length, 0);
    });

    it('rejects protocol=abc with 4006', async () => {
      const client = open(cluster.gatewayUrl(0, { query: 'protocol=abc&client=js&version=8.6.0' }));
      const { code } = await client.waitForClose();
      assert.equal(code, 4006);
      for (const item of client.events('pusher:error')) {
        assertPusherError(item.frame, 4006);
      }
      assert.equal(client.events('pusher:connection_established').length, 0);
    });

    it('accepts a connection without protocol as version 7', async () => {
      const client = await connect(0, { url: { query: null } });
      assert.match(client.socketId, SOCKET_ID_PATTERN);
      await client.ping();
    });

    it('answers GET on a wrong path with 404', async () => {
      assert.equal((await httpGet(cluster.gatewayPort(0), '/no/such/path')).status, 404);
      assert.equal((await httpGet(cluster.gatewayPort(0), '/apps/app-1/events')).status, 404);
    });

    it('serves health and metrics over HTTP', async () => {
      const port = cluster.gatewayPort(1);
      assert.equal((await httpGet(port, '/up')).status, 200);
      const ready = await httpGet(port, '/ready');
      assert.equal(ready.status, 200, `/ready: ${ready.body}`);
      const metrics = await httpGet(port, '/metrics');
      assert.equal(metrics.status, 200);
      assert.match(metrics.body, /^# (HELP|TYPE) /m, 'metrics must be in the Prometheus text format');
    });
  });

  describe('ping and pong', () => {
    it('answers pusher:ping with pusher:pong', async () => {
      const client = await connect(0);
      const item = await client.ping();
      assert.equal(item.frame.event, 'pusher:pong');
    });

    it('answers pusher:ping with string data too', async () => {
      const client = await connect(0);
      const since = client.mark();
      client.send({ event: 'pusher:ping', data: '{}' });
      const item = await client.waitForEvent('pusher:pong', { since });
      assert.equal(item.frame.event, 'pusher:pong');
    });
  });

  describe('subscriptions', () => {
    it('confirms a public subscription and delivers its events', async () => {
      const client = await connect(0);
      const reply = await client.subscribe('public-news');
      assert.equal(reply.channel, 'public-news');

      const since = client.mark();
      const data = JSON.stringify({ text: 'Grüße, 世界 🚀', quote: '"\\/' });
      await cluster.sdk().trigger('public-news', 'headline', data);
      const item = await client.waitForEvent('headline', { channel: 'public-news', since });
      assert.equal(item.frame.data, data, 'event data must reach the client byte for byte');
    });

    it('accepts a private subscription signed by the SDK', async () => {
      const client = await connect(1);
      const auth = cluster.sdk().authorizeChannel(client.socketId, 'private-orders.7');
      const reply = await client.subscribe('private-orders.7', auth);
      assert.equal(reply.channel, 'private-orders.7');

      const since = client.mark();
      await cluster.sdk().trigger('private-orders.7', 'order.shipped', { order_id: 7 });
      const item = await client.waitForEvent('order.shipped', { channel: 'private-orders.7', since });
      assert.deepEqual(JSON.parse(item.frame.data), { order_id: 7 });
    });

    it('rejects private auth with a bad signature', async () => {
      const client = await connect(0);
      await client.subscribe('public-marker-bad-auth');
      // A second, properly authorized client keeps the channel's topic
      // subscribed on this gateway, so a leak would reach the bad client.
      const witness = await connect(0);
      await witness.subscribe('private-bad-auth', cluster.sdk().authorizeChannel(witness.socketId, 'private-bad-auth'));

      const forged = new Pusher({ appId: 'app-1', key: 'app-key', secret: 'not-the-secret' });
      const since = client.mark();
      client.send({
        event: 'pusher:subscribe',
        data: { channel: 'private-bad-auth', ...forged.authorizeChannel(client.socketId, 'private-bad-auth') },
      });
      const item = await client.waitForEvent('pusher:subscription_error', { channel: 'private-bad-auth', since });
      assert.equal(item.frame.data.type, 'AuthError');
      assert.equal(item.frame.data.status, 401);
      assert.equal(typeof item.frame.data.error, 'string');
      assert.equal(client.events('pusher_internal:subscription_succeeded', { channel: 'private-bad-auth' }).length, 0);

      await triggerThenMarker(client, 'private-bad-auth', 'secret-event', 'public-marker-bad-auth');
      await witness.waitForEvent('secret-event', { channel: 'private-bad-auth' });
      assert.equal(client.events('secret-event').length, 0, 'the unauthorized client received an event of the private channel');
      assert.ok(client.isOpen, 'a failed subscription must not close the connection');
    });

    it('rejects private auth signed for another app key', async () => {
      const client = await connect(1);
      await client.subscribe('public-marker-wrong-key');
      const witness = await connect(1);
      await witness.subscribe('private-wrong-key', cluster.sdk().authorizeChannel(witness.socketId, 'private-wrong-key'));

      // Correct secret, wrong key part: "other-key:<valid HMAC>".
      const otherKey = new Pusher({ appId: 'app-1', key: 'other-key', secret: 'app-secret' });
      const auth = otherKey.authorizeChannel(client.socketId, 'private-wrong-key');
      assert.match(auth.auth, /^other-key:/);
      const since = client.mark();
      client.send({ event: 'pusher:subscribe', data: { channel: 'private-wrong-key', ...auth } });
      const item = await client.waitForEvent('pusher:subscription_error', { channel: 'private-wrong-key', since });
      assert.equal(item.frame.data.type, 'AuthError');
      assert.equal(item.frame.data.status, 401);
      assert.equal(typeof item.frame.data.error, 'string');

      await triggerThenMarker(client, 'private-wrong-key', 'secret-event', 'public-marker-wrong-key');
      await witness.waitForEvent('secret-event', { channel: 'private-wrong-key' });
      assert.equal(client.events('secret-event').length, 0, 'the unauthorized client received an event of the private channel');
    });

    it('rejects private auth made for another socket_id', async () => {
      const client = await connect(0);
      await client.subscribe('public-marker-other-socket');
      const auth = cluster.sdk().authorizeChannel('1234.5678', 'private-other-socket');
      const since = client.mark();
      client.send({ event: 'pusher:subscribe', data: { channel: 'private-other-socket', ...auth } });
      const item = await client.waitForEvent('pusher:subscription_error', { channel: 'private-other-socket', since });
      assert.equal(item.frame.data.type, 'AuthError');
      assert.equal(item.frame.data.status, 401);
    });

    it('reports a second subscribe to the same channel', async () => {
      const client = await connect(0);
      await client.subscribe('public-twice');
      const since = client.mark();
      client.send({ event: 'pusher:subscribe', data: { channel: 'public-twice' } });
      const item = await client.waitForEvent('pusher:error', { since });
      const data = assertPusherError(item.frame, null);
      assert.equal(data.message, 'Existing subscription to channel public-twice');

      // Still subscribed exactly once: one event, one frame.
      const afterError = client.mark();
      await cluster.sdk().trigger('public-twice', 'once', { n: 1 });
      await client.waitForEvent('once', { channel: 'public-twice', since: afterError });
      await client.ping();
      assert.equal(client.events('once').length, 1);
    });

    it('stops delivering after unsubscribe', async () => {
      const client = await connect(1);
      await client.subscribe('public-leave');
      await client.subscribe('public-marker-leave');
      client.send({ event: 'pusher:unsubscribe', data: { channel: 'public-leave' } });
      // Frames are handled in order, so the pong proves the unsubscribe was.
      await client.ping();

      await triggerThenMarker(client, 'public-leave', 'after-leave', 'public-marker-leave');
      assert.equal(client.events('after-leave').length, 0, 'an event arrived after unsubscribe');
    });
  });

  describe('bad input', () => {
    it('answers invalid JSON with pusher:error and stays usable', async () => {
      const client = await connect(0);
      const since = client.mark();
      client.sendText('{"event":"pusher:subscribe","data":');
      const item = await client.waitForEvent('pusher:error', { since });
      assertPusherError(item.frame, undefined);
      await client.ping();
      await client.subscribe('public-after-bad-json');
      assert.ok(client.isOpen);
    });

    it('survives an unknown event', async () => {
      const client = await connect(0);
      const since = client.mark();
      client.send({ event: 'pusher:no-such-event', data: {} });
      client.send({ event: 'something-else', data: { x: 1 } });
      await client.ping();
      for (const item of client.events('pusher:error', { since })) {
        assertPusherError(item.frame, undefined);
      }
      assert.ok(client.isOpen);
    });

    it('answers an oversize message with pusher:error and stays usable', async () => {
      const client = await connect(1);
      const since = client.mark();
      const padding = 'x'.repeat(DEFAULT_MAX_MESSAGE_BYTES + 1024);
      client.send({ event: 'pusher:subscribe', data: { channel: 'public-oversize', padding } });
      const item = await client.waitForEvent('pusher:error', { since });
      assertPusherError(item.frame, undefined);
      assert.equal(client.events('pusher_internal:subscription_succeeded', { channel: 'public-oversize' }).length, 0);
      await client.ping();
      await client.subscribe('public-after-oversize');
    });

    it('accepts a message just under the size limit', async () => {
      const client = await connect(1);
      const frame = { event: 'pusher:subscribe', data: { channel: 'public-near-limit', padding: '' } };
      const overhead = Buffer.byteLength(JSON.stringify(frame));
      frame.data.padding = 'y'.repeat(DEFAULT_MAX_MESSAGE_BYTES - overhead - 16);
      const since = client.mark();
      client.send(frame);
      await client.waitForEvent('pusher_internal:subscription_succeeded', { channel: 'public-near-limit', since });
    });

    it('survives a binary frame', async () => {
      const client = await connect(0);
      const neighbour = await connect(0);
      await neighbour.subscribe('public-binary-neighbour');
      client.sendBinary(Buffer.from([0x00, 0xff, 0x7b, 0x22, 0x80, 0x81]));

      // The gateway may ignore the frame or close the sender for it, but it
      // must do one of the two and keep serving everyone else.
      const outcome = await Promise.race([
        client.ping().then(() => 'pong', () => 'no pong'),
        client.closed.then(() => 'closed'),
      ]);
      assert.notEqual(outcome, 'no pong', 'the connection neither answered a ping nor was closed after a binary frame');
      cluster.assertAllRunning();
      const since = neighbour.mark();
      await cluster.sdk().trigger('public-binary-neighbour', 'still-here', { ok: true });
      await neighbour.waitForEvent('still-here', { since });
      const fresh = await connect(0);
      await fresh.ping();
    });

    it('rejects subscribe frames with missing or invalid channel', async () => {
      const client = await connect(0);
      const bad = [
        { event: 'pusher:subscribe', data: {} },
        { event: 'pusher:subscribe', data: { channel: 42 } },
        { event: 'pusher:subscribe', data: { channel: '' } },
        { event: 'pusher:subscribe', data: { channel: 'bad channel name!' } },
        { event: 'pusher:subscribe' },
        { event: 'pusher:subscribe', data: 'not json' },
        { event: 'pusher:unsubscribe', data: { channel: 'never-subscribed' } },
      ];
      for (const frame of bad) {
        client.send(frame);
      }
      await client.ping();
      assert.equal(client.events('pusher_internal:subscription_succeeded').length, 0);
      await client.subscribe('public-after-bad-subscribes');
      cluster.assertAllRunning();
    });
  });
});
