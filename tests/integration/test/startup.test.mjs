// Startup failures: a binary that cannot listen on its port must log the
// error and exit with an error status, so a supervisor or quickstart.sh
// notices, instead of running without a listener.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { GATEWAY_BINARY, RELAY_BINARY, runUntilExit, startCluster } from '../lib/cluster.mjs';

let cluster;

describe('startup', () => {
  before(async () => {
    cluster = await startCluster('startup', { gateways: 1 });
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

  it('relay exits when its port is taken', async () => {
    const { code, signal, output } = await runUntilExit(RELAY_BINARY, cluster.relayPort, cluster.heraldEnv);
    assert.equal(signal, null, `the relay was killed by ${signal}:\n${output}`);
    assert.notEqual(code, 0, `the relay exited with status 0:\n${output}`);
    assert.match(output, /in use/i);
  });

  it('gateway exits when its port is taken', async () => {
    const { code, signal, output } = await runUntilExit(GATEWAY_BINARY, cluster.gatewayPort(0), cluster.heraldEnv);
    assert.equal(signal, null, `the gateway was killed by ${signal}:\n${output}`);
    assert.notEqual(code, 0, `the gateway exited with status 0:\n${output}`);
    assert.doesNotMatch(output, /listening on/, 'the gateway claimed to listen on a port it could not bind');
    assert.match(output, /in use/i);
  });
});
