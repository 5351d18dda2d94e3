// Entry point of the demo backend: reads the configuration from the
// environment, serves on 127.0.0.1:PORT and stops on SIGINT or SIGTERM.

import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { createApp } from './app.mjs';
import { readConfig } from './config.mjs';

const EXAMPLE_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Writes one log line: ISO time, level, message, then the fields as JSON. */
function log(level, message, fields = {}) {
  const line = `${new Date().toISOString()} ${level.toUpperCase()} ${message} ${JSON.stringify(fields)}\n`;
  (level === 'error' ? process.stderr : process.stdout).write(line);
}

let config;
try {
  config = readConfig();
} catch (error) {
  log('error', 'invalid configuration', { error: error.message });
  process.exit(2);
}

const distDir = process.env.DIST_DIR ?? path.join(EXAMPLE_DIR, 'dist');
const server = http.createServer(createApp(config, { distDir, log }));

server.on('error', (error) => {
  log('error', 'server failed', { error: error.message, host: config.host, port: config.port });
  process.exit(1);
});

server.listen(config.port, config.host, () => {
  log('info', 'inventory dashboard listening', {
    url: `http://${config.host}:${config.port}/`,
    relay: `http://${config.relay.host}:${config.relay.port}`,
    websocket: config.websocket.ports.map((port) => `ws://${config.websocket.host}:${port}/app/${config.app.key}`),
    app_id: config.app.id,
    dist: distDir,
  });
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    log('info', 'stopping', { signal });
    server.close(() => process.exit(0));
    // Keep-alive and other open connections would hold close() open.
    server.closeAllConnections();
  });
}
