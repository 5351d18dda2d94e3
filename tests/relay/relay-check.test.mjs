// herald-relay on its own against a real redis-server: what reaches Redis
// for each trigger, the error statuses, keep-alive, Redis outages, AUTH,
// clients that hang up while Redis is slow, and the SIGTERM drain.
//
// Run: npm install && node --test relay-check.test.mjs (in tests/relay)
// HERALD_RELAY_BINARY selects the binary (default build/relay/herald-relay).
// Needs redis-server on PATH. Requests are signed by the `pusher` Node SDK,
// never by the relay's own signature code.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import Pusher from 'pusher';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const RELAY_BINARY = process.env.HERALD_RELAY_BINARY || path.join(REPO, 'build/relay/herald-relay');
const PREFIX = 'relay-check:';
const APP = { id: 'app-1', key: 'app-key', secret: 'app-secret' };
const WAIT_MS = 15000;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

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

const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'relay-check-'));

async function startRedis(port, extraArgs = []) {
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
  const relay = new Child('relay', RELAY_BINARY, ['--port', String(port)], {
    ...process.env,
    HERALD_REDIS_URL: redisUrl,
    HERALD_PREFIX: PREFIX,
    HERALD_LOG_LEVEL: 'debug',
    ...env,
  }, path.join(logDir, `relay-${port}.log`));
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
  const [version, exclude, flags] = payload.slice(0, newline).split(' ');
  const frameText = payload.slice(newline + 1);
  return { version, exclude, flags, frameText, frame: JSON.parse(frameText) };
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
    const response = await sdk(relay.port).trigger(['news', 'presence-room.7', 'news'], 'App\\Events\\OrderShipped',
      { order_id: 7 }, { socket_id: '1234.5678' });
    assert.equal(response.status, 200);
    assert.equal(await response.text(), '{}');
    assert.equal(response.headers.get('content-type'), 'application/json');

    const messages = await waitFor('two PUBLISH', () => subscriber.since(mark).length >= 2 && subscriber.since(mark));
    await sleep(100);
    assert.equal(subscriber.since(mark).length, 2, 'a duplicated channel was delivered twice');
    assert.deepEqual(messages.map((m) => m.topic).sort(), [topicOf('news'), topicOf('presence-room.7')].sort());
    for (const message of messages) {
      assert.equal(message.version, 'h1');
      assert.equal(message.exclude, '1234.5678');
      assert.equal(message.flags, '0');
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
    const unknownPath = await fetch(`http://127.0.0.1:${port}/apps/${APP.id}/channels`);
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
    try {
      const started = Date.now();
      response = await signedPost(relay.port, '/events', eventBody({ name: 'stalled' }));
      assert.ok(Date.now() - started >= 9000, 'answered before the reply timeout');
    } finally {
      redis.signal('SIGCONT');
    }
    assert.equal(response.status, 503, response.body);
    await waitFor('the relay to reconnect', async () => (await signedPost(relay.port, '/events', eventBody({ name: 'x' }))).status === 200);
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
});

describe('herald-relay shutdown', () => {
  it('drains in-flight request on SIGTERM', async () => {
    const redisPort = await freePort();
    const redis = await startRedis(redisPort);
    const relay = await startRelay(`redis://127.0.0.1:${redisPort}`);
    try {
      await waitFor('the relay to connect to Redis', () => relay.log.includes('redis: connected'));
      redis.signal('SIGSTOP');
      const pending = signedPost(relay.port, '/events', eventBody({ name: 'in-flight' }));
      await sleep(300); // the request reaches the relay and waits for Redis
      relay.signal('SIGTERM');
      await waitFor('the relay to stop accepting', async () => !(await portOpen(relay.port)));
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
