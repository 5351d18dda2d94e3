// End-to-end delivery with the real clients: pusher-js 8 subscribers on two
// gateways, events triggered through the relay by the `pusher` Node SDK.
// Every check compares each client's complete list of received events with
// the list it should have, so a missing, extra or duplicated event fails.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { startCluster } from '../lib/cluster.mjs';
import { PusherJsClient } from '../lib/pusher-client.mjs';
import { RawClient } from '../lib/raw-client.mjs';

const NEWS = 'news';
const ORDERS_7 = 'private-orders.7';
const ORDERS_8 = 'private-orders.8';
const QUIET = 'public-quiet';
const ALL_CHANNELS = [NEWS, ORDERS_7, ORDERS_8, QUIET];

// Which client watches which channel, on which gateway.
const ROSTER = [
  { name: 'alice', gateway: 0, channels: [NEWS, ORDERS_7] },
  { name: 'bob', gateway: 1, channels: [NEWS, ORDERS_7] },
  { name: 'carol', gateway: 0, channels: [NEWS] },
  { name: 'dave', gateway: 1, channels: [ORDERS_8] },
  { name: 'erin', gateway: 0, channels: [QUIET] },
];

const UNICODE_TEXT = 'Grüße aus Köln — 日本語, עברית, emoji 🚀🎉, quotes "x" and \\ and /';

let cluster;
let backend;
const clients = {};
let observer;
let fenceCount = 0;

function sortEvents(events) {
  return [...events].sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
}

/**
 * Runs `trigger`, then sends a fence event to every channel and waits until
 * each client has the fence on each of its channels. Events of one channel
 * arrive in order, so by then every earlier event has arrived. Then checks
 * that each client received exactly `expected[name]` (in any order across
 * channels; absent names expect nothing).
 */
async function assertDelivery(trigger, expected) {
  const marks = Object.fromEntries(ROSTER.map(({ name }) => [name, clients[name].inbox.mark()]));
  await trigger();

  fenceCount += 1;
  const fence = `fence-${fenceCount}`;
  await backend.trigger(ALL_CHANNELS, fence, { fence: fenceCount });
  await Promise.all(
    ROSTER.flatMap(({ name, channels }) =>
      channels.map((channel) => clients[name].waitForEvent(channel, fence, { since: marks[name] })),
    ),
  );

  for (const { name } of ROSTER) {
    const received = clients[name].appEvents(marks[name]).filter((event) => event.event !== fence);
    assert.deepEqual(sortEvents(received), sortEvents(expected[name] ?? []), `events received by ${name}`);
  }
}

