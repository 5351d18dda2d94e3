// Startup failures: a binary that cannot listen on its port must log the
// error and exit with an error status, so a supervisor or quickstart.sh
// notices, instead of running without a listener.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';

import { findBinary, GATEWAY_BINARY, RELAY_BINARY, startCluster } from '../lib/cluster.mjs';
import { withTimeout } from '../lib/wait.mjs';

let cluster;

/** Runs `binary --port <port>` with the cluster's environment until it exits, and returns { code, signal, output }. */
async function runUntilExit(binary, port) {
  const child = spawn(findBinary(binary), ['--port', String(port)], { env: cluster.heraldEnv });
  let output = '';
  child.stdout.on('data', (chunk) => {
    output += chunk;
  });
  child.stderr.on('data', (chunk) => {
    output += chunk;
  });
  const exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  try {
    const { code, signal } = await withTimeout(exited, 10000, `${binary} to exit`);
    return { code, signal, output };
  } finally {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
    }
  }
}

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
    const { code, signal, output } = await runUntilExit(RELAY_BINARY, cluster.relayPort);
    assert.equal(signal, null, `the relay was killed by ${signal}:\n${output}`);
    assert.notEqual(code, 0, `the relay exited with status 0:\n${output}`);
    assert.match(output, /in use/i);
  });

  it('gateway exits when its port is taken', async () => {
    const { code, signal, output } = await runUntilExit(GATEWAY_BINARY, cluster.gatewayPort(0));
    assert.equal(signal, null, `the gateway was killed by ${signal}:\n${output}`);
    assert.notEqual(code, 0, `the gateway exited with status 0:\n${output}`);
    assert.doesNotMatch(output, /listening on/, 'the gateway claimed to listen on a port it could not bind');
    assert.match(output, /in use/i);
  });
});
