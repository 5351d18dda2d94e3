// The per-app request rate of the HTTP API (max_api_requests_per_second):
// one app flooded with SDK triggers gets 429 with Retry-After, while
// another app on the same relay, the operations endpoints, and the
// flooded app after a second are served.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { startCluster } from '../lib/cluster.mjs';

const LIMITED_RATE = 20;
const FLOOD_REQUESTS = 120;

const LIMITED_APP = { id: 'limited', key: 'limited-key', secret: 'limited-secret', max_api_requests_per_second: LIMITED_RATE };
const OTHER_APP = { id: 'other', key: 'other-key', secret: 'other-secret' };

let cluster;

function sdkFor(app) {
  return cluster.sdk({ appId: app.id, key: app.key, secret: app.secret });
}

/** Triggers with `sdk` and resolves with the status, 429 included. */
async function triggerStatus(sdk, channel) {
  try {
    const response = await sdk.trigger(channel, 'tick', {});
    return { status: response.status, body: '' };
  } catch (error) {
    if (error.status === undefined) throw error;
    return { status: error.status, body: error.body };
  }
}

/** Sends a signed GET /channels with fetch, to read the response headers. */
async function signedChannelsGet(app) {
  const path = `/apps/${app.id}/channels`;
  const query = sdkFor(app).createSignedQueryString({ method: 'GET', path });
  return fetch(`${cluster.relayUrl()}${path}?${query}`);
}

async function metricValue(name, labels) {
  const text = await (await fetch(`${cluster.relayUrl()}/metrics`)).text();
  const line = text.split('\n').find((row) => row.startsWith(`${name}{${labels}} `));
  return line === undefined ? undefined : Number(line.split(' ')[1]);
}

describe('HTTP API rate per app', () => {
  before(async () => {
    cluster = await startCluster('relay-rate-limit', {
      gateways: 1,
      env: { HERALD_APPS: JSON.stringify([LIMITED_APP, OTHER_APP]) },
    });
  });

  after(async () => {
    if (cluster) {
      try {
        cluster.assertAllRunning();
      } finally {
        await cluster.stop();
      }
    }
  });

  it('rejects a flood with 429', async () => {
    const sdk = sdkFor(LIMITED_APP);
    const results = await Promise.all(
      Array.from({ length: FLOOD_REQUESTS }, (_, index) => triggerStatus(sdk, `flood-${index % 5}`)),
    );
    const accepted = results.filter((result) => result.status === 200).length;
    const limited = results.filter((result) => result.status === 429);
    const other = results.filter((result) => result.status !== 200 && result.status !== 429);

    assert.deepEqual(other, [], 'every response is 200 or 429');
    assert.ok(accepted >= LIMITED_RATE, `${accepted} of ${FLOOD_REQUESTS} requests accepted`);
    assert.ok(limited.length > 0, `no 429 among ${FLOOD_REQUESTS} requests (${accepted} accepted)`);
    assert.match(
      limited[0].body,
      /^Too many requests: app limited allows 20 HTTP API requests per second on each relay; retry after 1 s$/,
    );

  });

  it('sends Retry-After with 429', async () => {
    const responses = await Promise.all(Array.from({ length: FLOOD_REQUESTS }, () => signedChannelsGet(LIMITED_APP)));
    const limited = responses.filter((response) => response.status === 429);
    assert.ok(limited.length > 0, `no 429 among ${FLOOD_REQUESTS} channel queries`);
    assert.equal(limited[0].headers.get('retry-after'), '1');
    await Promise.all(responses.map((response) => response.arrayBuffer()));
  });

  it('serves another app meanwhile', async () => {
    const results = await Promise.all(
      Array.from({ length: 10 }, () => triggerStatus(sdkFor(OTHER_APP), 'other-news')),
    );
    assert.deepEqual(results.map((result) => result.status), Array(10).fill(200));
  });

  it('does not count ops endpoints', async () => {
    for (const path of ['/up', '/ready', '/metrics']) {
      const response = await fetch(`${cluster.relayUrl()}${path}`);
      assert.equal(response.status, 200, path);
    }
  });

  it('counts rejections in /metrics', async () => {
    const limited = await metricValue('herald_relay_http_rate_limited_total', 'app="limited"');
    const other = await metricValue('herald_relay_http_rate_limited_total', 'app="other"');
    assert.ok(limited > 0, `herald_relay_http_rate_limited_total for app limited is ${limited}`);
    assert.equal(other, 0);
  });

  it('serves the flooded app after a second', async () => {
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const result = await triggerStatus(sdkFor(LIMITED_APP), 'after-flood');
    assert.equal(result.status, 200, result.body);
  });
});
