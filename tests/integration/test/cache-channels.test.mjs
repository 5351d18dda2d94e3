// Cache channels (cache-, private-cache-, presence-cache-,
// private-encrypted-cache-) across two gateways. The relay stores the frame
// of every event triggered on a cache channel in Redis with a TTL, before it
// responds to the trigger. A new subscriber gets that event, under its original
// name, right after pusher:subscription_succeeded, or pusher:cache_miss
// when nothing is stored. GET /apps/{id}/channels/{name}?info=cache returns
// the stored data and its TTL.
//
// Events are triggered by the `pusher` Node SDK; pusher-js clients and raw
// WebSocket clients receive them.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, before, describe, it } from 'node:test';

import Pusher from 'pusher';

import { DEV_APP, startCluster } from '../lib/cluster.mjs';
import { PusherJsClient } from '../lib/pusher-client.mjs';
import { RawClient } from '../lib/raw-client.mjs';
import { waitUntil } from '../lib/wait.mjs';

// The development app with client events allowed, so the client-event case
// shows that they are never cached rather than rejected.
const APP = { ...DEV_APP, enable_client_messages: true };
const ALICE = { user_id: '7', user_info: { name: 'Alice' } };
const BOB = { user_id: '8', user_info: { name: 'Bob' } };
const CACHE_TTL_SECONDS = 1800;

/** Pusher SDK pointed at the relay of `cluster`, optionally with an encryption master key. */
function backendFor(cluster, encryptionMasterKeyBase64) {
  return new Pusher({
    appId: cluster.app.id,
    key: cluster.app.key,
    secret: cluster.app.secret,
    host: '127.0.0.1',
    port: String(cluster.relayPort),
    useTLS: false,
    timeout: 10000,
    ...(encryptionMasterKeyBase64 ? { encryptionMasterKeyBase64 } : {}),
  });
}

/**
 * Items of `client`'s inbox on `channel` from its subscription on, as
 * [event, data] pairs, so the order of subscription_succeeded and the
 * replayed event is visible.
 */
function channelEvents(client, channel) {
  return client.inbox.filter((item) => item.channel === channel).map((item) => [item.event, item.data]);
}

/** Waits until `client` has received `count` events on `channel`, then returns them. */
async function waitForChannelEvents(client, channel, count) {
  await waitUntil(() => channelEvents(client, channel).length >= count, {
    what: `${client.name} to receive ${count} events on ${channel} (got ${JSON.stringify(channelEvents(client, channel))})`,
  });
  return channelEvents(client, channel);
}

