// Builds the front end of examples/inventory-dashboard and runs its demo
// backend as a child process on a free loopback port, pointed at a Herald
// cluster from tests/integration/lib/cluster.mjs.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

import { REPO_ROOT, freePort } from '../../integration/lib/cluster.mjs';
import { waitUntil } from '../../integration/lib/wait.mjs';

export const EXAMPLE_DIR = path.join(REPO_ROOT, 'examples', 'inventory-dashboard');

const BUILD_TIMEOUT_MS = 120_000;
const STARTUP_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 5_000;

function runCommand(command, args, { cwd, logFile, timeout }) {
  return new Promise((resolve, reject) => {
    const fd = fs.openSync(logFile, 'a');
    const child = spawn(command, args, { cwd, stdio: ['ignore', fd, fd] });
    fs.closeSync(fd);
    const timer = setTimeout(() => child.kill('SIGKILL'), timeout);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(new Error(`${command} failed to start: ${error.message}`));
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) {
        resolve();
        return;
      }
      const log = fs.readFileSync(logFile, 'utf8').slice(-4000);
      reject(new Error(`${command} ${args.join(' ')} ${signal ? `was killed by ${signal}` : `exited with status ${code}`}; log ${logFile}:\n${log}`));
    });
  });
}

/** Runs `vite build` of the example into `outDir`, so the test never touches the example's own dist/. */
export async function buildFrontEnd(outDir, logFile) {
  const vite = path.join(EXAMPLE_DIR, 'node_modules', '.bin', 'vite');
  if (!fs.existsSync(vite)) {
    throw new Error(`${vite} not found: run "npm ci" in examples/inventory-dashboard first`);
  }
  await runCommand(vite, ['build', '--outDir', outDir, '--emptyOutDir'], { cwd: EXAMPLE_DIR, logFile, timeout: BUILD_TIMEOUT_MS });
}

/** The demo backend as a child process. */
export class DemoBackend {
  /**
   * Starts server/server.mjs on a free port of 127.0.0.1 against `cluster`,
   * handing out all of the cluster's gateways, and waits until it serves
   * GET /api/users.
   */
  static async start({ cluster, distDir, logFile }) {
    const backend = new DemoBackend();
    backend.port = await freePort();
    backend.url = `http://127.0.0.1:${backend.port}`;
    backend.logFile = logFile;

    const wsPorts = cluster.gateways.map((gateway) => gateway.port).join(',');
    const env = {
      PATH: process.env.PATH,
      PORT: String(backend.port),
      DIST_DIR: distDir,
      HERALD_RELAY_HOST: '127.0.0.1',
      HERALD_RELAY_PORT: String(cluster.relayPort),
      HERALD_WS_HOST: '127.0.0.1',
      HERALD_WS_PORT: wsPorts,
      HERALD_APP_ID: cluster.app.id,
      HERALD_APP_KEY: cluster.app.key,
      HERALD_APP_SECRET: cluster.app.secret,
    };
    const fd = fs.openSync(logFile, 'a');
    backend.child = spawn(process.execPath, [path.join(EXAMPLE_DIR, 'server', 'server.mjs')], { env, stdio: ['ignore', fd, fd] });
    fs.closeSync(fd);
    backend.exited = new Promise((resolve) => backend.child.once('exit', (code, signal) => resolve({ code, signal })));
    // Killed by PID if the test process exits without calling stop().
    backend.killOnExit = () => backend.child.kill('SIGKILL');
    process.once('exit', backend.killOnExit);

    try {
      await waitUntil(
        async () => {
          if (backend.child.exitCode !== null || backend.child.signalCode !== null) {
            throw new Error(`demo backend (pid ${backend.child.pid}) exited before serving; log ${logFile}:\n${fs.readFileSync(logFile, 'utf8')}`);
          }
          try {
            return (await fetch(`${backend.url}/api/users`)).ok;
          } catch {
            return false;
          }
        },
        { timeout: STARTUP_TIMEOUT_MS, interval: 100, what: `demo backend serving on ${backend.url}` },
      );
    } catch (error) {
      await backend.stop();
      throw error;
    }
    return backend;
  }

  get pid() {
    return this.child.pid;
  }

  /** Sends SIGTERM by PID, then SIGKILL after STOP_TIMEOUT_MS, and returns how the process exited. */
  async stop() {
    process.removeListener('exit', this.killOnExit);
    if (this.child.exitCode !== null || this.child.signalCode !== null) {
      return this.exited;
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
      return this.exited;
    }
    return outcome;
  }
}

/**
 * A cookie-keeping HTTP client of the backend, for checks without a
 * browser. Sends the session's CSRF token on every state-changing request,
 * as the front end does.
 */
export class BackendClient {
  constructor(baseUrl) {
    this.baseUrl = baseUrl;
    this.cookie = null;
    this.csrfToken = null;
  }

  async request(method, urlPath, { json, form, headers = {}, csrf = true } = {}) {
    const requestHeaders = { accept: 'application/json', ...headers };
    let body;
    if (json !== undefined) {
      requestHeaders['content-type'] = 'application/json';
      body = JSON.stringify(json);
    } else if (form !== undefined) {
      requestHeaders['content-type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams(form).toString();
    }
    if (this.cookie) {
      requestHeaders.cookie = this.cookie;
    }
    if (csrf && method !== 'GET' && this.csrfToken) {
      requestHeaders['x-csrf-token'] = this.csrfToken;
    }

    const response = await fetch(`${this.baseUrl}${urlPath}`, { method, headers: requestHeaders, body });
    const setCookie = response.headers.get('set-cookie');
    if (setCookie) {
      this.cookie = setCookie.split(';')[0];
    }
    const text = await response.text();
    let payload = null;
    try {
      payload = JSON.parse(text);
    } catch {
      payload = text;
    }
    if (payload && typeof payload === 'object' && typeof payload.csrf_token === 'string') {
      this.csrfToken = payload.csrf_token;
    }
    return { status: response.status, body: payload, text };
  }

  /** Opens a guest session, then signs in as user `userId`. */
  async signIn(userId) {
    await this.request('GET', '/api/session');
    const response = await this.request('POST', '/login', { json: { user_id: userId } });
    if (response.status !== 200) {
      throw new Error(`sign-in as user ${userId} failed with status ${response.status}: ${response.text}`);
    }
    return response.body;
  }
}
