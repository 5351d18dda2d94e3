// A Herald cluster behind HAProxy for one test file: the processes that
// cluster.mjs starts (redis-server, one relay, N gateways on free loopback
// ports) plus HAProxy on a free public port. The HAProxy configuration is
// the one scripts/cluster-haproxy.sh --print-config writes, so the tests
// run the routing, balancing (leastconn) and /ready health checks of the
// documented deployment.
//
// A HaproxyCluster can stand in for a Cluster where clients only need
// `app`, `gatewayPort()` and `sdk()` (PusherJsClient, PresenceClient): the
// clients then connect to HAProxy's public port, and the SDK publishes
// through it.

import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

import Pusher from 'pusher';

import { REPO_ROOT, freePort, startCluster } from './cluster.mjs';
import { EVENT_TIMEOUT_MS, waitUntil } from './wait.mjs';

const execFileAsync = promisify(execFile);

const CLUSTER_SCRIPT = path.join(REPO_ROOT, 'scripts', 'cluster-haproxy.sh');
const STOP_TIMEOUT_MS = 10000;

// HAProxy processes still running when the test process exits are killed
// by PID, as cluster.mjs does for its own children.
const liveHaproxies = new Set();
process.on('exit', () => {
  for (const child of liveHaproxies) {
    child.kill('SIGKILL');
  }
});

/** Returns true when `command` is on PATH. */
export async function commandExists(command) {
  try {
    await execFileAsync('sh', ['-c', `command -v ${command}`]);
    return true;
  } catch {
    return false;
  }
}

export class HaproxyCluster {
  constructor(cluster) {
    this.cluster = cluster;
    this.app = cluster.app;
  }

