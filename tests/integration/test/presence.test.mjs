// Presence channels across two gateways: one member list for the whole
// cluster, one member_added per user however many connections it has, and
// member_removed only when the user's last connection leaves.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { startCluster } from '../lib/cluster.mjs';
import { PusherJsClient } from '../lib/pusher-client.mjs';
import { RawClient } from '../lib/raw-client.mjs';

const ROOM = 'presence-room.7';
const ALICE = { user_id: '1', user_info: { name: 'Alice' } };
const BOB = { user_id: '2', user_info: { name: 'Bob' } };
const CAROL = { user_id: '3', user_info: { name: 'Carol', role: 'admin ✓' } };

let cluster;
let backend;
const clients = [];

function memberIds(channel) {
  const ids = [];
  channel.members.each((member) => ids.push(member.id));
  return ids.sort();
}

/** Connects a raw client to gateway `gatewayIndex`, joins ROOM as `user` and returns [client, presence data]. */
async function joinRaw(gatewayIndex, user, name) {
  const client = await RawClient.connect(cluster.gatewayUrl(gatewayIndex), { name });
  clients.push(client);
  const reply = await client.subscribe(ROOM, backend.authorizeChannel(client.socketId, ROOM, user));
  assert.equal(typeof reply.data, 'string', 'subscription_succeeded data must be a JSON-encoded string');
  return [client, JSON.parse(reply.data).presence];
}

/** Unsubscribes a raw client and waits for the pong that follows, so the gateway has handled it. */
async function leaveRaw(client) {
  client.send({ event: 'pusher:unsubscribe', data: { channel: ROOM } });
  await client.ping();
}

describe('presence channels', () => {
  let alice;
  let aliceRoom;

  before(async () => {
    cluster = await startCluster('presence');
    backend = cluster.sdk();
    alice = await PusherJsClient.connect(cluster, 0, { name: 'alice', backend, presenceUser: ALICE });
    clients.push(alice);
    aliceRoom = await alice.subscribe(ROOM);
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

  it('lists the joining member itself', () => {
    assert.equal(aliceRoom.members.count, 1);
    assert.equal(aliceRoom.members.me.id, '1');
    assert.deepEqual(aliceRoom.members.get('1').info, ALICE.user_info);
  });

  it('shares members across gateways', async () => {
    const since = alice.inbox.mark();
    const bob = await PusherJsClient.connect(cluster, 1, { name: 'bob', backend, presenceUser: BOB });
    clients.push(bob);
    const bobRoom = await bob.subscribe(ROOM);

    assert.equal(bobRoom.members.count, 2);
    assert.deepEqual(memberIds(bobRoom), ['1', '2']);
    assert.deepEqual(bobRoom.members.get('1').info, ALICE.user_info);

    const added = await alice.waitForEvent(ROOM, 'pusher:member_added', { since });
    assert.equal(added.data.id, '2');
    assert.deepEqual(added.data.info, BOB.user_info);
    assert.equal(aliceRoom.members.count, 2);

    const beforeLeave = alice.inbox.mark();
    bob.unsubscribe(ROOM);
    const removed = await alice.waitForEvent(ROOM, 'pusher:member_removed', { since: beforeLeave });
    assert.equal(removed.data.id, '2');
    assert.equal(aliceRoom.members.count, 1);
    assert.equal(bob.inbox.filter((item) => item.event === 'pusher:member_added', 0).length, 0, 'a joining member must not get its own member_added');
  });

  it('counts a user with two connections once', async () => {
    const since = alice.inbox.mark();
    const [bobOnGateway2, firstView] = await joinRaw(1, BOB, 'bob on gateway 2');
    assert.equal(firstView.count, 2);
    await alice.waitForEvent(ROOM, 'pusher:member_added', { since });

    const [bobOnGateway1, secondView] = await joinRaw(0, BOB, 'bob on gateway 1');
    assert.equal(secondView.count, 2);
    assert.deepEqual([...secondView.ids].sort(), ['1', '2']);
    assert.deepEqual(secondView.hash['2'], BOB.user_info);

    // Carol joins after Bob's second connection, so her member_added is the marker.
    const [carol] = await joinRaw(0, CAROL, 'carol on gateway 1');
    const carolAdded = await alice.inbox.waitFor(
      (item) => item.event === 'pusher:member_added' && item.data.id === '3',
      { since, what: 'member_added for Carol' },
    );
    const addedIds = alice.inbox
      .filter((item) => item.event === 'pusher:member_added', since)
      .map((item) => item.data.id);
    assert.deepEqual(addedIds, ['2', '3'], 'member_added events seen by alice');
    assert.deepEqual(carolAdded.data.info, CAROL.user_info);
    assert.equal(aliceRoom.members.count, 3);

    // Bob leaves one of two connections: no member_removed. Carol's leave,
    // handled after it by the same gateway, is the marker.
    const beforeLeaves = alice.inbox.mark();
    await leaveRaw(bobOnGateway1);
    await leaveRaw(carol);
    await alice.inbox.waitFor((item) => item.event === 'pusher:member_removed' && item.data.id === '3', {
      since: beforeLeaves,
      what: 'member_removed for Carol',
    });
    const removedIds = alice.inbox
      .filter((item) => item.event === 'pusher:member_removed', beforeLeaves)
      .map((item) => item.data.id);
    assert.deepEqual(removedIds, ['3'], 'Bob still has a connection, so only Carol may be removed');
    assert.equal(aliceRoom.members.count, 2);

    // Bob's last connection leaves: now he is removed.
    const beforeLast = alice.inbox.mark();
    await leaveRaw(bobOnGateway2);
    const removed = await alice.waitForEvent(ROOM, 'pusher:member_removed', { since: beforeLast });
    assert.equal(removed.data.id, '2');
    assert.equal(aliceRoom.members.count, 1);
  });

  it('removes a member whose connection closes', async () => {
    const since = alice.inbox.mark();
    const [carol] = await joinRaw(1, CAROL, 'carol closing');
    await alice.waitForEvent(ROOM, 'pusher:member_added', { since });

    const beforeClose = alice.inbox.mark();
    carol.close();
    const removed = await alice.waitForEvent(ROOM, 'pusher:member_removed', { since: beforeClose });
    assert.equal(removed.data.id, '3');
    assert.equal(aliceRoom.members.count, 1);
  });

  it('rejects presence auth without the signed channel_data', async () => {
    const client = await RawClient.connect(cluster.gatewayUrl(0), { name: 'forger' });
    clients.push(client);
    const signed = backend.authorizeChannel(client.socketId, ROOM, BOB);
    const forgedData = JSON.stringify({ user_id: '1', user_info: { name: 'Not Alice' } });
    const since = client.mark();
    client.send({ event: 'pusher:subscribe', data: { channel: ROOM, auth: signed.auth, channel_data: forgedData } });
    const item = await client.waitForEvent('pusher:subscription_error', { channel: ROOM, since });
    assert.equal(item.frame.data.type, 'AuthError');
    assert.equal(item.frame.data.status, 401);
  });
});
