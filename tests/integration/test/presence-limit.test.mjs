// max_presence_members across two gateways: with a limit of 2, a third
// user gets pusher:subscription_error LimitReached, while another
// connection of a user already in the channel still joins, because the
// limit counts distinct users.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { DEV_APP, startCluster } from '../lib/cluster.mjs';
import {
  MEMBER_ADDED,
  MEMBER_REMOVED,
  PresenceClient,
  sendMarker,
  waitForPresenceLeave,
} from '../lib/presence-client.mjs';

const CHANNEL = 'presence-room.limit';
const MAX_MEMBERS = 2;

let cluster;
const clients = [];

async function connectClient(gatewayIndex, name, user) {
  const client = await PresenceClient.connect(cluster, gatewayIndex, { name, user });
  clients.push(client);
  return client;
}

describe('presence member limit', () => {
  before(async () => {
    const apps = [{ ...DEV_APP, max_presence_members: MAX_MEMBERS }];
    cluster = await startCluster('presence-limit', { env: { HERALD_APPS: JSON.stringify(apps) } });
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

  it('rejects a third user but not a second connection', async () => {
    const first = await connectClient(0, 'user 1 on gateway 1', { user_id: '1', user_info: { name: 'One' } });
    const second = await connectClient(1, 'user 2 on gateway 2', { user_id: '2', user_info: { name: 'Two' } });
    await first.subscribe(CHANNEL);
    await second.subscribe(CHANNEL);

    const third = await connectClient(0, 'user 3 on gateway 1', { user_id: '3', user_info: { name: 'Three' } });
    await assert.rejects(third.subscribe(CHANNEL), (error) => {
      assert.equal(error.data?.type, 'LimitReached', error.message);
      assert.equal(error.data?.status, 4100, error.message);
      return true;
    });
    const thirdSocket = third.socketId;

    // User 1 again, from the other gateway: already a member, so the limit does not apply.
    const firstAgain = await connectClient(1, 'user 1 on gateway 2', { user_id: '1', user_info: { name: 'One' } });
    await firstAgain.subscribe(CHANNEL);
    assert.deepEqual(firstAgain.memberIds(CHANNEL), ['1', '2']);

    await sendMarker(cluster, CHANNEL, [first, second, firstAgain]);
    assert.deepEqual(first.memberEventIds(CHANNEL, MEMBER_ADDED), ['2']);
    assert.deepEqual(second.memberEventIds(CHANNEL, MEMBER_ADDED), [], 'user 2 saw member_added for user 3 or for user 1\'s second connection');
    assert.deepEqual(first.memberIds(CHANNEL), ['1', '2']);
    assert.deepEqual(second.memberIds(CHANNEL), ['1', '2']);
    // The rejected connection shares gateway 1's topic subscriptions with
    // user 1, so a marker on another channel, published later, arrives after
    // anything it might wrongly get on CHANNEL.
    await third.subscribe('limit-markers');
    await sendMarker(cluster, 'limit-markers', [third]);
    assert.deepEqual(third.frames(CHANNEL, 'marker'), [], 'the rejected connection receives events of the channel');

    assert.deepEqual(
      await cluster.redisHash(cluster.channelKey('member-conns', CHANNEL)),
      { 1: '2', 2: '1' },
      'Redis member connections',
    );
    const sockets = await cluster.redisHash(cluster.channelKey('sockets', CHANNEL));
    assert.ok(!Object.hasOwn(sockets, thirdSocket), `the rejected socket ${thirdSocket} is in Redis: ${JSON.stringify(sockets)}`);

    // Once user 2 leaves there is room again for user 3.
    const secondSocket = second.socketId;
    second.disconnect();
    await waitForPresenceLeave(cluster, CHANNEL, secondSocket);
    await first.waitForMemberEvent(CHANNEL, MEMBER_REMOVED, '2');

    // pusher-js keeps a channel that got subscription_error pending and
    // never subscribes it again, so user 3 retries on a new connection.
    const thirdAgain = await connectClient(0, 'user 3 retrying', { user_id: '3', user_info: { name: 'Three' } });
    await thirdAgain.subscribe(CHANNEL);
    assert.deepEqual(thirdAgain.memberIds(CHANNEL), ['1', '3']);
    await first.waitForMemberEvent(CHANNEL, MEMBER_ADDED, '3');
    await firstAgain.waitForMemberEvent(CHANNEL, MEMBER_ADDED, '3');
  });
});
