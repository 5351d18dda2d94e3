// Server-initiated liveness checks. With an activity timeout and a pong
// timeout of 1 s each, the gateway pings an idle client and closes it with
// 4201 when nothing comes back, and keeps a client that answers.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { startCluster } from '../lib/cluster.mjs';
import { RawClient } from '../lib/raw-client.mjs';
import { waitUntil } from '../lib/wait.mjs';

let cluster;
const clients = [];

describe('server ping', () => {
  before(async () => {
    cluster = await startCluster('liveness', {
      gateways: 1,
      env: { HERALD_ACTIVITY_TIMEOUT: '1', HERALD_PONG_TIMEOUT: '1' },
    });
  });

  after(async () => {
    for (const client of clients) {
      client.close();
    }
    if (cluster) {
      try {
        cluster.assertAllRunning();
      } finally {
        await cluster.stop();
      }
    }
  });

  it('announces the configured activity_timeout', async () => {
    const client = await RawClient.connect(cluster.gatewayUrl(0), { name: 'timeout reader' });
    clients.push(client);
    assert.equal(client.activityTimeout, 1);
  });

  it('closes a silent client with 4201 and keeps one that answers', async () => {
    // autoPong=false: `ws` would otherwise answer protocol ping frames,
    // which rightly count as liveness.
    const silent = await RawClient.connect(cluster.gatewayUrl(0), { autoPong: false, name: 'silent client' });
    const answering = await RawClient.connect(cluster.gatewayUrl(0), { name: 'answering client' });
    clients.push(silent, answering);

    answering.inbox.onItem = (item) => {
      if (item.frame?.event === 'pusher:ping') {
        answering.send({ event: 'pusher:pong', data: {} });
      }
    };

    await silent.waitForEvent('pusher:ping', { timeout: 5000 });
    const { code } = await silent.waitForClose(10000);
    assert.equal(code, 4201, `expected close code 4201 (pong reply not received), got ${code}`);

    // Three more server pings (pusher:ping frames or RFC 6455 ping frames)
    // reach the answering client after the silent one was closed. A closed
    // connection would get none, so the wait would time out.
    const pingsSoFar = () => answering.events('pusher:ping').length + answering.protocolPings;
    const baseline = pingsSoFar();
    await waitUntil(() => !answering.isOpen || pingsSoFar() >= baseline + 3, {
      timeout: 15000,
      what: 'three more server pings to the answering client',
    });
    assert.ok(answering.isOpen, 'the client that answered pings was closed');
  });
});
