// The channel endpoints of the HTTP API, trigger `info` and
// terminate_connections across a real cluster. pusher-js clients subscribe
// on both gateways, and the `pusher` Node SDK reads the cluster-wide
// figures through the relay. The relay reads them from the state the
// gateways keep in Redis.

import assert from 'node:assert/strict';
import { isDeepStrictEqual } from 'node:util';
import { after, before, describe, it } from 'node:test';

import { startCluster } from '../lib/cluster.mjs';
import { PusherJsClient } from '../lib/pusher-client.mjs';
import { RawClient } from '../lib/raw-client.mjs';
import { EVENT_TIMEOUT_MS, waitUntil } from '../lib/wait.mjs';

const PRESENCE = 'presence-x';
const PUBLIC = 'news';
const PRIVATE = 'private-orders.7';
const ALICE = { user_id: '7', user_info: { name: 'Alice' } };
const BOB = { user_id: '8', user_info: { name: 'Bob' } };

let cluster;
const clients = [];

/** GETs `path` with `params` through the SDK and returns the decoded body. */
async function getJson(path, params) {
  const response = await cluster.sdk().get({ path, params });
  assert.equal(response.status, 200);
  return response.json();
}

/**
 * Polls GET `path` until its body equals `expected`, because each gateway
 * writes its subscription count to Redis on its own connection, a moment
 * after the subscription it counts.
 */
async function waitForBody(path, params, expected) {
  let last;
  await waitUntil(
    async () => {
      last = await getJson(path, params);
      return isDeepStrictEqual(last, expected);
    },
    { timeout: EVENT_TIMEOUT_MS, what: `GET ${path} ${JSON.stringify(params ?? {})} to return ${JSON.stringify(expected)}` },
  );
  return last;
}

async function connectPusherJs(gatewayIndex, name, presenceUser) {
  const client = await PusherJsClient.connect(cluster, gatewayIndex, { name, presenceUser });
  clients.push(client);
  return client;
}

async function connectRaw(gatewayIndex, name) {
  const client = await RawClient.connect(cluster.gatewayUrl(gatewayIndex), { name });
  clients.push(client);
  return client;
}

/** Signs `client` in as `userId` with pusher:signin and waits for the success. */
async function signIn(client, userId) {
  const since = client.mark();
  client.send({ event: 'pusher:signin', data: cluster.sdk().authenticateUser(client.socketId, { id: userId }) });
  await client.waitForEvent('pusher:signin_success', { since });
}

