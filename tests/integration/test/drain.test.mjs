// Graceful stop: on SIGTERM a gateway closes its clients with 4200
// ("reconnect now"), spread over drain_seconds, and exits with status 0.
// pusher-js reconnects at once after 4200, so behind a load balancer the
// clients move to another gateway.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { startCluster } from '../lib/cluster.mjs';
import { RawClient } from '../lib/raw-client.mjs';

const DRAIN_SECONDS = 2;

let cluster;
const clients = [];

describe('gateway drain', () => {
  before(async () => {
    cluster = await startCluster('drain', { env: { HERALD_DRAIN_SECONDS: String(DRAIN_SECONDS) } });
  });

  after(async () => {
    for (const client of clients) {
      client.close();
    }
    if (cluster) {
      await cluster.stop();
    }
  });

  it('closes clients with 4200 and exits cleanly', async () => {
    for (let n = 0; n < 4; n += 1) {
      const client = await RawClient.connect(cluster.gatewayUrl(0), { name: `client ${n}` });
      await client.subscribe('public-drain');
      clients.push(client);
    }
    const survivor = await RawClient.connect(cluster.gatewayUrl(1), { name: 'client on the other gateway' });
    clients.push(survivor);
    await survivor.subscribe('public-drain');

    const started = Date.now();
    const outcome = await cluster.stopGateway(0);
    const elapsedMs = Date.now() - started;
    assert.equal(outcome, 'exited with status 0');

    for (const client of clients.slice(0, 4)) {
      const { code } = await client.waitForClose(1000);
      assert.equal(code, 4200, `${client.name} was closed with ${code}`);
    }
    // DRAIN_SECONDS plus a few seconds for closing handshakes.
    assert.ok(elapsedMs < (DRAIN_SECONDS + 5) * 1000, `the drain took ${elapsedMs} ms`);

    // The other gateway keeps serving.
    assert.ok(survivor.isOpen);
    await cluster.sdk().trigger('public-drain', 'after-drain', {});
    await survivor.waitForEvent('after-drain', { channel: 'public-drain' });
    cluster.assertAllRunning();
  });
});
