// Starts a real Herald cluster on loopback for one test file: a private
// redis-server, one herald-relay and (by default) two herald-gateway
// processes, each on a free 127.0.0.1 port.
//
// Binaries come from HERALD_BUILD_DIR (relative paths are taken from the
// repository root), default <repo>/build. Each process writes stdout and
// stderr to a log file under tests/integration/artifacts/<run>/, which
// scripts/test.sh scans for sanitizer reports after the suite. Every secret
// the run hands to its processes is listed in <run>/secrets.json, so that
// scripts/test.sh can check that no log contains one (lib/secret-scan.mjs).

import { spawn, execFile } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import Pusher from 'pusher';

import { recordSecrets, secretsInEnvironment } from './secret-scan.mjs';
import { waitUntil, withTimeout } from './wait.mjs';

const execFileAsync = promisify(execFile);

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const ARTIFACTS_DIR = path.join(REPO_ROOT, 'tests', 'integration', 'artifacts');

// The development app that both binaries use when no app is configured.
export const DEV_APP = Object.freeze({ id: 'app-1', key: 'app-key', secret: 'app-secret' });

const STARTUP_TIMEOUT_MS = 20000; // sanitizer builds start slowly on a loaded 2-core machine
const STOP_TIMEOUT_MS = 10000; // LeakSanitizer's exit-time scan needs a few seconds

/** Build directory holding gateway/herald-gateway and relay/herald-relay. */
export function buildDir() {
  const configured = process.env.HERALD_BUILD_DIR;
  if (!configured) {
    return path.join(REPO_ROOT, 'build');
  }
  return path.resolve(REPO_ROOT, configured);
}

export const GATEWAY_BINARY = path.join('gateway', 'herald-gateway');
export const RELAY_BINARY = path.join('relay', 'herald-relay');

/** Returns a TCP port on 127.0.0.1 that was free a moment ago. */
export async function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function canConnect(port) {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

function tailOfFile(file, maxBytes = 4000) {
  try {
    const text = fs.readFileSync(file, 'utf8');
    return text.length > maxBytes ? text.slice(-maxBytes) : text;
  } catch (error) {
    return `(could not read ${file}: ${error.message})`;
  }
}

function logLines(file, text) {
  return fs.readFileSync(file, 'utf8').split('\n').filter((line) => line.includes(text));
}

export function findBinary(relativePath) {
  const file = path.join(buildDir(), relativePath);
  if (!fs.existsSync(file)) {
    throw new Error(
      `${file} not found: build Herald first (scripts/build.sh) or set HERALD_BUILD_DIR to the build directory`,
    );
  }
  return file;
}

/**
 * Runs `binary --port <port>` with `env` until it exits, for a binary that
 * is expected to stop at startup, and returns { code, signal, output }.
 * Kills it by PID if it runs for more than 10 seconds.
 */
export async function runUntilExit(binary, port, env) {
  const child = spawn(findBinary(binary), ['--port', String(port)], { env });
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

// Environment for a child: the caller's environment without any HERALD_*
// setting (so a developer's shell cannot change what the tests run), plus
// the cluster's own settings.
function childEnvironment(extra) {
  const env = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!name.startsWith('HERALD_')) {
      env[name] = value;
    }
  }
  return { ...env, ...extra };
}