  /** Starts HAProxy in front of `this.cluster` and waits until it routes to every server. */
  async start() {
    this.publicPort = await freePort();
    this.statsPort = await freePort();
    this.configFile = path.join(this.cluster.logDir, 'haproxy.cfg');
    this.logFile = path.join(this.cluster.logDir, 'haproxy.log');

    const gatewayPorts = this.cluster.gateways.map((gateway) => gateway.port);
    const { stdout } = await execFileAsync('bash', [
      CLUSTER_SCRIPT,
      '--print-config',
      '--port', String(this.publicPort),
      '--gateway-ports', gatewayPorts.join(','),
      '--relay-ports', String(this.cluster.relayPort),
      '--stats-port', String(this.statsPort),
    ]);
    fs.writeFileSync(this.configFile, stdout);
    await execFileAsync('haproxy', ['-c', '-q', '-f', this.configFile]);

    const fd = fs.openSync(this.logFile, 'a');
    this.child = spawn('haproxy', ['-db', '-f', this.configFile], { stdio: ['ignore', fd, fd] });
    fs.closeSync(fd);
    liveHaproxies.add(this.child);
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        liveHaproxies.delete(this.child);
        resolve({ code, signal });
      });
    });

    this.nodeNumbers = await Promise.all(this.cluster.gateways.map((gateway, index) => nodeNumberFromLog(this.cluster, index)));
    // HAProxy counts a server as up before its first health check, so wait
    // for the checks to pass and a test never races them.
    const servers = [...this.cluster.gateways.map((gateway, index) => `gateway-${index + 1}`), 'relay-1'];
    await this.waitForServers(servers, 'UP', { timeout: 20000 });
    return this;
  }

  /** Public port of HAProxy, where pusher-js clients connect whatever gateway index they ask for. */
  gatewayPort() {
    return this.publicPort;
  }

  /** Pusher Node SDK client that publishes through HAProxy's /apps/ route. */
  sdk() {
    return new Pusher({
      appId: this.app.id,
      key: this.app.key,
      secret: this.app.secret,
      host: '127.0.0.1',
      port: String(this.publicPort),
      useTLS: false,
      timeout: 10000,
    });
  }

  /**
   * State of each server from HAProxy's statistics CSV, for example
   * { 'gateway-1': { status: 'UP', check: 'L7OK' } }. `check` is the result
   * of the last health check (INI before the first one).
   */
  async serverStates() {
    const response = await fetch(`http://127.0.0.1:${this.statsPort}/;csv`, { signal: AbortSignal.timeout(5000) });
    const lines = (await response.text()).trim().split('\n');
    const header = lines[0].replace(/^# /, '').split(',');
    const column = (name) => header.indexOf(name);
    const states = {};
    for (const line of lines.slice(1)) {
      const fields = line.split(',');
      const proxy = fields[column('pxname')];
      const server = fields[column('svname')];
      if ((proxy === 'gateways' || proxy === 'relays') && server !== 'BACKEND') {
        states[server] = { status: fields[column('status')], check: fields[column('check_status')] };
      }
    }
    return states;
  }

  /**
   * Waits until HAProxy reports each server in `names` as `state`: UP after
   * a passed health check, or DOWN.
   */
  async waitForServers(names, state, { timeout = EVENT_TIMEOUT_MS } = {}) {
    const reached = (entry) =>
      state === 'UP' ? entry?.status === 'UP' && entry.check.startsWith('L7OK') : entry?.status.startsWith(state);
    let states;
    await waitUntil(
      async () => {
        if (this.child.exitCode !== null || this.child.signalCode !== null) {
          throw new Error(`haproxy (pid ${this.child.pid}) exited; log ${this.logFile}:\n${fs.readFileSync(this.logFile, 'utf8').slice(-4000)}`);
        }
        try {
          states = await this.serverStates();
        } catch (error) {
          // HAProxy has not bound its statistics port yet.
          states = error.cause?.code ?? error.message;
          return false;
        }
        return names.every((name) => reached(states[name]));
      },
      { timeout, interval: 100, what: `HAProxy to report ${names.join(', ')} as ${state} (last states: ${JSON.stringify(states)})` },
    );
  }

  /** Index of the gateway that issued `socketId`, whose first part is the gateway's node number. */
  gatewayIndexOfSocket(socketId) {
    const node = socketId.split('.')[0];
    const index = this.nodeNumbers.indexOf(node);
    if (index < 0) {
      throw new Error(`socket_id ${socketId} was issued by none of the gateways (node numbers ${this.nodeNumbers.join(', ')})`);
    }
    return index;
  }

  /** Stops HAProxy by PID, then the cluster (see Cluster.stop, which throws on an unclean exit). */
  async stop() {
    if (this.child && this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGTERM');
      let timer;
      const deadline = new Promise((resolve) => {
        timer = setTimeout(resolve, STOP_TIMEOUT_MS, 'timeout');
      });
      if ((await Promise.race([this.exited, deadline])) === 'timeout') {
        this.child.kill('SIGKILL');
        await this.exited;
      }
      clearTimeout(timer);
    }
    return this.cluster.stop();
  }
}

// Reads the node number from gateway `index`'s startup line
// "listening on ... node=<host>-<pid>-<node number> ...". socket_ids the
// gateway issues start with that number. The port accepts connections a
// moment before the line is written, so this waits for it.
async function nodeNumberFromLog(cluster, index) {
  const match = await waitUntil(
    () => cluster.gatewayLogLines(index, 'listening on')[0]?.match(/ node=\S*-(\d+) /),
    { what: `the "listening on ... node=" line in gateway-${index + 1}'s log` },
  );
  return match[1];
}

/**
 * Starts redis-server, one relay and `gateways` gateways (cluster.mjs), then
 * HAProxy in front of them. options.env goes to the relay and gateways.
 * Stops whatever started if startup fails.
 */
export async function startHaproxyCluster(name, { gateways = 3, env = {} } = {}) {
  const cluster = await startCluster(name, { gateways, env });
  const balanced = new HaproxyCluster(cluster);
  try {
    await balanced.start();
  } catch (error) {
    await balanced.stop().catch(() => {});
    throw error;
  }
  return balanced;
}
