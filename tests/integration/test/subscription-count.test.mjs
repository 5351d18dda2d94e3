// pusher_internal:subscription_count for an app with
// enable_subscription_count: pusher-js clients on both gateways receive the
// cluster-wide count of a channel's subscriptions (pusher-js emits it as
// pusher:subscription_count and stores channel.subscriptionCount), at most
// once per subscription_count_interval_ms and always with the last value.
// Presence channels and apps without the flag get no counts.

import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { after, before, describe, it } from 'node:test';

import { clusterForApp } from '../lib/app-view.mjs';
import { DEV_APP, startCluster } from '../lib/cluster.mjs';
import { PresenceClient, sendMarker } from '../lib/presence-client.mjs';
import { PusherJsClient } from '../lib/pusher-client.mjs';
import { RawClient } from '../lib/raw-client.mjs';
import { waitForHashTotal } from '../lib/redis-state.mjs';
import { EVENT_TIMEOUT_MS, waitUntil } from '../lib/wait.mjs';

const INTERVAL_MS = 300;
const COUNTED_APP = { ...DEV_APP, enable_subscription_count: true, subscription_count_interval_ms: INTERVAL_MS };
const PLAIN_APP = { id: 'plain', key: 'plain-key', secret: 'plain-secret' };

// Client-side gap between two counts that the interval must still show.
// Both events cross Redis, a gateway and a socket, so their delivery delays
// differ, and half the interval leaves room for that on a loaded machine.
const MIN_GAP_MS = INTERVAL_MS / 2;
const BURST_SIZE = 10;

let cluster;
const clients = [];

function disconnectAll() {
  for (const client of clients) {
    if (client instanceof RawClient) {
      client.close();
    } else {
      client.disconnect();
    }
  }
}

async function pusherJsClient(gatewayIndex, name, view = cluster) {
  const client = await PusherJsClient.connect(view, gatewayIndex, { name });
  clients.push(client);
  return client;
}

async function rawClient(gatewayIndex, name) {
  const client = await RawClient.connect(cluster.gatewayUrl(gatewayIndex), { name });
  clients.push(client);
  return client;
}

/**
 * Waits until `client` (a PusherJsClient or a RawClient) receives the count
 * `expected` for `channel`, at or after inbox position `since`.
 */
function waitForCount(client, channel, expected, { since = 0, timeout = EVENT_TIMEOUT_MS } = {}) {
  const description = `subscription_count ${expected} on ${channel}`;
  if (client instanceof RawClient) {
    return client.waitForFrame(
      (frame) =>
        frame.event === 'pusher_internal:subscription_count' &&
        frame.channel === channel &&
        JSON.parse(frame.data).subscription_count === expected,
      { since, timeout, what: description },
    );
  }
  return client.inbox.waitFor(
    (item) => item.event === 'pusher:subscription_count' && item.channel === channel && item.data.subscription_count === expected,
    { since, timeout, what: description },
  );
}

/** Records the counts a pusher-js channel emits, with their arrival time in milliseconds. */
function recordCounts(pusherChannel) {
  const counts = [];
  pusherChannel.bind('pusher:subscription_count', (data) => {
    counts.push({ count: data.subscription_count, at: performance.now() });
  });
  return counts;
}

/** Waits until Redis has `expected` subscriptions of `channel` across the gateways. */
function waitForSubscriptions(channel, expected, view = cluster) {
  return waitForHashTotal(cluster, view.channelKey('subs', channel), expected);
}

/**
 * Waits until no count of `channel` is held back by the interval: the count
 * script keeps the key subcount-lock for one interval after each event.
 */
async function waitForIntervalEnd(channel, view = cluster) {
  const key = view.channelKey('subcount-lock', channel);
  await waitUntil(async () => (await cluster.redisCli('EXISTS', key)) === '0', { interval: 20, what: `${key} to expire` });
}

/**
 * Subscribes one raw client per gateway to `channel`, so later pusher-js
 * subscribers join a channel that both gateways already receive.
 */
async function anchorChannel(channel) {
  const anchors = [];
  for (const gatewayIndex of [0, 1]) {
    const anchor = await rawClient(gatewayIndex, `anchor of ${channel} on gateway ${gatewayIndex + 1}`);
    await anchor.subscribe(channel);
    anchors.push(anchor);
  }
  await waitForSubscriptions(channel, 2);
  return anchors;
}

/** Counts received by `client` since `since`, in arrival order. */
function receivedCounts(client, channel, since) {
  return client.inbox
    .filter((item) => item.event === 'pusher:subscription_count' && item.channel === channel, since)
    .map((item) => item.data.subscription_count);
}

/**
 * Asserts that consecutive counts arrived at least MIN_GAP_MS apart and
 * returns the gaps, rounded to milliseconds.
 */
