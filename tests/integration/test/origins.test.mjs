// Per-app allowed_origins. A browser whose Origin host matches none of the
// app's patterns gets pusher:error 4009 and close code 4009, which
// pusher-js does not retry. Matching hosts, clients without Origin and
// apps without a list connect, on the same gateway after the rejections.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import WebSocket from 'ws';

import { startCluster } from '../lib/cluster.mjs';

const APPS = [
  { id: 'app-1', key: 'app-key', secret: 'app-secret', allowed_origins: ['app.example.com', '*.example.org'] },
  { id: 'app-2', key: 'key-2', secret: 'secret-2' },
];

let cluster;

/** Connects with `origin` (or none) and resolves with the first frame and the close code, if any. */
function attempt(url, origin) {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, origin ? { origin } : {});
    const outcome = { frames: [], code: null };
    const timer = setTimeout(() => { socket.terminate(); reject(new Error('no outcome within 5 s')); }, 5000);
    socket.on('message', (data) => {
      const frame = JSON.parse(data.toString());
      outcome.frames.push(frame);
      if (frame.event === 'pusher:connection_established') {
        clearTimeout(timer);
        socket.close();
        resolve(outcome);
      }
    });
    socket.on('close', (code) => {
      clearTimeout(timer);
      outcome.code = code;
      resolve(outcome);
    });
    socket.on('error', () => {});
  });
}

describe('allowed origins', () => {
  before(async () => {
    cluster = await startCluster('origins', { gateways: 1, env: { HERALD_APPS: JSON.stringify(APPS) } });
  });

  after(async () => {
    if (cluster) await cluster.stop();
  });

  it('accepts listed and wildcard hosts', async () => {
    for (const origin of ['https://app.example.com', 'http://app.example.com:8080', 'https://eu.example.org']) {
      const outcome = await attempt(cluster.gatewayUrl(0), origin);
      assert.equal(outcome.frames[0]?.event, 'pusher:connection_established', `${origin}: ${JSON.stringify(outcome)}`);
    }
  });

  it('accepts a client without Origin', async () => {
    const outcome = await attempt(cluster.gatewayUrl(0), null);
    assert.equal(outcome.frames[0]?.event, 'pusher:connection_established');
  });

  it('rejects other hosts with 4009', async () => {
    for (const origin of ['https://evil.test', 'https://example.org', 'https://app.example.com.evil.test']) {
      const outcome = await attempt(cluster.gatewayUrl(0), origin);
      assert.equal(outcome.code, 4009, `${origin}: ${JSON.stringify(outcome)}`);
      assert.deepEqual(outcome.frames[0], {
        event: 'pusher:error',
        data: { code: 4009, message: 'Origin not allowed for app app-1' },
      });
    }
  });

  it('leaves apps without a list open', async () => {
    const outcome = await attempt(cluster.gatewayUrl(0, { appKey: 'key-2' }), 'https://evil.test');
    assert.equal(outcome.frames[0]?.event, 'pusher:connection_established');
  });
});
