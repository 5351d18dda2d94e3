// Presence subscriptions with bad auth or channel_data: each one gets a
// pusher:subscription_error on its channel, the connection stays open, and
// neither the channel's members nor Redis see anything of it.
//
// The frames are sent by a `ws` client so each case is exact; the `pusher`
// SDK signs them, as a backend with that bug would. Two cases go through
// pusher-js to show that the real client reports the error.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import Pusher from 'pusher';

import { startCluster } from '../lib/cluster.mjs';
import { MEMBER_ADDED, PresenceClient, sendMarker } from '../lib/presence-client.mjs';
import { RawClient } from '../lib/raw-client.mjs';

const CHANNEL = 'presence-room.5';

let cluster;
let backend;
const clients = [];

// Cases signed correctly by the SDK whose channel_data has no usable
// user_id: [label, the data the SDK signs and sends as channel_data].
const INVALID_CHANNEL_DATA = [
  ['without user_id', { user_info: { name: 'Nobody' } }],
  ['float user_id', { user_id: 7.5 }],
  ['object user_id', { user_id: { id: 7 } }],
  ['array user_id', { user_id: [7] }],
  ['null user_id', { user_id: null }],
  ['boolean user_id', { user_id: true }],
  ['empty user_id', { user_id: '' }],
  ['user_id of 129 characters', { user_id: 'u'.repeat(129) }],
  ['a JSON string', 'user-7'],
  ['a JSON array', [{ user_id: '7' }]],
];

async function connectClient(gatewayIndex, name, user, options = {}) {
  const client = await PresenceClient.connect(cluster, gatewayIndex, { name, user, ...options });
  clients.push(client);
  return client;
}

/** Sends pusher:subscribe for `channel` with `data` and returns the reply frame. */
async function subscribeReply(raw, data, channel = CHANNEL) {
  const since = raw.mark();
  raw.send({ event: 'pusher:subscribe', data: { channel, ...data } });
  const reply = await raw.inbox.waitFor(
    (item) =>
      item.frame !== null &&
      ((item.frame.channel === channel &&
        ['pusher_internal:subscription_succeeded', 'pusher:subscription_error'].includes(item.frame.event)) ||
        item.frame.event === 'pusher:error'),
    { since, what: `the reply to subscribing to ${channel}` },
  );
  return reply.frame;
}

function assertSubscriptionError(frame, type, status, label) {
  const details = `${label}: ${JSON.stringify(frame)}`;
  assert.equal(frame.event, 'pusher:subscription_error', details);
  assert.equal(frame.channel, CHANNEL, details);
  assert.equal(frame.data.type, type, details);
  assert.equal(frame.data.status, status, details);
  assert.equal(typeof frame.data.error, 'string', details);
}

