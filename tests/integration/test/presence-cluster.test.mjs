// Presence membership across two gateways with the real clients: Laravel
// Echo's here/joining/leaving, one user with connections on both gateways,
// numeric and string user ids, and member events never echoed to the
// connection that caused them.
//
// Where a test shows that an event did NOT arrive, it triggers a marker
// event on the same channel afterwards and checks what arrived before the
// marker (sendMarker in lib/presence-client.mjs explains the ordering).

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import Echo from 'laravel-echo';
import Pusher from 'pusher';
import PusherJs from 'pusher-js';

import { startCluster } from '../lib/cluster.mjs';
import {
  MEMBER_ADDED,
  MEMBER_REMOVED,
  PresenceClient,
  sendMarker,
  waitForPresenceLeave,
} from '../lib/presence-client.mjs';
import { RawClient } from '../lib/raw-client.mjs';
import { EVENT_TIMEOUT_MS, Inbox, waitUntil, withTimeout } from '../lib/wait.mjs';

let cluster;
const clients = [];
const echos = [];

async function connectClient(gatewayIndex, name, user, options = {}) {
  const client = await PresenceClient.connect(cluster, gatewayIndex, { name, user, ...options });
  clients.push(client);
  return client;
}

async function connectRaw(gatewayIndex, name) {
  const client = await RawClient.connect(cluster.gatewayUrl(gatewayIndex), { name });
  clients.push(client);
  return client;
}

/** Returns the presence data of the last pusher_internal:subscription_succeeded the client received. */
function snapshotFrame(client, channelName) {
  const frames = client.frames(channelName, 'pusher_internal:subscription_succeeded');
  assert.ok(frames.length > 0, `${client.name} has no subscription_succeeded on ${channelName}`);
  return frames[frames.length - 1].data.presence;
}

// ---- Laravel Echo -------------------------------------------------------

/** Connects an Echo 2 instance ('reverb' broadcaster) whose authorizer signs `user` with the `pusher` SDK. */
async function connectEcho(gatewayIndex, name, user) {
  const port = cluster.gatewayPort(gatewayIndex);
  const backend = cluster.sdk();
  const echo = new Echo({
    broadcaster: 'reverb',
    Pusher: PusherJs,
    key: cluster.app.key,
    wsHost: '127.0.0.1',
    wsPort: port,
    wssPort: port,
    forceTLS: false,
    enabledTransports: ['ws'],
    disableStats: true,
    // The authorizer shape from Laravel's broadcasting documentation, with
    // the SDK call a Laravel backend makes in place of the HTTP request.
    authorizer: (channel) => ({
      authorize: (socketId, callback) => {
        try {
          callback(null, backend.authorizeChannel(socketId, channel.name, user));
        } catch (error) {
          callback(error, null);
        }
      },
    }),
  });
  echos.push(echo);
  echo.inbox = new Inbox(name);
  await waitUntil(() => echo.connectionStatus() === 'connected' && echo.socketId(), {
    what: `${name} to connect`,
  });
  return echo;
}

/**
 * Joins `room` with here/joining/leaving bound before the subscription can
 * complete, records joining, leaving and the event `marker` in echo.inbox,
 * and resolves with the list here() received.
 */
function joinEcho(echo, room) {
  const record = (event) => (payload) => echo.inbox.push({ index: echo.inbox.mark(), event, payload });
  const here = new Promise((resolve, reject) => {
    echo
      .join(room)
      .here(resolve)
      .joining(record('joining'))
      .leaving(record('leaving'))
      .listen('.marker', record('marker'))
      .error((error) => reject(new Error(`${echo.inbox.name}: joining ${room} failed: ${JSON.stringify(error)}`)));
  });
  return withTimeout(here, EVENT_TIMEOUT_MS, `${echo.inbox.name} here() on ${room}`);
}

const byId = (left, right) => left.id - right.id;

