// herald-relay on its own against a real redis-server: what reaches Redis
// for each trigger, the error statuses, keep-alive, Redis outages, AUTH,
// clients that hang up while Redis is slow, and the SIGTERM drain. The
// channel endpoints and trigger `info` are checked against channel state
// written into Redis by the test, in the layout the gateways use.
//
// Run: npm ci && npm test (in tests/relay)
// HERALD_RELAY_BINARY selects the binary (default build/relay/herald-relay).
// Server logs go to a new directory under RELAY_CHECK_LOG_DIR (default the
// system's temporary directory), where scripts/test.sh scans them for
// sanitizer reports and for the secrets listed in its secrets.json.
// Needs redis-server on PATH. Requests are signed by the `pusher` Node SDK,
// never by the relay's own signature code.

import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import Pusher from 'pusher';

import { recordSecrets, secretsInEnvironment } from '../integration/lib/secret-scan.mjs';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const RELAY_BINARY = process.env.HERALD_RELAY_BINARY || path.join(REPO, 'build/relay/herald-relay');
const PREFIX = 'relay-check:';
const APP = { id: 'app-1', key: 'app-key', secret: 'app-secret' };
const WAIT_MS = 15000;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const execFileAsync = promisify(execFile);

async function waitFor(what, predicate, timeoutMs = WAIT_MS) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await predicate();
    if (value) {
      return value;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await sleep(50);
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function portOpen(port) {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

// ---------------------------------------------------------------------------
// Child processes, always ended by PID

class Child {
  constructor(name, command, args, env, logFile) {
    this.name = name;
    this.log = '';
    this.child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const file = fs.createWriteStream(logFile);
    const collect = (chunk) => {
      this.log += chunk.toString();
      file.write(chunk);
    };
    this.child.stdout.on('data', collect);
    this.child.stderr.on('data', collect);
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        this.exitCode = code;
        this.exitSignal = signal;
        file.end();
        resolve({ code, signal });
      });
    });
  }

  running() {
    return this.exitCode === undefined && this.exitSignal === undefined;
  }

  signal(name) {
    if (this.running()) {
      this.child.kill(name);
    }
  }

  async stop() {
    if (!this.running()) {
      return;
    }
    this.child.kill('SIGTERM');
    const outcome = await Promise.race([this.exited, sleep(WAIT_MS).then(() => 'timeout')]);
    if (outcome === 'timeout') {
      this.child.kill('SIGKILL');
      await this.exited;
    }
  }
}

const children = new Set();
process.on('exit', () => {
  for (const child of children) {
    if (child.running()) {
      child.child.kill('SIGKILL');
    }
  }
});

const logRoot = process.env.RELAY_CHECK_LOG_DIR || os.tmpdir();
fs.mkdirSync(logRoot, { recursive: true });
const logDir = fs.mkdtempSync(path.join(logRoot, 'relay-check-'));

// Every relay must exit with status 0 after SIGTERM. A crash, or a
// sanitizer report at exit (leaks included), shows up as another status.
after(() => {
  const unclean = [...children]
    .filter((child) => child.name === 'relay' && child.exitCode !== 0)
    .map((child) => `relay pid ${child.child.pid}: exit code ${child.exitCode}, signal ${child.exitSignal}`);
  assert.deepEqual(unclean, [], `relays did not exit cleanly; logs are in ${logDir}`);
});

async function startRedis(port, extraArgs = []) {
  const requirepass = extraArgs.indexOf('--requirepass');
  if (requirepass >= 0) {
    recordSecrets(logDir, [{ name: 'redis-server requirepass', value: extraArgs[requirepass + 1] }]);
  }
  const redis = new Child('redis', 'redis-server', [
    '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
    '--dir', logDir, ...extraArgs,
  ], process.env, path.join(logDir, `redis-${port}-${Date.now()}.log`));
  children.add(redis);
  await waitFor(`redis-server on port ${port}`, () => portOpen(port));
  return redis;
}

async function startRelay(redisUrl, env = {}) {
  const port = await freePort();
  const relayEnv = {
    ...process.env,
    HERALD_REDIS_URL: redisUrl,
    HERALD_PREFIX: PREFIX,
    HERALD_LOG_LEVEL: 'debug',
    ...env,
  };
  recordSecrets(logDir, secretsInEnvironment(relayEnv));
  const relay = new Child('relay', RELAY_BINARY, ['--port', String(port)], relayEnv, path.join(logDir, `relay-${port}.log`));
  children.add(relay);
  relay.port = port;
  await waitFor(`herald-relay on port ${port}`, () => portOpen(port));
  return relay;
}

// ---------------------------------------------------------------------------
// A minimal RESP subscriber, so the test reads exactly what the relay PUBLISHed

class Subscriber {
  static async connect(port) {
    const subscriber = new Subscriber(port);
    await subscriber.ready;
    return subscriber;
  }

  constructor(port) {
    this.messages = [];
    this.buffer = Buffer.alloc(0);
    this.socket = net.connect(port, '127.0.0.1');
    this.ready = new Promise((resolve, reject) => {
      this.onSubscribed = resolve;
      this.socket.once('error', reject);
    });
    this.socket.on('data', (chunk) => {
      this.buffer = Buffer.concat([this.buffer, chunk]);
      this.drain();
    });
    this.socket.write(`*2\r\n$10\r\nPSUBSCRIBE\r\n$${PREFIX.length + 1}\r\n${PREFIX}*\r\n`);
  }

  drain() {
    for (;;) {
      const parsed = parseResp(this.buffer, 0);
      if (!parsed) {
        return;
      }
      this.buffer = this.buffer.subarray(parsed.end);
      const [kind, , topic, payload] = parsed.value;
      if (kind === 'psubscribe') {
        this.onSubscribed();
      } else if (kind === 'pmessage') {
        this.messages.push({ topic, ...decodeEnvelope(payload) });
      }
    }
  }

  since(mark) {
    return this.messages.slice(mark);
  }

  /**
   * Publishes a marker through Redis and waits until it arrives, so every
   * message published before it has arrived too (Redis delivers to one
   * subscriber in order). Returns the mark just after the marker.
   */
  async settle(redisPort) {
    this.markers = (this.markers ?? 0) + 1;
    const event = `settle-${this.markers}`;
    await redisCli(redisPort, 'PUBLISH', `${PREFIX}settle`, `h1 - 0\n{"event":"${event}"}`);
    await waitFor(`the marker ${event}`, () => this.messages.some((m) => m.frame.event === event));
    return this.messages.length;
  }

  close() {
    this.socket.destroy();
  }
}

