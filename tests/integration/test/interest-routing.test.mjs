// Interest-based routing: a gateway holds a Redis subscription to a
// channel's topic (<prefix>ch:{<app id>:<channel>}) only while at least one
// of its own clients is subscribed to that channel. Checked from the outside
// with `redis-cli PUBSUB NUMSUB`.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { startCluster } from '../lib/cluster.mjs';
import { RawClient } from '../lib/raw-client.mjs';
import { waitUntil } from '../lib/wait.mjs';

let cluster;
const clients = [];

async function connect(gatewayIndex, name) {
  const client = await RawClient.connect(cluster.gatewayUrl(gatewayIndex), { name });
  clients.push(client);
  return client;
}

async function waitForSubscribers(channel, expected) {
  await waitUntil(async () => (await cluster.topicSubscribers(channel)) === expected, {
    timeout: 8000,
    what: `PUBSUB NUMSUB ${cluster.topic(channel)} to be ${expected}`,
  });
}

function unsubscribe(client, channel) {
  client.send({ event: 'pusher:unsubscribe', data: { channel } });
}

describe('interest routing', () => {
  before(async () => {
    cluster = await startCluster('interest-routing');
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

  it('uses the configured prefix and hash-tagged topic name', () => {
    assert.equal(cluster.topic('news'), `${cluster.prefix}ch:{app-1:news}`);
  });

  it('subscribes a topic only while a local client needs it', async () => {
    const channel = 'public-interest';
    assert.equal(await cluster.topicSubscribers(channel), 0);

    // A gateway confirms a subscription only after its Redis subscription
    // is in place, so the count is right as soon as the client sees it.
    const first = await connect(0, 'first on gateway 1');
    await first.subscribe(channel);
    assert.equal(await cluster.topicSubscribers(channel), 1);

    // A second local client on the same gateway adds no Redis subscription.
    const second = await connect(0, 'second on gateway 1');
    await second.subscribe(channel);
    assert.equal(await cluster.topicSubscribers(channel), 1);

    // A client on the other gateway makes that gateway subscribe too.
    const third = await connect(1, 'first on gateway 2');
    await third.subscribe(channel);
    assert.equal(await cluster.topicSubscribers(channel), 2);

    // Gateway 1 keeps its subscription until its last client leaves.
    unsubscribe(first, channel);
    await first.ping();
    assert.equal(await cluster.topicSubscribers(channel), 2);
    unsubscribe(second, channel);
    await waitForSubscribers(channel, 1);

    // An event still reaches the remaining client through gateway 2.
    const since = third.mark();
    await cluster.sdk().trigger(channel, 'routed', { ok: true });
    await third.waitForEvent('routed', { channel, since });

    unsubscribe(third, channel);
    await waitForSubscribers(channel, 0);
  });

  it('drops the topic when the last client disconnects', async () => {
    const channel = 'public-interest-disconnect';
    const client = await connect(1, 'disconnecting client');
    await client.subscribe(channel);
    assert.equal(await cluster.topicSubscribers(channel), 1);

    client.close();
    await waitForSubscribers(channel, 0);
  });

  it('subscribes the topic again when a client comes back', async () => {
    const channel = 'public-interest-again';
    const client = await connect(0, 'returning client');
    await client.subscribe(channel);
    unsubscribe(client, channel);
    await waitForSubscribers(channel, 0);

    await client.subscribe(channel);
    assert.equal(await cluster.topicSubscribers(channel), 1);
    const since = client.mark();
    await cluster.sdk().trigger(channel, 'back-again', { ok: true });
    await client.waitForEvent('back-again', { channel, since });
  });

  it('keeps one topic per private channel', async () => {
    const channel = 'private-interest.7';
    const client = await connect(1, 'private subscriber');
    await client.subscribe(channel, cluster.sdk().authorizeChannel(client.socketId, channel));
    assert.equal(await cluster.topicSubscribers(channel), 1);
    unsubscribe(client, channel);
    await waitForSubscribers(channel, 0);
  });
});