describe('presence membership', () => {
  before(async () => {
    cluster = await startCluster('presence-cluster');
  });

  after(async () => {
    for (const client of clients) {
      if (client instanceof RawClient) {
        client.close();
      } else {
        client.disconnect();
      }
    }
    for (const echo of echos) {
      echo.disconnect();
    }
    if (cluster) {
      try {
        cluster.assertAllRunning();
      } finally {
        await cluster.stop();
      }
    }
  });

  it('Echo here, joining and leaving across gateways', async () => {
    const alice = { user_id: '1', user_info: { id: 1, name: 'Alice' } };
    const bob = { user_id: '2', user_info: { id: 2, name: 'Bob' } };
    const aliceEcho = await connectEcho(0, 'Echo of Alice on gateway 1', alice);
    const bobEcho = await connectEcho(1, 'Echo of Bob on gateway 2', bob);

    const aliceHere = await joinEcho(aliceEcho, 'room.1');
    assert.deepEqual(aliceHere, [alice.user_info], 'here() of the first joiner lists only herself');

    const bobHere = await joinEcho(bobEcho, 'room.1');
    assert.deepEqual([...bobHere].sort(byId), [alice.user_info, bob.user_info], 'here() of the second joiner lists both users');

    const joining = await aliceEcho.inbox.waitFor((item) => item.event === 'joining', { what: 'joining() on Alice' });
    assert.deepEqual(joining.payload, bob.user_info);

    // Bob's own join must not reach his joining() callback.
    await cluster.sdk().trigger('presence-room.1', 'marker', { step: 'joined' });
    await bobEcho.inbox.waitFor((item) => item.event === 'marker', { what: 'the marker on Bob' });
    assert.deepEqual(bobEcho.inbox.items.map((item) => item.event), ['marker'], 'Bob received a member event about himself');

    bobEcho.leave('room.1');
    const leaving = await aliceEcho.inbox.waitFor((item) => item.event === 'leaving', { what: 'leaving() on Alice' });
    assert.deepEqual(leaving.payload, bob.user_info);

    // A second marker, published after Bob's leave, shows that nothing else follows it.
    await cluster.sdk().trigger('presence-room.1', 'marker', { step: 'left' });
    await aliceEcho.inbox.waitFor((item) => item.event === 'marker' && item.payload.step === 'left', {
      what: 'the second marker on Alice',
    });
    assert.deepEqual(
      aliceEcho.inbox.items.map((item) => item.event),
      ['joining', 'marker', 'leaving', 'marker'],
      'Alice received exactly one joining and one leaving',
    );
  });

  it('one user on two gateways is one member', async () => {
    const channel = 'presence-room.2';
    const observers = [
      await connectClient(0, 'observer on gateway 1', { user_id: 'o1', user_info: { name: 'Observer 1' } }),
      await connectClient(1, 'observer on gateway 2', { user_id: 'o2', user_info: { name: 'Observer 2' } }),
    ];
    for (const observer of observers) {
      await observer.subscribe(channel);
    }

    // The same user from two devices, each with the user_info its backend
    // signed; the first connection's user_info is the one kept.
    const first = await connectClient(0, 'user x on gateway 1', { user_id: 'x', user_info: { name: 'X', device: 'laptop' } });
    const second = await connectClient(1, 'user x on gateway 2', { user_id: 'x', user_info: { name: 'X', device: 'phone' } });

    const beforeX = observers.map((observer) => observer.inbox.mark());
    await first.subscribe(channel);
    for (const observer of observers) {
      const added = await observer.waitForMemberEvent(channel, MEMBER_ADDED, 'x');
      assert.deepEqual(added.data.user_info, { name: 'X', device: 'laptop' });
    }

    await second.subscribe(channel);
    const snapshot = snapshotFrame(second, channel);
    assert.deepEqual([...snapshot.ids].sort(), ['o1', 'o2', 'x'], 'ids list each user once');
    assert.equal(snapshot.count, 3, 'count is the number of distinct users');
    assert.deepEqual(snapshot.hash.x, { name: 'X', device: 'laptop' }, 'the first connection\'s user_info is kept');
    assert.deepEqual(
      await cluster.redisHash(cluster.channelKey('member-conns', channel)),
      { o1: '1', o2: '1', x: '2' },
      'Redis counts two connections of x',
    );

    await sendMarker(cluster, channel, [...observers, first, second]);
    for (const [index, observer] of observers.entries()) {
      assert.deepEqual(observer.memberEventIds(channel, MEMBER_ADDED, beforeX[index]), ['x'], `${observer.name}: member_added of x once`);
      assert.deepEqual(observer.memberIds(channel), ['o1', 'o2', 'x']);
      assert.equal(observer.memberCount(channel), 3);
    }
    assert.deepEqual(first.memberEventIds(channel, MEMBER_ADDED), [], 'the first connection of x got no member_added');
    assert.deepEqual(second.memberEventIds(channel, MEMBER_ADDED), [], 'the second connection of x got no member_added');

    // The first connection leaves, and x still has the second one.
    const firstSocket = first.socketId;
    first.disconnect();
    await waitForPresenceLeave(cluster, channel, firstSocket);
    await sendMarker(cluster, channel, [...observers, second]);
    for (const client of [...observers, second]) {
      assert.deepEqual(client.memberEventIds(channel, MEMBER_REMOVED), [], `${client.name}: no member_removed while x has a connection`);
      assert.deepEqual(client.memberIds(channel), ['o1', 'o2', 'x']);
    }

    // The last connection of x leaves.
    second.disconnect();
    for (const observer of observers) {
      await observer.waitForMemberEvent(channel, MEMBER_REMOVED, 'x');
    }
    await sendMarker(cluster, channel, observers);
    for (const observer of observers) {
      assert.deepEqual(observer.memberEventIds(channel, MEMBER_REMOVED), ['x'], `${observer.name}: member_removed of x once`);
      assert.deepEqual(observer.memberIds(channel), ['o1', 'o2']);
    }
    assert.deepEqual(Object.keys(await cluster.redisHash(cluster.channelKey('members', channel))).sort(), ['o1', 'o2']);
  });

  it('numeric and string user_id are one member', async () => {
    const channel = 'presence-room.3';
    const observer = await connectClient(1, 'observer', { user_id: 'observer', user_info: { name: 'Observer' } });
    await observer.subscribe(channel);

    // pusher-php 6 and Laravel's RedisBroadcaster send 7, while pusher-php 7 sends "7".
    const numeric = await connectClient(0, 'user 7 as a number', { user_id: 7, user_info: { name: 'Seven' } });
    const string = await connectClient(1, 'user 7 as a string', { user_id: '7', user_info: { name: 'Seven' } });

    await numeric.subscribe(channel);
    const added = await observer.waitForMemberEvent(channel, MEMBER_ADDED, '7');
    assert.equal(typeof added.data.user_id, 'string');
    assert.deepEqual(snapshotFrame(numeric, channel).ids.sort(), ['7', 'observer'], 'the numeric joiner\'s own id arrives as a string');

    await string.subscribe(channel);
    const snapshot = snapshotFrame(string, channel);
    assert.deepEqual([...snapshot.ids].sort(), ['7', 'observer']);
    assert.equal(snapshot.count, 2);
    assert.deepEqual(Object.keys(snapshot.hash).sort(), ['7', 'observer']);
    assert.deepEqual(
      await cluster.redisHash(cluster.channelKey('member-conns', channel)),
      { 7: '2', observer: '1' },
      'Redis counts 7 and "7" as two connections of one user',
    );

    await sendMarker(cluster, channel, [observer, numeric, string]);
    assert.deepEqual(observer.memberEventIds(channel, MEMBER_ADDED), ['7'], 'one member_added for 7 and "7"');
    assert.deepEqual(numeric.memberEventIds(channel, MEMBER_ADDED), [], 'the numeric connection saw no member_added for the string one');
    assert.deepEqual(observer.memberIds(channel), ['7', 'observer']);

    // The string connection leaves first, so the member_removed comes from
    // the numeric one and must carry the id as a string too.
    const stringSocket = string.socketId;
    string.disconnect();
    await waitForPresenceLeave(cluster, channel, stringSocket);
    await sendMarker(cluster, channel, [observer]);
    assert.deepEqual(observer.memberEventIds(channel, MEMBER_REMOVED), [], 'no member_removed while the numeric connection remains');

    numeric.disconnect();
    const removed = await observer.waitForMemberEvent(channel, MEMBER_REMOVED, '7');
    assert.equal(typeof removed.data.user_id, 'string');
    assert.deepEqual(observer.memberIds(channel), ['observer']);
  });

  it('member events skip the causing connection', async () => {
    const channel = 'presence-room.4';
    const markerChannel = 'room-4-markers';
    const stayer = await connectClient(0, 'stayer', { user_id: 'stayer' });
    const mover = await connectClient(1, 'mover', { user_id: 'mover', user_info: { name: 'Mover' } });
    await stayer.subscribe(channel);
    await mover.subscribe(markerChannel);

    await mover.subscribe(channel);
    assert.deepEqual(mover.memberIds(channel), ['mover', 'stayer'], 'the joiner lists itself from the snapshot');
    await stayer.waitForMemberEvent(channel, MEMBER_ADDED, 'mover');
    await sendMarker(cluster, channel, [stayer, mover]);
    assert.deepEqual(mover.frames(channel, MEMBER_ADDED), [], 'the joiner received its own member_added');

    // Unsubscribing keeps the connection open, so a member_removed sent to
    // it would still arrive and be recorded.
    const moverSocket = mover.socketId;
    mover.unsubscribe(channel);
    await stayer.waitForMemberEvent(channel, MEMBER_REMOVED, 'mover');
    await waitForPresenceLeave(cluster, channel, moverSocket);
    await sendMarker(cluster, markerChannel, [mover]);
    assert.deepEqual(mover.frames(channel, MEMBER_REMOVED), [], 'the leaver received its own member_removed');
    assert.deepEqual(stayer.memberEventIds(channel, MEMBER_ADDED), ['mover']);
    assert.deepEqual(stayer.memberEventIds(channel, MEMBER_REMOVED), ['mover']);
  });
});