function assertSpaced(counts, what) {
  const gaps = counts.slice(1).map((entry, index) => Math.round(entry.at - counts[index].at));
  for (const gap of gaps) {
    assert.ok(gap >= MIN_GAP_MS, `${what}: two counts ${gap} ms apart, interval ${INTERVAL_MS} ms (gaps ${JSON.stringify(gaps)})`);
  }
  return gaps;
}

describe('subscription_count', () => {
  before(async () => {
    cluster = await startCluster('subscription-count', {
      env: { HERALD_APPS: JSON.stringify([COUNTED_APP, PLAIN_APP]) },
    });
  });

  after(async () => {
    disconnectAll();
    if (cluster) {
      try {
        cluster.assertAllRunning();
      } finally {
        await cluster.stop();
      }
    }
  });

  it('tracks joins and leaves across gateways', async () => {
    const channel = 'scores';
    const anchors = await anchorChannel(channel);

    let since = anchors.map((anchor) => anchor.mark());
    const first = await pusherJsClient(0, 'first on gateway 1');
    const firstChannel = await first.subscribe(channel);
    await waitForCount(first, channel, 3);
    await Promise.all(anchors.map((anchor, index) => waitForCount(anchor, channel, 3, { since: since[index] })));
    assert.equal(firstChannel.subscriptionCount, 3);

    since = [first.inbox.mark(), ...anchors.map((anchor) => anchor.mark())];
    const second = await pusherJsClient(1, 'second on gateway 2');
    const secondChannel = await second.subscribe(channel);
    await waitForCount(second, channel, 4);
    await Promise.all([first, ...anchors].map((client, index) => waitForCount(client, channel, 4, { since: since[index] })));
    assert.equal(firstChannel.subscriptionCount, 4);
    assert.equal(secondChannel.subscriptionCount, 4);

    since = [first.inbox.mark(), second.inbox.mark()];
    const third = await pusherJsClient(0, 'third on gateway 1');
    const thirdChannel = await third.subscribe(channel);
    await waitForCount(third, channel, 5);
    await Promise.all([first, second].map((client, index) => waitForCount(client, channel, 5, { since: since[index] })));
    assert.equal(thirdChannel.subscriptionCount, 5);

    // A client that disconnects from gateway 2 leaves the channel.
    since = [first.inbox.mark(), third.inbox.mark()];
    second.disconnect();
    await Promise.all([first, third].map((client, index) => waitForCount(client, channel, 4, { since: since[index] })));

    since = [third.inbox.mark(), ...anchors.map((anchor) => anchor.mark())];
    first.unsubscribe(channel);
    await Promise.all([third, ...anchors].map((client, index) => waitForCount(client, channel, 3, { since: since[index] })));
    assert.equal(thirdChannel.subscriptionCount, 3);
  });

  it('reaches a gateway\'s first subscriber', async () => {
    const channel = 'firsts';
    const alone = await pusherJsClient(0, 'alone on gateway 1');
    await alone.subscribe(channel);
    const aloneOutcome = await waitForCount(alone, channel, 1, { timeout: 2000 }).then(
      () => 'received',
      (error) => error.message,
    );

    const since = alone.inbox.mark();
    const joiner = await pusherJsClient(1, 'first on gateway 2');
    await joiner.subscribe(channel);
    // Gateway 1 already receives the channel, so its subscriber gets the new count.
    await waitForCount(alone, channel, 2, { since });
    const joinerOutcome = await waitForCount(joiner, channel, 2, { timeout: 2000 }).then(
      () => 'received',
      (error) => error.message,
    );

    assert.deepEqual({ alone: aloneOutcome, joiner: joinerOutcome }, { alone: 'received', joiner: 'received' });
  });

  it('coalesces a burst of joins', async () => {
    const channel = 'burst-joins';
    await anchorChannel(channel);
    const observers = [await pusherJsClient(0, 'observer on gateway 1'), await pusherJsClient(1, 'observer on gateway 2')];
    const observerChannels = [];
    for (const observer of observers) {
      observerChannels.push(await observer.subscribe(channel));
    }
    await Promise.all(observers.map((observer) => waitForCount(observer, channel, 4)));
    const joiners = [];
    for (let n = 0; n < BURST_SIZE; n += 1) {
      joiners.push(await rawClient(n % 2, `joiner ${n + 1}`));
    }
    await waitForIntervalEnd(channel);

    const since = observers.map((observer) => observer.inbox.mark());
    const timings = observerChannels.map(recordCounts);
    for (const joiner of joiners) {
      joiner.send({ event: 'pusher:subscribe', data: { channel } });
    }
    const total = 4 + BURST_SIZE;
    await Promise.all(observers.map((observer, index) => waitForCount(observer, channel, total, { since: since[index] })));

    // Once the interval has ended, nothing is held back: a marker published
    // now arrives after any further count.
    await waitForIntervalEnd(channel);
    await cluster.sdk().trigger(channel, 'marker', {});
    await Promise.all(observers.map((observer) => observer.waitForEvent(channel, 'marker')));

    const counts = observers.map((observer, index) => receivedCounts(observer, channel, since[index]));
    assert.deepEqual(counts[1], counts[0], 'both gateways deliver the same counts, one event per change cluster-wide');
    assert.equal(counts[0].at(-1), total, `counts ${JSON.stringify(counts[0])}`);
    assert.ok(counts[0].length < BURST_SIZE, `${BURST_SIZE} joins produced ${counts[0].length} counts: ${JSON.stringify(counts[0])}`);
    for (const [index, timing] of timings.entries()) {
      assertSpaced(timing, observers[index].name);
    }
    assert.equal(observerChannels[0].subscriptionCount, total);
    assert.equal(observerChannels[1].subscriptionCount, total);
  });

  it('sends the last count after leaves', async () => {
    const channel = 'burst-leaves';
    await anchorChannel(channel);
    const observers = [await pusherJsClient(0, 'observer on gateway 1'), await pusherJsClient(1, 'observer on gateway 2')];
    const observerChannels = [];
    for (const observer of observers) {
      observerChannels.push(await observer.subscribe(channel));
    }
    const leavers = [];
    for (let n = 0; n < BURST_SIZE; n += 1) {
      const leaver = await rawClient(n % 2, `leaver ${n + 1}`);
      await leaver.subscribe(channel);
      leavers.push(leaver);
    }
    await Promise.all(observers.map((observer) => waitForCount(observer, channel, 4 + BURST_SIZE)));
    await waitForIntervalEnd(channel);

    // The first leave is sent at once and starts an interval. Every later
    // leave falls inside it, so the final count can only come from the
    // update sent when the interval ends.
    const since = observers.map((observer) => observer.inbox.mark());
    const timings = observerChannels.map(recordCounts);
    for (const leaver of leavers) {
      leaver.close();
    }
    await Promise.all(observers.map((observer, index) => waitForCount(observer, channel, 4, { since: since[index] })));

    await waitForIntervalEnd(channel);
    await cluster.sdk().trigger(channel, 'marker', {});
    await Promise.all(observers.map((observer) => observer.waitForEvent(channel, 'marker')));

    const counts = observers.map((observer, index) => receivedCounts(observer, channel, since[index]));
    assert.deepEqual(counts[1], counts[0], 'both gateways deliver the same counts');
    assert.equal(counts[0].at(-1), 4, `counts ${JSON.stringify(counts[0])}`);
    assert.ok(counts[0].length < BURST_SIZE, `${BURST_SIZE} leaves produced ${counts[0].length} counts: ${JSON.stringify(counts[0])}`);
    for (const [index, timing] of timings.entries()) {
      assertSpaced(timing, observers[index].name);
    }
    assert.equal(observerChannels[0].subscriptionCount, 4);
    assert.equal(observerChannels[1].subscriptionCount, 4);
  });

  it('sends no counts on presence channels', async () => {
    const channel = 'presence-lobby';
    const members = [];
    // Two members per gateway: the second one joins while its gateway
    // already receives the channel, so a count sent for it would reach the
    // first one. Each join waits for the end of any interval, so a count,
    // if one were sent, would go out at once and not after the marker.
    for (let n = 1; n <= 4; n += 1) {
      const member = await PresenceClient.connect(cluster, (n - 1) % 2, {
        name: `member ${n}`,
        user: { user_id: String(n), user_info: { name: `Member ${n}` } },
      });
      clients.push(member);
      await waitForIntervalEnd(channel);
      await member.subscribe(channel);
      members.push(member);
    }

    // The count script records a join and sends its count in one step, so
    // once Redis has all four joins any count has been published.
    await waitForSubscriptions(channel, 4);
    await sendMarker(cluster, channel, members);
    for (const member of members) {
      assert.deepEqual(member.frames(channel, 'pusher_internal:subscription_count'), [], member.name);
      assert.equal(member.pusher.channel(channel).subscriptionCount, undefined, member.name);
    }
  });

  it('sends none without the app flag', async () => {
    const plain = clusterForApp(cluster, PLAIN_APP);
    const channel = 'news';
    const subscribers = [];
    // As on the presence channel: two subscribers per gateway, each joining
    // after any interval has ended.
    for (let n = 1; n <= 4; n += 1) {
      const subscriber = await pusherJsClient((n - 1) % 2, `plain app subscriber ${n}`, plain);
      await waitForIntervalEnd(channel, plain);
      await subscriber.subscribe(channel);
      subscribers.push(subscriber);
    }

    await waitForSubscriptions(channel, 4, plain);
    await plain.sdk().trigger(channel, 'marker', {});
    await Promise.all(subscribers.map((subscriber) => subscriber.waitForEvent(channel, 'marker')));
    for (const subscriber of subscribers) {
      assert.deepEqual(receivedCounts(subscriber, channel, 0), [], subscriber.name);
      assert.equal(subscriber.pusher.channel(channel).subscriptionCount, undefined, subscriber.name);
    }
  });
});
