// Liveness with RFC 6455 control frames only. Browsers and most WebSocket
// libraries reply to a server's ping frame with a pong on their own, and
// some clients keep a connection alive with ping frames of their own
// instead of pusher:ping. Either frame proves that the client is there, and
// docs/architecture.md promises a 4201 close only "if nothing arrives
// within pong_timeout seconds", so neither client may be closed.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { startCluster } from '../lib/cluster.mjs';
import { RawClient } from '../lib/raw-client.mjs';
import { waitUntil } from '../lib/wait.mjs';

const CLIENT_PING_INTERVAL_MS = 300;

let cluster;
const clients = [];

async function connect(name, options = {}) {
  const client = await RawClient.connect(cluster.gatewayUrl(0), { name, ...options });
  clients.push(client);
  return client;
}

/** Connects a client that sends nothing, not even pongs, and waits until the gateway closes it. */
async function waitForSilentClientClosed(name) {
  const silent = await connect(name, { autoPong: false });
  const { code } = await silent.waitForClose(15000);
  assert.equal(code, 4201, `${name} was closed with ${code}, expected 4201`);
}

describe('liveness with control frames', () => {
  before(async () => {
    cluster = await startCluster('abuse-liveness', {
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

  it(
    'keeps a client that answers ping frames',
    async () => {
      // `ws` replies to each ping frame with a pong (autoPong), as browsers
      // do, but this client never sends pusher:pong.
      const client = await connect('client answering ping frames only');
      await waitUntil(() => !client.isOpen || client.protocolPings >= 3, {
        timeout: 15000,
        what: 'three server ping frames or a close',
      });
      const closed = client.isOpen ? null : await client.closed;
      assert.ok(client.isOpen, `closed with ${JSON.stringify(closed)} after ${client.protocolPings} ping frames`);
    },
  );

  it(
    'keeps a client that sends ping frames',
    async () => {
      const pinger = await connect('client sending ping frames', { autoPong: false });
      const timer = setInterval(() => pinger.socket.ping(), CLIENT_PING_INTERVAL_MS);
      try {
        // Two silent clients in a row are closed with 4201, so the gateway
        // has checked the pinger at least twice by then.
        await waitForSilentClientClosed('first silent client');
        await waitForSilentClientClosed('second silent client');
      } finally {
        clearInterval(timer);
      }
      const closed = pinger.isOpen ? null : await pinger.closed;
      assert.ok(pinger.isOpen, `the client sending ping frames was closed with ${JSON.stringify(closed)}`);
    },
  );
});
