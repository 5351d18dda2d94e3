// A gateway killed with SIGKILL leaves its presence members in Redis. Once
// its heartbeat key expires (node_timeout, 2 s here), the surviving gateway
// reaps them: member_removed goes out for each user who had no connection
// elsewhere, and none for a user still connected to the survivor.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { startCluster } from '../lib/cluster.mjs';
import {
  MEMBER_ADDED,
  MEMBER_REMOVED,
  PresenceClient,
  sendMarker,
} from '../lib/presence-client.mjs';

const CHANNEL = 'presence-room.crash';
const NODE_TIMEOUT_S = 2;
// node_timeout, then up to one heartbeat interval (node_timeout / 5) until
// the survivor's reap script runs, with room for a slow sanitizer build.
const REAP_TIMEOUT_MS = 15000;

const SURVIVOR = 0;
const VICTIM = 1;

let cluster;
const clients = [];

async function connectClient(gatewayIndex, name, user) {
  const client = await PresenceClient.connect(cluster, gatewayIndex, { name, user });
  clients.push(client);
  await client.subscribe(CHANNEL);
  return client;
}

describe('presence after a gateway crash', () => {
  before(async () => {
    cluster = await startCluster('presence-crash', { env: { HERALD_NODE_TIMEOUT: String(NODE_TIMEOUT_S) } });
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

  it('reaps the dead gateway\'s members', async () => {
    const watcher = await connectClient(SURVIVOR, 'watcher on the survivor', { user_id: 'watcher' });
    await connectClient(VICTIM, 'gone on the victim', { user_id: 'gone', user_info: { name: 'Gone' } });
    await connectClient(VICTIM, 'twice-gone on the victim, tab 1', { user_id: 'twice-gone' });
    await connectClient(VICTIM, 'twice-gone on the victim, tab 2', { user_id: 'twice-gone' });
    await connectClient(VICTIM, 'stays on the victim', { user_id: 'stays' });
    const staysOnSurvivor = await connectClient(SURVIVOR, 'stays on the survivor', { user_id: 'stays' });

    const everyone = ['gone', 'stays', 'twice-gone', 'watcher'];
    await sendMarker(cluster, CHANNEL, [watcher, staysOnSurvivor]);
    assert.deepEqual(watcher.memberIds(CHANNEL), everyone);
    assert.deepEqual(staysOnSurvivor.memberIds(CHANNEL), everyone);

    const survivorNode = await cluster.gatewayNodeId(SURVIVOR);
    const victimNode = await cluster.gatewayNodeId(VICTIM);
    const since = watcher.inbox.mark();
    const staysSince = staysOnSurvivor.inbox.mark();

    await cluster.killGateway(VICTIM);
    // Stop pusher-js from reconnecting to the dead port.
    for (const client of clients.filter((candidate) => candidate.name.includes('on the victim'))) {
      client.disconnect();
    }

    for (const [client, from] of [[watcher, since], [staysOnSurvivor, staysSince]]) {
      for (const user of ['gone', 'twice-gone']) {
        await client.waitForMemberEvent(CHANNEL, MEMBER_REMOVED, user, { since: from, timeout: REAP_TIMEOUT_MS });
      }
    }
    // The reap script publishes every member_removed of the dead node in
    // one run, so the marker comes after all of them.
    await sendMarker(cluster, CHANNEL, [watcher, staysOnSurvivor]);
    assert.deepEqual(watcher.memberEventIds(CHANNEL, MEMBER_REMOVED, since).sort(), ['gone', 'twice-gone']);
    assert.deepEqual(staysOnSurvivor.memberEventIds(CHANNEL, MEMBER_REMOVED, staysSince).sort(), ['gone', 'twice-gone']);
    assert.deepEqual(watcher.memberIds(CHANNEL), ['stays', 'watcher']);
    assert.deepEqual(staysOnSurvivor.memberIds(CHANNEL), ['stays', 'watcher']);

    // Redis keeps only the survivor's memberships and subscription count.
    const members = await cluster.redisHash(cluster.channelKey('members', CHANNEL));
    assert.deepEqual(Object.keys(members).sort(), ['stays', 'watcher'], `HGETALL members: ${JSON.stringify(members)}`);
    assert.deepEqual(
      await cluster.redisHash(cluster.channelKey('member-conns', CHANNEL)),
      { stays: '1', watcher: '1' },
    );
    const sockets = await cluster.redisHash(cluster.channelKey('sockets', CHANNEL));
    assert.deepEqual(
      Object.keys(sockets).sort(),
      [watcher.socketId, staysOnSurvivor.socketId].sort(),
      `HGETALL sockets: ${JSON.stringify(sockets)}`,
    );
    assert.deepEqual(Object.keys(await cluster.redisHash(cluster.channelKey('subs', CHANNEL))), [survivorNode]);
    assert.equal(await cluster.redisCli('SISMEMBER', `${cluster.prefix}nodes`, victimNode), '0');
    assert.equal(await cluster.redisCli('EXISTS', `${cluster.prefix}node-state:${victimNode}`), '0');
    assert.equal(
      cluster.gatewayLogLines(SURVIVOR, `removed the presence and subscription state of node ${victimNode}`).length,
      1,
      'the survivor logs the reap once',
    );

    // Presence keeps working on the survivor.
    const newcomer = await connectClient(SURVIVOR, 'newcomer on the survivor', { user_id: 'newcomer' });
    assert.deepEqual(newcomer.memberIds(CHANNEL), ['newcomer', 'stays', 'watcher']);
    await watcher.waitForMemberEvent(CHANNEL, MEMBER_ADDED, 'newcomer', { since });
  });
});
