// Clients that send their request slowly (slowloris): evhttp's read
// timeout restarts with every byte, so the relay gives each request
// relay_request_timeout seconds from its first byte to its last. The SDK
// on the same relay must be served while such clients hold connections.

import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';

import { startCluster } from '../lib/cluster.mjs';

const REQUEST_TIMEOUT_S = 2;
// The relay checks the deadline on its event loop; allow for a loaded
// sanitizer build on a shared 2-core machine.
const CLOSE_MARGIN_MS = 1500;
const TRICKLE_INTERVAL_MS = 200;
const MANY_CONNECTIONS = 200;

let cluster;
const sockets = [];

/**
 * Connects, sends `head` at once, then one byte of `tail` every
 * TRICKLE_INTERVAL_MS. Resolves with the milliseconds until the relay
 * closed the connection and what it sent.
 */
function trickle(head, tail) {
  const socket = net.connect({ host: '127.0.0.1', port: cluster.relayPort });
  sockets.push(socket);
  const started = Date.now();
  let received = '';
  let timer;
  const closed = new Promise((resolve) => {
    socket.on('data', (chunk) => {
      received += chunk.toString('latin1');
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      clearInterval(timer);
      resolve({ elapsedMs: Date.now() - started, received });
    });
  });
  socket.on('connect', () => {
    socket.write(head);
    let index = 0;
    timer = setInterval(() => {
      if (socket.writable) socket.write(tail[index % tail.length]);
      index += 1;
    }, TRICKLE_INTERVAL_MS);
  });
  return { socket, closed };
}

/** Sends raw requests on one connection, waiting for each response before the next. */
async function sendOnOneConnection(requests, pauseMs) {
  const socket = net.connect({ host: '127.0.0.1', port: cluster.relayPort });
  sockets.push(socket);
  await new Promise((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  let received = '';
  socket.on('data', (chunk) => {
    received += chunk.toString('latin1');
  });
  const statusLines = [];
  for (const request of requests) {
    if (statusLines.length > 0) await new Promise((resolve) => setTimeout(resolve, pauseMs));
    const before = received.length;
    socket.write(request);
    const deadline = Date.now() + 5000;
    while (!received.slice(before).includes('\r\n\r\n') && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    statusLines.push(received.slice(before).split('\r\n')[0]);
  }
  socket.destroy();
  return statusLines;
}

async function metricValue(name) {
  const text = await (await fetch(`${cluster.relayUrl()}/metrics`)).text();
  const line = text.split('\n').find((row) => row.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.split(' ')[1]);
}

describe('relay request deadline', () => {
  before(async () => {
    cluster = await startCluster('abuse-relay-slow', {
      gateways: 1,
      env: { HERALD_RELAY_REQUEST_TIMEOUT: String(REQUEST_TIMEOUT_S) },
    });
  });

  after(async () => {
    for (const socket of sockets.splice(0)) socket.destroy();
    if (cluster) {
      try {
        cluster.assertAllRunning();
      } finally {
        await cluster.stop();
      }
    }
  });

  it('closes a client trickling headers', async () => {
    const slow = trickle(`POST /apps/${cluster.app.id}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n`, 'X-Slow: abcdefgh\r\n');

    // A well-behaved backend on the same relay is served meanwhile.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const response = await cluster.sdk().trigger('during-slowloris', 'ping', {});
    assert.equal(response.status, 200);

    const { elapsedMs, received } = await slow.closed;
    assert.equal(received, '', 'the relay closes without a response');
    assert.ok(elapsedMs >= REQUEST_TIMEOUT_S * 1000 - 200, `closed after ${elapsedMs} ms, before the deadline`);
    assert.ok(elapsedMs <= REQUEST_TIMEOUT_S * 1000 + CLOSE_MARGIN_MS, `closed after ${elapsedMs} ms`);
  });

  it('closes a client trickling its body', async () => {
    const slow = trickle(
      `POST /apps/${cluster.app.id}/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n`,
      'x',
    );
    const { elapsedMs } = await slow.closed;
    assert.ok(elapsedMs <= REQUEST_TIMEOUT_S * 1000 + CLOSE_MARGIN_MS, `closed after ${elapsedMs} ms`);
  });

  it('serves the SDK under many slow clients', async () => {
    const timeoutsBefore = await metricValue('herald_relay_http_request_timeouts_total');
    const slow = Array.from({ length: MANY_CONNECTIONS }, () =>
      trickle('GET /up HTTP/1.1\r\n', 'X-Slow: abcdefgh\r\n'),
    );
    await new Promise((resolve) => setTimeout(resolve, 500));

    const responses = await Promise.all(
      Array.from({ length: 10 }, (_, index) => cluster.sdk().trigger(`busy-${index}`, 'ping', {})),
    );
    assert.deepEqual(responses.map((response) => response.status), Array(10).fill(200));

    const results = await Promise.all(slow.map((client) => client.closed));
    const slowest = Math.max(...results.map((result) => result.elapsedMs));
    assert.ok(slowest <= REQUEST_TIMEOUT_S * 1000 + CLOSE_MARGIN_MS * 2, `the last slow client was closed after ${slowest} ms`);

    const timeoutsAfter = await metricValue('herald_relay_http_request_timeouts_total');
    assert.ok(timeoutsAfter - timeoutsBefore >= MANY_CONNECTIONS, `request timeouts went from ${timeoutsBefore} to ${timeoutsAfter}`);
  });

  it('keeps an idle keep-alive connection', async () => {
    const request = 'GET /up HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n';
    // The pause between the two requests is longer than the deadline,
    // which applies only while a request is being received.
    const statusLines = await sendOnOneConnection([request, request], REQUEST_TIMEOUT_S * 1000 + 1000);
    assert.deepEqual(statusLines, ['HTTP/1.1 200 OK', 'HTTP/1.1 200 OK']);
  });

  it('rejects headers over 64 KiB', async () => {
    const header = `X-Large: ${'a'.repeat(70 * 1024)}\r\n`;
    const statusLines = await sendOnOneConnection([`GET /up HTTP/1.1\r\nHost: 127.0.0.1\r\n${header}\r\n`], 0);
    assert.equal(statusLines[0], 'HTTP/1.1 400 Bad Request');
  });
});