describe('channels API across two gateways', () => {
  before(async () => {
    cluster = await startCluster('channels-api');
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

  it('reports cluster-wide figures, then empties', async () => {
    // Alice is on both gateways, Bob on the second only: 2 users, 3
    // presence subscriptions.
    const aliceOnFirst = await connectPusherJs(0, 'alice on gateway 1', ALICE);
    const aliceOnSecond = await connectPusherJs(1, 'alice on gateway 2', ALICE);
    const bob = await connectPusherJs(1, 'bob on gateway 2', BOB);
    const readerOnFirst = await connectPusherJs(0, 'reader on gateway 1');
    const readerOnSecond = await connectPusherJs(1, 'reader on gateway 2');

    await Promise.all([
      aliceOnFirst.subscribe(PRESENCE),
      aliceOnSecond.subscribe(PRESENCE),
      bob.subscribe(PRESENCE),
      readerOnFirst.subscribe(PUBLIC),
      readerOnSecond.subscribe(PUBLIC),
      readerOnSecond.subscribe(PRIVATE),
    ]);

    await waitForBody('/channels', { info: 'subscription_count' }, {
      channels: {
        [PUBLIC]: { subscription_count: 2 },
        [PRESENCE]: {},
        [PRIVATE]: { subscription_count: 1 },
      },
    });

    assert.deepEqual(await getJson('/channels', { filter_by_prefix: 'presence-', info: 'user_count' }), {
      channels: { [PRESENCE]: { user_count: 2 } },
    });
    assert.deepEqual(await getJson(`/channels/${PRESENCE}`, { info: 'user_count' }), { occupied: true, user_count: 2 });
    assert.deepEqual(await getJson(`/channels/${PRESENCE}/users`), { users: [{ id: '7' }, { id: '8' }] });
    assert.deepEqual(await getJson(`/channels/${PUBLIC}`, { info: 'subscription_count' }), { occupied: true, subscription_count: 2 });
    assert.deepEqual(await getJson(`/channels/${PRIVATE}`), { occupied: true });
    assert.deepEqual(await getJson('/channels/nobody-here'), { occupied: false });

    // A trigger with info gets the counts and still reaches every client.
    const since = readerOnFirst.inbox.mark();
    const response = await cluster.sdk().trigger([PUBLIC, PRESENCE, PRIVATE], 'tick', { n: 1 }, {
      info: 'user_count,subscription_count',
    });
    assert.deepEqual(await response.json(), {
      channels: {
        [PUBLIC]: { subscription_count: 2 },
        [PRESENCE]: { user_count: 2 },
        [PRIVATE]: { subscription_count: 1 },
      },
    });
    const delivered = await readerOnFirst.waitForEvent(PUBLIC, 'tick', { since });
    assert.deepEqual(delivered.data, { n: 1 });
    await bob.waitForEvent(PRESENCE, 'tick');
    await readerOnSecond.waitForEvent(PRIVATE, 'tick');

    const batch = await cluster.sdk().triggerBatch([
      { channel: PRESENCE, name: 'a', data: '1', info: 'user_count' },
      { channel: PUBLIC, name: 'b', data: '2' },
      { channel: PUBLIC, name: 'c', data: '3', info: 'subscription_count' },
    ]);
    assert.deepEqual(await batch.json(), { batch: [{ user_count: 2 }, {}, { subscription_count: 2 }] });

    // Alice leaving one gateway keeps her listed: her other connection stays.
    aliceOnFirst.unsubscribe(PRESENCE);
    await waitForBody(`/channels/${PRESENCE}`, { info: 'user_count' }, { occupied: true, user_count: 2 });
    aliceOnSecond.unsubscribe(PRESENCE);
    await waitForBody(`/channels/${PRESENCE}/users`, undefined, { users: [{ id: '8' }] });
    assert.deepEqual(await getJson(`/channels/${PRESENCE}`, { info: 'user_count' }), { occupied: true, user_count: 1 });

    for (const client of [aliceOnFirst, aliceOnSecond, bob, readerOnFirst, readerOnSecond]) {
      client.disconnect();
    }
    await waitForBody('/channels', undefined, { channels: {} });
    assert.deepEqual(await getJson(`/channels/${PRESENCE}`, { info: 'user_count' }), { occupied: false });
    assert.deepEqual(await getJson(`/channels/${PRESENCE}/users`), { users: [] });
    assert.deepEqual(await getJson(`/channels/${PUBLIC}`, { info: 'subscription_count' }), { occupied: false });
  });

  it('terminates a signed-in user everywhere', async () => {
    const carolOnFirst = await connectRaw(0, 'carol on gateway 1');
    const carolOnSecond = await connectRaw(1, 'carol on gateway 2');
    const dave = await connectRaw(1, 'dave on gateway 2');
    await Promise.all([signIn(carolOnFirst, '9'), signIn(carolOnSecond, '9'), signIn(dave, '10')]);

    const response = await cluster.sdk().terminateUserConnections('9');
    assert.equal(response.status, 200);
    assert.equal(await response.text(), '{}');

    const [first, second] = await Promise.all([carolOnFirst.waitForClose(), carolOnSecond.waitForClose()]);
    assert.equal(first.code, 4009);
    assert.equal(second.code, 4009);
    await dave.ping();
    assert.ok(dave.isOpen, 'another user was disconnected');
  });
});