describe('delivery with pusher-js and the pusher SDK', () => {
  before(async () => {
    cluster = await startCluster('delivery');
    backend = cluster.sdk();
    for (const { name, gateway, channels } of ROSTER) {
      clients[name] = await PusherJsClient.connect(cluster, gateway, { name, backend });
      for (const channel of channels) {
        await clients[name].subscribe(channel);
      }
    }
    observer = await RawClient.connect(cluster.gatewayUrl(1), { name: 'raw observer' });
    await observer.subscribe(NEWS);
  });

  after(async () => {
    for (const client of Object.values(clients)) {
      client.disconnect();
    }
    observer?.close();
    if (cluster) {
      try {
        cluster.assertAllRunning();
      } finally {
        await cluster.stop();
      }
    }
  });

  it('gives each client a distinct socket_id', () => {
    const ids = ROSTER.map(({ name }) => clients[name].socketId);
    for (const id of ids) {
      assert.match(id, /^\d+\.\d+$/);
    }
    assert.equal(new Set(ids).size, ids.length);
  });

  it('delivers a single-channel event to every subscriber', async () => {
    const data = { title: UNICODE_TEXT, count: 3, nested: { ok: true, list: [1, 'two', null] } };
    const since = observer.mark();
    await assertDelivery(
      async () => {
        const response = await backend.trigger(NEWS, 'headline', data);
        assert.equal(response.status, 200);
      },
      {
        alice: [{ channel: NEWS, event: 'headline', data }],
        bob: [{ channel: NEWS, event: 'headline', data }],
        carol: [{ channel: NEWS, event: 'headline', data }],
      },
    );
    const frame = (await observer.waitForEvent('headline', { channel: NEWS, since })).frame;
    assert.equal(frame.data, JSON.stringify(data), 'data must reach the client byte for byte as the SDK sent it');
  });

  it('delivers string data that is not JSON unchanged', async () => {
    const data = `plain text: ${UNICODE_TEXT}`;
    await assertDelivery(() => backend.trigger(ORDERS_7, 'note', data), {
      alice: [{ channel: ORDERS_7, event: 'note', data }],
      bob: [{ channel: ORDERS_7, event: 'note', data }],
    });
  });

  it('delivers a Laravel-style event name', async () => {
    const data = { order_id: 7, url: 'https://example.test/orders/7' };
    await assertDelivery(() => backend.trigger(ORDERS_7, 'App\\Events\\OrderShipped', data), {
      alice: [{ channel: ORDERS_7, event: 'App\\Events\\OrderShipped', data }],
      bob: [{ channel: ORDERS_7, event: 'App\\Events\\OrderShipped', data }],
    });
  });

  it('delivers a multi-channel event once per channel', async () => {
    const data = { multi: UNICODE_TEXT };
    const event = (channel) => ({ channel, event: 'multi', data });
    await assertDelivery(() => backend.trigger([NEWS, ORDERS_7, ORDERS_8], 'multi', data), {
      alice: [event(NEWS), event(ORDERS_7)],
      bob: [event(NEWS), event(ORDERS_7)],
      carol: [event(NEWS)],
      dave: [event(ORDERS_8)],
    });
  });

  it('delivers every item of a batch', async () => {
    const one = { n: 1 };
    const two = `batch text ${UNICODE_TEXT}`;
    const three = { emoji: '🎉', n: 3 };
    await assertDelivery(
      () =>
        backend.triggerBatch([
          { channel: ORDERS_8, name: 'batch.one', data: one },
          { channel: NEWS, name: 'batch.two', data: two },
          { channel: ORDERS_7, name: 'batch.three', data: three },
        ]),
      {
        alice: [
          { channel: NEWS, event: 'batch.two', data: two },
          { channel: ORDERS_7, event: 'batch.three', data: three },
        ],
        bob: [
          { channel: NEWS, event: 'batch.two', data: two },
          { channel: ORDERS_7, event: 'batch.three', data: three },
        ],
        carol: [{ channel: NEWS, event: 'batch.two', data: two }],
        dave: [{ channel: ORDERS_8, event: 'batch.one', data: one }],
      },
    );
  });

  it('skips the excluded socket_id on the same gateway', async () => {
    const data = { to: 'others' };
    await assertDelivery(() => backend.trigger(NEWS, 'to-others', data, { socket_id: clients.alice.socketId }), {
      bob: [{ channel: NEWS, event: 'to-others', data }],
      carol: [{ channel: NEWS, event: 'to-others', data }],
    });
  });

  it('skips the excluded socket_id on another gateway', async () => {
    const data = { to: 'others', across: true };
    const event = (channel) => ({ channel, event: 'to-others-multi', data });
    await assertDelivery(
      () => backend.trigger([NEWS, ORDERS_7], 'to-others-multi', data, { socket_id: clients.bob.socketId }),
      {
        alice: [event(NEWS), event(ORDERS_7)],
        carol: [event(NEWS)],
      },
    );
  });

  it('honours socket_id on a batch item', async () => {
    const data = { batch: 'to-others' };
    await assertDelivery(
      () =>
        backend.triggerBatch([
          { channel: NEWS, name: 'batch-excluding', data, socket_id: clients.carol.socketId },
          { channel: ORDERS_8, name: 'batch-plain', data },
        ]),
      {
        alice: [{ channel: NEWS, event: 'batch-excluding', data }],
        bob: [{ channel: NEWS, event: 'batch-excluding', data }],
        dave: [{ channel: ORDERS_8, event: 'batch-plain', data }],
      },
    );
  });

  it('keeps the order of events on one channel', async () => {
    const count = 25;
    const expectedEvents = [];
    await assertDelivery(
      async () => {
        for (let n = 0; n < count; n += 1) {
          await backend.trigger(NEWS, 'sequence', { n });
          expectedEvents.push({ channel: NEWS, event: 'sequence', data: { n } });
        }
      },
      { alice: expectedEvents, bob: expectedEvents, carol: expectedEvents },
    );
    for (const name of ['alice', 'bob', 'carol']) {
      const order = clients[name].appEvents().filter((event) => event.event === 'sequence').map((event) => event.data.n);
      assert.deepEqual(order, [...Array(count).keys()], `order of events seen by ${name}`);
    }
  });

  it('rejects a bad signature with 401 and delivers nothing', async () => {
    const forger = cluster.sdk({ secret: 'not-the-app-secret' });
    await assertDelivery(async () => {
      await assert.rejects(forger.trigger(NEWS, 'forged', { evil: true }), (error) => {
        assert.equal(error.status, 401, `expected HTTP 401, got ${error.status} ${error.body ?? error.message}`);
        return true;
      });
      await assert.rejects(forger.triggerBatch([{ channel: ORDERS_7, name: 'forged', data: { evil: true } }]), (error) => {
        assert.equal(error.status, 401, `expected HTTP 401, got ${error.status} ${error.body ?? error.message}`);
        return true;
      });
    }, {});
  });

  it('is not disturbed by malformed frames from another client', async () => {
    const vandal = await RawClient.connect(cluster.gatewayUrl(0), { name: 'vandal' });
    try {
      await vandal.subscribe(NEWS);
      vandal.sendText('{"event":');
      vandal.sendText('not json at all');
      vandal.sendText('[]');
      vandal.sendText('{"event":42,"data":[]}');
      vandal.sendText('{"event":"pusher:subscribe","data":{"channel":{"nested":true}}}');
      vandal.sendText(`{"event":"pusher:subscribe","data":{"channel":"${'z'.repeat(40000)}"}}`);
      vandal.sendText('\u0000\u0001 control characters');
      vandal.sendBinary(Buffer.from([0xde, 0xad, 0xbe, 0xef]));

      const data = { after: 'vandal', text: UNICODE_TEXT };
      await assertDelivery(() => backend.trigger(NEWS, 'after-vandal', data), {
        alice: [{ channel: NEWS, event: 'after-vandal', data }],
        bob: [{ channel: NEWS, event: 'after-vandal', data }],
        carol: [{ channel: NEWS, event: 'after-vandal', data }],
      });
      cluster.assertAllRunning();
    } finally {
      vandal.close();
    }
  });
});