/** One child process with its log file. */
class ManagedProcess {
  constructor(name, command, args, env, logFile) {
    this.name = name;
    this.logFile = logFile;
    const fd = fs.openSync(logFile, 'a');
    this.child = spawn(command, args, { env, stdio: ['ignore', fd, fd] });
    fs.closeSync(fd);
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => resolve({ code, signal }));
    });
    this.spawnError = null;
    this.child.once('error', (error) => {
      this.spawnError = error;
    });
  }

  get pid() {
    return this.child.pid;
  }

  isRunning() {
    return this.child.exitCode === null && this.child.signalCode === null && !this.spawnError;
  }

  describeExit() {
    if (this.spawnError) {
      return `failed to start: ${this.spawnError.message}`;
    }
    if (this.child.signalCode) {
      return `killed by ${this.child.signalCode}`;
    }
    return `exited with status ${this.child.exitCode}`;
  }

  async waitForPort(port) {
    await waitUntil(
      async () => {
        if (!this.isRunning()) {
          throw new Error(
            `${this.name} (pid ${this.pid}) ${this.describeExit()} before accepting connections on port ${port}. ` +
              `Log ${this.logFile}:\n${tailOfFile(this.logFile)}`,
          );
        }
        return canConnect(port);
      },
      { timeout: STARTUP_TIMEOUT_MS, interval: 50, what: `${this.name} accepting connections on 127.0.0.1:${port}` },
    );
  }

  /** Sends SIGTERM, then SIGKILL if the process has not exited in time. */
  async stop() {
    if (!this.isRunning()) {
      return this.describeExit();
    }
    this.child.kill('SIGTERM');
    let timer;
    const deadline = new Promise((resolve) => {
      timer = setTimeout(resolve, STOP_TIMEOUT_MS, 'timeout');
    });
    const outcome = await Promise.race([this.exited, deadline]);
    clearTimeout(timer);
    if (outcome === 'timeout') {
      this.child.kill('SIGKILL');
      await this.exited;
      return `did not exit within ${STOP_TIMEOUT_MS} ms of SIGTERM and was killed`;
    }
    return this.describeExit();
  }
}

// Children still running when the test process exits (an uncaught error,
// a timeout of the runner, Ctrl-C) are killed by PID so they never outlive
// a run.
const liveProcesses = new Set();

function killLiveProcesses() {
  for (const managed of liveProcesses) {
    if (managed.isRunning()) {
      managed.child.kill('SIGKILL');
    }
  }
}

process.on('exit', killLiveProcesses);
for (const [signal, status] of [['SIGINT', 130], ['SIGTERM', 143]]) {
  process.on(signal, () => {
    killLiveProcesses();
    process.exit(status);
  });
}

export class Cluster {
  constructor(name) {
    this.name = name;
    this.processes = [];
    this.gateways = [];
    this.prefix = `herald-test-${process.pid}:`;
    this.app = DEV_APP;
    // Processes a test stopped or killed on purpose (killGateway, stopRedis),
    // which assertAllRunning does not report.
    this.expectedExits = new Set();
    this.redisStarts = 0;
    // Every herald-relay, the first one included: { port, process }.
    this.relays = [];
  }

  /**
   * Starts redis-server, the relay and the gateways, and waits until each one
   * accepts TCP connections.
   *
   * options.gateways: number of gateways (default 2).
   * options.env: extra environment for the relay and gateways, for example
   *   { HERALD_ACTIVITY_TIMEOUT: '1' }.
   * options.redisPassword: started with `--requirepass`, redis-server
   *   rejects clients without this password. The harness's own redis-cli
   *   calls send it; the relay and gateways get it only from `env`.
   */
  async start({ gateways = 2, env = {}, redisPassword } = {}) {
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    this.logDir = path.join(ARTIFACTS_DIR, `${stamp}-${this.name}-${process.pid}`);
    fs.mkdirSync(this.logDir, { recursive: true });

    const gatewayBinary = findBinary(GATEWAY_BINARY);
    const relayBinary = findBinary(RELAY_BINARY);

    this.redisPassword = redisPassword;
    if (redisPassword) {
      this.recordSecret('redis-server requirepass', redisPassword);
    }
    this.redisPort = await freePort();
    await this.#startRedisServer();

    const heraldEnv = (this.heraldEnv = childEnvironment({
      HERALD_REDIS_URL: `redis://127.0.0.1:${this.redisPort}`,
      HERALD_PREFIX: this.prefix,
      HERALD_GATEWAY_HOST: '127.0.0.1',
      HERALD_RELAY_HOST: '127.0.0.1',
      HERALD_LOG_LEVEL: process.env.HERALD_LOG_LEVEL || 'info',
      // A gateway spreads its SIGTERM drain over this many seconds (default
      // 10), and stop() allows STOP_TIMEOUT_MS for the whole shutdown.
      HERALD_DRAIN_SECONDS: '1',
      ...env,
    }));
    this.recordSecretsOf(heraldEnv);

    this.relayPort = await freePort();
    const relay = this.#spawn('relay', relayBinary, ['--port', String(this.relayPort)], heraldEnv);
    this.relays.push({ port: this.relayPort, process: relay });
    const waits = [relay.waitForPort(this.relayPort)];

    for (let index = 0; index < gateways; index += 1) {
      const port = await freePort();
      const gateway = this.#spawn(`gateway-${index + 1}`, gatewayBinary, ['--port', String(port)], heraldEnv);
      this.gateways.push({ port, process: gateway });
      waits.push(gateway.waitForPort(port));
    }
    await Promise.all(waits);
    return this;
  }

