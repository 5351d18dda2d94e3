// Per-app and per-gateway limits set to small values through HERALD_APPS and
// HERALD_MAX_MESSAGE_BYTES, across two gateways. Each case checks the exact
// error that docs/limits.md documents, that a value at the limit is still
// accepted, and that well-behaved clients on the same gateways keep
// receiving events. max_presence_members, max_presence_member_bytes and
// max_outbound_queue_bytes have their own tests in presence-limit,
// presence-input and slow-consumer.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { DEV_APP, startCluster } from '../lib/cluster.mjs';
import { PusherJsClient } from '../lib/pusher-client.mjs';
import { RawClient } from '../lib/raw-client.mjs';
import { waitForHashTotal, waitForHeartbeats } from '../lib/redis-state.mjs';
import { EVENT_TIMEOUT_MS, Inbox, waitUntil, withTimeout } from '../lib/wait.mjs';

// The development app's credentials with every per-app limit lowered, so a
// test can reach each one with a few small messages.
const LIMITED_APP = {
  ...DEV_APP,
  enable_client_messages: true,
  max_client_events_per_second: 3,
  max_event_payload_bytes: 1024,
  max_channels_per_trigger: 3,
  max_batch_size: 2,
  max_channel_name_length: 40,
  max_event_name_length: 30,
};
const MAX_MESSAGE_BYTES = 4096;

const CAPPED_APP = { ...DEV_APP, max_connections: 3 };
const UNCAPPED_APP = { id: 'uncapped', key: 'uncapped-key', secret: 'uncapped-secret' };

const BYSTANDER_CHANNEL = 'bystander-news';
const CHANNEL_NAME_ERROR = 'Invalid channel name: a name has 1 to 40 characters from A-Z a-z 0-9 _ - = @ , . ;';

/**
 * Records the 'error' events of a pusher-js connection. pusher-js emits
 * { type: 'PusherError', data: { code, message } } for a pusher:error frame
 * on an open connection, and wraps it as { type: 'WebSocketError', error }
 * when the frame rejects the connection during the handshake.
 */
function recordConnectionErrors(client) {
  const errors = new Inbox(`${client.name} connection errors`);
  client.pusher.connection.bind('error', (error) => {
    const data = error?.data ?? error?.error?.data ?? null;
    errors.push({ index: errors.mark(), error, data, text: JSON.stringify(error) });
  });
  return errors;
}

function waitForErrorCode(errors, code) {
  return errors.waitFor((item) => item.data?.code === code, { what: `pusher:error with code ${code}` });
}

/**
 * Subscribes a pusher-js client to `channelName` and resolves with the data
 * of pusher:subscription_error, or rejects if the subscription succeeds.
 */
function expectSubscriptionError(client, channelName) {
  const channel = client.pusher.subscribe(channelName);
  const outcome = new Promise((resolve, reject) => {
    channel.bind('pusher:subscription_error', resolve);
    channel.bind('pusher:subscription_succeeded', () => {
      reject(new Error(`${client.name}: subscription to ${channelName} succeeded, expected subscription_error`));
    });
  });
  return withTimeout(outcome, EVENT_TIMEOUT_MS, `${client.name} to get subscription_error for ${channelName}`);
}

/** Asserts that `promise` (a `pusher` SDK request) rejects with HTTP `status` and exactly `body`. */
async function assertRequestError(promise, status, body) {
  await assert.rejects(promise, (error) => {
    assert.equal(error.status, status, `expected HTTP ${status}, got ${error.status} ${error.body}`);
    assert.equal(error.body, body);
    return true;
  });
}

