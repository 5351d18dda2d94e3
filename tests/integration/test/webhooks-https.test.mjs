// Webhooks to https:// endpoints. The test makes two self-signed
// certificates for 127.0.0.1 with the openssl command and starts the relay
// with SSL_CERT_FILE naming only the first, which OpenSSL then trusts
// instead of the system's roots. The endpoint with the first certificate
// gets its events, and the one with the other certificate fails the TLS
// handshake until the job is parked.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';

import { startCluster } from '../lib/cluster.mjs';
import { PusherJsClient } from '../lib/pusher-client.mjs';
import { WebhookReceiver, parkedStreamKey, streamEntries, waitForWebhooksDrained } from '../lib/webhook-receiver.mjs';
import { waitUntil } from '../lib/wait.mjs';

const execFileAsync = promisify(execFile);

const APP = Object.freeze({ id: 'app-1', key: 'app-key', secret: 'app-secret' });

/** Writes a self-signed certificate for IP 127.0.0.1 and its key into `dir`. */
async function makeCertificate(dir, name) {
  const key = path.join(dir, `${name}.key`);
  const cert = path.join(dir, `${name}.pem`);
  await execFileAsync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-days', '1', '-subj', `/CN=${name}`, '-addext', 'subjectAltName=IP:127.0.0.1',
    '-keyout', key, '-out', cert,
  ]);
  return { key: fs.readFileSync(key), cert: fs.readFileSync(cert), certFile: cert };
}

describe('webhooks over https', () => {
  let cluster;
  let trusted;
  let untrusted;
  let dir;
  const clients = [];

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-webhook-tls-'));
    const trustedCertificate = await makeCertificate(dir, 'trusted');
    const untrustedCertificate = await makeCertificate(dir, 'untrusted');
    trusted = await WebhookReceiver.start({ app: APP, name: 'trusted receiver', tls: trustedCertificate });
    untrusted = await WebhookReceiver.start({ app: APP, name: 'untrusted receiver', tls: untrustedCertificate });
    const webhooks = [
      { url: trusted.url(), event_types: ['channel_occupied', 'channel_vacated'] },
      { url: untrusted.url(), event_types: ['channel_vacated'] },
    ];
    cluster = await startCluster('webhooks-https', {
      env: {
        HERALD_APPS: JSON.stringify([{ ...APP, webhooks }]),
        HERALD_WEBHOOK_MAX_ATTEMPTS: '2',
        HERALD_WEBHOOK_RETRY_INITIAL_MS: '100',
        SSL_CERT_FILE: trustedCertificate.certFile,
      },
    });
  });

  after(async () => {
    for (const client of clients) {
      client.disconnect();
    }
    await cluster?.stop();
    await trusted?.close();
    await untrusted?.close();
    if (dir) {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('delivers to an endpoint with a trusted certificate', async () => {
    const channel = 'secure-room';
    const ava = await PusherJsClient.connect(cluster, 0, { name: 'ava' });
    clients.push(ava);
    await ava.subscribe(channel);

    const occupied = await trusted.waitForEvent((event) => event.name === 'channel_occupied' && event.channel === channel);
    assert.equal(occupied.response, 200);
    const request = trusted.requests.items[occupied.request];
    assert.equal(request.signatureValid, true);
    assert.equal(request.headers['x-pusher-key'], APP.key);
    assert.equal(request.headers.host, new URL(trusted.url()).host);
  });

  it('parks jobs for an endpoint whose certificate fails verification', async () => {
    const channel = 'insecure-room';
    const ben = await PusherJsClient.connect(cluster, 1, { name: 'ben' });
    clients.push(ben);
    await ben.subscribe(channel);
    ben.unsubscribe(channel);

    const parkedKey = parkedStreamKey(cluster, APP.id);
    const parked = await waitUntil(
      async () => (await streamEntries(cluster, parkedKey)).find((entry) => entry.fields.channel === channel),
      { what: `a parked channel_vacated of ${channel}` },
    );
    await waitForWebhooksDrained(cluster, APP.id);

    assert.equal(parked.fields.name, 'channel_vacated');
    assert.equal(parked.fields.url, untrusted.url());
    assert.match(parked.fields.error, /^TLS certificate verification failed: /);
    assert.equal(parked.fields.attempts, '2');
    // The handshake failed, so no request reached the untrusted endpoint,
    // while the trusted one got the same job.
    assert.equal(untrusted.requests.items.length, 0);
    assert.equal(trusted.eventsOf('channel_vacated', channel).length, 1);
    assert.equal(cluster.relayLogLines('TLS certificate verification failed').length, 2);
  });
});
