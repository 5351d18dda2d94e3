// wss:// served by the gateway itself: a certificate made by the test, a
// real client that verifies it, and an event from the relay reaching the
// client over TLS while a plain-text client is refused.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import https from 'node:https';
import { after, before, describe, it } from 'node:test';

import WebSocket from 'ws';

import { makeCertificate } from '../lib/certificate.mjs';
import { startCluster } from '../lib/cluster.mjs';

const TIMEOUT_MS = 10000;

/** Opens a verified wss:// connection and collects its frames. */
function openTls(url, ca) {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, { ca });
    const frames = [];
    const waiters = [];
    socket.on('message', (data) => {
      const frame = JSON.parse(data.toString());
      frames.push(frame);
      for (const waiter of waiters.splice(0)) waiter();
    });
    socket.once('open', () => resolve({
      socket,
      frames,
      async next(predicate) {
        const deadline = Date.now() + TIMEOUT_MS;
        for (;;) {
          const found = frames.find(predicate);
          if (found) return found;
          if (Date.now() > deadline) throw new Error(`timed out; frames: ${JSON.stringify(frames)}`);
          await new Promise((wake) => { waiters.push(wake); setTimeout(wake, 200); });
        }
      },
    }));
    socket.once('error', reject);
  });
}

describe('TLS on the gateway', () => {
  let cluster;
  let files;

  before(async () => {
    files = makeCertificate();
    cluster = await startCluster('tls', {
      gateways: 1,
      env: { HERALD_TLS_CERT_FILE: files.cert, HERALD_TLS_KEY_FILE: files.key },
    });
  });

  after(async () => {
    if (cluster) await cluster.stop();
    if (files) fs.rmSync(files.dir, { recursive: true, force: true });
  });

  it('delivers events over wss', async () => {
    const ca = fs.readFileSync(files.cert);
    const url = cluster.gatewayUrl(0).replace(/^ws:/, 'wss:');
    const client = await openTls(url, ca);
    const established = await client.next((f) => f.event === 'pusher:connection_established');
    assert.match(JSON.parse(established.data).socket_id, /^\d+\.\d+$/);

    client.socket.send(JSON.stringify({ event: 'pusher:subscribe', data: { channel: 'tls-news' } }));
    await client.next((f) => f.event === 'pusher_internal:subscription_succeeded' && f.channel === 'tls-news');

    await cluster.sdk().trigger('tls-news', 'headline', { text: 'über TLS' });
    const event = await client.next((f) => f.event === 'headline');
    assert.deepEqual(JSON.parse(event.data), { text: 'über TLS' });
    client.socket.close();
  });

  it('serves health checks over https', async () => {
    const ca = fs.readFileSync(files.cert);
    const body = await new Promise((resolve, reject) => {
      https.get({ host: '127.0.0.1', port: cluster.gatewayPort(0), path: '/up', ca }, (res) => {
        let text = '';
        res.on('data', (chunk) => { text += chunk; });
        res.on('end', () => resolve({ status: res.statusCode, text }));
      }).on('error', reject);
    });
    assert.equal(body.status, 200);
    assert.equal(body.text, 'OK\n');
  });

  it('rejects a plain-text client', async () => {
    const outcome = await new Promise((resolve) => {
      const socket = new WebSocket(cluster.gatewayUrl(0));
      socket.once('open', () => { socket.close(); resolve('opened'); });
      socket.once('error', (error) => resolve(`error: ${error.message}`));
    });
    assert.match(outcome, /^error: /);
  });
});
