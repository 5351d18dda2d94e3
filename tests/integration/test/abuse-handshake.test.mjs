// Handshake limits of the gateway: a client that trickles its request
// headers is closed once the handshake timeout passes, and a request whose
// headers exceed the header limit is closed at once. Meanwhile clients
// with a normal handshake, including one with a few kilobytes of cookies,
// connect to the same gateway.

import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';

import WebSocket from 'ws';

import { startCluster } from '../lib/cluster.mjs';
import { RawClient } from '../lib/raw-client.mjs';
import { withTimeout } from '../lib/wait.mjs';

// gateway/server.c: HANDSHAKE_TIMEOUT_SECONDS and HANDSHAKE_HEADER_BYTES.
const HANDSHAKE_TIMEOUT_MS = 10000;
const HEADER_LIMIT_BYTES = 8192;
const TRICKLE_INTERVAL_MS = 500;
const SLOW_CLIENTS = 20;

let cluster;
const sockets = [];

/** Opens a raw TCP connection that sends `head` and then one byte every TRICKLE_INTERVAL_MS. */
function trickle(port, head) {
  return new Promise((resolve) => {
    const started = Date.now();
    const socket = net.connect({ host: '127.0.0.1', port });
    sockets.push(socket);
    let timer;
    socket.on('connect', () => {
      socket.write(head);
      timer = setInterval(() => socket.write('x'), TRICKLE_INTERVAL_MS);
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      clearInterval(timer);
      resolve(Date.now() - started);
    });
  });
}

/** Sends `request` whole and resolves with what came back before the close. */
function sendWhole(port, request) {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    sockets.push(socket);
    let received = '';
    socket.on('connect', () => socket.write(request));
    socket.on('data', (chunk) => {
      received += chunk.toString('latin1');
    });
    socket.on('error', () => {});
    socket.on('close', () => resolve(received));
  });
}

describe('gateway handshake limits', () => {
  before(async () => {
    cluster = await startCluster('abuse-handshake', { gateways: 1 });
  });

  after(async () => {
    for (const socket of sockets) {
      if (socket instanceof WebSocket) {
        socket.terminate();
      } else {
        socket.destroy();
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

  it('closes clients that trickle headers', async () => {
    const port = cluster.gatewayPort(0);
    const head = `GET /app/${cluster.app.key}?protocol=7 HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: `;
    const closings = Array.from({ length: SLOW_CLIENTS }, () => trickle(port, head));

    // A normal client connects and gets events while the slow ones wait.
    const client = await RawClient.connect(cluster.gatewayUrl(0), { name: 'client beside slow ones' });
    try {
      await client.subscribe('handshake-limits');
      const since = client.mark();
      await cluster.sdk().trigger('handshake-limits', 'ping', {});
      await client.waitForEvent('ping', { channel: 'handshake-limits', since });
    } finally {
      client.close();
    }

    const lifetimes = await withTimeout(Promise.all(closings), HANDSHAKE_TIMEOUT_MS + 10000, 'the slow clients to be closed');
    const longest = Math.max(...lifetimes);
    assert.ok(longest <= HANDSHAKE_TIMEOUT_MS + 3000, `a trickling client stayed ${longest} ms`);
    assert.ok(Math.min(...lifetimes) >= HANDSHAKE_TIMEOUT_MS - 1000, `a trickling client was closed after ${Math.min(...lifetimes)} ms`);
  });

  it('closes a handshake over the header limit', async () => {
    const request =
      `GET /app/${cluster.app.key}?protocol=7 HTTP/1.1\r\nHost: 127.0.0.1\r\n` +
      `Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n` +
      `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nX-Big: ${'a'.repeat(HEADER_LIMIT_BYTES * 2)}\r\n\r\n`;
    const received = await withTimeout(sendWhole(cluster.gatewayPort(0), request), 10000, 'the oversized handshake to be closed');
    assert.doesNotMatch(received, /^HTTP\/1\.1 101/, 'the oversized handshake was upgraded');
  });

  it('accepts a handshake with 4 KB of cookies', async () => {
    const cookie = Array.from({ length: 72 }, (_, index) => `c${index}=${'v'.repeat(56)}`).join('; ');
    assert.ok(cookie.length >= 4000);
    const socket = new WebSocket(cluster.gatewayUrl(0), { headers: { Cookie: cookie } });
    sockets.push(socket);
    const frame = await withTimeout(
      new Promise((resolve, reject) => {
        socket.once('message', (data) => resolve(JSON.parse(data.toString())));
        socket.once('error', reject);
        socket.once('unexpected-response', (request, response) => reject(new Error(`HTTP ${response.statusCode}`)));
      }),
      10000,
      'connection_established with a large Cookie header',
    );
    assert.equal(frame.event, 'pusher:connection_established');
    socket.close();
  });
});