function parseResp(buffer, start) {
  const lineEnd = buffer.indexOf('\r\n', start);
  if (lineEnd < 0) {
    return null;
  }
  const type = String.fromCharCode(buffer[start]);
  const line = buffer.toString('utf8', start + 1, lineEnd);
  if (type === ':' || type === '+') {
    return { value: line, end: lineEnd + 2 };
  }
  if (type === '$') {
    const length = Number(line);
    const dataEnd = lineEnd + 2 + length;
    if (buffer.length < dataEnd + 2) {
      return null;
    }
    return { value: buffer.toString('utf8', lineEnd + 2, dataEnd), end: dataEnd + 2 };
  }
  if (type === '*') {
    const items = [];
    let end = lineEnd + 2;
    for (let i = 0; i < Number(line); i += 1) {
      const item = parseResp(buffer, end);
      if (!item) {
        return null;
      }
      items.push(item.value);
      end = item.end;
    }
    return { value: items, end };
  }
  throw new Error(`unexpected RESP type ${type}`);
}

function decodeEnvelope(payload) {
  const newline = payload.indexOf('\n');
  const [version, exclude, flags, seq, publishedUs] = payload.slice(0, newline).split(' ');
  const frameText = payload.slice(newline + 1);
  return { version, exclude, flags, seq, publishedUs, frameText, frame: JSON.parse(frameText) };
}

