// Laravel's redis broadcaster (BROADCAST_CONNECTION=redis) as input: two
// relays with laravel_ingest on compete for the ingest lease, and the holder
// delivers what Laravel PUBLISHes to clients on both gateways.
//
// Broadcasts are sent exactly as Laravel 8 to 12 sends them: redis-cli runs
//   EVAL "for i = 2, #ARGV do redis.call('publish', ARGV[i], ARGV[1]) end" 0 <payload> <channel>...
// with each channel behind the Redis prefix (laravel_database_ by default,
// laravel-database- from Laravel 13) and a payload whose data is an object
// that repeats `socket`. Raw WebSocket clients show the exact frames, and
// pusher-js and Laravel Echo clients show what an app receives.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import Echo from 'laravel-echo';
import PusherJs from 'pusher-js';

import { startCluster } from '../lib/cluster.mjs';
import { PusherJsClient } from '../lib/pusher-client.mjs';
import { RawClient } from '../lib/raw-client.mjs';
import { EVENT_TIMEOUT_MS, waitUntil } from '../lib/wait.mjs';

// The Lua script of Illuminate\Broadcasting\Broadcasters\RedisBroadcaster.
const LARAVEL_BROADCAST_SCRIPT = "for i = 2, #ARGV do redis.call('publish', ARGV[i], ARGV[1]) end";
const LEASE_MS = 1000;
const ORDER_SHIPPED = 'App\\Events\\OrderShipped';

/** Builds the payload Laravel publishes, whose `data` carries `socket` too. */
function laravelPayload(event, data, socket = null) {
  return JSON.stringify({ event, data: { ...data, socket }, socket });
}

/** Broadcasts like Laravel: one EVAL that PUBLISHes `payload` to each prefixed channel. */
function broadcast(cluster, payload, channels, prefix = 'laravel_database_') {
  return cluster.redisCli('EVAL', LARAVEL_BROADCAST_SCRIPT, '0', payload, ...channels.map((channel) => `${prefix}${channel}`));
}

/** Index of the relay whose instance id (<host>-<pid>-<random>) is in the lease. */
async function leaseHolder(cluster) {
  const holder = await cluster.redisCli('GET', `${cluster.prefix}lease:ingest`);
  return cluster.relays.findIndex((relay, index) => relay.process.isRunning() && holder.includes(`-${cluster.relayPid(index)}-`));
}

/** Waits until a running relay holds the lease and has PSUBSCRIBEd, and returns its index. */
async function waitForHolder(cluster, { exclude = -1, timeout = EVENT_TIMEOUT_MS } = {}) {
  return waitUntil(
    async () => {
      const index = await leaseHolder(cluster);
      if (index < 0 || index === exclude) {
        return false;
      }
      const patterns = Number(await cluster.redisCli('PUBSUB', 'NUMPAT'));
      return patterns === 1 && cluster.relayLogLinesOf(index, 'ingest: subscribed to').length > 0 ? index + 1 : false;
    },
    { timeout, interval: 20, what: 'a relay to hold the ingest lease and subscribe' },
  ).then((found) => found - 1);
}

/** Reads GET /metrics of relay `index` into { 'name{labels}': value }. */
async function relayMetrics(cluster, index) {
  const response = await fetch(`http://127.0.0.1:${cluster.relays[index].port}/metrics`);
  assert.equal(response.status, 200);
  const samples = {};
  for (const line of (await response.text()).split('\n')) {
    if (line && !line.startsWith('#')) {
      const space = line.lastIndexOf(' ');
      samples[line.slice(0, space)] = Number(line.slice(space + 1));
    }
  }
  return samples;
}

