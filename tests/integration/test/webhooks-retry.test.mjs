// Webhook retries, parking and takeover, with short delays set through the
// environment: 1 s webhook_timeout, retries after 200 ms doubling to
// 800 ms, 4 attempts, and jobs claimed by another relay after 2 s without
// renewal. Two receivers serve one app: "flaky" wants the channel events
// and fails on purpose where a test scripts it, "down" wants only cache_miss
// and always responds 500.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { startCluster } from '../lib/cluster.mjs';
import { PusherJsClient } from '../lib/pusher-client.mjs';
import {
  HANG,
  OK,
  WebhookReceiver,
  parkedStreamKey,
  redisJson,
  streamEntries,
  waitForWebhooksDrained,
  webhookStreamKey,
} from '../lib/webhook-receiver.mjs';
import { waitUntil } from '../lib/wait.mjs';

const APP = Object.freeze({ id: 'app-1', key: 'app-key', secret: 'app-secret' });
const MAX_ATTEMPTS = 4;
const TIMEOUT_SECONDS = 1;
const CLAIM_IDLE_SECONDS = 2;

/** True when the request carries an event named `name` on `channel`. */
function carries(request, name, channel) {
  return (request.payload?.events ?? []).some((event) => event.name === name && event.channel === channel);
}

describe('webhook retries', () => {
  let cluster;
  let flaky;
  let down;
  const clients = [];
  // Responses of "flaky" to the POSTs that carry these events, in order.
  const scripted = new Map();

  before(async () => {
    flaky = await WebhookReceiver.start({
      app: APP,
      name: 'flaky receiver',
      respond: (request) => {
        for (const [match, responses] of scripted) {
          if (carries(request, ...match.split(' '))) {
            return responses.length > 1 ? responses.shift() : responses[0];
          }
        }
        return OK;
      },
    });
    down = await WebhookReceiver.start({
      app: APP,
      name: 'down receiver',
      respond: () => ({ status: 500, body: 'database down\n' }),
    });
    const webhooks = [
      { url: flaky.url(), event_types: ['channel_occupied', 'channel_vacated'] },
      { url: down.url('/hooks'), event_types: ['cache_miss'] },
    ];
    cluster = await startCluster('webhook-retries', {
      env: {
        HERALD_APPS: JSON.stringify([{ ...APP, webhooks }]),
        HERALD_WEBHOOK_TIMEOUT: String(TIMEOUT_SECONDS),
        HERALD_WEBHOOK_RETRY_INITIAL_MS: '200',
        HERALD_WEBHOOK_RETRY_MAX_MS: '800',
        HERALD_WEBHOOK_MAX_ATTEMPTS: String(MAX_ATTEMPTS),
        HERALD_WEBHOOK_CLAIM_IDLE: String(CLAIM_IDLE_SECONDS),
      },
    });
  });

  after(async () => {
    for (const client of clients) {
      client.disconnect();
    }
    await cluster?.stop();
    await flaky?.close();
    await down?.close();
  });

  async function connect(gatewayIndex, name) {
    const client = await PusherJsClient.connect(cluster, gatewayIndex, { name });
    clients.push(client);
    return client;
  }

  async function metric(name, relayIndex = 0) {
    const text = await (await fetch(`http://127.0.0.1:${cluster.relays[relayIndex].port}/metrics`)).text();
    const match = text.match(new RegExp(`^${name}\\{app="app-1"\\} (\\d+)$`, 'm'));
    assert.ok(match, `${name} missing from the metrics:\n${text}`);
    return Number(match[1]);
  }

  /** Consumer name that relay `index` logged at startup. */
  function consumerOf(index) {
    const line = cluster.relayLogLinesOf(index, 'as consumer')[0];
    assert.ok(line, `relay ${index} logged no consumer name`);
    return line.match(/as consumer (\S+)/)[1];
  }

  it('retries after a 500 and a timeout, then delivers once', async () => {
    const channel = 'flaky-room';
    scripted.set(`channel_occupied ${channel}`, [{ status: 500, body: 'try later\n' }, HANG, OK]);
    const ava = await connect(0, 'ava');
    await ava.subscribe(channel);

    await flaky.waitForEvent((event) => event.name === 'channel_occupied' && event.channel === channel && event.response === 200, {
      timeout: 15000,
    });
    await waitForWebhooksDrained(cluster, APP.id);

    const attempts = flaky.requests.items.filter((request) => carries(request, 'channel_occupied', channel));
    assert.deepEqual(attempts.map((request) => request.response), [500, HANG, 200]);
    for (const request of attempts) {
      assert.equal(request.signatureValid, true);
      assert.deepEqual(request.payload.events.filter((event) => event.channel === channel), [
        { name: 'channel_occupied', channel },
      ]);
    }
    // The retry waited for the backoff (200 ms less up to a quarter), and
    // the one after the hang for the timeout as well.
    assert.ok(attempts[1].receivedAt - attempts[0].receivedAt >= 140, 'first retry came too early');
    assert.ok(attempts[2].receivedAt - attempts[1].receivedAt >= TIMEOUT_SECONDS * 1000, 'second retry came too early');

    // The relay logs the first failure of an endpoint, counts the next ones
    // and logs when the endpoint works again.
    assert.equal(cluster.relayLogLines('POST of 1 events failed: HTTP 500 Internal Server Error: try later').length, 1);
    assert.equal(cluster.relayLogLines('delivering again after 2 failed POSTs').length, 1);
    assert.ok((await metric('herald_relay_webhooks_failed_total')) >= 2);
    assert.ok((await metric('herald_relay_webhooks_retries_total')) >= 2);
    // The endpoint that wants only cache_miss never got the channel event.
    assert.equal(down.eventsOf('channel_occupied', channel).length, 0);
  });

  it('parks a job after the last failed attempt', async () => {
    const channel = 'cache-parked.1';
    const ben = await connect(1, 'ben');
    await ben.subscribe(channel);
    await ben.waitForEvent(channel, 'pusher:cache_miss');

    const parkedKey = parkedStreamKey(cluster, APP.id);
    const parked = await waitUntil(
      async () => (await streamEntries(cluster, parkedKey)).find((entry) => entry.fields.channel === channel),
      { timeout: 15000, what: `a parked job of ${channel} in ${parkedKey}` },
    );
    await waitForWebhooksDrained(cluster, APP.id);

    const job = (await streamEntries(cluster, webhookStreamKey(cluster, APP.id))).find(
      (entry) => entry.fields.name === 'cache_miss' && entry.fields.channel === channel,
    );
    assert.ok(job, 'the cache_miss job is not in the stream');
    assert.equal(parked.fields.name, 'cache_miss');
    assert.equal(parked.fields.time_ms, job.fields.time_ms);
    assert.equal(parked.fields.job_id, job.id);
    assert.equal(parked.fields.url, down.url('/hooks'));
    assert.equal(parked.fields.error, 'HTTP 500 Internal Server Error: database down');
    assert.equal(parked.fields.attempts, String(MAX_ATTEMPTS));
    assert.match(parked.fields.parked_ms, /^\d+$/);

    assert.equal(down.eventsOf('cache_miss', channel).length, MAX_ATTEMPTS);
    assert.equal(flaky.eventsOf('cache_miss', channel).length, 0);
    assert.equal((await streamEntries(cluster, parkedKey)).filter((entry) => entry.fields.channel === channel).length, 1);
    assert.equal(cluster.relayLogLines(`channel=${channel} in ${parkedKey} after ${MAX_ATTEMPTS} failed attempts`).length, 1);
    assert.equal(await metric('herald_relay_webhooks_parked_total'), 1);
  });

  it('lets another relay take over the jobs of a killed relay', async () => {
    const channel = 'takeover-room';
    const hold = [HANG];
    scripted.set(`channel_occupied ${channel}`, hold);
    const cleo = await connect(0, 'cleo');
    await cleo.subscribe(channel);
    await flaky.waitForEvent((event) => event.name === 'channel_occupied' && event.channel === channel);

    const first = consumerOf(0);
    const second = consumerOf(await cluster.startRelay());
    const streamKey = webhookStreamKey(cluster, APP.id);
    const pendingOwners = async () =>
      (await redisJson(cluster, 'XPENDING', streamKey, 'herald-relays', '-', '+', '10')).map((entry) => entry[1]);

    // The first relay renews its claim while it retries, so the second one
    // leaves the job alone for longer than webhook_claim_idle.
    await waitUntil(
      () => flaky.requests.filter((request) => carries(request, 'channel_occupied', channel)).length >= 3,
      { timeout: 15000, what: `three timed-out attempts on ${channel}` },
    );
    assert.deepEqual(await pendingOwners(), [first]);
    assert.equal(cluster.relayLogLinesOf(1, 'took over').length, 0);

    await cluster.killRelay(0);
    const beforeTakeover = flaky.requests.mark();
    hold[0] = OK;
    const delivered = await flaky.waitForEvent(
      (event) => event.name === 'channel_occupied' && event.channel === channel,
      { since: beforeTakeover, timeout: 15000 },
    );
    assert.equal(delivered.response, 200);
    await waitForWebhooksDrained(cluster, APP.id);

    assert.equal(cluster.relayLogLinesOf(1, 'took over 1 jobs').length, 1);
    assert.deepEqual(await pendingOwners(), []);
    assert.equal(flaky.eventsOf('channel_occupied', channel, beforeTakeover).length, 1);
    assert.equal(await metric('herald_relay_webhooks_delivered_total', 1), 1);
    assert.notEqual(first, second);
  });

  it('leaves in-flight jobs to another relay on SIGTERM', async () => {
    // Relay 1 (started by the previous test) is the only one left.
    const channel = 'drained-room';
    const hold = [HANG];
    scripted.set(`channel_occupied ${channel}`, hold);
    const dan = await connect(1, 'dan');
    await dan.subscribe(channel);
    await flaky.waitForEvent((event) => event.name === 'channel_occupied' && event.channel === channel);

    const next = await cluster.startRelay();
    const outcome = await cluster.stopRelay(1);
    assert.equal(outcome, 'exited with status 0');
    assert.equal(cluster.relayLogLinesOf(1, 'webhook: leaving 1 jobs unacknowledged').length, 1);

    const beforeTakeover = flaky.requests.mark();
    hold[0] = OK;
    await flaky.waitForEvent((event) => event.name === 'channel_occupied' && event.channel === channel && event.response === 200, {
      since: beforeTakeover,
      timeout: 15000,
    });
    await waitForWebhooksDrained(cluster, APP.id);
    assert.equal(cluster.relayLogLinesOf(next, 'took over 1 jobs').length, 1);
  });
});
