// Smoke test of the one-port topology with real processes on loopback:
// scripts/cluster-haproxy.sh starts Redis, two relays, three gateways and
// HAProxy. WebSocket clients connect through HAProxy's /app/, an event is
// published through its /apps/ with the official pusher SDK, and every
// client must receive it.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import test from 'node:test';

import Pusher from 'pusher';
import WebSocket from 'ws';

import { binariesBuilt, buildDir, commandExists, repoRoot, run } from './lib/repo.mjs';

const host = '127.0.0.1';
const app = { id: 'app-1', key: 'app-key', secret: 'app-secret' };
const channel = 'deploy-smoke';
const gatewayCount = 3;

// Offsets from --base-port, as documented in scripts/cluster-haproxy.sh.
const gatewayOffsets = [1, 2, 3];
const allOffsets = [0, 1, 2, 3, 11, 12, 20];

function portIsFree(port) {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, host, () => server.close(() => resolve(true)));
  });
}

// Picks a public port and a base port whose whole range is free.
async function choosePorts() {
  for (let attempt = 0; attempt < 50; attempt++) {
    const publicPort = 20000 + Math.floor(Math.random() * 20000);
    const basePort = publicPort + 100;
    const ports = [publicPort, ...allOffsets.map((offset) => basePort + offset)];
    const free = await Promise.all(ports.map(portIsFree));
    if (free.every(Boolean)) {
      return { publicPort, basePort };
    }
  }
  throw new Error('no free range of ports found on 127.0.0.1 after 50 attempts');
}

// Starts scripts/cluster-haproxy.sh and resolves once it prints that the
// cluster runs. Rejects with the script's output if it exits first or
// takes longer than 60 s.
function startCluster({ publicPort, basePort, workDir }) {
  const environment = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('HERALD_')));
  environment.HERALD_DRAIN_SECONDS = '1';
  const child = spawn(
    'bash',
    [
      path.join(repoRoot, 'scripts', 'cluster-haproxy.sh'),
      '--port', String(publicPort),
      '--base-port', String(basePort),
      '--build-dir', buildDir,
      '--work-dir', workDir,
    ],
    { cwd: repoRoot, env: environment, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout.on('data', (chunk) => (output += chunk));
  child.stderr.on('data', (chunk) => (output += chunk));
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));

  const ready = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`cluster-haproxy.sh did not start within 60 s:\n${output}`)), 60_000);
    child.stdout.on('data', () => {
      if (output.includes('Press Ctrl-C to stop.')) {
        clearTimeout(timer);
        resolve();
      }
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`cluster-haproxy.sh exited (code ${code}, signal ${signal}) before the cluster ran:\n${output}`));
    });
  });
  return { child, ready, exited, output: () => output };
}

// A Pusher protocol client on a raw WebSocket, with a queue of the
// messages it received.
class Client {
  constructor(url) {
    this.socket = new WebSocket(url);
    this.messages = [];
    this.waiters = [];
    this.socket.on('message', (data) => {
      const message = JSON.parse(data.toString());
      this.messages.push(message);
      this.waiters = this.waiters.filter((waiter) => !waiter(message));
    });
  }