/** Runs redis-cli against the server on `port` and returns its trimmed output. */
async function redisCli(port, ...args) {
  const { stdout } = await execFileAsync('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args]);
  return stdout.trim();
}

// ---------------------------------------------------------------------------
// Requests

function sdk(port, overrides = {}) {
  return new Pusher({
    appId: overrides.appId ?? APP.id,
    key: overrides.key ?? APP.key,
    secret: overrides.secret ?? APP.secret,
    host: '127.0.0.1',
    port: String(port),
    useTLS: false,
  });
}

/** POSTs `bodyText` to /apps/<app id><apiPath>, signed by the SDK. */
async function signedPost(port, apiPath, bodyText, { client = sdk(port), appId = APP.id } = {}) {
  const requestPath = `/apps/${appId}${apiPath}`;
  const query = client.createSignedQueryString({ method: 'POST', path: requestPath, body: bodyText });
  const response = await fetch(`http://127.0.0.1:${port}${requestPath}?${query}`, {
    method: 'POST',
    body: bodyText,
    headers: { 'content-type': 'application/json' },
  });
  return { status: response.status, body: await response.text(), type: response.headers.get('content-type') };
}

/**
 * GETs /apps/<app id><apiPath> with `params`, signed by the SDK the way its
 * get() signs, and returns the status, the body and the content type.
 */
async function signedGet(port, apiPath, params = {}, { client = sdk(port), appId = APP.id, method = 'GET' } = {}) {
  const requestPath = `/apps/${appId}${apiPath}`;
  const query = client.createSignedQueryString({ method, path: requestPath, params });
  const response = await fetch(`http://127.0.0.1:${port}${requestPath}?${query}`, { method });
  return { status: response.status, body: await response.text(), type: response.headers.get('content-type') };
}

/** Reads GET /metrics into { 'name{labels}': value }. */
async function readMetrics(port) {
  const response = await fetch(`http://127.0.0.1:${port}/metrics`);
  assert.equal(response.status, 200);
  const samples = {};
  for (const line of (await response.text()).split('\n')) {
    if (line && !line.startsWith('#')) {
      const space = line.lastIndexOf(' ');
      samples[line.slice(0, space)] = Number(line.slice(space + 1));
    }
  }
  return samples;
}

/** Builds the raw bytes of a signed trigger request, for a plain socket. */
function rawTriggerRequest(port, bodyText, { connection = 'keep-alive' } = {}) {
  const requestPath = `/apps/${APP.id}/events`;
  const query = sdk(port).createSignedQueryString({ method: 'POST', path: requestPath, body: bodyText });
  return `POST ${requestPath}?${query} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
    `Connection: ${connection}\r\nContent-Length: ${Buffer.byteLength(bodyText)}\r\n\r\n${bodyText}`;
}

function eventBody(fields = {}) {
  return JSON.stringify({ name: 'should-not-arrive', data: '{"x":1}', channel: 'news', ...fields });
}

function topicOf(channel) {
  return `${PREFIX}ch:{${APP.id}:${channel}}`;
}

// ---------------------------------------------------------------------------

describe('herald-relay with a healthy Redis', () => {
  let redisPort;
  let redis;
  let relay;
  let subscriber;

  before(async () => {
    redisPort = await freePort();
    redis = await startRedis(redisPort);
    relay = await startRelay(`redis://127.0.0.1:${redisPort}`);
    subscriber = await Subscriber.connect(redisPort);
    await waitFor('the relay to connect to Redis', () => relay.log.includes('redis: connected'));
  });

  after(async () => {
    subscriber?.close();
    await relay?.stop();
    await redis?.stop();
  });

  it('publishes one frame per channel', async () => {
    const mark = subscriber.messages.length;
    const sentAfterUs = (Date.now() - 1) * 1000;
    const response = await sdk(relay.port).trigger(['news', 'presence-room.7', 'news'], 'App\\Events\\OrderShipped',
      { order_id: 7 }, { socket_id: '1234.5678' });
    assert.equal(response.status, 200);
    assert.equal(await response.text(), '{}');
    assert.equal(response.headers.get('content-type'), 'application/json');

    const messages = await waitFor('two PUBLISH', () => subscriber.since(mark).length >= 2 && subscriber.since(mark));
    await sleep(100);
    assert.equal(subscriber.since(mark).length, 2, 'a duplicated channel was delivered twice');
    assert.deepEqual(messages.map((m) => m.topic).sort(), [topicOf('news'), topicOf('presence-room.7')].sort());
    const answeredBeforeUs = (Date.now() + 1) * 1000;
    for (const message of messages) {
      assert.equal(message.version, 'h1');
      assert.equal(message.exclude, '1234.5678');
      assert.equal(message.flags, '0');
      assert.equal(message.seq, '0', 'an event carries sequence number 0');
      const publishedUs = Number(message.publishedUs);
      assert.ok(publishedUs >= sentAfterUs, `publish time ${message.publishedUs} µs is before the request (${sentAfterUs})`);
      assert.ok(publishedUs <= answeredBeforeUs, `publish time ${message.publishedUs} µs is after the response (${answeredBeforeUs})`);
      assert.equal(message.frame.event, 'App\\Events\\OrderShipped');
      assert.equal(message.frame.data, '{"order_id":7}');
      assert.equal(message.frameText, JSON.stringify({ event: message.frame.event, channel: message.frame.channel, data: message.frame.data }));
    }
  });

  it('serialises object data', async () => {
    const mark = subscriber.messages.length;
    const response = await signedPost(relay.port, '/events', JSON.stringify({ name: 'obj', data: { a: [1, 'x/y'] }, channel: 'news' }));
    assert.equal(response.status, 200, response.body);
    const [message] = await waitFor('the PUBLISH', () => subscriber.since(mark).length && subscriber.since(mark));
    assert.equal(message.exclude, '-');
    assert.equal(message.frame.data, '{"a":[1,"x/y"]}');
  });

  it('publishes batch with item socket_ids', async () => {
    const mark = subscriber.messages.length;
    const response = await sdk(relay.port).triggerBatch([
      { channel: 'private-orders.7', name: 'typing', data: '{"x":1}', socket_id: '1.2' },
      { channel: 'private-orders.8', name: 'typing', data: '{"x":2}' },
    ]);
    assert.equal(response.status, 200);
    const messages = await waitFor('two PUBLISH', () => subscriber.since(mark).length >= 2 && subscriber.since(mark));
    const byChannel = Object.fromEntries(messages.map((m) => [m.frame.channel, m]));
    assert.equal(byChannel['private-orders.7'].exclude, '1.2');
    assert.equal(byChannel['private-orders.7'].frame.data, '{"x":1}');
    assert.equal(byChannel['private-orders.8'].exclude, '-');
    assert.equal(byChannel['private-orders.8'].frame.data, '{"x":2}');
  });

  it('stores the frame of a cache channel', async () => {
    const before = await readMetrics(relay.port);
    const mark = subscriber.messages.length;
    const response = await sdk(relay.port).trigger(['cache-ticker', 'news'], 'price-updated', { p: 101 },
      { socket_id: '1.2' });
    assert.equal(response.status, 200);

    // The SET is acknowledged before the response, so the key is there now.
    const key = `${PREFIX}cache:{${APP.id}:cache-ticker}`;
    const stored = await redisCli(redisPort, 'GET', key);
    const ttl = Number(await redisCli(redisPort, 'TTL', key));
    assert.ok(ttl > 1790, `TTL ${ttl} is below the default cache_ttl of 1800 s`);
    assert.ok(ttl <= 1800, `TTL ${ttl} is above the default cache_ttl of 1800 s`);
    assert.equal(await redisCli(redisPort, 'EXISTS', `${PREFIX}cache:{${APP.id}:news}`), '0');

    const messages = await waitFor('two PUBLISH', () => subscriber.since(mark).length >= 2 && subscriber.since(mark));
    const published = messages.find((m) => m.topic === topicOf('cache-ticker'));
    assert.equal(published.exclude, '1.2');
    assert.equal(stored, published.frameText, 'the stored frame differs from the published one');

    const after = await readMetrics(relay.port);
    assert.equal(after['herald_relay_cache_stores_total{result="stored"}'] - before['herald_relay_cache_stores_total{result="stored"}'], 1);
    assert.equal(after['herald_relay_cache_stores_total{result="failed"}'], 0);
  });

  it('publishes to server-to-user channel', async () => {
    const mark = subscriber.messages.length;
    const response = await sdk(relay.port).sendToUser('7', 'notify', { hello: 'world' });
    assert.equal(response.status, 200);
    const [message] = await waitFor('the PUBLISH', () => subscriber.since(mark).length && subscriber.since(mark));
    assert.equal(message.topic, topicOf('#server-to-user-7'));
  });

  it('rejects bad requests in plain text', async () => {
    const mark = subscriber.messages.length;
    const port = relay.port;
    const cases = [
      ['wrong secret', () => signedPost(port, '/events', eventBody(), { client: sdk(port, { secret: 'wrong' }) }), 401, /signature/i],
      ['unknown app', () => signedPost(port, '/events', eventBody(), { appId: '42' }), 404, /^Unknown app id 42$/],
      ['invalid JSON', () => signedPost(port, '/events', '{"name":'), 400, /JSON/],
      ['trailing data', () => signedPost(port, '/events', `${eventBody()} x`), 400, /Invalid JSON/],
      ['array body', () => signedPost(port, '/events', '[]'), 400, /JSON object/],
      ['missing name', () => signedPost(port, '/events', JSON.stringify({ data: '1', channel: 'news' })), 400, /^Missing required parameter: name$/],
      ['number data', () => signedPost(port, '/events', eventBody({ data: 5 })), 400, /data: expected a string, got a number/],
      ['both channel and channels', () => signedPost(port, '/events', eventBody({ channels: ['a'] })), 400, /either channel or channels/],
      ['reserved channel', () => signedPost(port, '/events', eventBody({ channel: '#secret' })), 400, /reserved/],
      ['bad socket_id', () => signedPost(port, '/events', eventBody({ socket_id: '1.2.3' })), 400, /socket_id/],
      ['data over the limit', () => signedPost(port, '/events', eventBody({ data: 'd'.repeat(10241) })), 413, /too large/],
      ['batch item without channel', () => signedPost(port, '/batch_events', JSON.stringify({ batch: [
        { name: 'a', data: '1', channel: 'news' }, { name: 'b', data: '1' }] })), 400, /^batch\[1\]: Missing required parameter: channel$/],
      ['batch item with channels', () => signedPost(port, '/batch_events', JSON.stringify({ batch: [
        { name: 'a', data: '1', channels: ['news'] }] })), 400, /batch\[0\]/],
      ['batch of 11', () => signedPost(port, '/batch_events', JSON.stringify({ batch: Array.from({ length: 11 }, () => ({ name: 'a', data: '1', channel: 'news' })) })), 400, /Batch too large/],
    ];

    for (const [what, send, status, pattern] of cases) {
      const response = await send();
      assert.equal(response.status, status, `${what}: ${response.body}`);
      assert.match(response.body, pattern, what);
      assert.match(response.type, /^text\/plain/, `${what}: content type`);
    }

    // evhttp itself responds to a body over max_request_body_bytes.
    const oversized = await signedPost(port, '/events', eventBody({ data: 'b'.repeat(262145) }));
    assert.equal(oversized.status, 413, oversized.body);

    const wrongMethod = await fetch(`http://127.0.0.1:${port}/apps/${APP.id}/events`);
    assert.equal(wrongMethod.status, 405);
    assert.equal(wrongMethod.headers.get('allow'), 'POST');
    const unknownPath = await fetch(`http://127.0.0.1:${port}/apps/${APP.id}/unknown`);
    assert.equal(unknownPath.status, 404);

    await sleep(200);
    assert.deepEqual(subscriber.since(mark), [], 'a rejected request published something');
  });

  it('rejects invalid UTF-8 with 400', async () => {
    const mark = subscriber.messages.length;
    const body = Buffer.concat([Buffer.from('{"name":"e","channel":"news","data":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]);
    const requestPath = `/apps/${APP.id}/events`;
    // The SDK hashes bodies as UTF-8 text, so these raw bytes are hashed
    // here and the request string is signed by the SDK's Token.
    const params = {
      auth_key: APP.key,
      auth_timestamp: String(Math.floor(Date.now() / 1000)),
      auth_version: '1.0',
      body_md5: crypto.createHash('md5').update(body).digest('hex'),
    };
    const query = Object.keys(params).sort().map((key) => `${key}=${params[key]}`).join('&');
    const signature = new Pusher.Token(APP.key, APP.secret).sign(['POST', requestPath, query].join('\n'));
    const response = await fetch(`http://127.0.0.1:${relay.port}${requestPath}?${query}&auth_signature=${signature}`, { method: 'POST', body });
    assert.equal(response.status, 400, await response.text());
    await sleep(100);
    assert.deepEqual(subscriber.since(mark), []);
  });

  it('serves requests over keep-alive', async () => {
    const socket = net.connect(relay.port, '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    let received = '';
    socket.on('data', (chunk) => {
      received += chunk.toString();
    });
    for (let n = 1; n <= 3; n += 1) {
      socket.write(rawTriggerRequest(relay.port, eventBody({ name: `keep-alive-${n}` })));
      await waitFor(`response ${n}`, () => (received.match(/HTTP\/1\.1 200/g) || []).length === n);
    }
    assert.equal(socket.destroyed, false);
    socket.destroy();
  });

  it('keeps running afterwards', () => {
    assert.ok(relay.running());
  });
});

// ---------------------------------------------------------------------------
// Channel state as the gateways write it (common/scripts.c): the app's set of
// occupied channels, one subscription count per gateway node, and the
// presence members.

const SEEDED = {
  news: { subs: { 'node-a': 2, 'node-b': 1 } },
  'presence-room.7': { subs: { 'node-a': 2, 'node-b': 1 }, members: { 7: '{"name":"Ann"}', 8: '' } },
  'private-orders.7': { subs: { 'node-b': 1 } },
  'cache-ticker': { subs: { 'node-a': 1 } },
  '#server-to-user-7': { subs: { 'node-a': 1 } },
};

async function seedChannels(port) {
  for (const [channel, { subs, members }] of Object.entries(SEEDED)) {
    await redisCli(port, 'SADD', `${PREFIX}channels:{${APP.id}}`, channel);
    await redisCli(port, 'HSET', `${PREFIX}subs:{${APP.id}:${channel}}`, ...Object.entries(subs).flat().map(String));
    if (members) {
      await redisCli(port, 'HSET', `${PREFIX}members:{${APP.id}:${channel}}`, ...Object.entries(members).flat());
    }
  }
  // Another app's channel, which app-1 must never list.
  await redisCli(port, 'SADD', `${PREFIX}channels:{app-2}`, 'other-app');
  await redisCli(port, 'HSET', `${PREFIX}subs:{app-2:other-app}`, 'node-a', '1');
}

describe('herald-relay channel queries on seeded Redis', () => {
  let redisPort;
  let redis;
  let relay;
  let subscriber;

  before(async () => {
    redisPort = await freePort();
    redis = await startRedis(redisPort);
    await seedChannels(redisPort);
    relay = await startRelay(`redis://127.0.0.1:${redisPort}`, {
      HERALD_APPS: JSON.stringify([
        APP,
        { id: 'app-off', key: 'off-key', secret: 'off-secret', enabled: false },
      ]),
    });
    subscriber = await Subscriber.connect(redisPort);
    await waitFor('the relay to connect to Redis', () => relay.log.includes('redis: connected'));
  });

  after(async () => {
    subscriber?.close();
    await relay?.stop();
    await redis?.stop();
  });

  it('lists occupied channels', async () => {
    const response = await sdk(relay.port).get({ path: '/channels' });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('content-type'), 'application/json');
    assert.deepEqual(await response.json(), {
      channels: { '#server-to-user-7': {}, 'cache-ticker': {}, news: {}, 'presence-room.7': {}, 'private-orders.7': {} },
    });
  });

  it('lists presence user counts', async () => {
    const response = await sdk(relay.port).get({ path: '/channels', params: { filter_by_prefix: 'presence-', info: 'user_count' } });
    assert.deepEqual(await response.json(), { channels: { 'presence-room.7': { user_count: 2 } } });
  });

  it('lists subscription counts', async () => {
    const response = await sdk(relay.port).get({ path: '/channels', params: { info: 'subscription_count' } });
    assert.deepEqual(await response.json(), {
      channels: {
        '#server-to-user-7': { subscription_count: 1 },
        'cache-ticker': { subscription_count: 1 },
        news: { subscription_count: 3 },
        'presence-room.7': {},
        'private-orders.7': { subscription_count: 1 },
      },
    });
    const filtered = await signedGet(relay.port, '/channels', { filter_by_prefix: 'private-', info: 'subscription_count' });
    assert.equal(filtered.status, 200, filtered.body);
    assert.deepEqual(JSON.parse(filtered.body), { channels: { 'private-orders.7': { subscription_count: 1 } } });
    const none = await signedGet(relay.port, '/channels', { filter_by_prefix: 'nothing-' });
    assert.deepEqual(JSON.parse(none.body), { channels: {} });
  });

  it('reports one channel', async () => {
    const port = relay.port;
    const cases = [
      ['/channels/news', { info: 'subscription_count' }, { occupied: true, subscription_count: 3 }],
      ['/channels/presence-room.7', { info: 'user_count' }, { occupied: true, user_count: 2 }],
      ['/channels/presence-room.7', {}, { occupied: true }],
      ['/channels/private-orders.7', { info: 'subscription_count' }, { occupied: true, subscription_count: 1 }],
      ['/channels/cache-ticker', { info: 'cache,subscription_count' }, { occupied: true, subscription_count: 1 }],
      ['/channels/%23server-to-user-7', {}, { occupied: true }],
      ['/channels/presence-room%2E7', { info: 'user_count' }, { occupied: true, user_count: 2 }],
      ['/channels/empty', { info: 'subscription_count' }, { occupied: false }],
      ['/channels/presence-empty', { info: 'user_count' }, { occupied: false }],
      ['/channels/other-app', {}, { occupied: false }],
    ];
    for (const [apiPath, params, expected] of cases) {
      const response = await signedGet(port, apiPath, params);
      assert.equal(response.status, 200, `${apiPath}: ${response.body}`);
      assert.deepEqual(JSON.parse(response.body), expected, apiPath);
    }
  });

  it('reports a cached event', async () => {
    const port = relay.port;
    const key = `${PREFIX}cache:{${APP.id}:cache-seeded}`;
    await redisCli(redisPort, 'SET', key, '{"event":"price-updated","channel":"cache-seeded","data":"{\\"p\\":101}"}', 'EX', '60');

    const response = await signedGet(port, '/channels/cache-seeded', { info: 'cache' });
    assert.equal(response.status, 200, response.body);
    const body = JSON.parse(response.body);
    assert.equal(body.occupied, false);
    assert.equal(body.cache.data, '{"p":101}');
    assert.ok(body.cache.ttl > 50, `ttl ${body.cache.ttl} is far below 60`);
    assert.ok(body.cache.ttl <= 60, `ttl ${body.cache.ttl} is above 60`);

    await redisCli(redisPort, 'SET', key, 'not a frame', 'EX', '60');
    const broken = await signedGet(port, '/channels/cache-seeded', { info: 'cache' });
    assert.equal(broken.status, 500, broken.body);
    assert.match(broken.body, /^Unexpected reply from Redis to the cached event query/);
    await redisCli(redisPort, 'DEL', key);
  });

  it('lists presence users', async () => {
    const response = await sdk(relay.port).get({ path: '/channels/presence-room.7/users' });
    assert.deepEqual(await response.json(), { users: [{ id: '7' }, { id: '8' }] });
    const empty = await signedGet(relay.port, '/channels/presence-empty/users');
    assert.equal(empty.status, 200, empty.body);
    assert.deepEqual(JSON.parse(empty.body), { users: [] });
  });

  it('rejects invalid channel queries', async () => {
    const port = relay.port;
    const longName = `c${'x'.repeat(164)}`;
    const cases = [
      ['/channels', { info: 'user_count' }, 400, /user_count: .*filter_by_prefix must start with "presence-"/],
      ['/channels', { filter_by_prefix: 'private-', info: 'user_count' }, 400, /filter_by_prefix/],
      ['/channels', { info: 'cache' }, 400, /^Invalid info attribute "cache": expected user_count or subscription_count$/],
      ['/channels', { info: 'members' }, 400, /Invalid info attribute "members"/],
      ['/channels/news', { info: 'user_count' }, 400, /^Invalid info attribute user_count: "news" is not a presence channel/],
      ['/channels/presence-room.7', { info: 'subscription_count' }, 400, /subscription_count: it is not available for presence channels/],
      ['/channels/news', { info: 'cache' }, 400, /^Invalid info attribute cache: "news" is not a cache channel; only channels whose names start with cache-, private-cache-, private-encrypted-cache- or presence-cache- keep their last event$/],
      ['/channels/news/users', {}, 400, /^Invalid channel "news": users are only listed for presence channels$/],
      ['/channels/private-orders.7/users', {}, 400, /only listed for presence channels/],
      ['/channels/has%20space', {}, 400, /^Invalid channel "has space": a channel name uses only/],
      ['/channels/has%20space/users', {}, 400, /^Invalid channel "has space"/],
      ['/channels/nul%00byte', {}, 400, /^Invalid channel "nul\?byte"/],
      [`/channels/${longName}`, {}, 400, /the channel name is 165 bytes, the maximum is 164/],
      ['/channels/%23secret', {}, 400, /reserved/],
      ['/channels', {}, 404, /^Unknown app id 42$/, { appId: '42' }],
      ['/channels/news', {}, 404, /^Unknown app id 42$/, { appId: '42' }],
      ['/channels/presence-room.7/users', {}, 404, /^Unknown app id 42$/, { appId: '42' }],
      ['/channels', {}, 401, /^Invalid signature/, { client: sdk(port, { secret: 'wrong' }) }],
      ['/channels/news', {}, 401, /^Invalid signature/, { client: sdk(port, { secret: 'wrong' }) }],
      ['/channels/presence-room.7/users', {}, 401, /^Invalid signature/, { client: sdk(port, { secret: 'wrong' }) }],
      ['/channels', {}, 401, /^Unknown auth_key "wrong-key"/, { client: sdk(port, { key: 'wrong-key' }) }],
      ['/channels', {}, 403, /^App app-off is disabled$/, { appId: 'app-off', client: sdk(port, { appId: 'app-off', key: 'off-key', secret: 'off-secret' }) }],
    ];

    for (const [apiPath, params, status, pattern, options] of cases) {
      const response = await signedGet(port, apiPath, params, options);
      assert.equal(response.status, status, `${apiPath} ${JSON.stringify(params)}: ${response.body}`);
      assert.match(response.body, pattern, `${apiPath} ${JSON.stringify(params)}`);
      assert.match(response.type, /^text\/plain/, `${apiPath}: content type`);
    }
  });

  it('rejects unsigned and stale GETs', async () => {
    const port = relay.port;
    const unsigned = await fetch(`http://127.0.0.1:${port}/apps/${APP.id}/channels`);
    assert.equal(unsigned.status, 401);
    assert.equal(await unsigned.text(), 'Missing required parameter: auth_key');

    // Signed by the SDK's Token over a query built here, so the timestamp
    // and version can be wrong on purpose.
    const requestPath = `/apps/${APP.id}/channels/news`;
    const token = new Pusher.Token(APP.key, APP.secret);
    const signedQuery = (fields) => {
      const query = Object.keys(fields).sort().map((key) => `${key}=${fields[key]}`).join('&');
      return `${query}&auth_signature=${token.sign(['GET', requestPath, query].join('\n'))}`;
    };
    const now = Math.floor(Date.now() / 1000);

    const stale = await fetch(`http://127.0.0.1:${port}${requestPath}?${signedQuery({ auth_key: APP.key, auth_timestamp: now - 3600, auth_version: '1.0' })}`);
    assert.equal(stale.status, 401);
    assert.match(await stale.text(), /outside the allowed window/);

    const version = await fetch(`http://127.0.0.1:${port}${requestPath}?${signedQuery({ auth_key: APP.key, auth_timestamp: now, auth_version: '2.0' })}`);
    assert.equal(version.status, 400);

    // The signature covers the query, so changing `info` after signing fails.
    const query = sdk(port).createSignedQueryString({ method: 'GET', path: requestPath, params: { info: 'subscription_count' } });
    const tampered = await fetch(`http://127.0.0.1:${port}${requestPath}?${query.replace('info=subscription_count', 'info=user_count')}`);
    assert.equal(tampered.status, 401);

    // A request signed as POST does not pass as GET.
    const postSigned = sdk(port).createSignedQueryString({ method: 'POST', path: requestPath, params: {} });
    const wrongMethod = await fetch(`http://127.0.0.1:${port}${requestPath}?${postSigned}`);
    assert.equal(wrongMethod.status, 401);
  });

  it('rejects wrong methods and paths', async () => {
    const port = relay.port;
    const cases = [
      ['POST', `/apps/${APP.id}/channels`, 405, 'GET'],
      ['DELETE', `/apps/${APP.id}/channels/news`, 405, 'GET'],
      ['POST', `/apps/${APP.id}/channels/presence-room.7/users`, 405, 'GET'],
      ['GET', `/apps/${APP.id}/users/7/terminate_connections`, 405, 'POST'],
      ['POST', '/up', 405, 'GET, HEAD'],
      ['GET', `/apps/${APP.id}/channels/news/members`, 404, null],
      ['GET', `/apps/${APP.id}/channels/`, 404, null],
      ['GET', `/apps/${APP.id}/users/7`, 404, null],
      ['GET', '/apps/', 404, null],
    ];
    for (const [method, requestPath, status, allow] of cases) {
      const response = await fetch(`http://127.0.0.1:${port}${requestPath}`, { method });
      assert.equal(response.status, status, `${method} ${requestPath}: ${await response.text()}`);
      assert.equal(response.headers.get('allow'), allow, `${method} ${requestPath}: Allow`);
    }
  });

  it('returns trigger info counts', async () => {
    const client = sdk(relay.port);
    const response = await client.trigger(['news', 'presence-room.7', 'private-orders.7', 'empty'], 'tick', '1', {
      info: 'user_count,subscription_count',
    });
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), {
      channels: {
        news: { subscription_count: 3 },
        'presence-room.7': { user_count: 2 },
        'private-orders.7': { subscription_count: 1 },
        empty: { subscription_count: 0 },
      },
    });

    const onlyUsers = await client.trigger('news', 'tick', '1', { info: 'user_count' });
    assert.deepEqual(await onlyUsers.json(), { channels: { news: {} } });

    const withoutInfo = await client.trigger('news', 'tick', '1');
    assert.equal(await withoutInfo.text(), '{}');
  });

  it('returns batch info by index', async () => {
    const client = sdk(relay.port);
    const response = await client.triggerBatch([
      { channel: 'news', name: 'a', data: '1', info: 'subscription_count' },
      { channel: 'presence-room.7', name: 'b', data: '2' },
      { channel: 'presence-room.7', name: 'c', data: '3', info: 'user_count,subscription_count' },
      { channel: 'presence-empty', name: 'd', data: '4', info: 'user_count' },
    ]);
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), {
      batch: [{ subscription_count: 3 }, {}, { user_count: 2 }, { user_count: 0 }],
    });

    const withoutInfo = await client.triggerBatch([{ channel: 'news', name: 'a', data: '1' }]);
    assert.equal(await withoutInfo.text(), '{}');
  });

  it('rejects invalid trigger info', async () => {
    const mark = await subscriber.settle(redisPort);
    const cases = [
      ['/events', { name: 'e', data: '1', channel: 'news', info: 'members' }, /^Invalid info attribute "members": expected user_count or subscription_count$/],
      ['/events', { name: 'e', data: '1', channel: 'news', info: 5 }, /^Invalid info: expected a string/],
      ['/batch_events', { batch: [{ name: 'e', data: '1', channel: 'news' }, { name: 'e', data: '1', channel: 'news', info: 'cache' }] }, /^batch\[1\]: Invalid info attribute "cache"/],
    ];
    for (const [apiPath, body, pattern] of cases) {
      const response = await signedPost(relay.port, apiPath, JSON.stringify(body));
      assert.equal(response.status, 400, response.body);
      assert.match(response.body, pattern);
    }
    // The relay PUBLISHes before it responds, so anything a rejected request
    // published arrives before a marker published now.
    const end = await subscriber.settle(redisPort);
    assert.deepEqual(subscriber.since(mark).slice(0, end - 1 - mark), [], 'a rejected trigger published something');
  });

  it('publishes terminate_connections', async () => {
    const mark = subscriber.messages.length;
    const response = await sdk(relay.port).terminateUserConnections('user@example.com');
    assert.equal(response.status, 200);
    assert.equal(await response.text(), '{}');

    const [message] = await waitFor('the control message', () => subscriber.since(mark).length && subscriber.since(mark));
    assert.equal(message.topic, `${PREFIX}ctl:{${APP.id}}`);
    assert.equal(message.exclude, '-');
    assert.equal(message.flags, '0');
    assert.equal(message.frameText, '{"event":"herald:terminate_user","data":"user@example.com"}');

    const encoded = await signedPost(relay.port, '/users/%C3%A9l%C3%A8ve%2F7/terminate_connections', '{}');
    assert.equal(encoded.status, 200, encoded.body);
    const [second] = await waitFor('the second control message', () => subscriber.since(mark + 1).length && subscriber.since(mark + 1));
    assert.equal(second.frame.data, 'élève/7');
  });

  it('rejects invalid terminate_connections', async () => {
    const mark = await subscriber.settle(redisPort);
    const port = relay.port;
    const cases = [
      ['/users/a%0Ab/terminate_connections', '{}', 400, /^Invalid user_id "a\?b": expected 1 to 128 bytes of UTF-8 without control characters$/],
      ['/users/%FF/terminate_connections', '{}', 400, /^Invalid user_id/],
      ['/users/%C0%AF/terminate_connections', '{}', 400, /^Invalid user_id/],
      [`/users/${'u'.repeat(129)}/terminate_connections`, '{}', 400, /^Invalid user_id/],
      ['/users/7/terminate_connections', '[]', 400, /JSON object/],
      ['/users/7/terminate_connections', '{', 400, /Invalid JSON/],
      ['/users/7/terminate_connections', '', 400, /Request body is empty/],
    ];
    for (const [apiPath, body, status, pattern] of cases) {
      const response = await signedPost(port, apiPath, body);
      assert.equal(response.status, status, `${apiPath} ${body}: ${response.body}`);
      assert.match(response.body, pattern, `${apiPath} ${body}`);
    }

    const wrongSecret = await signedPost(port, '/users/7/terminate_connections', '{}', { client: sdk(port, { secret: 'wrong' }) });
    assert.equal(wrongSecret.status, 401);
    const unknownApp = await signedPost(port, '/users/7/terminate_connections', '{}', { appId: '42' });
    assert.equal(unknownApp.status, 404);

    // The relay PUBLISHes before it responds, so anything a rejected request
    // published arrives before a marker published now.
    const end = await subscriber.settle(redisPort);
    assert.deepEqual(subscriber.since(mark).slice(0, end - 1 - mark), [], 'a rejected termination published something');
  });

  it('serves up, ready and metrics', async () => {
    const port = relay.port;
    const up = await fetch(`http://127.0.0.1:${port}/up`);
    assert.equal(up.status, 200);
    assert.equal(await up.text(), 'OK\n');
    const ready = await fetch(`http://127.0.0.1:${port}/ready`);
    assert.equal(ready.status, 200);
    assert.equal(await ready.text(), 'ready\n');
    const head = await fetch(`http://127.0.0.1:${port}/ready`, { method: 'HEAD' });
    assert.equal(head.status, 200);

    const response = await fetch(`http://127.0.0.1:${port}/metrics`);
    assert.match(response.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
    const text = await response.text();
    assert.match(text, /^# HELP herald_relay_http_requests_total /m);
    assert.match(text, /^# TYPE herald_relay_http_request_duration_seconds histogram$/m);

    const metrics = await readMetrics(port);
    assert.ok(metrics['herald_relay_http_requests_total{endpoint="channels",status="2xx"}'] >= 3);
    assert.ok(metrics['herald_relay_http_requests_total{endpoint="channel",status="4xx"}'] >= 5);
    assert.ok(metrics['herald_relay_http_requests_total{endpoint="events",status="2xx"}'] >= 3);
    assert.ok(metrics['herald_relay_http_requests_total{endpoint="terminate_connections",status="2xx"}'] >= 2);
    assert.ok(metrics['herald_relay_http_requests_total{endpoint="unknown",status="4xx"}'] >= 1);
    assert.equal(metrics['herald_relay_http_requests_total{endpoint="ready",status="2xx"}'], 2);
    assert.equal(metrics['herald_relay_http_requests_in_flight'], 1, 'only the metrics request is in flight');
    assert.ok(metrics['herald_relay_events_published_total'] >= 9, 'every acknowledged event frame is counted');
    assert.equal(metrics['herald_relay_publish_failures_total{reason="lost"}'], 0);
    assert.equal(metrics['herald_relay_redis_reconnects_total'], 0);
    assert.equal(metrics['herald_relay_ready'], 1);
    const requests = Object.entries(metrics)
      .filter(([name]) => name.startsWith('herald_relay_http_requests_total'))
      .reduce((sum, [, value]) => sum + value, 0);
    assert.equal(metrics['herald_relay_http_request_duration_seconds_count'], requests,
      'every counted request has a duration');
    assert.equal(metrics['herald_relay_http_request_duration_seconds_bucket{le="+Inf"}'], requests);
  });
});

describe('herald-relay during Redis outages', () => {
  let redisPort;
  let redis;
  let relay;

  before(async () => {
    redisPort = await freePort();
    redis = await startRedis(redisPort);
    relay = await startRelay(`redis://127.0.0.1:${redisPort}`);
    await waitFor('the relay to connect to Redis', () => relay.log.includes('redis: connected'));
  });

  after(async () => {
    redis?.signal('SIGCONT');
    await relay?.stop();
    await redis?.stop();
  });

  it('returns 503 until Redis restarts', async () => {
    await redis.stop();
    await waitFor('the relay to notice', () => relay.log.includes('redis: connection lost'));

    for (let n = 0; n < 5; n += 1) {
      const response = await signedPost(relay.port, '/events', eventBody());
      assert.equal(response.status, 503);
      assert.equal(response.body, 'Redis unavailable, try again');
    }

    await sleep(1500); // several reconnect attempts
    redis = await startRedis(redisPort);
    await waitFor('the relay to reconnect', () => relay.log.includes('redis: reconnected after'));
    const response = await signedPost(relay.port, '/events', eventBody({ name: 'after-restart' }));
    assert.equal(response.status, 200, response.body);

    const lines = relay.log.split('\n');
    assert.equal(lines.filter((l) => l.includes('redis: connection lost')).length, 1, 'one warning per outage');
    assert.equal(lines.filter((l) => / (warn|error) /.test(l) && l.includes('redis:')).length, 1, 'no warning per attempt');
    assert.equal(lines.filter((l) => !/ debug /.test(l) && l.includes('http: app=')).length, 0, 'requests logged above debug');
  });

  it('survives client hang-up while pending', async () => {
    redis.signal('SIGSTOP');
    try {
      const socket = net.connect(relay.port, '127.0.0.1');
      await new Promise((resolve) => socket.once('connect', resolve));
      socket.write(rawTriggerRequest(relay.port, eventBody({ name: 'client-gone' })));
      await sleep(200);
      socket.destroy();
      await sleep(200);
    } finally {
      redis.signal('SIGCONT');
    }
    const response = await signedPost(relay.port, '/events', eventBody({ name: 'after-client-gone' }));
    assert.equal(response.status, 200, response.body);
    assert.ok(relay.running());
  });

  it('returns 503 when Redis stalls', { timeout: 40000 }, async () => {
    redis.signal('SIGSTOP');
    let response;
    let read;
    try {
      const started = Date.now();
      [response, read] = await Promise.all([
        signedPost(relay.port, '/events', eventBody({ name: 'stalled' })),
        signedGet(relay.port, '/channels/news', { info: 'subscription_count' }),
      ]);
      assert.ok(Date.now() - started >= 9000, 'answered before the reply timeout');
    } finally {
      redis.signal('SIGCONT');
    }
    assert.equal(response.status, 503, response.body);
    assert.equal(read.status, 503, read.body);
    assert.equal(read.body, 'Redis unavailable, try again');
    await waitFor('the relay to reconnect', async () => (await signedPost(relay.port, '/events', eventBody({ name: 'x' }))).status === 200);
  });
});

describe('herald-relay reads during a Redis outage', () => {
  let redisPort;
  let redis;
  let relay;

  before(async () => {
    redisPort = await freePort();
    redis = await startRedis(redisPort);
    relay = await startRelay(`redis://127.0.0.1:${redisPort}`);
    await waitFor('the relay to connect to Redis', () => relay.log.includes('redis: connected'));
  });

  after(async () => {
    await relay?.stop();
    await redis?.stop();
  });

  it('returns 503 and reports not ready', async () => {
    const port = relay.port;
    await redis.stop();
    await waitFor('the relay to notice', () => relay.log.includes('redis: connection lost'));

    const reads = [
      ['/channels', { filter_by_prefix: 'presence-', info: 'user_count' }],
      ['/channels/news', { info: 'subscription_count' }],
      ['/channels/presence-room.7/users', {}],
    ];
    for (const [apiPath, params] of reads) {
      const response = await signedGet(port, apiPath, params);
      assert.equal(response.status, 503, `${apiPath}: ${response.body}`);
      assert.equal(response.body, 'Redis unavailable, try again');
    }
    // Request checks still come first.
    const invalid = await signedGet(port, '/channels/news', { info: 'user_count' });
    assert.equal(invalid.status, 400, invalid.body);

    const trigger = await signedPost(port, '/events', eventBody({ info: 'subscription_count' }));
    assert.equal(trigger.status, 503, trigger.body);
    const terminate = await signedPost(port, '/users/7/terminate_connections', '{}');
    assert.equal(terminate.status, 503, terminate.body);

    const ready = await fetch(`http://127.0.0.1:${port}/ready`);
    assert.equal(ready.status, 503);
    assert.equal(await ready.text(), 'redis unavailable\n');
    const up = await fetch(`http://127.0.0.1:${port}/up`);
    assert.equal(up.status, 200, 'liveness does not depend on Redis');

    let metrics = await readMetrics(port);
    assert.equal(metrics['herald_relay_ready'], 0);
    assert.equal(metrics['herald_relay_publish_failures_total{reason="unavailable"}'], 2);
    assert.equal(metrics['herald_relay_http_requests_total{endpoint="channel",status="5xx"}'], 1);

    redis = await startRedis(redisPort);
    await waitFor('the relay to reconnect', () => relay.log.includes('redis: reconnected after'));
    const readyAgain = await fetch(`http://127.0.0.1:${port}/ready`);
    assert.equal(readyAgain.status, 200);
    const list = await signedGet(port, '/channels');
    assert.equal(list.status, 200, list.body);
    assert.deepEqual(JSON.parse(list.body), { channels: {} }, 'the restarted Redis is empty');

    metrics = await readMetrics(port);
    assert.equal(metrics['herald_relay_redis_reconnects_total'], 1);
    assert.equal(metrics['herald_relay_ready'], 1);
  });
});

describe('herald-relay with Redis AUTH and a database', () => {
  const password = 'relay-check-password-1f3a';
  let redisPort;
  let redis;

  before(async () => {
    redisPort = await freePort();
    redis = await startRedis(redisPort, ['--requirepass', password]);
  });

  after(async () => {
    await redis?.stop();
  });

  it('authenticates and selects database', async () => {
    const relay = await startRelay(`redis://:${password}@127.0.0.1:${redisPort}/3`);
    try {
      await waitFor('the relay to connect to Redis', () => relay.log.includes('redis: connected'));
      const response = await signedPost(relay.port, '/events', eventBody({ name: 'with-auth' }));
      assert.equal(response.status, 200, response.body);
    } finally {
      await relay.stop();
    }
    assert.equal(relay.log.includes(password), false, 'the Redis password was logged');
  });

  it('ingests Laravel broadcasts with AUTH', async () => {
    const relay = await startRelay(`redis://:${password}@127.0.0.1:${redisPort}/3`, { HERALD_LARAVEL_INGEST: 'true' });
    try {
      await waitFor('the ingest to subscribe', () => relay.log.includes('ingest: subscribed to'));
      await execFileAsync('redis-cli', ['-h', '127.0.0.1', '-p', String(redisPort), '-a', password, '--no-auth-warning',
        'PUBLISH', 'laravel_database_news', '{"event":"e","data":{"socket":null},"socket":null}']);
      await waitFor('the ingested event to be published', async () =>
        (await readMetrics(relay.port))['herald_relay_ingest_messages_total{result="published"}'] === 1);
    } finally {
      await relay.stop();
    }
    assert.equal(relay.log.includes(password), false, 'the Redis password was logged');
  });

  it('logs wrong password once', async () => {
    const relay = await startRelay(`redis://:wrong-${password}@127.0.0.1:${redisPort}`);
    try {
      await waitFor('the AUTH error', () => relay.log.includes('AUTH failed'));
      await sleep(1000);
      const response = await signedPost(relay.port, '/events', eventBody());
      assert.equal(response.status, 503);
      assert.equal(relay.log.split('\n').filter((l) => !/ debug /.test(l) && l.includes('AUTH failed')).length, 1);
    } finally {
      await relay.stop();
    }
    assert.equal(relay.log.includes(password), false, 'the Redis password was logged');
  });

  it('logs wrong password once for the ingest', async () => {
    const relay = await startRelay(`redis://:wrong-${password}@127.0.0.1:${redisPort}`, { HERALD_LARAVEL_INGEST: 'true' });
    try {
      await waitFor('the pub/sub AUTH error', () => relay.log.includes('ingest: AUTH on the pub/sub connection failed'));
      await sleep(1000);
      const errors = relay.log.split('\n').filter((line) => line.includes('ingest: AUTH on the pub/sub connection failed'));
      assert.equal(errors.length, 1);
      assert.equal(relay.log.includes('ingest: acquired the lease'), false);
    } finally {
      await relay.stop();
    }
    assert.equal(relay.log.includes(password), false, 'the Redis password was logged');
  });
});

describe('herald-relay shutdown', () => {
  it('drains in-flight request on SIGTERM', async () => {
    const redisPort = await freePort();
    const redis = await startRedis(redisPort);
    const relay = await startRelay(`redis://127.0.0.1:${redisPort}`);
    try {
      await waitFor('the relay to connect to Redis', () => relay.log.includes('redis: connected'));

      // A keep-alive connection opened before the signal can still ask
      // /ready while the relay drains.
      const probe = net.connect(relay.port, '127.0.0.1');
      let probeText = '';
      probe.on('data', (chunk) => {
        probeText += chunk.toString();
      });
      await new Promise((resolve) => probe.once('connect', resolve));
      probe.write('GET /ready HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
      await waitFor('the first /ready', () => probeText.includes('ready\n'));

      redis.signal('SIGSTOP');
      const pending = signedPost(relay.port, '/events', eventBody({ name: 'in-flight' }));
      await sleep(300); // the request reaches the relay and waits for Redis
      relay.signal('SIGTERM');
      await waitFor('the relay to stop accepting', async () => !(await portOpen(relay.port)));

      probeText = '';
      probe.write('GET /ready HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
      await waitFor('/ready while draining', () => probeText.includes('draining\n'));
      assert.match(probeText, /^HTTP\/1\.1 503 /);
      assert.match(probeText, /Connection: close/i);
      probe.destroy();
      redis.signal('SIGCONT');

      const response = await pending;
      assert.equal(response.status, 200, response.body);
      const { code } = await relay.exited;
      assert.equal(code, 0);
    } finally {
      redis.signal('SIGCONT');
      await relay.stop();
      await redis.stop();
    }
  });
});
