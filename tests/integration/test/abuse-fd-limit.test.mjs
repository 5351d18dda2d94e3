// A gateway and a relay that run out of file descriptors. Neither limits
// its connections, so a connection flood from one host reaches the
// process's open-file limit (often 1024 under systemd or in a shell). Then
// accept() fails with EMFILE on every loop iteration while the listening
// socket stays readable. The process must keep its log and CPU use bounded,
// and serve again once connections close.
//
// Each one runs under `prlimit --nofile=64:64` (util-linux), so 120
// connections are enough.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';

import Pusher from 'pusher';

import { GATEWAY_BINARY, RELAY_BINARY, findBinary, freePort, startCluster } from '../lib/cluster.mjs';
import { RawClient } from '../lib/raw-client.mjs';
import { waitUntil } from '../lib/wait.mjs';

const OPEN_FILE_LIMIT = 64;
const FLOOD_CONNECTIONS = 120;
const MEASURE_MS = 1000;
// A process may log the condition once per second or so, but not once per
// failed accept().
const MAX_LOG_LINES_PER_SECOND = 20;
// Share of one core the process may use while it cannot accept.
const MAX_CPU_SHARE = 0.5;
const STOP_TIMEOUT_MS = 10000;
const CLOCK_TICKS_PER_SECOND = 100; // Linux USER_HZ, the unit of /proc/<pid>/stat times

let cluster;
const limited = [];
const sockets = [];

/** Starts `binary` under prlimit on a free port and waits until it accepts connections. */
async function startLimited(name, binary) {
  const port = await freePort();
  const logFile = path.join(cluster.logDir, `${name}.log`);
  const fd = fs.openSync(logFile, 'a');
  const child = spawn('prlimit', [`--nofile=${OPEN_FILE_LIMIT}:${OPEN_FILE_LIMIT}`, '--', findBinary(binary), '--port', String(port)], {
    env: cluster.heraldEnv,
    stdio: ['ignore', fd, fd],
  });
  fs.closeSync(fd);
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const server = { name, port, logFile, child, exited };
  limited.push(server);

  await waitUntil(
    () =>
      new Promise((resolve) => {
        const socket = net.connect({ host: '127.0.0.1', port });
        socket.once('connect', () => {
          socket.destroy();
          resolve(true);
        });
        socket.once('error', () => resolve(false));
      }),
    { timeout: 20000, what: `${name} accepting connections on port ${port}` },
  );
  return server;
}

/** Stops a server started by startLimited with SIGTERM, then SIGKILL, and returns how it exited. */
async function stopLimited(server) {
  if (server.child.exitCode === null && server.child.signalCode === null) {
    server.child.kill('SIGTERM');
  }
  let timer;
  const deadline = new Promise((resolve) => {
    timer = setTimeout(resolve, STOP_TIMEOUT_MS, 'timeout');
  });
  let outcome = await Promise.race([server.exited, deadline]);
  clearTimeout(timer);
  if (outcome === 'timeout') {
    server.child.kill('SIGKILL');
    outcome = await server.exited;
    return `did not exit within ${STOP_TIMEOUT_MS} ms of SIGTERM (${JSON.stringify(outcome)})`;
  }
  return outcome.code === 0 ? 'exited with status 0' : `exited with ${JSON.stringify(outcome)}`;
}

/** Opens connections that send `request` and then stay silent. */
async function flood(port, request) {
  const opened = [];
  for (let index = 0; index < FLOOD_CONNECTIONS; index += 1) {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.on('error', () => {});
    sockets.push(socket);
    opened.push(
      new Promise((resolve) => {
        socket.once('connect', () => {
          socket.write(request);
          resolve();
        });
        socket.once('error', resolve);
      }),
    );
  }
  await Promise.all(opened);
}

function closeFlood() {
  for (const socket of sockets.splice(0)) {
    socket.destroy();
  }
}

function logLinesWith(server, text) {
  return fs.readFileSync(server.logFile, 'utf8').split('\n').filter((line) => line.includes(text)).length;
}

/** CPU time in seconds that `server` has used so far. */
function cpuSeconds(server) {
  const fields = fs.readFileSync(`/proc/${server.child.pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
}

/**
 * Waits until `server` has logged a failed accept, then measures its log
 * lines about accept and its CPU use over MEASURE_MS.
 */
async function measureAtLimit(server) {
  await waitUntil(() => logLinesWith(server, 'accept') > 0, {
    timeout: 10000,
    what: `${server.name} to log a failed accept()`,
  });
  const linesBefore = logLinesWith(server, 'accept');
  const cpuBefore = cpuSeconds(server);
  await new Promise((resolve) => setTimeout(resolve, MEASURE_MS));
  const lines = logLinesWith(server, 'accept') - linesBefore;
  const cpuShare = (cpuSeconds(server) - cpuBefore) / (MEASURE_MS / 1000);
  return { linesPerSecond: lines / (MEASURE_MS / 1000), cpuShare };
}

describe('processes at their open-file limit', () => {
  before(async () => {
    cluster = await startCluster('abuse-fd-limit', { gateways: 1 });
  });

  after(async () => {
    closeFlood();
    const unclean = [];
    for (const server of limited) {
      const outcome = await stopLimited(server);
      if (outcome !== 'exited with status 0') {
        unclean.push(`${server.name} (pid ${server.child.pid}) ${outcome}; log ${server.logFile}`);
      }
    }
    if (cluster) {
      try {
        cluster.assertAllRunning();
      } finally {
        await cluster.stop();
      }
    }
    assert.deepEqual(unclean, [], 'processes under prlimit did not stop cleanly');
  });

  it(
    'gateway bounds its log and CPU',
    async () => {
      const gateway = await startLimited('gateway-fd-limit', GATEWAY_BINARY);
      await flood(gateway.port, 'GET /app/app-key HTTP/1.1\r\nHost: 127.0.0.1\r\n');
      const { linesPerSecond, cpuShare } = await measureAtLimit(gateway);
      closeFlood();

      const client = new RawClient(`ws://127.0.0.1:${gateway.port}/app/app-key?protocol=7`, { name: 'client after the flood' });
      try {
        await Promise.all([client.opened, client.established()]);
      } finally {
        client.close();
      }
      const measured = `${linesPerSecond} log lines about accept per second, ${Math.round(cpuShare * 100)} % of a core`;
      assert.ok(linesPerSecond <= MAX_LOG_LINES_PER_SECOND, `too many log lines at the limit: ${measured}`);
      assert.ok(cpuShare <= MAX_CPU_SHARE, `too much CPU at the limit: ${measured}`);
    },
  );

  it(
    'relay bounds its log and CPU',
    async () => {
      const relay = await startLimited('relay-fd-limit', RELAY_BINARY);
      await flood(relay.port, 'POST /apps/app-1/events HTTP/1.1\r\n');
      const { linesPerSecond, cpuShare } = await measureAtLimit(relay);
      closeFlood();

      const sdk = new Pusher({
        appId: cluster.app.id,
        key: cluster.app.key,
        secret: cluster.app.secret,
        host: '127.0.0.1',
        port: String(relay.port),
        useTLS: false,
        timeout: 10000,
      });
      const response = await sdk.trigger('after-fd-flood', 'ping', {});
      assert.equal(response.status, 200);
      const measured = `${linesPerSecond} log lines about accept per second, ${Math.round(cpuShare * 100)} % of a core`;
      assert.ok(linesPerSecond <= MAX_LOG_LINES_PER_SECOND, `too many log lines at the limit: ${measured}`);
      assert.ok(cpuShare <= MAX_CPU_SHARE, `too much CPU at the limit: ${measured}`);
    },
  );
});
