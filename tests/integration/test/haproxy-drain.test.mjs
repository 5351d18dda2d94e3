// Draining one gateway behind HAProxy while events stream: redis-server, one
// relay, three gateways (HERALD_DRAIN_SECONDS=2) and HAProxy with the
// configuration of scripts/cluster-haproxy.sh, all on loopback. pusher-js
// clients connect through HAProxy; some join a presence channel, and one
// user has a connection on each of two gateways. The `pusher` SDK triggers
// numbered events through HAProxy without pause while one gateway gets
// SIGTERM.
//
// The drained gateway's clients must get 4200, reconnect through HAProxy to
// another gateway and resubscribe (pusher-js does both by itself). Each
// client must then receive every event published after its new
// subscription succeeded. Events published while it reconnected may be
// lost, and the test reports how many were. Clients of the other gateways
// must receive every event. The drained gateway must exit with status 0,
// and afterwards every client's presence list must hold each user once.

import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { after, before, describe, it } from 'node:test';

import PusherJs from 'pusher-js';

import { commandExists, startHaproxyCluster } from '../lib/haproxy-cluster.mjs';
import { pusherJsOptions } from '../lib/pusher-client.mjs';
import { Inbox, waitUntil, withTimeout } from '../lib/wait.mjs';

const DRAIN_SECONDS = 2;
const PUBLIC_CHANNEL = 'haproxy-drain-stream';
const PRESENCE_CHANNEL = 'presence-haproxy-drain';
// Pause between two triggers, so the stream runs at up to about 50 events
// per second on each channel.
const PUBLISH_INTERVAL_MS = 20;
// Time for a drained client to reconnect and resubscribe: the drain window,
// HAProxy's health checks (inter 2s fall 2) and the sanitizer build's
// slowness on a loaded machine.
const RECONNECT_TIMEOUT_MS = 30000;

const USERS = {
  alice: { user_id: 'alice', user_info: { name: 'Alice' } },
  bob: { user_id: 'bob', user_info: { name: 'Bob' } },
  carol: { user_id: 'carol', user_info: { name: 'Carol' } },
  dave: { user_id: 'dave', user_info: { name: 'Dave' } },
};

/**
 * A pusher-js client behind HAProxy that records, with times, every frame
 * it receives, each connection it makes (with the gateway that issued the
 * socket_id) and each error pusher-js reports.
 */
class StreamClient {
  constructor(balanced, { name, channel, user }) {
    this.name = name;
    this.channel = channel;
    this.user = user;
    this.inbox = new Inbox(name);
    this.connections = [];
    this.errors = [];
    this.pusher = new PusherJs(balanced.app.key, pusherJsOptions(balanced.gatewayPort(), balanced.sdk(), user));

    const connection = this.pusher.connection;
    connection.bind('connected', () => {
      const socketId = connection.socket_id;
      this.connections.push({ socketId, gateway: balanced.gatewayIndexOfSocket(socketId), at: performance.now() });
    });
    // A pusher:error frame on an open connection comes as a PusherError, a
    // connection that a gateway rejects during the handshake as a
    // WebSocketError that wraps one.
    connection.bind('error', (error) => {
      const code = error?.data?.code ?? error?.error?.data?.code;
      this.errors.push({ type: error?.type, code, at: performance.now() });
    });
    this.states = [];
    connection.bind('state_change', ({ previous, current }) => this.states.push({ previous, current, at: performance.now() }));
    connection.bind('message', (message) => {
      this.inbox.push({
        index: this.inbox.mark(),
        at: performance.now(),
        event: message.event,
        channel: message.channel,
        data: structuredClone(message.data),
      });
    });
  }

  async connect() {
    const reached = new Promise((resolve, reject) => {
      this.pusher.connection.bind('connected', resolve);
      this.pusher.connection.bind('failed', () => reject(new Error(`${this.name}: pusher-js connection failed`)));
    });
    await withTimeout(reached, 10000, `${this.name} to connect through HAProxy`);
  }

  /** Subscribes to the client's channel and waits for the first subscription_succeeded. */
  async subscribe() {
    this.pusher.subscribe(this.channel);
    await this.inbox.waitFor((item) => this.#isSubscribed(item), { what: `subscription_succeeded on ${this.channel}` });
  }

  #isSubscribed(item) {
    return item.channel === this.channel && item.event === 'pusher_internal:subscription_succeeded';
  }

  get currentConnection() {
    return this.connections[this.connections.length - 1];
  }

