// Laravel Echo 2 against two gateways, once with broadcaster 'reverb' and
// once with broadcaster 'pusher', as Laravel's broadcasting documentation
// configures each for a self-hosted server. Private, presence and
// encrypted channels are authorized by a stand-in for Laravel's
// /broadcasting/auth route (lib/laravel-app.mjs), which Echo calls through
// its authEndpoint option with a bearer token per user. Events come from the `pusher`
// Node SDK or in the request shape of the Pusher PHP SDK that Laravel uses.
//
// Each broadcaster runs against an app of its own, so the two runs cannot
// see each other's channels or presence members.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, afterEach, before, describe, it } from 'node:test';

import { startCluster } from '../lib/cluster.mjs';
import { ECHO_CONFIGS, EchoClient, subscribed } from '../lib/echo-client.mjs';
import { LaravelApp, phpJsonEncode } from '../lib/laravel-app.mjs';
import { RawClient } from '../lib/raw-client.mjs';

const APPS = {
  reverb: { id: 'reverb-app', key: 'reverb-key', secret: 'reverb-secret', enable_client_messages: true },
  pusher: { id: 'pusher-app', key: 'pusher-key', secret: 'pusher-secret', enable_client_messages: true },
};
// An app with Pusher's default: client events are rejected.
const QUIET_APP = { id: 'quiet-app', key: 'quiet-key', secret: 'quiet-secret' };

const ENCRYPTION_MASTER_KEY_BASE64 = crypto.randomBytes(32).toString('base64');

// Bearer tokens (sent in Echo's auth.headers) and the users they authenticate.
const ALICE = 'alice-token';
const BOB = 'bob-token';
const CAROL = 'carol-token';
const USERS = {
  [ALICE]: { id: 7, name: 'Alice Zoë', avatar: 'https://img.example.test/avatars/7.png' },
  [BOB]: { id: 8, name: 'Bob Ødegård', avatar: 'https://img.example.test/avatars/8.png' },
  [CAROL]: { id: 9, name: 'Carol', avatar: 'https://img.example.test/avatars/9.png' },
};

/** user_info that the room.{roomId} callback returns for the user with `token`. */
function roomMember(token) {
  const { id, name, avatar } = USERS[token];
  return { id, name, avatar };
}

// The application's routes/channels.php.
const CHANNEL_ROUTES = {
  'orders.{orderId}': () => true,
  'chat.{chatId}': () => true,
  'vault.{vaultId}': () => true,
  'room.{roomId}': (user) => ({ id: user.id, name: user.name, avatar: user.avatar }),
  'App.Models.User.{id}': (user, id) => Number(user.id) === Number(id),
};

const byId = (a, b) => a.id - b.id;

let cluster;

