// max_connections_per_ip on one gateway. Connections past the limit from
// one address get pusher:error 4100 and close code 4100, after which Pusher
// clients reconnect with a back-off. Other addresses and
// the connections already open are unaffected, and a closed connection
// frees its slot for the next one, which pusher-js then takes on its own.
// Behind a trusted proxy, the client is the last X-Forwarded-For address.

import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';

import WebSocket from 'ws';

import { GATEWAY_BINARY, freePort, runUntilExit, startCluster } from '../lib/cluster.mjs';
import { PusherJsClient } from '../lib/pusher-client.mjs';
import { RawClient } from '../lib/raw-client.mjs';
import { waitUntil, withTimeout } from '../lib/wait.mjs';

const LIMIT = 5;
// pusher-js waits one second or more before it reconnects after 4100.
const RECONNECT_TIMEOUT_MS = 20000;

let cluster;
const clients = [];

function connect(name, localAddress = '127.0.0.1') {
  return RawClient.connect(cluster.gatewayUrl(0), { name, localAddress }).then((client) => {
    clients.push(client);
    return client;
  });
}

/** Reads the gateway's count of connections rejected for `reason` from GET /metrics. */
async function rejectedCount(reason = 'per_ip') {
  const response = await fetch(`http://127.0.0.1:${cluster.gatewayPort(0)}/metrics`);
  const text = await response.text();
  const name = `herald_gateway_connections_rejected_total{reason="${reason}"}`;
  const line = text.split('\n').find((row) => row.startsWith(name));
  assert.ok(line, `${name} is missing from /metrics`);
  return Number(line.split(' ').pop());
}

/** Opens a connection that the gateway should reject and returns its first frame and close. */
async function rejected(name) {
  const client = new RawClient(cluster.gatewayUrl(0), { name, localAddress: '127.0.0.1' });
  clients.push(client);
  const error = await client.waitForEvent('pusher:error');
  const closed = await withTimeout(client.closed, 10000, `${name} to be closed`);
  return { error: error.frame.data, closed };
}