describe('presence subscriptions with bad input', () => {
  let observer;
  let raw;

  before(async () => {
    cluster = await startCluster('presence-input');
    backend = cluster.sdk();
    observer = await connectClient(1, 'observer', { user_id: 'observer' });
    await observer.subscribe(CHANNEL);
    raw = await RawClient.connect(cluster.gatewayUrl(0), { name: 'raw joiner' });
    clients.push(raw);
  });

  after(async () => {
    for (const client of clients) {
      if (client instanceof RawClient) {
        client.close();
      } else {
        client.disconnect();
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

  it('rejects channel_data signed for another user', async () => {
    const signed = backend.authorizeChannel(raw.socketId, CHANNEL, { user_id: 'mallory' });
    const frame = await subscribeReply(raw, {
      auth: signed.auth,
      channel_data: JSON.stringify({ user_id: 'admin' }),
    });
    assertSubscriptionError(frame, 'AuthError', 401, 'channel_data changed after signing');
  });

  it('rejects a signature by another secret', async () => {
    const wrongSecret = new Pusher({ appId: cluster.app.id, key: cluster.app.key, secret: 'not-the-app-secret' });
    const frame = await subscribeReply(raw, wrongSecret.authorizeChannel(raw.socketId, CHANNEL, { user_id: 'mallory' }));
    assertSubscriptionError(frame, 'AuthError', 401, 'signed with another secret');
  });

  it('rejects a subscribe without channel_data', async () => {
    // Signed like a private channel, over "<socket_id>:<channel>". The
    // connection has not signed in, so the gateway has no user for it and
    // sends AuthError, as for any presence auth it cannot verify.
    const frame = await subscribeReply(raw, { auth: backend.authorizeChannel(raw.socketId, CHANNEL).auth });
    assertSubscriptionError(frame, 'AuthError', 401, 'no channel_data');
  });

  it('rejects unusable user_id with InvalidChannelData', async () => {
    for (const [label, signed] of INVALID_CHANNEL_DATA) {
      const frame = await subscribeReply(raw, backend.authorizeChannel(raw.socketId, CHANNEL, signed));
      assertSubscriptionError(frame, 'InvalidChannelData', 400, label);
    }
  });

  it('rejects channel_data over max_presence_member_bytes', async () => {
    // The development app allows 1024 bytes of channel_data.
    const signed = backend.authorizeChannel(raw.socketId, CHANNEL, {
      user_id: 'big',
      user_info: { bio: 'b'.repeat(1100) },
    });
    const frame = await subscribeReply(raw, signed);
    assertSubscriptionError(frame, 'LimitReached', 4301, 'channel_data of 1.1 KB');
  });

  it('keeps user_id beyond 64 bits apart from other users', async () => {
    // Backends with arbitrary-precision integers (Ruby, Python) can sign
    // such ids. JSON.stringify cannot write them, so the channel_data is
    // written here and signed with the SDK's Token. Rejecting the id and
    // keeping its exact digits are both acceptable. Turning it into another
    // user's id is not.
    const channel = 'presence-room.big-ids';
    const token = new Pusher.Token(cluster.app.key, cluster.app.secret);
    const largest = '9223372036854775807';
    for (const userId of [largest, '9223372036854775808', '99999999999999999999']) {
      const client = await RawClient.connect(cluster.gatewayUrl(0), { name: `user ${userId}` });
      clients.push(client);
      const channelData = `{"user_id":${userId}}`;
      const auth = `${cluster.app.key}:${token.sign(`${client.socketId}:${channel}:${channelData}`)}`;
      const frame = await subscribeReply(client, { auth, channel_data: channelData }, channel);
      if (frame.event === 'pusher:subscription_error') {
        assert.equal(frame.data.type, 'InvalidChannelData', `user_id ${userId}: ${JSON.stringify(frame)}`);
        continue;
      }
      const { ids } = JSON.parse(frame.data).presence;
      assert.ok(ids.includes(userId), `user_id ${userId} joined as ${JSON.stringify(ids)}`);
    }
    const conns = await cluster.redisHash(cluster.channelKey('member-conns', channel));
    assert.equal(conns[largest], '1', `connections per user in Redis: ${JSON.stringify(conns)}`);
  });

  it('reports the errors to pusher-js', async () => {
    // A backend that signs one user and returns another one's channel_data.
    const swappingBackend = {
      authorizeChannel: (socketId, channelName, user) => ({
        ...backend.authorizeChannel(socketId, channelName, { user_id: 'signed' }),
        channel_data: JSON.stringify(user),
      }),
    };
    const swapped = await connectClient(0, 'pusher-js with swapped channel_data', { user_id: 'swapped' }, {
      backend: swappingBackend,
    });
    await assert.rejects(swapped.subscribe(CHANNEL), (error) => {
      assert.equal(error.data?.type, 'AuthError', error.message);
      return true;
    });

    const float = await connectClient(1, 'pusher-js with a float user_id', { user_id: 7.5 });
    await assert.rejects(float.subscribe(CHANNEL), (error) => {
      assert.equal(error.data?.type, 'InvalidChannelData', error.message);
      return true;
    });
  });

  it('keeps the connection and the members working', async () => {
    assert.ok(raw.isOpen, 'the gateway closed the connection that sent bad channel_data');
    const good = await subscribeReply(
      raw,
      backend.authorizeChannel(raw.socketId, CHANNEL, { user_id: 'good', user_info: { name: 'Good' } }),
    );
    assert.equal(good.event, 'pusher_internal:subscription_succeeded', JSON.stringify(good));
    assert.deepEqual(JSON.parse(good.data).presence.ids.sort(), ['good', 'observer']);

    await observer.waitForMemberEvent(CHANNEL, MEMBER_ADDED, 'good');
    await sendMarker(cluster, CHANNEL, [observer]);
    assert.deepEqual(observer.memberEventIds(CHANNEL, MEMBER_ADDED), ['good'], 'rejected subscriptions caused member events');
    assert.deepEqual(observer.memberIds(CHANNEL), ['good', 'observer']);
    assert.deepEqual(
      await cluster.redisHash(cluster.channelKey('member-conns', CHANNEL)),
      { good: '1', observer: '1' },
      'rejected subscriptions left presence state in Redis',
    );
  });
});
