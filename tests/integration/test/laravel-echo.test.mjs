// Laravel Echo 2 (broadcaster 'reverb') configured as the README tells a
// Laravel app to configure it, with a loopback stand-in for Laravel's
// /broadcasting/auth route that signs with the `pusher` Node SDK.

import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';

import Echo from 'laravel-echo';
import PusherJs from 'pusher-js';

import { startCluster } from '../lib/cluster.mjs';
import { EVENT_TIMEOUT_MS, Inbox, waitUntil, withTimeout } from '../lib/wait.mjs';

let cluster;
let authServer;
let authRequests = 0;
const echos = [];

/** Starts an HTTP server answering POST /broadcasting/auth like Laravel's PusherBroadcaster. */
function startAuthServer(backend) {
  const server = http.createServer((request, response) => {
    let body = '';
    request.on('data', (chunk) => {
      body += chunk;
    });
    request.on('end', () => {
      if (request.method !== 'POST' || request.url !== '/broadcasting/auth') {
        response.writeHead(404).end();
        return;
      }
      authRequests += 1;
      const form = new URLSearchParams(body);
      const socketId = form.get('socket_id');
      const channelName = form.get('channel_name');
      if (!channelName?.startsWith('private-orders.')) {
        response.writeHead(403, { 'content-type': 'application/json' }).end('{"message":"Forbidden"}');
        return;
      }
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end(JSON.stringify(backend.authorizeChannel(socketId, channelName)));
    });
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

/** An Echo instance with the options from the README, recording what it receives in `inbox`. */
async function connectEcho(gatewayIndex, name) {
  const port = cluster.gatewayPort(gatewayIndex);
  const echo = new Echo({
    broadcaster: 'reverb',
    Pusher: PusherJs,
    key: cluster.app.key,
    wsHost: '127.0.0.1',
    wsPort: port,
    wssPort: port,
    forceTLS: false,
    enabledTransports: ['ws', 'wss'],
    authEndpoint: `http://127.0.0.1:${authServer.address().port}/broadcasting/auth`,
    disableStats: true,
  });
  echos.push(echo);
  echo.inbox = new Inbox(name);
  await waitUntil(() => echo.connectionStatus() === 'connected' && echo.socketId(), {
    timeout: EVENT_TIMEOUT_MS,
    what: `${name} to connect`,
  });
  return echo;
}

function record(echo, channelLabel, eventName) {
  return (payload) => echo.inbox.push({ index: echo.inbox.mark(), channel: channelLabel, event: eventName, payload });
}

// Binds at once: pusher-js does not replay pusher:subscription_succeeded to
// a callback bound after the subscription completed.
function subscribed(channel, what) {
  return withTimeout(
    new Promise((resolve, reject) => {
      channel.subscribed(resolve);
      channel.error((error) => reject(new Error(`${what}: ${JSON.stringify(error)}`)));
    }),
    EVENT_TIMEOUT_MS,
    what,
  );
}

describe('Laravel Echo', () => {
  before(async () => {
    cluster = await startCluster('laravel-echo');
    authServer = await startAuthServer(cluster.sdk());
  });

  after(async () => {
    for (const echo of echos) {
      echo.disconnect();
    }
    authServer?.close();
    if (cluster) {
      try {
        cluster.assertAllRunning();
      } finally {
        await cluster.stop();
      }
    }
  });

  it('receives public and private events and honours toOthers', async () => {
    const sender = await connectEcho(0, 'sender');
    const receiver = await connectEcho(1, 'receiver');

    for (const echo of [sender, receiver]) {
      const news = echo.channel('news')
        .listen('.order.shipped', record(echo, 'news', 'order.shipped'))
        .listen('OrderShipped', record(echo, 'news', 'App\\Events\\OrderShipped'));
      const newsSubscribed = subscribed(news, 'subscribing to news');
      const orders = echo.private('orders.7').listen('OrderShipped', record(echo, 'orders.7', 'App\\Events\\OrderShipped'));
      const ordersSubscribed = subscribed(orders, 'subscribing to private-orders.7');
      await Promise.all([newsSubscribed, ordersSubscribed]);
    }
    assert.ok(authRequests >= 2, `expected the auth endpoint to be called, saw ${authRequests} requests`);

    const backend = cluster.sdk();
    await backend.trigger('news', 'order.shipped', { order_id: 1, note: 'broadcastAs name ✓' });
    await backend.trigger('news', 'App\\Events\\OrderShipped', { order_id: 2 });
    // broadcast(...)->toOthers() from a request that carried the sender's X-Socket-ID.
    await backend.trigger('private-orders.7', 'App\\Events\\OrderShipped', { order_id: 3 }, { socket_id: sender.socketId() });
    // A marker after it shows what the sender would already have received.
    await backend.trigger('private-orders.7', 'App\\Events\\OrderShipped', { order_id: 4 });

    for (const echo of [sender, receiver]) {
      await echo.inbox.waitFor((item) => item.payload.order_id === 4, { what: 'order 4' });
    }
    // Sorted, because only events of one channel have a guaranteed order.
    const ids = (echo) => echo.inbox.items.map((item) => `${item.channel}:${item.payload.order_id}`).sort();
    assert.deepEqual(ids(receiver), ['news:1', 'news:2', 'orders.7:3', 'orders.7:4']);
    assert.deepEqual(ids(sender), ['news:1', 'news:2', 'orders.7:4']);
    assert.equal(receiver.inbox.items[0].payload.note, 'broadcastAs name ✓');
  });

  it('stops receiving after leave', async () => {
    const echo = await connectEcho(0, 'leaver');
    const orders = echo.private('orders.8').listen('OrderShipped', record(echo, 'orders.8', 'App\\Events\\OrderShipped'));
    const ordersSubscribed = subscribed(orders, 'subscribing to private-orders.8');
    const marker = echo.channel('marker').listen('.marker', record(echo, 'marker', 'marker'));
    const markerSubscribed = subscribed(marker, 'subscribing to marker');
    await Promise.all([ordersSubscribed, markerSubscribed]);

    echo.leave('orders.8');
    const backend = cluster.sdk();
    await waitUntil(async () => (await cluster.topicSubscribers('private-orders.8')) === 0, {
      what: 'the gateway to drop private-orders.8 after leave',
    });
    await backend.trigger('private-orders.8', 'App\\Events\\OrderShipped', { order_id: 8 });
    await backend.trigger('marker', 'marker', { order_id: 'marker' });
    await echo.inbox.waitFor((item) => item.channel === 'marker', { what: 'the marker event' });
    assert.deepEqual(echo.inbox.items.map((item) => item.channel), ['marker']);
  });
});
