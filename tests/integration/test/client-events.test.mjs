// Client events (client-*, Laravel Echo's whisper): relayed to every other
// subscriber of a private or presence channel on every gateway, never back
// to the sender, and rejected with pusher:error where Pusher rejects them.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { startCluster } from '../lib/cluster.mjs';
import { PusherJsClient } from '../lib/pusher-client.mjs';
import { RawClient } from '../lib/raw-client.mjs';

// app-1 (the development app's credentials) allows client events, app-2
// keeps Pusher's default of not allowing them.
const APPS = [
  { id: 'app-1', key: 'app-key', secret: 'app-secret', enable_client_messages: true },
  { id: 'app-2', key: 'key-2', secret: 'secret-2' },
];
const DEFAULT_MAX_CLIENT_EVENTS_PER_SECOND = 10;

let cluster;
const clients = [];

async function rawClient(gatewayIndex, name, appKey = 'app-key') {
  const client = await RawClient.connect(cluster.gatewayUrl(gatewayIndex, { appKey }), { name });
  clients.push(client);
  return client;
}

async function pusherJsClient(gatewayIndex, name) {
  const client = await PusherJsClient.connect(cluster, gatewayIndex, { name, backend: cluster.sdk() });
  clients.push(client);
  return client;
}

function subscribePrivate(client, channel, sdk = cluster.sdk()) {
  return client.subscribe(channel, sdk.authorizeChannel(client.socketId, channel));
}

describe('client events', () => {
  before(async () => {
    cluster = await startCluster('client-events', { env: { HERALD_APPS: JSON.stringify(APPS) } });
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

  it('relays to others on both gateways', async () => {
    const channel = 'private-chat.1';
    const alice = await pusherJsClient(0, 'alice');
    const bob = await pusherJsClient(1, 'bob');
    const carol = await rawClient(0, 'carol');
    const aliceChannel = await alice.subscribe(channel);
    const bobChannel = await bob.subscribe(channel);
    await subscribePrivate(carol, channel);

    const data = { typing: true, text: 'tippt … ✍️' };
    assert.equal(aliceChannel.trigger('client-typing', data), true);

    const atBob = await bob.waitForEvent(channel, 'client-typing');
    assert.deepEqual(atBob.data, data);
    const atCarol = await carol.waitForEvent('client-typing', { channel });
    assert.equal(typeof atCarol.frame.data, 'string', 'relayed data must be a JSON-encoded string');
    assert.deepEqual(JSON.parse(atCarol.frame.data), data);
    assert.deepEqual(Object.keys(atCarol.frame).sort(), ['channel', 'data', 'event'], 'no user_id on a private channel');

    // Bob answers after he saw Alice's event, so an echo of her own event
    // would have reached Alice before his answer.
    assert.equal(bobChannel.trigger('client-ack', { seen: true }), true);
    await alice.waitForEvent(channel, 'client-ack');
    assert.equal(alice.inbox.filter((item) => item.event === 'client-typing').length, 0, 'the sender received its own client event');
  });

  it('sets user_id on presence channels', async () => {
    const channel = 'presence-room.9';
    const sdk = cluster.sdk();
    const alice = await rawClient(0, 'alice');
    const bob = await rawClient(1, 'bob');
    await alice.subscribe(channel, sdk.authorizeChannel(alice.socketId, channel, { user_id: '1', user_info: {} }));
    await bob.subscribe(channel, sdk.authorizeChannel(bob.socketId, channel, { user_id: '2', user_info: {} }));

    // A client-supplied user_id must be replaced by the sender's own.
    alice.send({ event: 'client-move', channel, data: { x: 1 }, user_id: '999' });
    const item = await bob.waitForEvent('client-move', { channel });
    assert.equal(item.frame.user_id, '1');
    assert.deepEqual(JSON.parse(item.frame.data), { x: 1 });
  });

  it('rejects public channels with 4301', async () => {
    const sender = await rawClient(0, 'public sender');
    const listener = await rawClient(1, 'public listener');
    await sender.subscribe('public-whispers');
    await listener.subscribe('public-whispers');

    const since = sender.mark();
    sender.send({ event: 'client-hello', channel: 'public-whispers', data: {} });
    const error = await sender.waitForEvent('pusher:error', { since });
    assert.equal(error.frame.data.code, 4301);

    await cluster.sdk().trigger('public-whispers', 'server-marker', {});
    await listener.waitForEvent('server-marker', { channel: 'public-whispers' });
    assert.equal(listener.events('client-hello').length, 0);
  });

  it('rejects channels the sender has not joined', async () => {
    const outsider = await rawClient(0, 'outsider');
    const since = outsider.mark();
    outsider.send({ event: 'client-sneak', channel: 'private-chat.1', data: {} });
    const error = await outsider.waitForEvent('pusher:error', { since });
    assert.equal(
      error.frame.data.message,
      'Cannot broadcast client event (connection not subscribed to channel private-chat.1)',
    );
    await outsider.ping();
  });

  it('rejects apps without client messages', async () => {
    const sdk = cluster.sdk({ appId: 'app-2', key: 'key-2', secret: 'secret-2' });
    const sender = await rawClient(0, 'app-2 sender', 'key-2');
    await subscribePrivate(sender, 'private-quiet', sdk);
    const since = sender.mark();
    sender.send({ event: 'client-hello', channel: 'private-quiet', data: {} });
    const error = await sender.waitForEvent('pusher:error', { since });
    assert.equal(error.frame.data.code, 4301);
    assert.equal(error.frame.data.message, 'The app does not have client messaging enabled.');
  });

  it('limits client events per second', async () => {
    const channel = 'private-burst';
    const sender = await rawClient(0, 'burst sender');
    const receiver = await rawClient(1, 'burst receiver');
    await subscribePrivate(sender, channel);
    await subscribePrivate(receiver, channel);

    const burst = DEFAULT_MAX_CLIENT_EVENTS_PER_SECOND + 5;
    const since = sender.mark();
    for (let n = 0; n < burst; n += 1) {
      sender.send({ event: 'client-burst', channel, data: { n } });
    }
    await sender.ping();
    const rejected = sender.events('pusher:error', { since }).filter((item) => item.frame.data.code === 4301).length;
    // The burst takes milliseconds, far less than the one-second window that
    // the first event opens, so exactly the events over the limit fail.
    assert.equal(rejected, burst - DEFAULT_MAX_CLIENT_EVENTS_PER_SECOND, `client events rejected out of ${burst}`);

    await cluster.sdk().trigger(channel, 'server-marker', {});
    await receiver.waitForEvent('server-marker', { channel });
    assert.equal(receiver.events('client-burst').length, burst - rejected, 'every accepted client event is delivered once');
  });
});