describe('limits', () => {
  describe('per-app and per-message limits', () => {
    let cluster;
    let backend;
    const clients = [];
    // One pusher-js client per gateway that breaks no limit.
    const bystanders = [];
    let bystanderSerial = 0;

    async function pusherJsClient(gatewayIndex, name) {
      const client = await PusherJsClient.connect(cluster, gatewayIndex, { name, backend });
      clients.push(client);
      return client;
    }

    async function rawClient(gatewayIndex, name) {
      const client = await RawClient.connect(cluster.gatewayUrl(gatewayIndex), { name });
      clients.push(client);
      return client;
    }

    /**
     * Triggers an event on the bystanders' channel and waits until the
     * bystander on each gateway has it. Returns the event name.
     */
    async function assertBystandersReceive() {
      bystanderSerial += 1;
      const event = `still-delivered-${bystanderSerial}`;
      await backend.trigger(BYSTANDER_CHANNEL, event, { serial: bystanderSerial });
      await Promise.all(bystanders.map((bystander) => bystander.waitForEvent(BYSTANDER_CHANNEL, event)));
      return event;
    }

    /** Names of the events on the bystanders' channel that `bystander` received, in order. */
    function bystanderEvents(bystander) {
      return bystander.appEvents().filter((item) => item.channel === BYSTANDER_CHANNEL).map((item) => item.event);
    }

    /**
     * Connects a pusher-js sender to gateway 1 and a receiver to gateway 2,
     * subscribes both to the private `channelName`, and records the sender's
     * connection errors.
     */
    async function privatePair(channelName, label) {
      const sender = await pusherJsClient(0, `${label} sender`);
      const receiver = await pusherJsClient(1, `${label} receiver`);
      const senderChannel = await sender.subscribe(channelName);
      await receiver.subscribe(channelName);
      return { sender, senderChannel, receiver, errors: recordConnectionErrors(sender) };
    }

    before(async () => {
      cluster = await startCluster('limits', {
        env: {
          HERALD_APPS: JSON.stringify([LIMITED_APP]),
          HERALD_MAX_MESSAGE_BYTES: String(MAX_MESSAGE_BYTES),
        },
      });
      backend = cluster.sdk();
      for (const gatewayIndex of [0, 1]) {
        const bystander = await pusherJsClient(gatewayIndex, `bystander on gateway ${gatewayIndex + 1}`);
        await bystander.subscribe(BYSTANDER_CHANNEL);
        bystanders.push(bystander);
      }
    });

    after(async () => {
      for (const client of clients) {
        if (client instanceof PusherJsClient) {
          client.disconnect();
        } else {
          client.close();
        }
      }
      if (cluster) {
        try {
          cluster.assertAllRunning();
        } finally {
          await cluster.stop();
        }
      }
    });

    it('rejects long or invalid channel names', async () => {
      const client = await pusherJsClient(0, 'channel name client');
      const errors = recordConnectionErrors(client);

      for (const name of ['c'.repeat(41), 'bad name!', 'ümlaut']) {
        const data = await expectSubscriptionError(client, name);
        assert.deepEqual(data, { type: 'InvalidChannel', error: CHANNEL_NAME_ERROR, status: 400 }, `channel ${JSON.stringify(name)}`);
      }

      const longest = 'c'.repeat(40);
      await client.subscribe(longest);
      await backend.trigger(longest, 'at-the-limit', { ok: true });
      await client.waitForEvent(longest, 'at-the-limit');

      // The Node SDK sends the channel in a `channels` array.
      await assertRequestError(
        backend.trigger('c'.repeat(41), 'should-not-arrive', {}),
        400,
        'Invalid channels[0]: the channel name is 41 bytes, the maximum is 40',
      );

      assert.deepEqual(errors.items.map((item) => item.text), [], 'subscription errors must not be pusher:error frames');
      await assertBystandersReceive();
    });

    it('rejects long client event names', async () => {
      const channel = 'private-long-names';
      const { senderChannel, receiver, errors } = await privatePair(channel, 'event name');

      const tooLong = `client-${'e'.repeat(24)}`;
      const longest = `client-${'e'.repeat(23)}`;
      assert.equal(tooLong.length, 31);
      assert.equal(senderChannel.trigger(tooLong, { n: 1 }), true);
      const error = await waitForErrorCode(errors, 4301);
      assert.deepEqual(error.data, { code: 4301, message: 'Client event name is longer than 30 bytes' });

      assert.equal(senderChannel.trigger(longest, { n: 2 }), true);
      await receiver.waitForEvent(channel, longest);
      // The gateway handles a connection's frames in order, so the rejected
      // event would have arrived before the accepted one.
      assert.deepEqual(receiver.appEvents().map((item) => item.event), [longest]);
      assert.equal(errors.items.length, 1, `errors: ${errors.items.map((item) => item.text).join(', ')}`);
      await assertBystandersReceive();
    });

    it('rejects large client event data', async () => {
      const channel = 'private-big-data';
      const { senderChannel, receiver, errors } = await privatePair(channel, 'event data');

      // pusher-js sends the object, and the gateway measures its JSON text.
      const envelope = JSON.stringify({ text: '' }).length;
      const tooLarge = { text: 'x'.repeat(1025 - envelope) };
      const largest = { text: 'y'.repeat(1024 - envelope) };
      assert.equal(JSON.stringify(tooLarge).length, 1025);

      assert.equal(senderChannel.trigger('client-too-large', tooLarge), true);
      const error = await waitForErrorCode(errors, 4301);
      assert.deepEqual(error.data, { code: 4301, message: 'Client event data is 1025 bytes; the limit is 1024 bytes' });

      assert.equal(senderChannel.trigger('client-largest', largest), true);
      const delivered = await receiver.waitForEvent(channel, 'client-largest');
      assert.deepEqual(delivered.data, largest);
      assert.deepEqual(receiver.appEvents().map((item) => item.event), ['client-largest']);
      assert.equal(errors.items.length, 1, `errors: ${errors.items.map((item) => item.text).join(', ')}`);
      await assertBystandersReceive();
    });

    it('rate-limits client events per connection', async () => {
      const channel = 'private-rate';
      const { senderChannel, receiver, errors } = await privatePair(channel, 'rate');

      // Five events leave in one burst, far inside the one-second window
      // that the first of them opens, so the last two are over the limit.
      for (let n = 1; n <= 5; n += 1) {
        assert.equal(senderChannel.trigger('client-burst', { n }), true);
      }
      await waitUntil(() => errors.items.length >= 2, { what: 'two pusher:error frames for the burst' });
      for (const item of errors.items) {
        assert.deepEqual(item.data, { code: 4301, message: 'Client event rejected: the limit is 3 client events per second' });
      }

      await waitUntil(() => receiver.appEvents().length >= 3, { what: `${receiver.name} to receive 3 client events` });
      await backend.trigger(channel, 'server-marker', {});
      await receiver.waitForEvent(channel, 'server-marker');
      const burst = receiver.appEvents().filter((item) => item.event === 'client-burst').map((item) => item.data.n);
      assert.deepEqual(burst, [1, 2, 3], 'the first three events of the burst are delivered, once each');
      assert.equal(errors.items.length, 2, `errors: ${errors.items.map((item) => item.text).join(', ')}`);
      await assertBystandersReceive();
    });

    it('rejects messages over max_message_bytes', async () => {
      const client = await rawClient(1, 'big message client');

      // A pusher:subscribe frame of exactly `bytes` bytes, padded with an
      // unknown field that the gateway ignores.
      const subscribeFrame = (channel, bytes) => {
        const frame = { event: 'pusher:subscribe', data: { channel, padding: '' } };
        frame.data.padding = 'p'.repeat(bytes - Buffer.byteLength(JSON.stringify(frame)));
        const text = JSON.stringify(frame);
        assert.equal(Buffer.byteLength(text), bytes);
        return text;
      };

      let since = client.mark();
      client.sendText(subscribeFrame('public-too-big', MAX_MESSAGE_BYTES + 1));
      const error = await client.waitForEvent('pusher:error', { since });
      assert.deepEqual(error.frame.data, { code: null, message: 'Message too large: the limit is 4096 bytes' });

      since = client.mark();
      client.sendText(subscribeFrame('public-largest', MAX_MESSAGE_BYTES));
      await client.waitForEvent('pusher_internal:subscription_succeeded', { channel: 'public-largest', since });
      assert.equal(client.events('pusher_internal:subscription_succeeded', { channel: 'public-too-big' }).length, 0);
      assert.equal(client.events('pusher:error').length, 1, 'only the message over the limit is rejected');
      assert.ok(client.isOpen);
      await assertBystandersReceive();
    });

    it('rejects large HTTP event data', async () => {
      const since = bystanders.map((bystander) => bystanderEvents(bystander).length);

      await assertRequestError(
        backend.trigger(BYSTANDER_CHANNEL, 'should-not-arrive', 'd'.repeat(1025)),
        413,
        'Event data too large: 1025 bytes, the maximum is 1024',
      );
      await assertRequestError(
        backend.triggerBatch([{ channel: BYSTANDER_CHANNEL, name: 'should-not-arrive', data: 'd'.repeat(1025) }]),
        413,
        'batch[0]: Event data too large: 1025 bytes, the maximum is 1024',
      );

      await backend.trigger(BYSTANDER_CHANNEL, 'largest-data', 'd'.repeat(1024));
      const marker = await assertBystandersReceive();
      for (const [index, bystander] of bystanders.entries()) {
        assert.deepEqual(bystanderEvents(bystander).slice(since[index]), ['largest-data', marker], bystander.name);
      }
    });

    it('rejects too many trigger channels', async () => {
      const since = bystanders.map((bystander) => bystanderEvents(bystander).length);
      const channels = [BYSTANDER_CHANNEL, 'extra-1', 'extra-2', 'extra-3'];

      await assertRequestError(
        backend.trigger(channels, 'should-not-arrive', {}),
        400,
        'Too many channels: 4, the maximum is 3',
      );

      await backend.trigger(channels.slice(0, 3), 'three-channels', {});
      const marker = await assertBystandersReceive();
      for (const [index, bystander] of bystanders.entries()) {
        assert.deepEqual(bystanderEvents(bystander).slice(since[index]), ['three-channels', marker], bystander.name);
      }
    });

    it('rejects oversized batches', async () => {
      const since = bystanders.map((bystander) => bystanderEvents(bystander).length);
      const item = (name) => ({ channel: BYSTANDER_CHANNEL, name, data: '{}' });

      await assertRequestError(
        backend.triggerBatch([item('should-not-arrive'), item('should-not-arrive'), item('should-not-arrive')]),
        400,
        'Batch too large: 3 events, the maximum is 2',
      );

      await backend.triggerBatch([item('batch-1'), item('batch-2')]);
      const marker = await assertBystandersReceive();
      for (const [index, bystander] of bystanders.entries()) {
        assert.deepEqual(bystanderEvents(bystander).slice(since[index]), ['batch-1', 'batch-2', marker], bystander.name);
      }
    });
  });

  describe('max_connections', () => {
    let cluster;
    const clients = [];

    async function pusherJsClient(gatewayIndex, name) {
      const client = await PusherJsClient.connect(cluster, gatewayIndex, { name });
      clients.push(client);
      return client;
    }

    // The connection count lives in the hash <prefix>conns:{<app id>}, one
    // field per gateway, written at each heartbeat.
    const countsKey = () => `${cluster.prefix}conns:{${CAPPED_APP.id}}`;

    /**
     * Waits until Redis has `total` connections of the capped app and
     * both gateways have run a heartbeat since, so each one checks new
     * connections against that total.
     */
    async function waitForClusterCount(total) {
      await waitForHashTotal(cluster, countsKey(), total);
      await Promise.all([waitForHeartbeats(cluster, 0), waitForHeartbeats(cluster, 1)]);
    }

    before(async () => {
      // With node_timeout 1 s the gateways beat every 200 ms, so the
      // cluster-wide count is current within a fraction of a second.
      cluster = await startCluster('limits-connections', {
        env: {
          HERALD_APPS: JSON.stringify([CAPPED_APP, UNCAPPED_APP]),
          HERALD_NODE_TIMEOUT: '1',
        },
      });
    });

    after(async () => {
      for (const client of clients) {
        if (client instanceof PusherJsClient) {
          client.disconnect();
        } else {
          client.close();
        }
      }
      if (cluster) {
        try {
          cluster.assertAllRunning();
        } finally {
          await cluster.stop();
        }
      }
    });

    it('closes connections over the quota', async () => {
      const channel = 'capped-news';
      const first = await pusherJsClient(0, 'first on gateway 1');
      const second = await pusherJsClient(1, 'second on gateway 2');
      await first.subscribe(channel);
      await second.subscribe(channel);
      await waitForClusterCount(2);

      const third = await pusherJsClient(0, 'third on gateway 1');
      await third.subscribe(channel);
      await waitForClusterCount(3);

      // Gateway 2 has one of the three connections, so only the
      // cluster-wide count can reject this one.
      const raw = new RawClient(cluster.gatewayUrl(1), { name: 'fourth on gateway 2' });
      clients.push(raw);
      const closed = await raw.waitForClose();
      assert.deepEqual(closed, { code: 4004, reason: 'Over connection quota: app app-1 allows 3 connections' });
      assert.deepEqual(
        raw.inbox.items.map((item) => item.frame),
        [{ event: 'pusher:error', data: { code: 4004, message: 'Over connection quota: app app-1 allows 3 connections' } }],
        'the gateway sends pusher:error 4004 and no connection_established',
      );

      const rejectedClient = new PusherJsClient(cluster, 0, { name: 'fourth on gateway 1' });
      clients.push(rejectedClient);
      const errors = recordConnectionErrors(rejectedClient);
      const error = await waitForErrorCode(errors, 4004);
      assert.equal(error.data.message, 'Over connection quota: app app-1 allows 3 connections');
      // Close codes 4001 to 4099 tell pusher-js not to reconnect.
      await waitUntil(() => rejectedClient.pusher.connection.state === 'disconnected', {
        what: `pusher-js to give up (state ${rejectedClient.pusher.connection.state})`,
      });

      // The limit is per app: another app's clients still connect.
      const otherApp = await RawClient.connect(cluster.gatewayUrl(1, { appKey: UNCAPPED_APP.key }), { name: 'other app' });
      clients.push(otherApp);

      await cluster.sdk().trigger(channel, 'still-delivered', {});
      await Promise.all([first, second, third].map((client) => client.waitForEvent(channel, 'still-delivered')));

      // A connection that leaves makes room on the other gateway.
      third.disconnect();
      await waitForClusterCount(2);
      const replacement = await RawClient.connect(cluster.gatewayUrl(1), { name: 'replacement on gateway 2' });
      clients.push(replacement);
      await replacement.subscribe(channel);
    });
  });
});