describe('Laravel redis broadcaster ingest', () => {
  let cluster;
  const clients = [];
  const echos = [];

  before(async () => {
    cluster = await startCluster('laravel-ingest', {
      env: { HERALD_LARAVEL_INGEST: 'true', HERALD_INGEST_LEASE_MS: String(LEASE_MS) },
    });
    await cluster.startRelay();
    await waitForHolder(cluster);
  });

  after(async () => {
    for (const client of clients) {
      client.close?.();
      client.disconnect?.();
    }
    for (const echo of echos) {
      echo.disconnect();
    }
    if (cluster) {
      cluster.assertAllRunning();
      await cluster.stop();
    }
  });

  async function connectRaw(gatewayIndex, name) {
    const client = await RawClient.connect(cluster.gatewayUrl(gatewayIndex), { name });
    clients.push(client);
    return client;
  }

  async function subscribeRaw(client, channel) {
    const extra = channel.startsWith('private-')
      ? { auth: cluster.sdk().authorizeChannel(client.socketId, channel).auth }
      : {};
    return client.subscribe(channel, extra);
  }

  /** Frames of `client` on `channel` with event `event`, received at or after `since`. */
  function framesOf(client, channel, event, since = 0) {
    return client.events(event, { channel, since }).map((item) => item.text);
  }

  /**
   * Broadcasts a marker on `channel` and waits until every client has it,
   * so every broadcast before it has been delivered too.
   */
  async function settle(channel, receivers) {
    const marker = `marker-${Date.now()}-${Math.random()}`;
    await broadcast(cluster, laravelPayload('Marker', { marker }), [channel]);
    for (const client of receivers) {
      await client.waitForFrame((frame) => frame.channel === channel && frame.event === 'Marker' && frame.data.includes(marker));
    }
  }

  it('delivers each broadcast once on both gateways', async () => {
    const receivers = [await connectRaw(0, 'raw on gateway 1'), await connectRaw(1, 'raw on gateway 2')];
    for (const client of receivers) {
      await subscribeRaw(client, 'private-orders.7');
      await subscribeRaw(client, 'news');
    }
    const since = receivers.map((client) => client.mark());

    for (let n = 1; n <= 20; n += 1) {
      await broadcast(cluster, laravelPayload(ORDER_SHIPPED, { order_id: n }), ['private-orders.7', 'news']);
    }
    await settle('news', receivers);

    for (const [index, client] of receivers.entries()) {
      for (const channel of ['private-orders.7', 'news']) {
        const frames = framesOf(client, channel, ORDER_SHIPPED, since[index]);
        assert.equal(frames.length, 20, `${client.name} got ${frames.length} frames on ${channel}`);
        assert.equal(frames[0], `{"event":"App\\\\Events\\\\OrderShipped","channel":"${channel}","data":"{\\"order_id\\":1}"}`);
        assert.deepEqual(
          frames.map((text) => JSON.parse(JSON.parse(text).data).order_id),
          Array.from({ length: 20 }, (_, i) => i + 1),
          `${client.name}: order of ${channel}`,
        );
      }
    }
  });

  it('gives pusher-js and Echo data without socket', async () => {
    const backend = cluster.sdk();
    const pusherClient = await PusherJsClient.connect(cluster, 1, { name: 'pusher-js', backend });
    clients.push(pusherClient);
    await pusherClient.subscribe('private-orders.8');

    const port = cluster.gatewayPort(0);
    const echo = new Echo({
      broadcaster: 'reverb',
      Pusher: PusherJs,
      key: cluster.app.key,
      wsHost: '127.0.0.1',
      wsPort: port,
      wssPort: port,
      forceTLS: false,
      enabledTransports: ['ws', 'wss'],
      disableStats: true,
      authorizer: (channel) => ({
        authorize: (socketId, callback) => callback(null, backend.authorizeChannel(socketId, channel.name)),
      }),
    });
    echos.push(echo);
    const received = [];
    const subscribed = new Promise((resolve) => {
      echo.private('orders.8').subscribed(resolve).listen('OrderShipped', (payload) => received.push(payload));
    });
    await subscribed;

    await broadcast(cluster, laravelPayload(ORDER_SHIPPED, { order_id: 8, note: 'a/b' }), ['private-orders.8']);

    const item = await pusherClient.waitForEvent('private-orders.8', ORDER_SHIPPED);
    assert.deepEqual(item.data, { order_id: 8, note: 'a/b' });
    await waitUntil(() => received.length === 1, { what: 'Echo to receive OrderShipped' });
    assert.deepEqual(received[0], { order_id: 8, note: 'a/b' });
  });

  it('excludes the connection named by socket', async () => {
    const sender = await connectRaw(0, 'sender');
    const other = await connectRaw(1, 'other');
    for (const client of [sender, other]) {
      await subscribeRaw(client, 'private-orders.9');
    }
    const since = sender.mark();

    await broadcast(cluster, laravelPayload(ORDER_SHIPPED, { order_id: 9 }, sender.socketId), ['private-orders.9']);
    const item = await other.waitForEvent(ORDER_SHIPPED, { channel: 'private-orders.9' });
    assert.equal(item.frame.data, '{"order_id":9}');

    await settle('private-orders.9', [sender, other]);
    assert.deepEqual(framesOf(sender, 'private-orders.9', ORDER_SHIPPED, since), []);
  });

  it('stores broadcasts on cache channels', async () => {
    await broadcast(cluster, laravelPayload('PriceUpdated', { p: 101 }), ['cache-ticker']);
    await waitUntil(async () => (await cluster.redisCli('EXISTS', cluster.channelKey('cache', 'cache-ticker'))) === '1', {
      what: 'the cache key of cache-ticker',
    });

    const late = await connectRaw(1, 'late cache subscriber');
    const since = late.mark();
    await subscribeRaw(late, 'cache-ticker');
    const item = await late.waitForEvent('PriceUpdated', { channel: 'cache-ticker', since });
    assert.equal(item.text, '{"event":"PriceUpdated","channel":"cache-ticker","data":"{\\"p\\":101}"}');
  });

  it('skips malformed messages and keeps running', async () => {
    const holder = await leaseHolder(cluster);
    const before = await relayMetrics(cluster, holder);
    const receiver = await connectRaw(0, 'receiver of malformed');
    await subscribeRaw(receiver, 'news');
    const since = receiver.mark();

    const malformed = [
      ['not json', 'news'],
      ['[1,2,3]', 'news'],
      ['{"data":{"a":1}}', 'news'],
      ['{"event":5,"data":{}}', 'news'],
      ['{"event":"NoData"}', 'news'],
      ['{"event":"Bad","data":{}}', 'bad channel'],
      ['{"event":"Bad","data":{}}', '#reserved'],
    ];
    for (const [payload, channel] of malformed) {
      await broadcast(cluster, payload, [channel]);
    }
    await broadcast(cluster, laravelPayload('AfterMalformed', { ok: true }), ['news']);
    await receiver.waitForEvent('AfterMalformed', { channel: 'news', since });

    const received = receiver.inbox.filter((entry) => entry.frame?.channel === 'news', since).map((entry) => entry.frame.event);
    assert.deepEqual(received, ['AfterMalformed']);

    const after = await relayMetrics(cluster, holder);
    const grew = (result) => after[`herald_relay_ingest_messages_total{result="${result}"}`] - before[`herald_relay_ingest_messages_total{result="${result}"}`];
    assert.equal(grew('invalid_payload'), 2);
    assert.equal(grew('invalid_event'), 2);
    assert.equal(grew('invalid_data'), 1);
    assert.equal(grew('invalid_channel'), 2);
    assert.equal(grew('published'), 1);
    cluster.assertAllRunning();
  });

  it('hands the lease over on SIGTERM', async () => {
    const holder = await waitForHolder(cluster);
    const stoppedAt = Date.now();
    assert.equal(await cluster.stopRelay(holder), 'exited with status 0');

    const next = await waitForHolder(cluster, { exclude: holder, timeout: LEASE_MS });
    const tookMs = Date.now() - stoppedAt;
    assert.notEqual(next, holder);
    assert.equal(cluster.relayLogLinesOf(holder, 'ingest: released the lease').length, 1);
    // The standby retries every third of the lease, so it need not wait for the lease to expire.
    assert.ok(tookMs < LEASE_MS, `takeover took ${tookMs} ms`);

    // A replacement, so two relays compete again.
    await cluster.startRelay();
  });

  it('drops what a paused holder buffered', async () => {
    const receivers = [await connectRaw(0, 'pause receiver 1'), await connectRaw(1, 'pause receiver 2')];
    for (const client of receivers) {
      await subscribeRaw(client, 'pause-ticks');
    }
    const holder = await waitForHolder(cluster);
    const pausedChild = cluster.relays[holder].process.child;

    // Ticks every 20 ms. The holder stays stopped until the other relay has
    // taken over, while Redis keeps writing to the stopped holder's socket.
    let seq = 0;
    const deadline = Date.now() + 3 * LEASE_MS;
    const publishing = (async () => {
      while (Date.now() < deadline) {
        seq += 1;
        await broadcast(cluster, laravelPayload('Tick', { seq }), ['pause-ticks']);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })();
    await new Promise((resolve) => setTimeout(resolve, 200));
    pausedChild.kill('SIGSTOP');
    try {
      await waitForHolder(cluster, { exclude: holder, timeout: 3 * LEASE_MS });
      await new Promise((resolve) => setTimeout(resolve, 300));
    } finally {
      pausedChild.kill('SIGCONT');
    }
    await publishing;
    await settle('pause-ticks', receivers);

    for (const client of receivers) {
      const seqs = client.events('Tick', { channel: 'pause-ticks' }).map((entry) => JSON.parse(entry.frame.data).seq);
      const duplicated = seqs.filter((value, index) => seqs.indexOf(value) !== index);
      assert.deepEqual(duplicated, [], `${client.name} received these ticks more than once`);
    }

    // The resumed relay found its deadline passed and dropped what it had buffered.
    await waitUntil(() => cluster.relayLogLinesOf(holder, 'gave up the lease').length > 0, {
      what: 'the resumed relay to give up the lease',
    });
    const metrics = await relayMetrics(cluster, holder);
    assert.ok(metrics['herald_relay_ingest_messages_total{result="not_lease_holder"}'] > 0, 'the resumed relay dropped nothing');
    assert.equal(metrics['herald_relay_ingest_lease_held'], 0);
  });

  it('resumes after a Redis restart', async () => {
    await cluster.stopRedis();
    await cluster.startRedis();
    const holder = await waitForHolder(cluster, { timeout: 15000 });

    // The gateways subscribe to their topics again on their own schedule,
    // so fresh clients show when the cluster is whole again.
    const receivers = [await connectRaw(0, 'after restart 1'), await connectRaw(1, 'after restart 2')];
    for (const client of receivers) {
      await subscribeRaw(client, 'news');
    }
    const since = receivers.map((client) => client.mark());
    await broadcast(cluster, laravelPayload('AfterRestart', { ok: true }), ['news']);
    await settle('news', receivers);

    for (const [index, client] of receivers.entries()) {
      assert.equal(framesOf(client, 'news', 'AfterRestart', since[index]).length, 1, client.name);
    }
    assert.ok(cluster.relayLogLinesOf(holder, 'ingest: acquired the lease').length >= 1);
  });

  it('takes over within the lease after kill -9', async () => {
    const receivers = [await connectRaw(0, 'tick receiver 1'), await connectRaw(1, 'tick receiver 2')];
    for (const client of receivers) {
      await subscribeRaw(client, 'ticks');
    }
    const holder = await waitForHolder(cluster);

    // Broadcast numbered ticks every 20 ms across the kill.
    const published = []; // [seq, time]
    let killedAt = 0;
    let seq = 0;
    const deadline = Date.now() + 3 * LEASE_MS + 500;
    const publishing = (async () => {
      while (Date.now() < deadline) {
        seq += 1;
        published.push([seq, Date.now()]);
        await broadcast(cluster, laravelPayload('Tick', { seq }), ['ticks']);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })();
    await new Promise((resolve) => setTimeout(resolve, 300));
    killedAt = Date.now();
    await cluster.killRelay(holder);
    await publishing;
    await settle('ticks', receivers);

    const survivor = await leaseHolder(cluster);
    assert.notEqual(survivor, holder);
    assert.notEqual(survivor, -1);

    for (const client of receivers) {
      const seqs = client.events('Tick', { channel: 'ticks' }).map((entry) => JSON.parse(entry.frame.data).seq);
      const counts = new Map();
      for (const value of seqs) {
        counts.set(value, (counts.get(value) ?? 0) + 1);
      }
      const duplicated = [...counts].filter(([, count]) => count > 1).map(([value]) => value);
      assert.deepEqual(duplicated, [], `${client.name} received these ticks more than once`);

      // The first tick delivered after the kill marks the takeover.
      const afterKill = published.filter(([, time]) => time > killedAt);
      const firstDelivered = afterKill.find(([value]) => counts.has(value));
      assert.ok(firstDelivered, `${client.name} received no tick after the kill`);
      const takeoverMs = firstDelivered[1] - killedAt;
      assert.ok(takeoverMs <= LEASE_MS + 300, `takeover after ${takeoverMs} ms, the lease is ${LEASE_MS} ms`);

      // From the takeover on, every tick arrives exactly once.
      const missing = afterKill.filter(([value, time]) => time >= firstDelivered[1] && !counts.has(value)).map(([value]) => value);
      assert.deepEqual(missing, [], `${client.name} missed ticks after the takeover`);
    }
  });
});

describe('Laravel 13 prefix', () => {
  let cluster;
  const clients = [];

  before(async () => {
    cluster = await startCluster('laravel-ingest-13', {
      env: { HERALD_LARAVEL_INGEST: 'true', HERALD_LARAVEL_REDIS_PREFIX: 'laravel-database-' },
    });
    await waitForHolder(cluster);
  });

  after(async () => {
    for (const client of clients) {
      client.close();
    }
    if (cluster) {
      cluster.assertAllRunning();
      await cluster.stop();
    }
  });

  it('delivers only channels behind the configured prefix', async () => {
    const client = await RawClient.connect(cluster.gatewayUrl(0), { name: 'laravel 13 client' });
    clients.push(client);
    await client.subscribe('news');
    const since = client.mark();

    await broadcast(cluster, laravelPayload('OldPrefix', {}), ['news'], 'laravel_database_');
    await broadcast(cluster, laravelPayload('NewPrefix', { v: 13 }), ['news'], 'laravel-database-');
    const item = await client.waitForEvent('NewPrefix', { channel: 'news', since });
    assert.equal(item.frame.data, '{"v":13}');
    assert.deepEqual(client.events('OldPrefix', { since }), []);
  });
});
