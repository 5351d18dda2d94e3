// HTTPS served by the relay itself (relay_tls_cert_file and
// relay_tls_key_file): the `pusher` SDK with useTLS and an agent that
// trusts the test's certificate triggers an event that reaches a client,
// health checks respond over HTTPS, and a plain-HTTP client on the same
// port is closed without harming the others.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';

import Pusher from 'pusher';

import { makeCertificate } from '../lib/certificate.mjs';
import { startCluster } from '../lib/cluster.mjs';
import { RawClient } from '../lib/raw-client.mjs';

let cluster;
let files;
let ca;

function tlsSdk(agent) {
  return new Pusher({
    appId: cluster.app.id,
    key: cluster.app.key,
    secret: cluster.app.secret,
    host: '127.0.0.1',
    port: String(cluster.relayPort),
    useTLS: true,
    agent,
    timeout: 10000,
  });
}

/** GETs `path` over HTTPS, trusting the test's certificate. */
function httpsGet(path) {
  return new Promise((resolve, reject) => {
    https
      .get({ host: '127.0.0.1', port: cluster.relayPort, path, ca }, (res) => {
        let text = '';
        res.on('data', (chunk) => {
          text += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode, text }));
      })
      .on('error', reject);
  });
}

/** Sends a plain-HTTP request to the HTTPS port and resolves with what came back before the close. */
function plainRequest() {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port: cluster.relayPort });
    let received = Buffer.alloc(0);
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ closed: false, received });
    }, 10000);
    socket.on('data', (chunk) => {
      received = Buffer.concat([received, chunk]);
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ closed: true, received });
    });
    socket.on('connect', () => socket.write('GET /up HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'));
  });
}

describe('HTTPS on the relay', () => {
  before(async () => {
    files = makeCertificate();
    ca = fs.readFileSync(files.cert);
    cluster = await startCluster('relay-tls', {
      gateways: 1,
      env: { HERALD_RELAY_TLS_CERT_FILE: files.cert, HERALD_RELAY_TLS_KEY_FILE: files.key },
    });
  });

  after(async () => {
    try {
      if (cluster) {
        try {
          cluster.assertAllRunning();
        } finally {
          await cluster.stop();
        }
      }
    } finally {
      if (files) fs.rmSync(files.dir, { recursive: true, force: true });
    }
  });

  it('delivers an SDK trigger over HTTPS', async () => {
    const client = new RawClient(cluster.gatewayUrl(0), { name: 'subscriber' });
    try {
      await Promise.all([client.opened, client.established()]);
      await client.subscribe('tls-relay-news');

      const agent = new https.Agent({ ca, keepAlive: true });
      const response = await tlsSdk(agent).trigger('tls-relay-news', 'headline', { text: 'über HTTPS' });
      assert.equal(response.status, 200);
      agent.destroy();

      const item = await client.waitForEvent('headline', { channel: 'tls-relay-news' });
      assert.deepEqual(JSON.parse(item.frame.data), { text: 'über HTTPS' });
    } finally {
      client.close();
    }
  });

  it('serves health checks over HTTPS', async () => {
    assert.deepEqual(await httpsGet('/up'), { status: 200, text: 'OK\n' });
    assert.deepEqual(await httpsGet('/ready'), { status: 200, text: 'ready\n' });
  });

  it('rejects an untrusted certificate in the SDK', async () => {
    await assert.rejects(tlsSdk(new https.Agent({})).trigger('tls-relay-news', 'headline', {}), (error) => {
      assert.equal(error.error?.code, 'DEPTH_ZERO_SELF_SIGNED_CERT', `error: ${error.message}`);
      return true;
    });
  });

  it('closes a plain-HTTP client', async () => {
    const agent = new https.Agent({ ca });
    const [plain, response] = await Promise.all([plainRequest(), tlsSdk(agent).trigger('tls-relay-mixed', 'ping', {})]);
    agent.destroy();

    assert.equal(plain.closed, true, 'the relay keeps a plain-HTTP connection open');
    assert.doesNotMatch(plain.received.toString('latin1'), /^HTTP\/1\.1 200/, 'plain HTTP is not served');
    assert.equal(response.status, 200, 'a TLS client at the same time is served');
  });

  it('serves the SDK after plain-HTTP clients', async () => {
    await Promise.all(Array.from({ length: 20 }, () => plainRequest()));
    const agent = new https.Agent({ ca });
    const response = await tlsSdk(agent).trigger('tls-relay-after', 'ping', {});
    agent.destroy();
    assert.equal(response.status, 200);
  });
});