  /** Time of the latest subscription_succeeded on the client's channel. */
  lastSubscribedAt() {
    const successes = this.inbox.filter((item) => this.#isSubscribed(item));
    return successes[successes.length - 1].at;
  }

  /** Frames of the stream on the client's channel, in arrival order. */
  ticks() {
    return this.inbox.filter((item) => item.channel === this.channel && item.event === 'tick');
  }

  /** Sequence numbers received, in arrival order. */
  receivedSeqs() {
    return this.ticks().map((item) => item.data.seq);
  }

  highestSeq() {
    return Math.max(0, ...this.receivedSeqs());
  }

  /** pusher:error frames with code 4200 received on open connections. */
  restartFrames() {
    return this.inbox.filter((item) => item.event === 'pusher:error' && item.data?.code === 4200);
  }

  /**
   * Connection attempts a gateway closed with 4200 during the handshake.
   * pusher-js reports each 4200 it acts on as a WebSocketError, the close
   * of an open connection included, so those are subtracted.
   */
  rejectedHandshakes() {
    const closes = this.errors.filter((error) => error.type === 'WebSocketError' && error.code === 4200).length;
    return closes - this.restartFrames().length;
  }

  /** Sorted user ids in this client's pusher-js member list. */
  memberIds() {
    const ids = [];
    this.pusher.channel(this.channel).members.each((member) => ids.push(member.id));
    return ids.sort();
  }

  disconnect() {
    this.pusher.disconnect();
  }
}

/**
 * Triggers numbered `tick` events on `channels` through HAProxy, one after
 * the other, and records when each request was sent. A seq counts as
 * published once its trigger returned 200.
 */
class Publisher {
  constructor(sdk, channels) {
    this.sdk = sdk;
    this.channels = channels;
    this.sentAt = [];
    this.lastSeq = 0;
    this.failures = [];
    this.running = false;
  }

  start() {
    this.running = true;
    this.done = this.#run();
  }

  async #run() {
    while (this.running) {
      const seq = this.lastSeq + 1;
      this.sentAt[seq] = performance.now();
      try {
        await this.sdk.trigger(this.channels, 'tick', { seq });
      } catch (error) {
        this.failures.push({ seq, message: error.message, status: error.status, body: error.body });
      }
      this.lastSeq = seq;
      await new Promise((resolve) => setTimeout(resolve, PUBLISH_INTERVAL_MS));
    }
  }

  async stop() {
    this.running = false;
    await this.done;
  }
}

const missingCommands = [];
for (const command of ['haproxy', 'redis-server']) {
  if (!(await commandExists(command))) {
    missingCommands.push(command);
  }
}
const skip = missingCommands.length > 0 ? `${missingCommands.join(' and ')} not installed (scripts/install-deps.sh installs them)` : false;

