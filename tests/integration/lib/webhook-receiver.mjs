// A webhook endpoint on 127.0.0.1 for the tests: it records every POST the
// relays send and checks X-Pusher-Signature with node:crypto, independently
// of the relay's signing code. What it responds is chosen per request, so a
// test can fail the first attempts or hang past webhook_timeout. The
// helpers at the end read the webhook streams in Redis with redis-cli.

import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { promisify } from 'node:util';

import { EVENT_TIMEOUT_MS, Inbox, waitUntil } from './wait.mjs';

const execFileAsync = promisify(execFile);

export const OK = Object.freeze({ status: 200 });
export const HANG = 'hang';

export class WebhookReceiver {
  /**
   * app: { key, secret } the requests must be signed for.
   * respond(request) returns { status, body } or HANG (never respond) for
   *   each recorded request; the default responds 200.
   * tls: { key, cert } to serve https instead of http.
   */
  constructor({ app, respond = () => OK, tls = null, name = 'webhook receiver' }) {
    this.app = app;
    this.respond = respond;
    this.name = name;
    this.requests = new Inbox(name);
    this.sockets = new Set();
    const handler = (request, response) => this.#handle(request, response);
    this.server = tls ? https.createServer(tls, handler) : http.createServer(handler);
    this.scheme = tls ? 'https' : 'http';
    this.server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
  }

  static async start(options) {
    const receiver = new WebhookReceiver(options);
    await new Promise((resolve, reject) => {
      receiver.server.once('error', reject);
      receiver.server.listen(0, '127.0.0.1', resolve);
    });
    return receiver;
  }

  /** URL of this receiver with `path`. */
  url(path = '/pusher/webhooks') {
    return `${this.scheme}://127.0.0.1:${this.server.address().port}${path}`;
  }

  #handle(request, response) {
    const chunks = [];
    request.on('data', (chunk) => chunks.push(chunk));
    request.on('end', () => {
      const raw = Buffer.concat(chunks);
      const expected = crypto.createHmac('sha256', this.app.secret).update(raw).digest('hex');
      let payload = null;
      try {
        payload = JSON.parse(raw.toString('utf8'));
      } catch {
        // Recorded with payload null; the test's assertions report it.
      }
      const item = {
        index: this.requests.mark(),
        method: request.method,
        path: request.url,
        headers: request.headers,
        body: raw.toString('utf8'),
        payload,
        signatureValid: request.headers['x-pusher-signature'] === expected,
        receivedAt: Date.now(),
      };
      const reply = this.respond(item);
      item.response = reply === HANG ? HANG : reply.status;
      this.requests.push(item);
      if (reply === HANG) {
        return;
      }
      response.writeHead(reply.status, { 'Content-Type': 'text/plain' });
      response.end(reply.body ?? `status ${reply.status}\n`);
    });
  }

  /** Every event of every recorded request, each with the request's index and the response it got (a status or HANG). */
  events(since = 0) {
    return this.requests.items
      .filter((item) => item.index >= since)
      .flatMap((item) => (item.payload?.events ?? []).map((event) => ({ ...event, request: item.index, response: item.response })));
  }

  /** Events named `name` on `channel`. */
  eventsOf(name, channel, since = 0) {
    return this.events(since).filter((event) => event.name === name && event.channel === channel);
  }

  /**
   * Waits until a request contains an event that matches `predicate`, and
   * returns that event. The predicate and the result see each event with
   * its request's index and response, as events() lists them.
   */
  async waitForEvent(predicate, { timeout = EVENT_TIMEOUT_MS, what = 'a matching webhook event', since = 0 } = {}) {
    const withRequest = (item) => (item.payload?.events ?? []).map((event) => ({ ...event, request: item.index, response: item.response }));
    const request = await this.requests.waitFor((item) => withRequest(item).some(predicate), { timeout, what, since });
    return withRequest(request).find(predicate);
  }

  async close() {
    for (const socket of this.sockets) {
      socket.destroy();
    }
    await new Promise((resolve) => this.server.close(resolve));
  }
}

/** Runs redis-cli --json against the cluster's Redis and returns the parsed reply. */
export async function redisJson(cluster, ...args) {
  const { stdout } = await execFileAsync('redis-cli', ['-h', '127.0.0.1', '-p', String(cluster.redisPort), '--json', ...args]);
  return JSON.parse(stdout);
}

/** Key of the webhook job stream of `appId`. */
export function webhookStreamKey(cluster, appId) {
  return `${cluster.prefix}webhooks:{${appId}}`;
}

/** Key of the parked webhook jobs of `appId`. */
export function parkedStreamKey(cluster, appId) {
  return `${cluster.prefix}webhooks-parked:{${appId}}`;
}

/** Entries of stream `key` as { id, fields } with the fields as an object. */
export async function streamEntries(cluster, key) {
  const entries = await redisJson(cluster, 'XRANGE', key, '-', '+');
  return entries.map(([id, list]) => {
    const fields = {};
    for (let index = 0; index < list.length; index += 2) {
      fields[list[index]] = list[index + 1];
    }
    return { id, fields };
  });
}

/** XINFO GROUPS of stream `key`, or [] while the stream does not exist. */
export async function streamGroups(cluster, key) {
  const exists = await redisJson(cluster, 'EXISTS', key);
  return exists ? redisJson(cluster, 'XINFO', 'GROUPS', key) : [];
}

/**
 * Waits until every webhook job of `appId` was read by the relays and
 * acknowledged: the group "herald-relays" has no pending entry and no lag.
 * After that no relay sends anything more for those jobs.
 */
export async function waitForWebhooksDrained(cluster, appId, { timeout = EVENT_TIMEOUT_MS } = {}) {
  const key = webhookStreamKey(cluster, appId);
  let group;
  try {
    await waitUntil(
      async () => {
        group = (await streamGroups(cluster, key)).find((item) => item.name === 'herald-relays');
        return group !== undefined && group.pending === 0 && group.lag === 0;
      },
      { timeout, what: `the webhook jobs in ${key} to be acknowledged` },
    );
  } catch (error) {
    error.message += `; XINFO GROUPS: ${JSON.stringify(group)}`;
    throw error;
  }
}
