// Redis restarts in the middle of a presence session: empty, as after a
// crash without persistence, or with the data it saved, after a short
// outage and after one longer than node_timeout (when every heartbeat key
// has expired), in two scenarios with one gateway restoring its state well
// after the other. The clients stay connected to the gateways, and some of
// them disconnect while Redis is down. Afterwards every client's member list
// must be exactly the users still connected, Redis must hold exactly their
// memberships, events must flow again, and each process must log the
// outage once rather than once per message. While Redis is down the relay
// responds with 503.

import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';

import { startCluster } from '../lib/cluster.mjs';
import {
  MEMBER_ADDED,
  MEMBER_REMOVED,
  PresenceClient,
  sendMarker,
} from '../lib/presence-client.mjs';
import { waitUntil } from '../lib/wait.mjs';

const CHANNEL = 'presence-room.restart';
const NEWS = 'news';
// Reconnect backoff grows to 5 s plus jitter, and a sanitizer build is slow.
const RECOVERY_TIMEOUT_MS = 20000;

let cluster;
const clients = [];

async function connectClient(gatewayIndex, name, user) {
  const client = await PresenceClient.connect(cluster, gatewayIndex, { name, user });
  clients.push(client);
  await client.subscribe(CHANNEL);
  await client.subscribe(NEWS);
  return client;
}

/** Status of a trigger through the relay: 200, or the error status the SDK reports. */
async function triggerStatus(channel, event, data) {
  try {
    await cluster.sdk().trigger(channel, event, data);
    return 200;
  } catch (error) {
    if (error.status === undefined) {
      throw error;
    }
    return error.status;
  }
}

/** Waits until every client lists exactly `expected`. On timeout the error shows each client's list and frames. */
async function waitForMemberLists(expected, remaining) {
  const lists = () => Object.fromEntries(remaining.map((client) => [client.name, client.memberIds(CHANNEL)]));
  try {
    await waitUntil(() => remaining.every((client) => JSON.stringify(client.memberIds(CHANNEL)) === JSON.stringify(expected)), {
      timeout: RECOVERY_TIMEOUT_MS,
      what: `every member list to be ${JSON.stringify(expected)}`,
    });
  } catch (error) {
    const frames = remaining.map((client) => `${client.name}:\n    ${client.inbox.items.map((item) => JSON.stringify(item)).join('\n    ')}`);
    throw new Error(`${error.message}\nmember lists: ${JSON.stringify(lists(), null, 1)}\nframes received:\n  ${frames.join('\n  ')}`);
  }
}

// Gateway 1 serves a and e's remaining connection, and gateway 2 serves b.
const EARLY = 0;
const LATE = 1;

// lateGateway: gateway 2 is suspended (SIGSTOP) until gateway 1 has
// reconnected and sent its clients fresh snapshots, as when one gateway's
// reconnect backoff runs longer. This fixes the order in which the gateways
// restore their state, which otherwise depends on reconnect timing.
const SCENARIOS = [
  { label: 'empty', keepData: false, env: {} },
  { label: 'empty, one gateway late', keepData: false, lateGateway: true, env: {} },
  { label: 'with its data', keepData: true, env: {} },
  // node_timeout 2 s and an outage of 3 s: Redis drops each heartbeat key
  // that expired while it was down when it loads its saved data, so
  // gateway 1 reaps gateway 2 before gateway 2 restores its state.
  {
    label: 'with its data after node_timeout, one gateway late',
    keepData: true,
    outageMs: 3000,
    lateGateway: true,
    env: { HERALD_NODE_TIMEOUT: '2' },
  },
];