describe('gateway drain behind haproxy', { skip, timeout: 180000 }, () => {
  let balanced;
  let publisher;
  const clients = [];
  // Filled by the first test for the later ones.
  const drain = { moving: [], startedAt: 0 };

  before(async () => {
    balanced = await startHaproxyCluster('haproxy-drain', {
      gateways: 3,
      env: { HERALD_DRAIN_SECONDS: String(DRAIN_SECONDS) },
    });
  });

  after(async () => {
    await publisher?.stop();
    for (const client of clients) {
      client.disconnect();
    }
    await balanced?.stop();
  });

  it('moves clients without losing later events', async (t) => {
    const cluster = balanced.cluster;

    // Connected one at a time, so leastconn spreads them evenly and the
    // two connections of alice, made one after the other, land on
    // different gateways.
    const plan = [
      { name: 'alice (1)', channel: PRESENCE_CHANNEL, user: USERS.alice },
      { name: 'alice (2)', channel: PRESENCE_CHANNEL, user: USERS.alice },
      { name: 'bob', channel: PRESENCE_CHANNEL, user: USERS.bob },
      { name: 'carol', channel: PRESENCE_CHANNEL, user: USERS.carol },
      { name: 'dave', channel: PRESENCE_CHANNEL, user: USERS.dave },
      { name: 'public 1', channel: PUBLIC_CHANNEL },
      { name: 'public 2', channel: PUBLIC_CHANNEL },
      { name: 'public 3', channel: PUBLIC_CHANNEL },
      { name: 'public 4', channel: PUBLIC_CHANNEL },
    ];
    for (const entry of plan) {
      const client = new StreamClient(balanced, entry);
      clients.push(client);
      await client.connect();
      await client.subscribe();
    }
    const presenceClients = clients.filter((client) => client.channel === PRESENCE_CHANNEL);
    const [aliceFirst, aliceSecond] = clients;

    const placement = clients.map((client) => `${client.name}: gateway-${client.currentConnection.gateway + 1}`);
    t.diagnostic(`placement before the drain: ${placement.join(', ')}`);
    assert.notEqual(
      aliceFirst.currentConnection.gateway,
      aliceSecond.currentConnection.gateway,
      `alice's two connections share a gateway (${placement.join(', ')})`,
    );

    const drained = aliceFirst.currentConnection.gateway;
    const moving = clients.filter((client) => client.currentConnection.gateway === drained);
    const staying = clients.filter((client) => client.currentConnection.gateway !== drained);
    assert.ok(
      moving.some((client) => client.channel === PUBLIC_CHANNEL),
      `no public client on the drained gateway-${drained + 1} (${placement.join(', ')})`,
    );
    assert.ok(
      moving.some((client) => client.channel === PRESENCE_CHANNEL && client.user !== USERS.alice),
      `no presence user besides alice on the drained gateway-${drained + 1} (${placement.join(', ')})`,
    );

    const everyone = Object.keys(USERS).sort();
    for (const client of presenceClients) {
      await waitUntil(() => client.memberIds().join() === everyone.join(), {
        what: `${client.name} to list ${everyone.join(', ')} (has ${client.memberIds().join(', ')})`,
      });
    }

    // Start the stream and let it reach every client.
    publisher = new Publisher(balanced.sdk(), [PUBLIC_CHANNEL, PRESENCE_CHANNEL]);
    publisher.start();
    await waitUntil(() => clients.every((client) => client.highestSeq() >= 10), {
      what: 'every client to receive seq 10',
    });

    const drainStartedAt = performance.now();
    drain.startedAt = drainStartedAt;
    drain.moving = moving;
    const gatewayStopped = cluster.stopGateway(drained);
    const marker = (client) => client.ticks().length;
    const ticksBeforeDrain = new Map(clients.map((client) => [client, marker(client)]));

    // HAProxy takes the gateway out of rotation once /ready returns 503 (or
    // the port closes) on two checks in a row.
    await balanced.waitForServers([`gateway-${drained + 1}`], 'DOWN', { timeout: RECONNECT_TIMEOUT_MS });
    const markedDownMs = performance.now() - drainStartedAt;

    // Each drained client gets 4200, then reconnects to another gateway,
    // where pusher-js subscribes again.
    for (const client of moving) {
      await client.inbox.waitFor((item) => item.event === 'pusher:error' && item.data?.code === 4200, {
        timeout: RECONNECT_TIMEOUT_MS,
        what: 'pusher:error 4200 from the draining gateway',
      });
      await waitUntil(
        () => client.currentConnection.gateway !== drained && client.lastSubscribedAt() > client.currentConnection.at,
        { timeout: RECONNECT_TIMEOUT_MS, what: `${client.name} to reconnect to another gateway and resubscribe` },
      );
    }
    assert.equal(await gatewayStopped, 'exited with status 0', `gateway-${drained + 1} after SIGTERM`);

    // Keep streaming until every client received an event sent after the
    // last resubscription, then stop and wait for the last event.
    const lastResubscription = Math.max(...clients.map((client) => client.lastSubscribedAt()));
    const firstSeqAfter = await waitUntil(
      () => {
        for (let seq = 1; seq <= publisher.lastSeq; seq += 1) {
          if (publisher.sentAt[seq] > lastResubscription) {
            return seq;
          }
        }
        return 0;
      },
      { timeout: RECONNECT_TIMEOUT_MS, what: 'an event sent after every client resubscribed' },
    );
    await waitUntil(() => clients.every((client) => client.highestSeq() >= firstSeqAfter + 20), {
      timeout: RECONNECT_TIMEOUT_MS,
      what: `every client to receive seq ${firstSeqAfter + 20}`,
    });
    await publisher.stop();
    const lastSeq = publisher.lastSeq;
    await waitUntil(() => clients.every((client) => client.receivedSeqs().includes(lastSeq)), {
      what: `every client to receive the last seq ${lastSeq}`,
    });
    assert.deepEqual(publisher.failures, [], 'triggers through HAProxy that failed');

    // Report what each client went through.
    for (const client of clients) {
      const seqs = client.receivedSeqs();
      const before = client.ticks().slice(0, ticksBeforeDrain.get(client)).map((item) => item.data.seq);
      const lastBefore = Math.max(0, ...before);
      const firstAfterResubscribe = seqs.find((seq) => publisher.sentAt[seq] > client.lastSubscribedAt());
      const received = new Set(seqs);
      let missed = 0;
      for (let seq = 1; seq <= lastSeq; seq += 1) {
        if (!received.has(seq) && publisher.sentAt[seq] > drainStartedAt) {
          missed += 1;
        }
      }
      const moved = moving.includes(client);
      const since = (at) => `${Math.round(at - drainStartedAt)} ms`;
      const states = client.states.filter((change) => change.at > drainStartedAt).map((change) => `${change.current} at ${since(change.at)}`);
      t.diagnostic(
        `${client.name}: ${moved ? 'moved' : 'stayed'}, gateways ${client.connections.map((c) => c.gateway + 1).join(' -> ')}, ` +
          `4200 frames ${client.restartFrames().length}, handshakes rejected with 4200 ${client.rejectedHandshakes()}, ` +
          `missed ${missed} event(s) (last before the drain ${lastBefore}, first after resubscribing ${firstAfterResubscribe})` +
          (moved ? `, states after SIGTERM: ${states.join(', ')}` : ''),
      );
    }
    t.diagnostic(`stream: ${lastSeq} events; HAProxy marked gateway-${drained + 1} down ${Math.round(markedDownMs)} ms after SIGTERM`);

    // Every event sent after a client's (latest) subscription succeeded
    // reached it, once and in order.
    for (const client of clients) {
      const seqs = client.receivedSeqs();
      const subscribedAt = client.lastSubscribedAt();
      const received = new Set(seqs);
      const missing = [];
      for (let seq = 1; seq <= lastSeq; seq += 1) {
        if (publisher.sentAt[seq] > subscribedAt && !received.has(seq)) {
          missing.push(seq);
        }
      }
      assert.deepEqual(missing, [], `${client.name}: events sent after it subscribed but never received`);
      assert.equal(received.size, seqs.length, `${client.name}: received some events twice`);
      const sorted = [...seqs].sort((a, b) => a - b);
      assert.deepEqual(seqs, sorted, `${client.name}: received events out of order`);
    }

    // Clients of the other gateways kept their connection and lost nothing.
    for (const client of staying) {
      assert.equal(client.connections.length, 1, `${client.name} reconnected although its gateway kept running`);
      const seqs = client.receivedSeqs();
      const first = seqs[0];
      assert.deepEqual(seqs, Array.from({ length: lastSeq - first + 1 }, (_, offset) => first + offset), `${client.name}: gap in the stream`);
    }

    // The moved clients run on the other gateways now.
    for (const client of moving) {
      assert.notEqual(client.currentConnection.gateway, drained, `${client.name} is still on the drained gateway`);
    }
    cluster.assertAllRunning();
  });

  // A draining gateway refuses new handshakes before the upgrade, and
  // HAProxy retries them on another gateway (retry-on, option redispatch)
  // until its health checks mark the draining one down. Without that,
  // leastconn sends a closed client straight back to the draining gateway,
  // whose count is falling, and pusher-js retries a 4200 with no delay.
  it('moves clients at once', () => {
    for (const client of drain.moving) {
      const [closed] = client.restartFrames();
      const reconnected = client.connections.find((connection) => connection.at > closed.at);
      assert.ok(client.rejectedHandshakes() <= 3, `${client.name}: ${client.rejectedHandshakes()} handshakes rejected with 4200 before it reached another gateway`);
      const delay = reconnected.at - closed.at;
      assert.ok(delay < 3000, `${client.name}: reconnected ${Math.round(delay)} ms after its 4200`);
    }
  });

  it('keeps presence lists right', async () => {
    const cluster = balanced.cluster;
    const presenceClients = clients.filter((client) => client.channel === PRESENCE_CHANNEL);
    const everyone = Object.keys(USERS).sort();

    for (const client of presenceClients) {
      await waitUntil(() => client.memberIds().join() === everyone.join(), {
        what: `${client.name} to list ${everyone.join(', ')} (has ${client.memberIds().join(', ')})`,
      });
    }
    for (const client of presenceClients) {
      assert.equal(client.pusher.channel(PRESENCE_CHANNEL).members.count, everyone.length, `${client.name}: member count`);
      assert.deepEqual(client.pusher.channel(PRESENCE_CHANNEL).members.me?.id, client.user.user_id, `${client.name}: members.me`);
    }

    // Redis contains each user once, with alice's two connections counted once
    // each, and no socket of the drained gateway is left.
    const members = await cluster.redisHash(cluster.channelKey('members', PRESENCE_CHANNEL));
    assert.deepEqual(Object.keys(members).sort(), everyone, 'members in Redis');
    const connectionCounts = await cluster.redisHash(cluster.channelKey('member-conns', PRESENCE_CHANNEL));
    assert.deepEqual(connectionCounts, { alice: '2', bob: '1', carol: '1', dave: '1' }, 'connections per member in Redis');
    const sockets = await cluster.redisHash(cluster.channelKey('sockets', PRESENCE_CHANNEL));
    const expectedSockets = Object.fromEntries(
      presenceClients.map((client) => [client.currentConnection.socketId, client.user.user_id]),
    );
    assert.deepEqual(sockets, expectedSockets, 'presence sockets in Redis');
  });
});
