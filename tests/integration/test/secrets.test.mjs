// Secrets read from files: the app secret comes from the app's secret_file
// and the Redis password from HERALD_REDIS_PASSWORD_FILE, against a
// redis-server that requires the password. pusher-js subscribes to a
// private channel authorized by the `pusher` SDK with the same secret, and
// the SDK triggers an event through the relay. Both files end in a line
// break, which the binaries must strip.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';

import Pusher from 'pusher';

import { clusterForApp } from '../lib/app-view.mjs';
import { freePort, RELAY_BINARY, runUntilExit, startCluster } from '../lib/cluster.mjs';
import { PusherJsClient } from '../lib/pusher-client.mjs';

// Random values, so that the log scan cannot match them by chance.
const APP_SECRET = `file-secret-${crypto.randomBytes(18).toString('base64url')}`;
const REDIS_PASSWORD = `file-password-${crypto.randomBytes(18).toString('base64url')}`;

let cluster;
let app;
let secretsDir;
const clients = [];

describe('secrets from files', () => {
  before(async () => {
    secretsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-secrets-'));
    const secretFile = path.join(secretsDir, 'app-secret');
    const passwordFile = path.join(secretsDir, 'redis-password');
    fs.writeFileSync(secretFile, `${APP_SECRET}\n`, { mode: 0o600 });
    fs.writeFileSync(passwordFile, `${REDIS_PASSWORD}\n`, { mode: 0o600 });

    const apps = [{ id: 'file-app', key: 'file-app-key', secret_file: secretFile }];
    cluster = await startCluster('secrets', {
      gateways: 1,
      redisPassword: REDIS_PASSWORD,
      env: { HERALD_APPS: JSON.stringify(apps), HERALD_REDIS_PASSWORD_FILE: passwordFile },
    });
    app = clusterForApp(cluster, { id: 'file-app', key: 'file-app-key', secret: APP_SECRET });
  });

  after(async () => {
    for (const client of clients) {
      client.disconnect();
    }
    try {
      if (cluster) {
        try {
          cluster.assertAllRunning();
        } finally {
          await cluster.stop();
        }
      }
    } finally {
      if (secretsDir) {
        fs.rmSync(secretsDir, { recursive: true, force: true });
      }
    }
  });

  it('redis rejects clients without the password', async () => {
    const { stdout } = await new Promise((resolve, reject) => {
      const child = spawn('redis-cli', ['-h', '127.0.0.1', '-p', String(cluster.redisPort), 'PING']);
      let output = '';
      child.stdout.on('data', (chunk) => {
        output += chunk;
      });
      child.once('error', reject);
      child.once('exit', () => resolve({ stdout: output }));
    });
    assert.match(stdout, /NOAUTH/, 'redis-server must require the password, or the test proves nothing');
    assert.equal(await cluster.redisCli('PING'), 'PONG');
  });

  it('relay and gateway are ready', async () => {
    for (const [what, port] of [['relay', cluster.relayPort], ['gateway', cluster.gatewayPort(0)]]) {
      const response = await fetch(`http://127.0.0.1:${port}/ready`);
      assert.equal(response.status, 200, `${what} /ready: ${await response.text()}`);
    }
  });

  it('private channel auth and trigger', async () => {
    const client = await PusherJsClient.connect(app, 0, { name: 'pusher-js', backend: app.sdk() });
    clients.push(client);
    await client.subscribe('private-orders');

    const response = await app.sdk().trigger('private-orders', 'order-created', { id: 42 });
    assert.equal(response.status, 200);
    const item = await client.waitForEvent('private-orders', 'order-created');
    assert.deepEqual(item.data, { id: 42 });
  });

  it('rejects a different secret', async () => {
    const forger = new Pusher({
      appId: 'file-app',
      key: 'file-app-key',
      secret: `${APP_SECRET}\n`, // the file's content before the line break is stripped
      host: '127.0.0.1',
      port: String(cluster.relayPort),
      useTLS: false,
    });
    await assert.rejects(forger.trigger('private-orders', 'forged', {}), (error) => {
      assert.equal(error.status, 401, `expected 401, got ${error.status}: ${error.body}`);
      return true;
    });

    const client = new PusherJsClient(app, 0, { name: 'forged auth', backend: forger });
    clients.push(client);
    await client.connected();
    await assert.rejects(client.subscribe('private-orders'), /subscription to private-orders failed/);
  });

  it('logs neither secret', () => {
    for (const file of fs.readdirSync(cluster.logDir).filter((name) => name.endsWith('.log'))) {
      const text = fs.readFileSync(path.join(cluster.logDir, file), 'utf8');
      assert.equal(text.includes(APP_SECRET), false, `${file} contains the app secret`);
      assert.equal(text.includes(REDIS_PASSWORD), false, `${file} contains the Redis password`);
    }
  });

  it('missing secret file stops the relay', async () => {
    const missing = path.join(secretsDir, 'missing-secret');
    const { code, signal, output } = await runUntilExit(RELAY_BINARY, await freePort(), {
      ...cluster.heraldEnv,
      HERALD_APPS: JSON.stringify([{ id: 'file-app', key: 'file-app-key', secret_file: missing }]),
    });
    assert.equal(signal, null, `the relay was killed by ${signal}:\n${output}`);
    assert.notEqual(code, 0, `the relay exited with status 0:\n${output}`);
    assert.ok(
      output.includes(`HERALD_APPS[0].secret_file of app "file-app": cannot open "${missing}": No such file or directory`),
      `the error must name the app and the path:\n${output}`,
    );
    assert.equal(output.includes(REDIS_PASSWORD), false, 'the Redis password was printed');
  });
});
