// Client input that the gateway accepts but changes on the way: strings
// with an escaped NUL (\u0000), which the gateway reads as C strings and so
// cuts short, and sign-in user_info that skips the presence member size
// limit. Each value must be rejected or kept exactly as sent. Input quoted
// back in an error message or close reason must leave both valid UTF-8,
// or the client's WebSocket stack fails the connection (1007) instead of
// reporting the error code from which a Pusher client decides what to do.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { startCluster } from '../lib/cluster.mjs';
import { RawClient } from '../lib/raw-client.mjs';
import { withTimeout } from '../lib/wait.mjs';

const APPS = [
  {
    id: 'app-1',
    key: 'app-key',
    secret: 'app-secret',
    enable_client_messages: true,
    max_presence_member_bytes: 1024,
  },
];

let cluster;
let backend;
const clients = [];

async function connect(gatewayIndex, name) {
  const client = await RawClient.connect(cluster.gatewayUrl(gatewayIndex), { name });
  clients.push(client);
  return client;
}

/** Sends pusher:subscribe with `data` and returns the first reply frame about `channel`. */
async function subscribeReply(client, channel, data) {
  const since = client.mark();
  client.send({ event: 'pusher:subscribe', data: { channel, ...data } });
  const item = await client.waitForFrame(
    (frame) =>
      frame.event === 'pusher:error' ||
      (frame.channel !== undefined &&
        ['pusher_internal:subscription_succeeded', 'pusher:subscription_error'].includes(frame.event)),
    { since, what: `a reply to subscribing to ${JSON.stringify(channel)}` },
  );
  return item.frame;
}

describe('gateway input that is changed on the way', () => {
  before(async () => {
    cluster = await startCluster('abuse-gateway-input', { env: { HERALD_APPS: JSON.stringify(APPS) } });
    backend = cluster.sdk();
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

  it(
    'rejects a channel name with NUL',
    async () => {
      const client = await connect(0, 'subscriber with NUL in the channel name');
      const requested = 'nul-cut\u0000tail';
      const reply = await subscribeReply(client, requested, {});
      assert.notEqual(
        reply.event,
        'pusher_internal:subscription_succeeded',
        `subscribing to ${JSON.stringify(requested)} succeeded for channel ${JSON.stringify(reply.channel)}`,
      );
    },
  );

  it(
    'keeps NUL in client event data',
    async () => {
      const channel = 'private-nul-data';
      const sender = await connect(0, 'client event sender');
      const receiver = await connect(1, 'client event receiver');
      for (const client of [sender, receiver]) {
        await client.subscribe(channel, backend.authorizeChannel(client.socketId, channel));
      }

      const sent = 'a\u0000b';
      const senderSince = sender.mark();
      const receiverSince = receiver.mark();
      sender.send({ event: 'client-nul', channel, data: sent });
      sender.send({ event: 'client-after', channel, data: 'marker' });
      await receiver.waitForEvent('client-after', { since: receiverSince });

      const relayed = receiver.events('client-nul', { since: receiverSince }).map((item) => item.frame.data);
      const rejected = sender.events('pusher:error', { since: senderSince }).length > 0;
      if (rejected) {
        assert.deepEqual(relayed, [], 'the sender got pusher:error, but the event was relayed anyway');
      } else {
        assert.deepEqual(relayed, [sent], 'the relayed data differs from the data sent');
      }
    },
  );

  it(
    'keeps user_id with NUL apart',
    async () => {
      const channel = 'presence-nul-ids';
      const member = await connect(1, 'member "nul"');
      await member.subscribe(channel, backend.authorizeChannel(member.socketId, channel, { user_id: 'nul' }));

      const joiner = await connect(0, 'joiner "nul\\u0000id"');
      const userId = 'nul\u0000id';
      const reply = await subscribeReply(joiner, channel, backend.authorizeChannel(joiner.socketId, channel, { user_id: userId }));
      if (reply.event === 'pusher:subscription_error') {
        assert.equal(reply.data.type, 'InvalidChannelData', JSON.stringify(reply));
        return;
      }
      const { ids } = JSON.parse(reply.data).presence;
      assert.deepEqual(ids.slice().sort(), ['nul', userId].sort(), `members after the join: ${JSON.stringify(ids)}`);
    },
  );

  it(
    'limits sign-in user_info in presence',
    async () => {
      const channel = 'presence-signed-in';
      const client = await connect(0, 'signed-in user with a large user_info');
      const user = { id: 'large', user_info: { bio: 'b'.repeat(2000) } };
      const since = client.mark();
      client.send({ event: 'pusher:signin', data: backend.authenticateUser(client.socketId, user) });
      await client.waitForEvent('pusher:signin_success', { since });

      // Without channel_data, the signature covers "<socket_id>:<channel>".
      const reply = await subscribeReply(client, channel, { auth: backend.authorizeChannel(client.socketId, channel).auth });
      assert.equal(reply.event, 'pusher:subscription_error', `a member with ${reply.data?.length ?? 0} bytes of snapshot data joined`);
      assert.equal(reply.data.type, 'LimitReached', JSON.stringify(reply));
    },
  );
  // Keys as they appear in the URL; the gateway percent-decodes the path.
  for (const [what, key] of [
    ['a percent-encoded byte that is not UTF-8', '%FF'],
    ['100 two-byte characters', encodeURIComponent('\u00e9'.repeat(100))],
  ]) {
    it(`closes unknown app key of ${what} with 4001`, async () => {
      const client = new RawClient(cluster.gatewayUrl(0, { appKey: key }), { name: `client with app key ${what}` });
      clients.push(client);
      const error = await client.waitForEvent('pusher:error');
      const closed = await withTimeout(client.closed, 10000, 'the close after pusher:error');
      assert.equal(error.frame.data.code, 4001, JSON.stringify(error.frame));
      assert.match(error.frame.data.message, /^App key .* does not exist$/);
      assert.equal(closed.code, 4001, `closed with ${JSON.stringify(closed)}`);
    });
  }

  it('quotes long multibyte event name as UTF-8', async () => {
    const client = await connect(0, 'client sending a long unsupported event name');
    const since = client.mark();
    client.send({ event: 'a'.repeat(199) + '\u00e9', data: {} });
    const error = await client.waitForEvent('pusher:error', { since });
    assert.match(error.frame.data.message, /^Unsupported event a{199}\?\.\.\.: /);
    assert.ok(client.isOpen, 'the connection closed after the error');
  });
});