describe('cache channels', () => {
  let cluster;
  let backend;
  const clients = [];

  before(async () => {
    cluster = await startCluster('cache-channels', { env: { HERALD_APPS: JSON.stringify([APP]) } });
    backend = cluster.sdk();
  });

  after(async () => {
    for (const client of clients) {
      client.disconnect?.();
      client.close?.();
    }
    if (cluster) {
      cluster.assertAllRunning();
      await cluster.stop();
    }
  });

  async function connect(gatewayIndex, name, options = {}) {
    const client = await PusherJsClient.connect(cluster, gatewayIndex, { name, backend, ...options });
    clients.push(client);
    return client;
  }

  async function connectRaw(gatewayIndex, name) {
    const client = await RawClient.connect(cluster.gatewayUrl(gatewayIndex), { name });
    clients.push(client);
    return client;
  }

  it('replays the last event right after subscription_succeeded on both gateways', async () => {
    const channel = 'cache-ticker';
    await backend.trigger(channel, 'price-updated', { p: 100 });
    await backend.trigger(channel, 'price-updated', { p: 101 });

    for (const gatewayIndex of [0, 1]) {
      const client = await connect(gatewayIndex, `subscriber on gateway ${gatewayIndex + 1}`);
      await client.subscribe(channel);
      const events = await waitForChannelEvents(client, channel, 2);
      assert.deepEqual(events.slice(0, 2), [
        ['pusher:subscription_succeeded', {}],
        ['price-updated', { p: 101 }],
      ]);
    }
  });

  it('sends the stored frame byte for byte before a later event', async () => {
    const channel = 'cache-ticker.raw';
    await backend.trigger(channel, 'price-updated', { p: 7 });

    const raw = await connectRaw(1, 'raw subscriber');
    const since = raw.mark();
    await raw.subscribe(channel);
    await backend.trigger(channel, 'price-updated', { p: 8 });
    await raw.waitForFrame((frame) => frame.channel === channel && frame.data === '{"p":8}', { since });

    const texts = raw.inbox.filter((item) => item.frame?.channel === channel, since).map((item) => item.text);
    assert.deepEqual(texts, [
      `{"event":"pusher_internal:subscription_succeeded","channel":"${channel}","data":"{}"}`,
      `{"event":"price-updated","channel":"${channel}","data":"{\\"p\\":7}"}`,
      `{"event":"price-updated","channel":"${channel}","data":"{\\"p\\":8}"}`,
    ]);
  });

  it('sends pusher:cache_miss when nothing is stored', async () => {
    const channel = 'cache-empty';
    for (const gatewayIndex of [0, 1]) {
      const client = await connect(gatewayIndex, `miss subscriber on gateway ${gatewayIndex + 1}`);
      await client.subscribe(channel);
      const events = await waitForChannelEvents(client, channel, 2);
      assert.deepEqual(events.slice(0, 2), [
        ['pusher:subscription_succeeded', {}],
        ['pusher:cache_miss', {}],
      ]);
    }
  });

  it('stores the frame before responding', async () => {
    const channel = 'cache-stored';
    await backend.trigger(channel, 'state', { v: 1 });

    const key = cluster.channelKey('cache', channel);
    assert.equal(await cluster.redisCli('GET', key), '{"event":"state","channel":"cache-stored","data":"{\\"v\\":1}"}');
    const ttl = Number(await cluster.redisCli('TTL', key));
    assert.ok(ttl > CACHE_TTL_SECONDS - 60, `TTL ${ttl} is far below ${CACHE_TTL_SECONDS}`);
    assert.ok(ttl <= CACHE_TTL_SECONDS, `TTL ${ttl} is above ${CACHE_TTL_SECONDS}`);
  });

  it('stores events of multi-channel triggers and batches', async () => {
    await backend.trigger(['cache-multi.a', 'cache-multi.b', 'news'], 'tick', { n: 1 });
    await backend.triggerBatch([
      { channel: 'cache-batch.a', name: 'first', data: { n: 2 } },
      { channel: 'cache-batch.b', name: 'second', data: { n: 3 } },
    ]);

    const expected = {
      'cache-multi.a': ['tick', { n: 1 }],
      'cache-multi.b': ['tick', { n: 1 }],
      'cache-batch.a': ['first', { n: 2 }],
      'cache-batch.b': ['second', { n: 3 }],
    };
    const client = await connect(0, 'multi-channel subscriber');
    for (const [channel, event] of Object.entries(expected)) {
      await client.subscribe(channel);
      const events = await waitForChannelEvents(client, channel, 2);
      assert.deepEqual(events[1], event, `replayed event of ${channel}`);
    }
    assert.equal(await cluster.redisCli('EXISTS', cluster.channelKey('cache', 'news')), '0');
  });

  it('replays on private-cache- and presence-cache- channels', async () => {
    const privateChannel = 'private-cache-orders.7';
    const presenceChannel = 'presence-cache-room.7';
    await backend.trigger(privateChannel, 'App\\Events\\OrderShipped', { order_id: 7 });
    await backend.trigger(presenceChannel, 'room-state', { topic: 'launch' });

    const alice = await connect(0, 'alice', { presenceUser: ALICE });
    const bob = await connect(1, 'bob', { presenceUser: BOB });
    for (const client of [alice, bob]) {
      await client.subscribe(privateChannel);
      const privateEvents = await waitForChannelEvents(client, privateChannel, 2);
      assert.deepEqual(privateEvents[1], ['App\\Events\\OrderShipped', { order_id: 7 }]);

      await client.subscribe(presenceChannel);
      const presenceEvents = await waitForChannelEvents(client, presenceChannel, 2);
      assert.equal(presenceEvents[0][0], 'pusher:subscription_succeeded');
      assert.deepEqual(presenceEvents[1], ['room-state', { topic: 'launch' }]);
    }
  });

  it('replays on private-encrypted-cache- channels, still encrypted', async () => {
    const channel = 'private-encrypted-cache-vault.7';
    const masterKey = crypto.randomBytes(32).toString('base64');
    const encryptingBackend = backendFor(cluster, masterKey);
    await encryptingBackend.trigger(channel, 'secret-state', { pin: '1234' });

    const stored = JSON.parse(await cluster.redisCli('GET', cluster.channelKey('cache', channel)));
    assert.equal(stored.event, 'secret-state');
    assert.deepEqual(Object.keys(JSON.parse(stored.data)).sort(), ['ciphertext', 'nonce']);

    for (const gatewayIndex of [0, 1]) {
      const client = await connect(gatewayIndex, `encrypted subscriber on gateway ${gatewayIndex + 1}`, {
        backend: encryptingBackend,
      });
      await client.subscribe(channel);
      const events = await waitForChannelEvents(client, channel, 2);
      assert.deepEqual(events[1], ['secret-state', { pin: '1234' }]);
    }

    const missClient = await connect(0, 'encrypted miss subscriber', { backend: encryptingBackend });
    await missClient.subscribe('private-encrypted-cache-vault.empty');
    const missEvents = await waitForChannelEvents(missClient, 'private-encrypted-cache-vault.empty', 2);
    assert.equal(missEvents[1][0], 'pusher:cache_miss');
  });

  it('never caches a client event', async () => {
    const channel = 'private-cache-chat.1';
    await backend.trigger(channel, 'server-state', { v: 1 });

    const sender = await connect(0, 'client event sender');
    const receiver = await connect(1, 'client event receiver');
    const senderChannel = await sender.subscribe(channel);
    await receiver.subscribe(channel);
    assert.equal(senderChannel.trigger('client-typing', { typing: true }), true);
    await receiver.waitForEvent(channel, 'client-typing');

    const late = await connect(1, 'late subscriber');
    await late.subscribe(channel);
    const events = await waitForChannelEvents(late, channel, 2);
    assert.deepEqual(events[1], ['server-state', { v: 1 }]);
    assert.match(await cluster.redisCli('GET', cluster.channelKey('cache', channel)), /"event":"server-state"/);
  });

  it('caches an event whatever socket_id it excludes', async () => {
    const channel = 'cache-excluded';
    const excluded = await connect(0, 'excluded subscriber');
    const other = await connect(1, 'other subscriber');
    await excluded.subscribe(channel);
    await other.subscribe(channel);

    await backend.trigger(channel, 'update', { v: 2 }, { socket_id: excluded.socketId });
    await other.waitForEvent(channel, 'update');

    const late = await connect(0, 'late subscriber after exclusion');
    await late.subscribe(channel);
    const events = await waitForChannelEvents(late, channel, 2);
    assert.deepEqual(events[1], ['update', { v: 2 }]);

    // The excluded client saw only its cache_miss, not the event.
    assert.deepEqual(
      channelEvents(excluded, channel).map(([event]) => event),
      ['pusher:subscription_succeeded', 'pusher:cache_miss'],
    );
  });

  it('returns the cached data and TTL for info=cache', async () => {
    const channel = 'cache-info';
    const path = `/channels/${channel}`;

    let response = await backend.get({ path, params: { info: 'cache' } });
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), { occupied: false });

    await backend.trigger(channel, 'price-updated', { p: 42, note: 'a/b "quoted"' });
    response = await backend.get({ path, params: { info: 'cache' } });
    assert.equal(response.status, 200);
    const unoccupied = await response.json();
    assert.equal(unoccupied.occupied, false);
    assert.equal(unoccupied.cache.data, JSON.stringify({ p: 42, note: 'a/b "quoted"' }));
    assert.ok(unoccupied.cache.ttl > CACHE_TTL_SECONDS - 60, `ttl ${unoccupied.cache.ttl} is far below ${CACHE_TTL_SECONDS}`);
    assert.ok(unoccupied.cache.ttl <= CACHE_TTL_SECONDS, `ttl ${unoccupied.cache.ttl} is above ${CACHE_TTL_SECONDS}`);
    assert.deepEqual(Object.keys(unoccupied.cache).sort(), ['data', 'ttl']);

    const subscriber = await connect(1, 'info subscriber');
    await subscriber.subscribe(channel);
    await waitUntil(
      async () => {
        const body = await (await backend.get({ path, params: { info: 'cache,subscription_count' } })).json();
        return body.occupied && body.subscription_count === 1 && body.cache?.data === unoccupied.cache.data;
      },
      { what: `${path} to report the subscriber and the cached event` },
    );
  });

  it('rejects info=cache on a channel that is not a cache channel', async () => {
    await assert.rejects(backend.get({ path: '/channels/news', params: { info: 'cache' } }), (error) => {
      assert.equal(error.status, 400);
      assert.match(error.body, /"news" is not a cache channel/);
      return true;
    });
  });
});