  // Resolves with the first message, received or still to come, for which
  // `predicate` is true. Rejects after `timeoutMs`.
  waitFor(predicate, description, timeoutMs = 10_000) {
    const found = this.messages.find(predicate);
    if (found) {
      return Promise.resolve(found);
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${description}; received ${JSON.stringify(this.messages)}`)), timeoutMs);
      this.waiters.push((message) => {
        if (!predicate(message)) {
          return false;
        }
        clearTimeout(timer);
        resolve(message);
        return true;
      });
    });
  }

  send(message) {
    this.socket.send(JSON.stringify(message));
  }

  close() {
    this.socket.terminate();
  }
}

// Connects through HAProxy, retrying while HAProxy's first health checks
// run, and resolves once pusher:connection_established arrived.
async function connectClient(publicPort) {
  const url = `ws://${host}:${publicPort}/app/${app.key}?protocol=7&client=js&version=8.4.0`;
  let lastError;
  for (let attempt = 0; attempt < 20; attempt++) {
    const client = new Client(url);
    try {
      await new Promise((resolve, reject) => {
        client.socket.once('open', resolve);
        client.socket.once('error', reject);
        client.socket.once('unexpected-response', (request, response) => reject(new Error(`HTTP ${response.statusCode}`)));
      });
      await client.waitFor((message) => message.event === 'pusher:connection_established', 'pusher:connection_established');
      return client;
    } catch (error) {
      lastError = error;
      client.close();
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
  throw new Error(`WebSocket connection through HAProxy failed 20 times; last error: ${lastError.message}`);
}

async function httpGet(port, urlPath) {
  const response = await fetch(`http://${host}:${port}${urlPath}`);
  return { status: response.status, body: await response.text() };
}

function metricValue(metricsText, name) {
  const line = metricsText.split('\n').find((candidate) => candidate.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.split(' ')[1]);
}

const missing = ['haproxy', 'redis-server'].filter((command) => !commandExists(command));
const skipReason = !binariesBuilt()
  ? `no binaries in ${buildDir}; build them with scripts/build.sh`
  : missing.length > 0
    ? `${missing.join(' and ')} not installed`
    : false;

test('haproxy cluster on loopback', { skip: skipReason, timeout: 180_000 }, async (t) => {
  const { publicPort, basePort } = await choosePorts();
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-deploy-test-'));
  const cluster = startCluster({ publicPort, basePort, workDir });
  const clients = [];

  t.after(async () => {
    for (const client of clients) {
      client.close();
    }
    cluster.child.kill('SIGTERM');
    await cluster.exited;
    fs.rmSync(workDir, { recursive: true, force: true });
  });

  await cluster.ready;

  await t.test('routes websocket clients to gateways', async () => {
    for (let index = 0; index < gatewayCount; index++) {
      clients.push(await connectClient(publicPort));
    }
    // leastconn sends each of three long-lived connections to a different
    // gateway.
    for (const offset of gatewayOffsets) {
      const metrics = await httpGet(basePort + offset, '/metrics');
      assert.equal(metrics.status, 200, `gateway on port ${basePort + offset}: GET /metrics`);
      assert.equal(metricValue(metrics.body, 'herald_gateway_connections'), 1, `gateway on port ${basePort + offset}: open connections`);
    }
  });

  await t.test('delivers api events to every client', async () => {
    for (const client of clients) {
      client.send({ event: 'pusher:subscribe', data: { channel } });
    }
    for (const client of clients) {
      await client.waitFor(
        (message) => message.event === 'pusher_internal:subscription_succeeded' && message.channel === channel,
        `subscription_succeeded on ${channel}`,
      );
    }

    const pusher = new Pusher({ appId: app.id, key: app.key, secret: app.secret, host, port: String(publicPort), useTLS: false });
    const response = await pusher.trigger(channel, 'greeting', { text: 'hello through haproxy' });
    assert.equal(response.status, 200, 'POST /apps/app-1/events through HAProxy');

    for (const client of clients) {
      const event = await client.waitFor((message) => message.event === 'greeting', 'the greeting event');
      assert.equal(event.channel, channel);
      assert.deepEqual(JSON.parse(event.data), { text: 'hello through haproxy' });
    }
  });

  await t.test('keeps internal paths private', async () => {
    for (const urlPath of ['/metrics', '/ready', '/up', '/']) {
      const response = await httpGet(publicPort, urlPath);
      assert.equal(response.status, 404, `GET ${urlPath} on the public port`);
      assert.match(response.body, /^not found: WebSocket clients use \/app\/\{key\}/, `GET ${urlPath} body`);
    }
  });

  await t.test('image healthcheck checks a gateway', () => {
    const script = path.join(repoRoot, 'deploy', 'docker', 'healthcheck.sh');
    const environment = { ...process.env, HERALD_HEALTHCHECK_PORT: String(basePort + gatewayOffsets[0]) };
    for (const urlPath of ['/up', '/ready']) {
      const result = run('bash', [script, urlPath], { env: environment });
      assert.equal(result.status, 0, `herald-healthcheck ${urlPath}:\n${result.output}`);
    }
    const notFound = run('bash', [script, '/no-such-path'], { env: environment });
    assert.equal(notFound.status, 1, `herald-healthcheck /no-such-path:\n${notFound.output}`);
    assert.match(notFound.stdout, /404/);
  });

  await t.test('stops every process on SIGTERM', async () => {
    for (const client of clients) {
      client.close();
    }
    clients.length = 0;
    cluster.child.kill('SIGTERM');
    const { code } = await cluster.exited;
    // The script's TERM trap exits 143 after stopping its processes.
    assert.equal(code, 143, `cluster-haproxy.sh exit code; output:\n${cluster.output()}`);
    for (const port of [publicPort, ...allOffsets.map((offset) => basePort + offset)]) {
      assert.ok(await portIsFree(port), `port ${port} is still in use after the cluster stopped`);
    }
  });
});
