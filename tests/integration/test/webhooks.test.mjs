// Webhooks from a cluster of two gateways and one relay to a receiver on
// 127.0.0.1. The gateways decide each transition in Redis and queue one job
// for the whole cluster, and the relay POSTs it. The receiver checks every
// request's X-Pusher-Signature with node:crypto, and each test waits until
// the relay acknowledged every job before it counts events, so a duplicate
// could not still be on its way.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { startCluster } from '../lib/cluster.mjs';
import { PresenceClient, waitForPresenceLeave } from '../lib/presence-client.mjs';
import { PusherJsClient } from '../lib/pusher-client.mjs';
import {
  WebhookReceiver,
  streamEntries,
  waitForWebhooksDrained,
  webhookStreamKey,
} from '../lib/webhook-receiver.mjs';
import { waitUntil } from '../lib/wait.mjs';

const APP = Object.freeze({
  id: 'app-1',
  key: 'app-key',
  secret: 'app-secret',
  enable_client_messages: true,
  enable_subscription_count: true,
  subscription_count_interval_ms: 100,
});

describe('webhooks', () => {
  let cluster;
  let receiver;
  const clients = [];

  before(async () => {
    receiver = await WebhookReceiver.start({ app: APP });
    const webhooks = [{ url: receiver.url(), headers: { 'X-Test-Token': 'token-1' } }];
    cluster = await startCluster('webhooks', {
      env: { HERALD_APPS: JSON.stringify([{ ...APP, webhooks }]) },
    });
  });

  after(async () => {
    for (const client of clients) {
      client.disconnect();
    }
    await cluster?.stop();
    await receiver?.close();
  });

  async function connect(Client, gatewayIndex, options) {
    const client = await Client.connect(cluster, gatewayIndex, options);
    clients.push(client);
    return client;
  }

  /** Sum of the gateways' subscription counts of `channel` in Redis. */
  async function subscriptions(channel) {
    const counts = await cluster.redisHash(cluster.channelKey('subs', channel));
    return Object.values(counts).reduce((sum, value) => sum + Number(value), 0);
  }

  it('sends channel_occupied and channel_vacated once', async () => {
    const channel = 'room-occupancy';
    const ava = await connect(PusherJsClient, 0, { name: 'ava' });
    const ben = await connect(PusherJsClient, 1, { name: 'ben' });

    await ava.subscribe(channel);
    await receiver.waitForEvent((event) => event.name === 'channel_occupied' && event.channel === channel);
    await ben.subscribe(channel);
    ava.unsubscribe(channel);
    await waitUntil(async () => (await subscriptions(channel)) === 1, { what: `one subscription left on ${channel}` });

    const beforeVacated = receiver.requests.mark();
    ben.unsubscribe(channel);
    await receiver.waitForEvent((event) => event.name === 'channel_vacated' && event.channel === channel, {
      since: beforeVacated,
    });
    await waitForWebhooksDrained(cluster, APP.id);

    assert.equal(receiver.eventsOf('channel_occupied', channel).length, 1);
    assert.equal(receiver.eventsOf('channel_vacated', channel).length, 1);
    // Pusher's channel_occupied carries the channel and nothing else.
    const occupied = receiver.eventsOf('channel_occupied', channel)[0];
    assert.deepEqual(Object.keys(occupied).sort(), ['channel', 'name', 'request', 'response']);

    // The stream contains one job per transition, whichever gateway saw it.
    const jobs = (await streamEntries(cluster, webhookStreamKey(cluster, APP.id))).filter(
      (entry) => entry.fields.channel === channel,
    );
    const names = jobs.map((entry) => entry.fields.name).filter((name) => name !== 'subscription_count');
    assert.deepEqual(names, ['channel_occupied', 'channel_vacated']);
  });

  it('signs every request and sends the configured headers', async () => {
    await waitForWebhooksDrained(cluster, APP.id);
    assert.ok(receiver.requests.items.length > 0, 'no webhook request arrived');
    for (const request of receiver.requests.items) {
      assert.equal(request.method, 'POST');
      assert.equal(request.path, '/pusher/webhooks');
      assert.equal(request.headers['content-type'], 'application/json');
      assert.equal(request.headers['x-pusher-key'], APP.key);
      assert.equal(request.signatureValid, true, `bad X-Pusher-Signature on ${request.body}`);
      assert.equal(cluster.sdk().webhook({ headers: request.headers, rawBody: request.body }).isValid(), true);
      assert.equal(request.headers['x-test-token'], 'token-1');
      assert.equal(typeof request.payload.time_ms, 'number');
      assert.ok(Math.abs(request.payload.time_ms - request.receivedAt) < 60000, `time_ms ${request.payload.time_ms}`);
      assert.ok(Array.isArray(request.payload.events));
      assert.ok(request.payload.events.length > 0);
    }
  });

  it('sends member_added and member_removed once per user', async () => {
    const channel = 'presence-room.7';
    const user = { user_id: 'u-7', user_info: { name: 'Ava' } };
    const firstTab = await connect(PresenceClient, 0, { name: 'tab-1', user });
    const secondTab = await connect(PresenceClient, 1, { name: 'tab-2', user });

    await firstTab.subscribe(channel);
    await receiver.waitForEvent((event) => event.name === 'member_added' && event.channel === channel);
    await secondTab.subscribe(channel);

    firstTab.unsubscribe(channel);
    await waitForPresenceLeave(cluster, channel, firstTab.socketId);

    const beforeLastLeave = receiver.requests.mark();
    secondTab.unsubscribe(channel);
    const removed = await receiver.waitForEvent(
      (event) => event.name === 'member_removed' && event.channel === channel,
      { since: beforeLastLeave },
    );
    assert.equal(removed.user_id, 'u-7');
    await waitForWebhooksDrained(cluster, APP.id);

    const added = receiver.eventsOf('member_added', channel);
    assert.equal(added.length, 1);
    assert.equal(added[0].user_id, 'u-7');
    assert.equal(receiver.eventsOf('member_removed', channel).length, 1);
    assert.equal(receiver.eventsOf('channel_occupied', channel).length, 1);
    assert.equal(receiver.eventsOf('channel_vacated', channel).length, 1);
  });

  it('sends client events with their fields', async () => {
    const presence = 'presence-chat';
    const ava = await connect(PresenceClient, 0, { name: 'ava', user: { user_id: 'ava', user_info: {} } });
    const ben = await connect(PresenceClient, 1, { name: 'ben', user: { user_id: 'ben', user_info: {} } });
    const avaChannel = await ava.subscribe(presence);
    await ben.subscribe(presence);
    assert.equal(avaChannel.trigger('client-typing', { text: 'hi "there"' }), true);

    const presenceEvent = await receiver.waitForEvent(
      (event) => event.name === 'client_event' && event.channel === presence,
    );
    assert.equal(presenceEvent.event, 'client-typing');
    assert.equal(typeof presenceEvent.data, 'string');
    assert.deepEqual(JSON.parse(presenceEvent.data), { text: 'hi "there"' });
    assert.equal(presenceEvent.socket_id, ava.socketId);
    assert.equal(presenceEvent.user_id, 'ava');

    const priv = 'private-chat';
    const cleo = await connect(PusherJsClient, 1, { name: 'cleo' });
    const dan = await connect(PusherJsClient, 0, { name: 'dan' });
    const cleoChannel = await cleo.subscribe(priv);
    await dan.subscribe(priv);
    assert.equal(cleoChannel.trigger('client-ping', { n: 1 }), true);

    const privateEvent = await receiver.waitForEvent((event) => event.name === 'client_event' && event.channel === priv);
    assert.equal(privateEvent.event, 'client-ping');
    assert.deepEqual(JSON.parse(privateEvent.data), { n: 1 });
    assert.equal(privateEvent.socket_id, cleo.socketId);
    assert.equal(Object.hasOwn(privateEvent, 'user_id'), false, 'user_id sent outside a presence channel');
  });

  it('sends cache_miss for an empty cache channel', async () => {
    const channel = 'cache-empty.1';
    const eve = await connect(PusherJsClient, 1, { name: 'eve' });
    await eve.subscribe(channel);
    await eve.waitForEvent(channel, 'pusher:cache_miss');

    const miss = await receiver.waitForEvent((event) => event.name === 'cache_miss' && event.channel === channel);
    assert.deepEqual(Object.keys(miss).sort(), ['channel', 'name', 'request', 'response']);
  });

  it('sends subscription_count as a number', async () => {
    const channel = 'news-count';
    const fay = await connect(PusherJsClient, 0, { name: 'fay' });
    const gus = await connect(PusherJsClient, 1, { name: 'gus' });
    await fay.subscribe(channel);
    await gus.subscribe(channel);

    const counted = await receiver.waitForEvent(
      (event) => event.name === 'subscription_count' && event.channel === channel && event.subscription_count === 2,
    );
    assert.equal(typeof counted.subscription_count, 'number');
    await waitForWebhooksDrained(cluster, APP.id);
  });

  it('reports delivered webhooks in the relay metrics', async () => {
    await waitForWebhooksDrained(cluster, APP.id);
    const metrics = await (await fetch(`${cluster.relayUrl()}/metrics`)).text();
    const delivered = metrics.match(/^herald_relay_webhooks_delivered_total\{app="app-1"\} (\d+)$/m);
    assert.ok(delivered, `no delivered counter in:\n${metrics}`);
    assert.equal(Number(delivered[1]), receiver.events().length);
    assert.match(metrics, /^herald_relay_webhooks_failed_total\{app="app-1"\} 0$/m);
    assert.match(metrics, /^herald_relay_webhooks_parked_total\{app="app-1"\} 0$/m);
    assert.match(metrics, /^# TYPE herald_relay_webhook_queue_depth gauge$/m);

    // The relay reads the queue depth from Redis every 5 s.
    await waitUntil(
      async () => /^herald_relay_webhook_queue_depth\{app="app-1"\} 0$/m.test(await (await fetch(`${cluster.relayUrl()}/metrics`)).text()),
      { timeout: 12000, what: 'herald_relay_webhook_queue_depth 0 in the relay metrics' },
    );
    cluster.assertAllRunning();
  });
});