for (const scenario of SCENARIOS) {
  describe(`presence across a Redis restart ${scenario.label}`, () => {
    before(async () => {
      clients.length = 0;
      // Debug logging records each closed connection, which shows that the
      // gateway handled a disconnect while Redis was down.
      cluster = await startCluster('presence-redis-restart', {
        env: { HERALD_LOG_LEVEL: 'debug', ...scenario.env },
      });
    });

    after(async () => {
      for (const client of clients) {
        client.disconnect();
      }
      if (cluster) {
        try {
          cluster.assertAllRunning();
        } finally {
          await cluster.stop();
        }
      }
    });

    it('restores exact member lists', async () => {
      const a = await connectClient(0, 'a on gateway 1', { user_id: 'a', user_info: { name: 'A' } });
      const c = await connectClient(0, 'c on gateway 1', { user_id: 'c' });
      const e1 = await connectClient(0, 'e on gateway 1', { user_id: 'e', user_info: { name: 'E' } });
      const b = await connectClient(1, 'b on gateway 2', { user_id: 'b', user_info: { name: 'B' } });
      const d = await connectClient(1, 'd on gateway 2', { user_id: 'd' });
      const e2 = await connectClient(1, 'e on gateway 2', { user_id: 'e', user_info: { name: 'E' } });
      const remaining = [a, e1, b];
      const leavers = [[c, 0], [d, 1], [e2, 1]];

      await waitForMemberLists(['a', 'b', 'c', 'd', 'e'], [a, c, e1, b, d, e2]);

      const lateNode = await cluster.gatewayNodeId(LATE);
      if (scenario.keepData) {
        assert.equal(await cluster.redisCli('SAVE'), 'OK');
      }
      await cluster.stopRedis();
      // Both Redis connections of each gateway have noticed the outage.
      for (const index of [0, 1]) {
        await waitUntil(() => cluster.gatewayLogLines(index, 'connection to').length >= 2, {
          what: `gateway ${index + 1} to log the loss of both Redis connections`,
        });
      }

      // c, d and e's second connection leave while Redis is down. The
      // gateway cannot run the leave script then, so only the state sync
      // after the restart can remove them.
      for (const [client, gatewayIndex] of leavers) {
        const socketId = client.socketId;
        client.disconnect();
        await waitUntil(() => cluster.gatewayLogLines(gatewayIndex, `connection closed socket_id=${socketId} `).length === 1, {
          what: `gateway ${gatewayIndex + 1} to close ${client.name} (socket ${socketId})`,
        });
      }

      await waitUntil(async () => (await triggerStatus(NEWS, 'during-outage', {})) === 503, {
        what: 'the relay to answer 503 while Redis is down',
      });

      if (scenario.outageMs) {
        // The outage itself: Redis stays down this long so that the heartbeat
        // keys expire. Nothing is being waited for here.
        await delay(scenario.outageMs);
      }
      const earlyClients = [a, e1];
      const marks = earlyClients.map((client) => client.inbox.mark());
      if (scenario.lateGateway) {
        cluster.pauseGateway(LATE);
      }
      await cluster.startRedis();
      await waitUntil(async () => (await triggerStatus(NEWS, 'probe', {})) === 200, {
        timeout: RECOVERY_TIMEOUT_MS,
        what: 'the relay to publish again after Redis restarted',
      });

      if (scenario.lateGateway) {
        for (const [index, client] of earlyClients.entries()) {
          await client.waitForFrame(CHANNEL, 'pusher_internal:subscription_succeeded', {
            since: marks[index],
            timeout: RECOVERY_TIMEOUT_MS,
            what: `a fresh snapshot for ${client.name} from gateway ${EARLY + 1}`,
          });
        }
        if (scenario.outageMs) {
          await waitUntil(() => cluster.gatewayLogLines(EARLY, `removed the presence and subscription state of node ${lateNode}`).length === 1, {
            timeout: RECOVERY_TIMEOUT_MS,
            what: `gateway ${EARLY + 1} to reap the suspended gateway ${LATE + 1}`,
          });
        }
        cluster.resumeGateway(LATE);
      }

      // No ghosts (c, d) and no missing members (a, b, e) on any client.
      await waitForMemberLists(['a', 'b', 'e'], remaining);
      // The marker arrives after any member event still on its way, so the
      // lists checked after it are final.
      await sendMarker(cluster, CHANNEL, remaining, { timeout: RECOVERY_TIMEOUT_MS });
      for (const client of remaining) {
        assert.deepEqual(client.memberIds(CHANNEL), ['a', 'b', 'e'], `${client.name} after the marker`);
      }
      const conns = await cluster.redisHash(cluster.channelKey('member-conns', CHANNEL));
      assert.deepEqual(conns, { a: '1', b: '1', e: '1' }, 'Redis member connections after the restart');
      const sockets = await cluster.redisHash(cluster.channelKey('sockets', CHANNEL));
      assert.deepEqual(Object.keys(sockets).sort(), remaining.map((client) => client.socketId).sort(), 'Redis presence sockets');
      const members = await cluster.redisHash(cluster.channelKey('members', CHANNEL));
      assert.deepEqual(JSON.parse(members.a), { name: 'A' }, 'user_info restored from the gateway');

      // A new event reaches every remaining client on both channels.
      await cluster.sdk().trigger([NEWS, CHANNEL], 'after-restart', { ok: true });
      for (const client of remaining) {
        await client.waitForFrame(NEWS, 'after-restart', { timeout: RECOVERY_TIMEOUT_MS });
        await client.waitForFrame(CHANNEL, 'after-restart', { timeout: RECOVERY_TIMEOUT_MS });
      }

      // Presence events flow again: a newcomer is added and removed everywhere.
      const beforeNewcomer = remaining.map((client) => client.inbox.mark());
      const newcomer = await connectClient(1, 'f on gateway 2', { user_id: 'f' });
      assert.deepEqual(newcomer.memberIds(CHANNEL), ['a', 'b', 'e', 'f']);
      for (const [index, client] of remaining.entries()) {
        await client.waitForMemberEvent(CHANNEL, MEMBER_ADDED, 'f', { since: beforeNewcomer[index] });
      }
      newcomer.disconnect();
      for (const [index, client] of remaining.entries()) {
        await client.waitForMemberEvent(CHANNEL, MEMBER_REMOVED, 'f', { since: beforeNewcomer[index] });
        assert.deepEqual(client.memberIds(CHANNEL), ['a', 'b', 'e']);
      }

      // One warning per Redis connection and outage, not one per message.
      for (const index of [0, 1]) {
        const warnings = cluster.gatewayLogLines(index, 'connection to');
        const logged = `gateway ${index + 1} logged the outage ${warnings.length} times:\n${warnings.join('\n')}`;
        assert.ok(warnings.length >= 1, logged);
        assert.ok(warnings.length <= 2, logged);
      }
      const relayWarnings = [...cluster.relayLogLines('redis: connection lost'), ...cluster.relayLogLines('redis: cannot connect')];
      assert.equal(relayWarnings.length, 1, `the relay logged the outage ${relayWarnings.length} times:\n${relayWarnings.join('\n')}`);
    });
  });
}
