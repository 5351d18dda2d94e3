// Malformed messages on an app's control topic (<prefix>ctl:{<app id>}),
// where relays publish herald:terminate_user. Anything that can PUBLISH to
// Redis can send them, for example a second installation configured with
// the same prefix by mistake, or someone debugging with redis-cli. A
// gateway must log and drop them, never crash.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { startCluster } from '../lib/cluster.mjs';
import { RawClient } from '../lib/raw-client.mjs';

// [label, envelope]: each one is a well-formed envelope header with a frame
// that is not a herald:terminate_user message.
const MALFORMED_CONTROL_MESSAGES = [
  ['frame that is not JSON', 'h1 - 0\nnot json'],
  ['JSON array', 'h1 - 0\n[1,2]'],
  ['event as a number', 'h1 - 0\n{"event":5,"data":"7"}'],
  ['data as a number', 'h1 - 0\n{"event":"herald:terminate_user","data":7}'],
  ['null data', 'h1 - 0\n{"event":"herald:terminate_user","data":null}'],
  ['null event', 'h1 - 0\n{"event":null,"data":"7"}'],
  ['empty frame', 'h1 - 0\n'],
];

let cluster;
const clients = [];

describe('malformed control messages', () => {
  before(async () => {
    cluster = await startCluster('abuse-control-topic');
  });

  after(async () => {
    for (const client of clients) {
      client.close();
    }
    if (cluster) {
      await cluster.stop();
    }
  });

  it(
    'keeps gateways running',
    async () => {
      // Redis delivers the messages of one pub/sub connection in order, so a
      // gateway that forwards the marker published after a control message
      // has handled that message and is still serving.
      const watchers = [];
      for (const index of cluster.gateways.keys()) {
        const watcher = await RawClient.connect(cluster.gatewayUrl(index), { name: `watcher on gateway ${index + 1}` });
        clients.push(watcher);
        await watcher.subscribe('control-marker');
        watchers.push(watcher);
      }

      const topic = `${cluster.prefix}ctl:{${cluster.app.id}}`;
      const crashedBy = [];
      for (const [label, envelope] of MALFORMED_CONTROL_MESSAGES) {
        const marks = watchers.map((watcher) => watcher.mark());
        await cluster.redisCli('PUBLISH', topic, envelope);
        await cluster.sdk().trigger('control-marker', 'marker', { after: label });
        const delivered = await Promise.all(
          watchers.map((watcher, index) =>
            watcher.waitForEvent('marker', { since: marks[index], timeout: 5000 }).then(
              () => true,
              () => false,
            ),
          ),
        );
        if (delivered.includes(false)) {
          crashedBy.push(label);
          break;
        }
      }

      // The exit of a crashed gateway may not have been reported yet.
      if (crashedBy.length > 0) {
        await Promise.all(
          cluster.gateways.map((gateway) =>
            Promise.race([gateway.process.exited, new Promise((resolve) => setTimeout(resolve, 2000))]),
          ),
        );
      }

      // Gateways that died here are reported by the assertion below, so
      // stop() must not fail the whole file for them as well.
      const dead = cluster.gateways.filter((gateway) => !gateway.process.isRunning());
      for (const gateway of dead) {
        cluster.expectedExits.add(gateway.process);
      }
      assert.deepEqual(
        crashedBy,
        [],
        `gateways stopped after a control message: ${dead.map((gateway) => `${gateway.process.name} ${gateway.process.describeExit()}`).join(', ')}`,
      );
      cluster.assertAllRunning();
    },
  );
});