describe('cache channels with a one-second TTL', () => {
  let cluster;
  const clients = [];

  before(async () => {
    cluster = await startCluster('cache-channels-ttl', { env: { HERALD_CACHE_TTL: '1' } });
  });

  after(async () => {
    for (const client of clients) {
      client.disconnect();
    }
    if (cluster) {
      cluster.assertAllRunning();
      await cluster.stop();
    }
  });

  it('sends pusher:cache_miss once the event expired', async () => {
    const channel = 'cache-short';
    const key = cluster.channelKey('cache', channel);
    await cluster.sdk().trigger(channel, 'blink', { v: 1 });
    assert.ok(Number(await cluster.redisCli('PTTL', key)) <= 1000);

    const early = await PusherJsClient.connect(cluster, 0, { name: 'early subscriber' });
    clients.push(early);
    await early.subscribe(channel);
    const earlyEvents = await waitForChannelEvents(early, channel, 2);
    // The event may already have expired on a slow machine; then this is a miss too.
    assert.ok(['blink', 'pusher:cache_miss'].includes(earlyEvents[1][0]), `unexpected ${earlyEvents[1][0]}`);

    await waitUntil(async () => (await cluster.redisCli('EXISTS', key)) === '0', {
      timeout: 5000,
      what: `${key} to expire`,
    });

    for (const gatewayIndex of [0, 1]) {
      const late = await PusherJsClient.connect(cluster, gatewayIndex, { name: `late subscriber on gateway ${gatewayIndex + 1}` });
      clients.push(late);
      await late.subscribe(channel);
      const events = await waitForChannelEvents(late, channel, 2);
      assert.deepEqual(events[1], ['pusher:cache_miss', {}]);
    }

    const response = await cluster.sdk().get({ path: `/channels/${channel}`, params: { info: 'cache' } });
    const body = await response.json();
    assert.equal(body.cache, undefined);
  });
});
