// Reads the demo backend's settings from the environment. Every setting has
// a default that matches scripts/quickstart.sh: one public port (HAProxy on
// 6001) for the HTTP API and WebSockets, and the development app.

const DEFAULTS = {
  PORT: '8000',
  HERALD_RELAY_HOST: '127.0.0.1',
  HERALD_RELAY_PORT: '6001',
  HERALD_WS_HOST: '127.0.0.1',
  HERALD_WS_PORT: '6001',
  HERALD_APP_ID: 'app-1',
  HERALD_APP_KEY: 'app-key',
  HERALD_APP_SECRET: 'app-secret',
};

function parsePort(name, text) {
  const port = Number(text);
  if (!/^\d+$/.test(text) || port < 1 || port > 65535) {
    throw new Error(`${name}=${JSON.stringify(text)} is not a valid TCP port; set it to a number from 1 to 65535`);
  }
  return port;
}

function requireText(name, text) {
  if (text.trim() === '') {
    throw new Error(`${name} is empty; set it or unset it to use the default ${JSON.stringify(DEFAULTS[name])}`);
  }
  return text;
}

/**
 * Returns the configuration from `env`, or throws an Error naming the
 * invalid variable. HERALD_WS_PORT may list several gateway ports separated
 * by commas; each new session gets the next one in turn.
 */
export function readConfig(env = process.env) {
  const value = (name) => env[name] ?? DEFAULTS[name];

  const wsPorts = value('HERALD_WS_PORT')
    .split(',')
    .map((part) => parsePort('HERALD_WS_PORT', part.trim()));

  return {
    // The demo serves loopback only, like the rest of the local cluster.
    host: '127.0.0.1',
    port: parsePort('PORT', value('PORT')),
    relay: {
      host: requireText('HERALD_RELAY_HOST', value('HERALD_RELAY_HOST')),
      port: parsePort('HERALD_RELAY_PORT', value('HERALD_RELAY_PORT')),
    },
    websocket: {
      host: requireText('HERALD_WS_HOST', value('HERALD_WS_HOST')),
      ports: wsPorts,
    },
    app: {
      id: requireText('HERALD_APP_ID', value('HERALD_APP_ID')),
      key: requireText('HERALD_APP_KEY', value('HERALD_APP_KEY')),
      secret: requireText('HERALD_APP_SECRET', value('HERALD_APP_SECRET')),
    },
  };
}