describe('Echo conformance', () => {
  before(async () => {
    cluster = await startCluster('echo-conformance', {
      env: { HERALD_APPS: JSON.stringify([APPS.reverb, APPS.pusher, QUIET_APP]) },
    });
  });

  after(async () => {
    if (cluster) {
      try {
        cluster.assertAllRunning();
      } finally {
        await cluster.stop();
      }
    }
  });

  for (const config of ECHO_CONFIGS) {
    describe(`broadcaster '${config.broadcaster}'`, () => {
      let laravel;
      let quietLaravel;
      let clients = [];
      let rawClients = [];

      before(async () => {
        const options = { users: USERS, channels: CHANNEL_ROUTES, encryptionMasterKeyBase64: ENCRYPTION_MASTER_KEY_BASE64 };
        laravel = await LaravelApp.start(cluster, APPS[config.broadcaster], options);
        quietLaravel = await LaravelApp.start(cluster, QUIET_APP, options);
      });

      afterEach(() => {
        for (const client of clients) {
          client.disconnect();
        }
        for (const raw of rawClients) {
          raw.close();
        }
        clients = [];
        rawClients = [];
        cluster.assertAllRunning();
      });

      after(() => {
        laravel?.close();
        quietLaravel?.close();
      });

      /** Connects an Echo client for the user with `token` to gateway `gatewayIndex`. */
      async function connectUser(name, gatewayIndex, token, app = laravel) {
        const options = config.options({ key: app.app.key, port: cluster.gatewayPort(gatewayIndex) });
        // NOTE: Echo 2.5 merges its default options shallowly, so every
        // instance that relies on the defaults shares one auth.headers object,
        // and bearerToken then sets the last instance's token for all of them.
        // Each client gets its own headers object instead.
        const client = await EchoClient.connect(`${name} (${config.broadcaster})`, {
          ...options,
          authEndpoint: app.authEndpoint,
          auth: { headers: { Authorization: `Bearer ${token}` } },
        });
        clients.push(client);
        return client;
      }

      it('maps listen names to event names', async () => {
        const listeners = [await connectUser('alice', 0, ALICE), await connectUser('bob', 1, BOB)];
        for (const client of listeners) {
          const orders = client.echo
            .channel('orders')
            .listen('.OrderShipped', client.recorder('.OrderShipped'))
            .listen('OrderShipped', client.recorder('OrderShipped'))
            .listen('Orders.Shipped', client.recorder('Orders.Shipped'));
          await subscribed(orders);
        }

        // Data is sent as PHP encodes it, with "\/" and \uXXXX escapes.
        const events = [
          { event: 'OrderShipped', label: '.OrderShipped', payload: { order_id: 1, address: 'Königstraße 7 / 2. OG' } },
          { event: 'App\\Events\\OrderShipped', label: 'OrderShipped', payload: { order_id: 2, items: [{ sku: 'A/1', qty: 2 }] } },
          { event: 'App\\Events\\Orders\\Shipped', label: 'Orders.Shipped', payload: { order_id: 3, carrier: 'DHL 🚚' } },
        ];
        for (const { event, payload } of events) {
          await laravel.sdk.trigger('orders', event, phpJsonEncode(payload));
        }

        for (const client of listeners) {
          // Events of one channel arrive in publication order, so the first
          // two are in once the last one is.
          await client.waitFor('Orders.Shipped');
          for (const { event, label, payload } of events) {
            const calls = client.received(label).map((item) => item.payload);
            assert.deepEqual(calls, [payload], `${client.name}: listener ${label} for event ${event}`);
          }
        }
      });

      it('delivers private channel events', async () => {
        const alice = await connectUser('alice', 0, ALICE);
        const bob = await connectUser('bob', 1, BOB);
        for (const client of [alice, bob]) {
          await subscribed(client.echo.private('orders.7').listen('OrderShipped', client.recorder('OrderShipped')));
        }

        for (const [client, token] of [[alice, ALICE], [bob, BOB]]) {
          const requests = laravel.authRequestsFor('private-orders.7').filter((entry) => entry.socketId === client.socketId());
          assert.equal(requests.length, 1, `${client.name}: auth requests for private-orders.7`);
          assert.equal(requests[0].token, token, `${client.name}: bearer token sent to the auth endpoint`);
          assert.equal(requests[0].contentType, 'application/x-www-form-urlencoded');
          assert.equal(requests[0].status, 200);
        }

        const payload = { order_id: 7, total: '12.50', url: 'https://shop.example.test/orders/7' };
        await laravel.sdk.trigger('private-orders.7', 'App\\Events\\OrderShipped', payload);
        for (const client of [alice, bob]) {
          await client.waitFor('OrderShipped');
          assert.deepEqual(client.received('OrderShipped').map((item) => item.payload), [payload], client.name);
        }
      });

      it('reports presence members', async () => {
        const alice = await connectUser('alice', 0, ALICE);
        const aliceRoom = alice.echo
          .join('room.7')
          .here(alice.recorder('here'))
          .joining(alice.recorder('joining'))
          .leaving(alice.recorder('leaving'))
          .listen('MessagePosted', alice.recorder('MessagePosted'));
        await subscribed(aliceRoom);
        assert.deepEqual(alice.received('here').map((item) => item.payload), [[roomMember(ALICE)]], 'alice: here()');

        const bob = await connectUser('bob', 1, BOB);
        const bobRoom = bob.echo
          .join('room.7')
          .here(bob.recorder('here'))
          .listen('MessagePosted', bob.recorder('MessagePosted'));
        await subscribed(bobRoom);
        const bobHere = bob.received('here');
        assert.equal(bobHere.length, 1, 'bob: here() calls');
        assert.deepEqual([...bobHere[0].payload].sort(byId), [roomMember(ALICE), roomMember(BOB)], 'bob: here()');

        const joined = await alice.waitFor('joining');
        assert.deepEqual(joined.payload, roomMember(BOB), 'alice: joining()');

        const message = { body: 'Hallo 👋 / hi', user_id: 8 };
        await laravel.sdk.trigger('presence-room.7', 'App\\Events\\MessagePosted', phpJsonEncode(message));
        for (const client of [alice, bob]) {
          const received = await client.waitFor('MessagePosted');
          assert.deepEqual(received.payload, message, `${client.name}: listen('MessagePosted')`);
        }

        bob.echo.leave('room.7');
        const left = await alice.waitFor('leaving');
        assert.deepEqual(left.payload, roomMember(BOB), 'alice: leaving()');

        // A later event on the channel shows that no further member events came first.
        await laravel.sdk.trigger('presence-room.7', 'App\\Events\\MessagePosted', { body: 'marker' });
        await alice.waitFor('MessagePosted', (payload) => payload.body === 'marker');
        assert.equal(alice.received('here').length, 1, 'alice: here() calls');
        assert.equal(alice.received('joining').length, 1, 'alice: joining() calls');
        assert.equal(alice.received('leaving').length, 1, 'alice: leaving() calls');
      });

      it('decrypts encryptedPrivate events', async () => {
        const channelName = 'private-encrypted-vault.7';
        const alice = await connectUser('alice', 0, ALICE);
        const bob = await connectUser('bob', 1, BOB);
        for (const client of [alice, bob]) {
          await subscribed(client.echo.encryptedPrivate('vault.7').listen('VaultUpdated', client.recorder('VaultUpdated')));
        }

        const expectedSecret = crypto
          .createHash('sha256')
          .update(Buffer.concat([Buffer.from(channelName), Buffer.from(ENCRYPTION_MASTER_KEY_BASE64, 'base64')]))
          .digest('base64');
        for (const client of [alice, bob]) {
          const [request] = laravel.authRequestsFor(channelName).filter((entry) => entry.socketId === client.socketId());
          assert.equal(request?.status, 200, `${client.name}: auth request for ${channelName}`);
          assert.equal(JSON.parse(request.body).shared_secret, expectedSecret, `${client.name}: shared_secret`);
        }

        // A frame-level subscriber with a valid signature receives the frame as the wire carries it.
        const raw = await RawClient.connect(cluster.gatewayUrl(1, { appKey: laravel.app.key }), { name: 'raw vault subscriber' });
        rawClients.push(raw);
        await raw.subscribe(channelName, { auth: laravel.sdk.authorizeChannel(raw.socketId, channelName).auth });

        const payload = { vault_id: 7, secret: 'correct horse battery staple', label: 'Schlüssel 🔑' };
        await laravel.sdk.trigger(channelName, 'App\\Events\\VaultUpdated', payload);
        for (const client of [alice, bob]) {
          const received = await client.waitFor('VaultUpdated');
          assert.deepEqual(received.payload, payload, `${client.name}: decrypted payload`);
        }

        const frame = (await raw.waitForEvent('App\\Events\\VaultUpdated', { channel: channelName })).frame;
        assert.equal(typeof frame.data, 'string', 'event data must be a JSON-encoded string');
        assert.deepEqual(Object.keys(JSON.parse(frame.data)).sort(), ['ciphertext', 'nonce']);
        assert.ok(!JSON.stringify(frame).includes('correct horse'), `plaintext on the wire: ${JSON.stringify(frame)}`);
      });

      it('relays whispers to others only', async () => {
        const alice = await connectUser('alice', 0, ALICE);
        const bob = await connectUser('bob', 1, BOB);
        const channels = new Map();
        for (const client of [alice, bob]) {
          const chat = client.echo
            .private('chat.7')
            .listenForWhisper('typing', client.recorder('typing'))
            .listen('.Marker', client.recorder('Marker'));
          await subscribed(chat);
          channels.set(client, chat);
        }

        const aliceTyping = { name: 'Alice Zoë', typing: true };
        const bobTyping = { name: 'Bob Ødegård', typing: false };
        channels.get(alice).whisper('typing', aliceTyping);
        await bob.waitFor('typing');
        // Bob whispers back after he received Alice's whisper, so an echo of
        // hers to her would arrive before his.
        channels.get(bob).whisper('typing', bobTyping);
        await alice.waitFor('typing');
        // Bob's whisper was published before this event, so an echo of it to
        // him would come before the marker.
        await laravel.sdk.trigger('private-chat.7', 'Marker', {});
        await bob.waitFor('Marker');
        await alice.waitFor('Marker');

        assert.deepEqual(alice.received('typing').map((item) => item.payload), [bobTyping], 'whispers alice received');
        assert.deepEqual(bob.received('typing').map((item) => item.payload), [aliceTyping], 'whispers bob received');
      });

      it('adds user_id to presence whispers', async () => {
        const alice = await connectUser('alice', 0, ALICE);
        const bob = await connectUser('bob', 1, BOB);
        const aliceRoom = alice.echo.join('room.8');
        await subscribed(aliceRoom);
        await subscribed(bob.echo.join('room.8').listenForWhisper('typing', bob.recorder('typing')));

        aliceRoom.whisper('typing', { typing: true });
        const received = await bob.waitFor('typing');
        assert.deepEqual(received.payload, { typing: true });
        assert.equal(received.metadata?.user_id, '7', 'user_id of the whisper');
      });

      it('reports rejected whispers', async () => {
        const alice = await connectUser('alice', 0, ALICE, quietLaravel);
        const bob = await connectUser('bob', 1, BOB, quietLaravel);
        const channels = new Map();
        for (const client of [alice, bob]) {
          const chat = client.echo
            .private('chat.7')
            .listenForWhisper('typing', client.recorder('typing'))
            .listen('.Marker', client.recorder('Marker'));
          await subscribed(chat);
          channels.set(client, chat);
        }
        const socketId = alice.socketId();
        const statesBefore = alice.states.length;

        channels.get(alice).whisper('typing', { typing: true });
        const error = await alice.errors.waitFor((item) => item.type === 'PusherError', { what: 'pusher:error after the whisper' });
        assert.equal(error.data?.code, 4301, `error data: ${JSON.stringify(error.data)}`);
        assert.equal(typeof error.data.message, 'string');

        await quietLaravel.sdk.trigger('private-chat.7', 'Marker', {});
        await alice.waitFor('Marker');
        await bob.waitFor('Marker');
        assert.equal(bob.received('typing').length, 0, 'whispers bob received');
        assert.equal(alice.socketId(), socketId, 'alice socket_id after the error');
        assert.deepEqual(alice.states.slice(statesBefore), [], 'alice connection state changes after the error');
      });

      it('delivers notifications on the user channel', async () => {
        const alice = await connectUser('alice', 1, ALICE);
        const bob = await connectUser('bob', 0, BOB);
        await subscribed(
          alice.echo.private('App.Models.User.7').notification(alice.recorder('notification')).listen('.Marker', alice.recorder('Marker')),
        );
        await subscribed(
          bob.echo.private('App.Models.User.8').notification(bob.recorder('notification')).listen('.Marker', bob.recorder('Marker')),
        );

        // BroadcastNotificationCreated sends the notification's data plus id and type.
        const event = 'Illuminate\\Notifications\\Events\\BroadcastNotificationCreated';
        const forAlice = { invoice_id: 42, amount: '99.00 €', url: 'https://shop.example.test/invoices/42', id: crypto.randomUUID(), type: 'App\\Notifications\\InvoicePaid' };
        const forBob = { invoice_id: 43, amount: '5.00 €', url: 'https://shop.example.test/invoices/43', id: crypto.randomUUID(), type: 'App\\Notifications\\InvoicePaid' };
        await laravel.broadcast({ channels: ['private-App.Models.User.7'], event, data: forAlice });
        await laravel.broadcast({ channels: ['private-App.Models.User.8'], event, data: forBob });
        // Published after both notifications, so a misrouted one would arrive first.
        await laravel.broadcast({ channels: ['private-App.Models.User.7', 'private-App.Models.User.8'], event: 'Marker', data: {} });

        await alice.waitFor('Marker');
        await bob.waitFor('Marker');
        assert.deepEqual(alice.received('notification').map((item) => item.payload), [forAlice], 'notifications alice received');
        assert.deepEqual(bob.received('notification').map((item) => item.payload), [forBob], 'notifications bob received');
      });

      it('stops events after leave and leaveChannel', async () => {
        const alice = await connectUser('alice', 0, ALICE);
        await subscribed(
          alice.echo
            .join('room.7')
            .listen('MessagePosted', alice.recorder('presence MessagePosted'))
            .joining(alice.recorder('joining'))
            .leaving(alice.recorder('leaving')),
        );
        await subscribed(alice.echo.channel('room.7').listen('MessagePosted', alice.recorder('public MessagePosted')));
        await subscribed(alice.echo.private('orders.7').listen('OrderShipped', alice.recorder('OrderShipped')));

        // Bob, on the other gateway, gets leaving() for Alice. Carol joins
        // every channel later through Alice's gateway, which therefore keeps
        // receiving their events.
        const bob = await connectUser('bob', 1, BOB);
        await subscribed(
          bob.echo
            .join('room.7')
            .joining(bob.recorder('joining'))
            .leaving(bob.recorder('leaving'))
            .listen('MessagePosted', bob.recorder('presence MessagePosted')),
        );
        await alice.waitFor('joining', (info) => info.id === 8);

        const since = alice.inbox.mark();
        const bobSince = bob.inbox.mark();
        alice.echo.leave('room.7');
        alice.echo.leaveChannel('private-orders.7');
        const left = await bob.waitFor('leaving', (info) => info.id === 7, { since: bobSince });
        assert.deepEqual(left.payload, roomMember(ALICE), 'bob: leaving()');
        // The gateway handles a connection's frames in order, so once this
        // subscription succeeds both unsubscribes have been handled.
        await subscribed(alice.echo.channel('after-leave').listen('.Marker', alice.recorder('Marker')));

        const carol = await connectUser('carol', 0, CAROL);
        await subscribed(carol.echo.join('room.7').listen('MessagePosted', carol.recorder('presence MessagePosted')));
        await subscribed(carol.echo.channel('room.7').listen('MessagePosted', carol.recorder('public MessagePosted')));
        await subscribed(carol.echo.private('orders.7').listen('OrderShipped', carol.recorder('OrderShipped')));
        await bob.waitFor('joining', (info) => info.id === 9);

        await laravel.sdk.trigger('presence-room.7', 'App\\Events\\MessagePosted', { body: 'after leave' });
        await laravel.sdk.trigger('room.7', 'App\\Events\\MessagePosted', { body: 'after leave' });
        await laravel.sdk.trigger('private-orders.7', 'App\\Events\\OrderShipped', { order_id: 7 });
        await carol.waitFor('presence MessagePosted');
        await carol.waitFor('public MessagePosted');
        await carol.waitFor('OrderShipped');
        // Published after the three events, so any of them reaching Alice would arrive first.
        await laravel.sdk.trigger('after-leave', 'Marker', {});
        await alice.waitFor('Marker');

        const afterLeave = alice.inbox.filter(() => true, since).map((item) => item.label);
        assert.deepEqual(afterLeave, ['Marker'], 'alice listener calls after leaving');
      });

      it('excludes the toOthers socket', async () => {
        const alice = await connectUser('alice', 0, ALICE);
        const carol = await connectUser('carol', 0, CAROL);
        const bob = await connectUser('bob', 1, BOB);
        for (const client of [alice, bob, carol]) {
          await subscribed(client.echo.private('orders.7').listen('OrderShipped', client.recorder('OrderShipped')));
        }

        // broadcast(...)->toOthers() from a request carrying Alice's
        // X-Socket-ID: once through the Node SDK, once as Laravel's PHP SDK sends it.
        await laravel.sdk.trigger('private-orders.7', 'App\\Events\\OrderShipped', { order_id: 1 }, { socket_id: alice.socketId() });
        await laravel.broadcast({ channels: ['private-orders.7'], event: 'App\\Events\\OrderShipped', data: { order_id: 2 }, socketId: alice.socketId() });
        await laravel.sdk.trigger('private-orders.7', 'App\\Events\\OrderShipped', { order_id: 3 });

        const orderIds = (client) => client.received('OrderShipped').map((item) => item.payload.order_id);
        for (const client of [alice, bob, carol]) {
          await client.waitFor('OrderShipped', (payload) => payload.order_id === 3);
        }
        assert.deepEqual(orderIds(alice), [3], 'orders alice received');
        assert.deepEqual(orderIds(bob), [1, 2, 3], 'orders bob received');
        assert.deepEqual(orderIds(carol), [1, 2, 3], 'orders carol received (same gateway as alice)');
      });
    });
  }
});