  // Starts redis-server on this.redisPort without persistence, so a
  // restarted server begins empty, as after losing its data.
  async #startRedisServer() {
    this.redisStarts += 1;
    const name = this.redisStarts === 1 ? 'redis' : `redis-${this.redisStarts}`;
    this.redis = this.#spawn(name, 'redis-server', [
      '--port', String(this.redisPort),
      '--bind', '127.0.0.1',
      '--save', '',
      '--appendonly', 'no',
      '--dir', this.logDir,
      ...(this.redisPassword ? ['--requirepass', this.redisPassword] : []),
    ], process.env);
    await this.redis.waitForPort(this.redisPort);
    return this.redis;
  }

  #spawn(name, command, args, env) {
    const managed = new ManagedProcess(name, command, args, env, path.join(this.logDir, `${name}.log`));
    this.processes.push(managed);
    liveProcesses.add(managed);
    return managed;
  }

  /** WebSocket URL of gateway `index` for `appKey`, with the query pusher-js sends unless `query` is given. */
  gatewayUrl(index = 0, { appKey = this.app.key, query = 'protocol=7&client=js&version=8.6.0&flash=false' } = {}) {
    const suffix = query === null || query === '' ? '' : `?${query}`;
    return `ws://127.0.0.1:${this.gateways[index].port}/app/${appKey}${suffix}`;
  }

  gatewayPort(index = 0) {
    return this.gateways[index].port;
  }

  relayUrl() {
    return `http://127.0.0.1:${this.relayPort}`;
  }

  /**
   * Starts one more herald-relay with the cluster's settings plus `env`,
   * waits until it accepts connections and returns its index in
   * this.relays. Its log is relay-<number>.log.
   */
  async startRelay({ env = {} } = {}) {
    const port = await freePort();
    const name = `relay-${this.relays.length + 1}`;
    const relayEnv = { ...this.heraldEnv, ...env };
    this.recordSecretsOf(relayEnv);
    const managed = this.#spawn(name, findBinary(RELAY_BINARY), ['--port', String(port)], relayEnv);
    this.relays.push({ port, process: managed });
    await managed.waitForPort(port);
    return this.relays.length - 1;
  }

  /** PID of relay `index`; 0 is the relay that start() launched. */
  relayPid(index) {
    return this.relays[index].process.pid;
  }

  /** Kills relay `index` with SIGKILL by PID and waits until it has exited. */
  async killRelay(index) {
    const managed = this.relays[index].process;
    this.expectedExits.add(managed);
    managed.child.kill('SIGKILL');
    await managed.exited;
  }

  /** Sends SIGTERM to relay `index` by PID and returns how it exited. */
  async stopRelay(index) {
    const managed = this.relays[index].process;
    this.expectedExits.add(managed);
    return managed.stop();
  }

  /** Lines of the log of relay `index` that contain `text`. */
  relayLogLinesOf(index, text) {
    return logLines(this.relays[index].process.logFile, text);
  }

  /** Pusher Node SDK client pointed at the relay; `overrides` replace app id, key or secret. */
  sdk(overrides = {}) {
    return new Pusher({
      appId: overrides.appId ?? this.app.id,
      key: overrides.key ?? this.app.key,
      secret: overrides.secret ?? this.app.secret,
      host: '127.0.0.1',
      port: String(this.relayPort),
      useTLS: false,
      timeout: 10000,
    });
  }

  /**
   * Adds a secret that a test hands to a process some other way than
   * start() or startRelay() see, so that the log scan looks for it too.
   */
  recordSecret(name, value) {
    recordSecrets(this.logDir, [{ name, value }]);
  }

  /** Records every secret in the HERALD_* variables of `env`. */
  recordSecretsOf(env) {
    recordSecrets(this.logDir, secretsInEnvironment(env));
  }

  // Runs redis-cli with `args` against this cluster's Redis. REDISCLI_AUTH
  // passes the password without putting it on the command line.
  #redisCliCall(args) {
    const env = this.redisPassword ? { ...process.env, REDISCLI_AUTH: this.redisPassword } : process.env;
    return execFileAsync('redis-cli', ['-h', '127.0.0.1', '-p', String(this.redisPort), ...args], { env });
  }

  /** Runs redis-cli against this cluster's Redis and returns its trimmed output. */
  async redisCli(...args) {
    const { stdout } = await this.#redisCliCall(args);
    return stdout.trim();
  }

  /** Number of Redis subscribers of the pub/sub topic of `channel`. */
  async topicSubscribers(channel) {
    const output = await this.redisCli('PUBSUB', 'NUMSUB', this.topic(channel));
    const lines = output.split('\n');
    return Number.parseInt(lines[lines.length - 1], 10);
  }

  /** Pub/sub topic of `channel`: <prefix>ch:{<app id>:<channel>}. */
  topic(channel) {
    return `${this.prefix}ch:{${this.app.id}:${channel}}`;
  }

  /**
   * Key of the Redis structure `kind` of `channel`:
   * <prefix><kind>:{<app id>:<channel>}, for kind members, member-conns,
   * sockets, subs or seq.
   */
  channelKey(kind, channel) {
    return `${this.prefix}${kind}:{${this.app.id}:${channel}}`;
  }

  /** HGETALL of `key` as a plain object (empty when the key does not exist). */
  async redisHash(key) {
    // Without a terminal, redis-cli prints each field and each value on a
    // line of its own. The output is not trimmed, because a value may be empty.
    const { stdout } = await this.#redisCliCall(['HGETALL', key]);
    const hash = {};
    if (stdout === '' || stdout === '\n') {
      return hash;
    }
    const lines = stdout.replace(/\n$/, '').split('\n');
    if (lines.length % 2 !== 0) {
      throw new Error(`HGETALL ${key} returned an odd number of lines:\n${stdout}`);
    }
    for (let index = 0; index < lines.length; index += 2) {
      hash[lines[index]] = lines[index + 1];
    }
    return hash;
  }

  /** Kills gateway `index` with SIGKILL by PID and waits until it has exited. */
  async killGateway(index) {
    const managed = this.gateways[index].process;
    this.expectedExits.add(managed);
    managed.child.kill('SIGKILL');
    await managed.exited;
  }

  /**
   * Sends SIGTERM to gateway `index` by PID, as an orchestrator does when it
   * drains the gateway, and returns how it exited.
   */
  async stopGateway(index) {
    const managed = this.gateways[index].process;
    this.expectedExits.add(managed);
    return managed.stop();
  }

  /**
   * Suspends gateway `index` with SIGSTOP by PID. Its peers and Redis see a
   * stalled process: its sockets stay open but nothing is read or written.
   */
  pauseGateway(index) {
    const gateway = this.gateways[index];
    gateway.process.child.kill('SIGSTOP');
    gateway.paused = true;
  }

  /** Resumes gateway `index` with SIGCONT if pauseGateway suspended it. */
  resumeGateway(index) {
    const gateway = this.gateways[index];
    if (gateway.paused) {
      gateway.process.child.kill('SIGCONT');
      gateway.paused = false;
    }
  }

  /** Returns the node id (<host>-<pid>-<number>) that gateway `index` registered in Redis. */
  async gatewayNodeId(index) {
    const pid = this.gateways[index].process.pid;
    const nodes = (await this.redisCli('SMEMBERS', `${this.prefix}nodes`)).split('\n');
    const matches = nodes.filter((node) => node.includes(`-${pid}-`));
    if (matches.length !== 1) {
      throw new Error(`expected one node id with pid ${pid} in ${this.prefix}nodes, found ${JSON.stringify(nodes)}`);
    }
    return matches[0];
  }

  /** Stops this cluster's redis-server with SIGTERM by PID. The gateways and the relay keep running. */
  async stopRedis() {
    const managed = this.redis;
    this.expectedExits.add(managed);
    return managed.stop();
  }

  /**
   * Starts a new, empty redis-server on the port of the stopped one and
   * waits until it accepts connections. It is stopped last by stop().
   */
  async startRedis() {
    if (this.redis?.isRunning()) {
      throw new Error(`redis-server (pid ${this.redis.pid}) is still running on port ${this.redisPort}; call stopRedis() first`);
    }
    const managed = await this.#startRedisServer();
    // stop() goes through the list backwards, and Redis must stop last.
    this.processes.splice(this.processes.indexOf(managed), 1);
    this.processes.unshift(managed);
    return managed;
  }

  /** Lines of the log of gateway `index` that contain `text`. */
  gatewayLogLines(index, text) {
    return logLines(this.gateways[index].process.logFile, text);
  }

  /** Lines of the relay's log that contain `text`. */
  relayLogLines(text) {
    const relay = this.processes.find((managed) => managed.name === 'relay');
    return logLines(relay.logFile, text);
  }

  /**
   * Throws, naming each one with its log tail, if any process has exited,
   * except those stopped on purpose by killGateway or stopRedis.
   */
  assertAllRunning() {
    const dead = this.processes.filter((managed) => !managed.isRunning() && !this.expectedExits.has(managed));
    if (dead.length > 0) {
      const details = dead
        .map((managed) => `${managed.name} (pid ${managed.pid}) ${managed.describeExit()}; log ${managed.logFile}:\n${tailOfFile(managed.logFile)}`)
        .join('\n\n');
      throw new Error(`Herald cluster process stopped during the test:\n${details}`);
    }
  }

  /**
   * Stops every process by PID, gateways first and Redis last, and records
   * how each one exited in <log dir>/exit-status.txt. Then throws if a
   * gateway or the relay did not exit with status 0 after SIGTERM, which is
   * how a crash or a sanitizer abort at shutdown shows up. A gateway killed
   * by killGateway is not counted.
   */
  async stop() {
    const lines = [];
    const unclean = [];
    // A suspended gateway cannot act on SIGTERM.
    for (const index of this.gateways.keys()) {
      this.resumeGateway(index);
    }
    for (const managed of [...this.processes].reverse()) {
      const outcome = await managed.stop();
      liveProcesses.delete(managed);
      lines.push(`${managed.name} pid ${managed.pid}: ${outcome}`);
      // Redis servers and processes a test killed on purpose are not judged.
      const judged = !managed.name.startsWith('redis') && !this.expectedExits.has(managed);
      if (judged && outcome !== 'exited with status 0') {
        unclean.push(`${managed.name} (pid ${managed.pid}) ${outcome}; log ${managed.logFile}:\n${tailOfFile(managed.logFile)}`);
      }
    }
    if (this.logDir) {
      fs.writeFileSync(path.join(this.logDir, 'exit-status.txt'), `${lines.join('\n')}\n`);
    }
    if (unclean.length > 0) {
      throw new Error(`Herald processes did not stop cleanly on SIGTERM:\n${unclean.join('\n\n')}`);
    }
    return lines;
  }
}

/** Starts a cluster; see Cluster.start for the options. Stops whatever started if startup fails. */
export async function startCluster(name, options = {}) {
  const cluster = new Cluster(name);
  try {
    await cluster.start(options);
  } catch (error) {
    // Report the startup failure, not a follow-on shutdown failure.
    await cluster.stop().catch(() => {});
    throw error;
  }
  return cluster;
}
