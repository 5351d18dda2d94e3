// Checks that no server log contains a secret. Each test run records the
// secrets it hands to herald-gateway, herald-relay and redis-server in a
// secrets.json file in its log directory. scanForSecrets then looks for
// every recorded secret in every *.log file below a directory.
//
// Only node: modules are imported, so tests/relay can use this file too.

import fs from 'node:fs';
import path from 'node:path';

export const SECRETS_FILE = 'secrets.json';

// A shorter secret could appear in a log by chance (a test's app id or
// channel name), so the scan skips it and prints its name.
export const MIN_SECRET_LENGTH = 6;

// The secret of the development app that the binaries use when no app is
// configured. It is public, but the binaries never print it either.
const DEVELOPMENT_APP_SECRET = 'app-secret';

// The binaries strip trailing line breaks from a secret file the same way.
function readSecretFile(file) {
  try {
    return fs.readFileSync(file, 'utf8').replace(/[\r\n]+$/, '');
  } catch {
    return null; // the binary reports the file itself
  }
}

function secretsOfApps(text) {
  let apps;
  try {
    apps = JSON.parse(text);
  } catch {
    return []; // a test of a broken HERALD_APPS
  }
  if (!Array.isArray(apps)) {
    return [];
  }
  const secrets = [];
  for (const app of apps) {
    if (typeof app?.secret === 'string') {
      secrets.push({ name: `app ${app.id} secret`, value: app.secret });
    }
    if (typeof app?.secret_file === 'string') {
      secrets.push({ name: `app ${app.id} secret_file`, value: readSecretFile(app.secret_file) });
    }
    for (const webhook of Array.isArray(app?.webhooks) ? app.webhooks : []) {
      for (const [header, value] of Object.entries(webhook?.headers ?? {})) {
        secrets.push({ name: `app ${app.id} webhook header ${header}`, value });
      }
    }
  }
  return secrets;
}

function passwordOfRedisUrl(url) {
  try {
    return decodeURIComponent(new URL(url).password);
  } catch {
    return null;
  }
}

/**
 * Returns the secrets ({ name, value }) that the HERALD_* variables of
 * `env` give a binary: app secrets and secret files, webhook header values
 * and the Redis password from every source. Without HERALD_APPS the
 * binaries run the development app, whose secret is included.
 */
export function secretsInEnvironment(env) {
  const secrets = [];
  if (env.HERALD_APPS) {
    secrets.push(...secretsOfApps(env.HERALD_APPS));
  } else {
    secrets.push({ name: 'development app secret', value: DEVELOPMENT_APP_SECRET });
  }
  if (env.HERALD_REDIS_URL) {
    secrets.push({ name: 'HERALD_REDIS_URL password', value: passwordOfRedisUrl(env.HERALD_REDIS_URL) });
  }
  if (env.HERALD_REDIS_PASSWORD) {
    secrets.push({ name: 'HERALD_REDIS_PASSWORD', value: env.HERALD_REDIS_PASSWORD });
  }
  if (env.HERALD_REDIS_PASSWORD_FILE) {
    secrets.push({ name: 'HERALD_REDIS_PASSWORD_FILE', value: readSecretFile(env.HERALD_REDIS_PASSWORD_FILE) });
  }
  return secrets.filter(({ value }) => typeof value === 'string' && value !== '');
}

/**
 * Adds `secrets` ({ name, value }) to <dir>/secrets.json, once per value.
 * The file is readable only by its owner, like the secrets it lists.
 */
export function recordSecrets(dir, secrets) {
  const file = path.join(dir, SECRETS_FILE);
  const recorded = fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, 'utf8')) : [];
  const values = new Set(recorded.map(({ value }) => value));
  for (const secret of secrets) {
    if (typeof secret.value === 'string' && secret.value !== '' && !values.has(secret.value)) {
      recorded.push({ name: secret.name, value: secret.value });
      values.add(secret.value);
    }
  }
  fs.writeFileSync(file, `${JSON.stringify(recorded, null, 2)}\n`, { mode: 0o600 });
}

function filesBelow(dir) {
  const files = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      files.push(...filesBelow(full));
    } else if (entry.isFile()) {
      files.push(full);
    }
  }
  return files;
}

/**
 * Looks for every secret recorded in a secrets.json below `root` in every
 * *.log file below `root`, whichever run wrote it. Returns
 * { recordFiles, secretCount, skipped, logFiles, leaks }, where skipped
 * names the secrets too short to look for and each leak is
 * { file, name }. No returned field contains a secret's value.
 */
export function scanForSecrets(root) {
  const files = filesBelow(root);
  const recordFiles = files.filter((file) => path.basename(file) === SECRETS_FILE);
  const logFiles = files.filter((file) => file.endsWith('.log'));

  const byValue = new Map();
  for (const file of recordFiles) {
    for (const { name, value } of JSON.parse(fs.readFileSync(file, 'utf8'))) {
      if (!byValue.has(value)) {
        byValue.set(value, name);
      }
    }
  }
  const skipped = [];
  const secrets = [];
  for (const [value, name] of byValue) {
    if (value.length < MIN_SECRET_LENGTH) {
      skipped.push(name);
    } else {
      secrets.push({ name, value });
    }
  }

  const leaks = [];
  for (const file of logFiles) {
    const text = fs.readFileSync(file, 'utf8');
    for (const { name, value } of secrets) {
      if (text.includes(value)) {
        leaks.push({ file, name });
      }
    }
  }
  return { recordFiles: recordFiles.length, secretCount: secrets.length, skipped, logFiles: logFiles.length, leaks };
}