describe('connections per IP address', () => {
  before(async () => {
    cluster = await startCluster('abuse-connections-per-ip', {
      gateways: 1,
      env: { HERALD_MAX_CONNECTIONS_PER_IP: String(LIMIT) },
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

  it('rejects one address past the limit', async () => {
    const channel = 'per-ip-dashboard';
    const admitted = [];
    for (let index = 0; index < LIMIT; index += 1) {
      const client = await connect(`client ${index + 1} from 127.0.0.1`);
      await client.subscribe(channel);
      admitted.push(client);
    }

    const before = await rejectedCount();
    const { error, closed } = await rejected('client over the limit');
    assert.equal(error.code, 4100);
    assert.match(error.message, /accepts 5 connections from one IP address/);
    assert.equal(closed.code, 4100);
    assert.equal(await rejectedCount(), before + 1);

    const other = await connect('client from 127.0.0.2', '127.0.0.2');
    await other.subscribe(channel);

    const marks = admitted.map((client) => client.mark());
    const otherMark = other.mark();
    await cluster.sdk().trigger(channel, 'stock-changed', { sku: 'A-1' });
    for (const [index, client] of admitted.entries()) {
      await client.waitForEvent('stock-changed', { channel, since: marks[index] });
      assert.ok(client.isOpen, `${client.name} was closed`);
    }
    await other.waitForEvent('stock-changed', { channel, since: otherMark });

    // A closed connection frees its slot.
    admitted[0].close();
    await withTimeout(admitted[0].closed, 10000, 'the first client to close');
    await waitUntil(async () => {
      const attempt = new RawClient(cluster.gatewayUrl(0), { name: 'client after a close', localAddress: '127.0.0.1' });
      clients.push(attempt);
      const outcome = await Promise.race([
        attempt.established().then(() => true),
        attempt.closed.then(() => false),
      ]);
      return outcome;
    }, { timeout: 10000, what: 'a connection from 127.0.0.1 after one closed' });
  });

  it('bounds half-open handshakes per address', async () => {
    // gateway/admission.c: the connection limit plus a tenth, at least 16.
    const socketLimit = LIMIT + 16;
    const attempts = socketLimit + 9;
    const before = await rejectedCount('per_ip_sockets');
    const sockets = [];
    try {
      for (let index = 0; index < attempts; index += 1) {
        const socket = net.connect({ host: '127.0.0.1', port: cluster.gatewayPort(0), localAddress: '127.0.0.4' });
        socket.on('error', () => {});
        sockets.push(socket);
        await new Promise((resolve) => socket.once('connect', resolve).once('close', resolve));
      }
      await waitUntil(async () => (await rejectedCount('per_ip_sockets')) >= before + attempts - socketLimit, {
        timeout: 5000,
        what: 'the gateway to close the sockets over the limit',
      });

      // Another address and the health check are served meanwhile.
      const other = await connect('client beside half-open sockets', '127.0.0.5');
      await other.subscribe('half-open-neighbour');
      const up = await fetch(`http://127.0.0.1:${cluster.gatewayPort(0)}/up`);
      assert.equal(up.status, 200);
    } finally {
      for (const socket of sockets) {
        socket.destroy();
      }
    }
    assert.equal(await rejectedCount('per_ip_sockets'), before + attempts - socketLimit);
  });

  it('frees socket counts on every close', async () => {
    // More connect and close cycles from one address than its socket
    // limit (gateway/admission.c: the connection limit plus 16), closed
    // with a close frame after subscribing, as churning clients do.
    const cycles = LIMIT + 16 + 10;
    for (let index = 0; index < cycles; index += 1) {
      const client = await connect(`churning client ${index + 1}`, '127.0.0.6');
      await client.subscribe('churn');
      client.close();
      await withTimeout(client.closed, 10000, `churning client ${index + 1} to close`);
    }
    const last = await connect('client after the churn', '127.0.0.6');
    assert.ok(last.isOpen);
  });

  it('lets pusher-js reconnect once a slot frees', async () => {
    for (const client of clients.splice(0)) {
      client.close();
      await withTimeout(client.closed, 10000, `${client.name} to close`);
    }
    const holders = [];
    for (let index = 0; index < LIMIT; index += 1) {
      holders.push(await connect(`holder ${index + 1}`));
    }

    // pusher-js reads a pusher:error during its handshake without emitting
    // it, so the gateway's counter shows the rejection.
    const before = await rejectedCount();
    const pusher = new PusherJsClient(cluster, 0, { name: 'pusher-js over the limit' });
    try {
      await waitUntil(async () => (await rejectedCount()) > before, {
        timeout: 10000,
        what: 'the gateway to reject pusher-js',
      });
      assert.notEqual(pusher.pusher.connection.state, 'connected');

      holders[0].close();
      await pusher.connected(RECONNECT_TIMEOUT_MS);
      await pusher.subscribe('per-ip-after-reconnect');
    } finally {
      pusher.disconnect();
      for (const holder of holders) {
        holder.close();
      }
    }
  });
});

describe('connections per IP address behind a trusted proxy', () => {
  const PROXY_LIMIT = 2;
  let proxied;
  const opened = [];

  /** Connects from `localAddress` with X-Forwarded-For `forwardedFor` and resolves with the outcome. */
  function attempt(localAddress, forwardedFor) {
    return new Promise((resolve) => {
      const socket = new WebSocket(proxied.gatewayUrl(0), {
        localAddress,
        headers: { 'X-Forwarded-For': forwardedFor },
      });
      opened.push(socket);
      socket.on('message', (data) => {
        const frame = JSON.parse(data.toString());
        if (frame.event === 'pusher:connection_established') {
          resolve('established');
        } else if (frame.event === 'pusher:error') {
          resolve(`error ${frame.data.code}`);
        }
      });
      socket.on('close', (code) => resolve(`closed ${code}`));
      socket.on('error', () => {});
    });
  }

  before(async () => {
    proxied = await startCluster('abuse-connections-per-ip-proxy', {
      gateways: 1,
      env: { HERALD_MAX_CONNECTIONS_PER_IP: String(PROXY_LIMIT), HERALD_TRUSTED_PROXIES: '127.0.0.1, 127.0.1.0/24' },
    });
  });

  after(async () => {
    for (const socket of opened) {
      socket.terminate();
    }
    if (proxied) {
      try {
        proxied.assertAllRunning();
      } finally {
        await proxied.stop();
      }
    }
  });

  it('counts the forwarded client address', async () => {
    // Two proxies in the trusted list, one client address behind both.
    assert.equal(await attempt('127.0.0.1', '203.0.113.5'), 'established');
    assert.equal(await attempt('127.0.1.7', '198.51.100.1, 203.0.113.5'), 'established');
    assert.equal(await attempt('127.0.0.1', '203.0.113.5'), 'error 4100');
    assert.equal(await attempt('127.0.0.1', '203.0.113.6'), 'established');
    // A client's own long header does not hide the address the proxy added.
    const padding = Array.from({ length: 100 }, (_, index) => `192.0.2.${index}`).join(', ');
    assert.equal(await attempt('127.0.0.1', `${padding}, 203.0.113.5`), 'error 4100');
    // Entries with a port count under their address.
    assert.equal(await attempt('127.0.0.1', '203.0.113.5:5555'), 'error 4100');
    assert.equal(await attempt('127.0.0.1', '[2001:db8::1]:443'), 'established');
    assert.equal(await attempt('127.0.1.9', '2001:db8::1'), 'established');
    assert.equal(await attempt('127.0.0.1', '[2001:db8::1]:8443'), 'error 4100');
  });

  it('counts malformed X-Forwarded-For under the proxy', async () => {
    // 127.0.1.20 is a trusted proxy with nothing else counted under it.
    assert.equal(await attempt('127.0.1.20', 'garbage'), 'established');
    assert.equal(await attempt('127.0.1.20', 'unknown'), 'established');
    assert.equal(await attempt('127.0.1.20', 'not-an-address'), 'error 4100');
  });

  it('ignores X-Forwarded-For from untrusted peers', async () => {
    // 127.0.0.3 is not a trusted proxy, so its header is a client's claim
    // and the connections count under 127.0.0.3 itself.
    assert.equal(await attempt('127.0.0.3', '203.0.113.9'), 'established');
    assert.equal(await attempt('127.0.0.3', '203.0.113.10'), 'established');
    assert.equal(await attempt('127.0.0.3', '203.0.113.11'), 'error 4100');
  });

  it('rejects an invalid trusted_proxies entry', async () => {
    const env = { ...proxied.heraldEnv, HERALD_TRUSTED_PROXIES: '127.0.0.1,10.0.0.0/33' };
    const { code, output } = await runUntilExit(GATEWAY_BINARY, await freePort(), env);
    assert.equal(code, 1, output);
    assert.match(output, /config: trusted_proxies \(HERALD_TRUSTED_PROXIES\): invalid entry "10\.0\.0\.0\/33": the prefix length must be 0 to 32/);
  });
});
