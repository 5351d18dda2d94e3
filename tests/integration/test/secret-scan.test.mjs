// The log scan that scripts/test.sh runs over tests/integration/artifacts:
// a planted secret must make it fail and name the file and the secret
// without printing the secret. Works in a temporary directory, never in
// artifacts/, so the planted line cannot fail the real scan.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { recordSecrets, scanForSecrets, secretsInEnvironment } from '../lib/secret-scan.mjs';

const execFileAsync = promisify(execFile);
const SCANNER = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'scan-secrets.mjs');
const PLANTED = 'planted-secret-7f3e9a';

/** Runs scan-secrets.mjs on `dir` and returns { code, output }. */
async function runScanner(dir) {
  try {
    const { stdout, stderr } = await execFileAsync(process.execPath, [SCANNER, dir]);
    return { code: 0, output: stdout + stderr };
  } catch (error) {
    return { code: error.code, output: error.stdout + error.stderr };
  }
}

/** Writes `files` ({ relative path: content }) below a new temporary directory. */
function makeTree(root, files) {
  for (const [relative, content] of Object.entries(files)) {
    const file = path.join(root, relative);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, content);
  }
}

describe('secret scan', () => {
  let tempRoot;
  before(() => {
    tempRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-secret-scan-'));
  });
  after(() => {
    fs.rmSync(tempRoot, { recursive: true, force: true });
  });

  function newDir(name) {
    const dir = path.join(tempRoot, name);
    fs.mkdirSync(dir);
    return dir;
  }

  it('finds a planted secret', async () => {
    const dir = newDir('planted');
    makeTree(dir, {
      'run-a/relay.log': 'info relay: listening\n',
      'run-b/gateway-1.log': `info gateway: connected\nwarn gateway: auth with ${PLANTED} failed\n`,
      'relay-check/relay-check-1/relay-6002.log': 'info relay: listening\n',
    });
    recordSecrets(path.join(dir, 'run-a'), [{ name: 'app planted secret', value: PLANTED }]);

    const result = scanForSecrets(dir);
    assert.deepEqual(result.leaks, [{ file: path.join(dir, 'run-b', 'gateway-1.log'), name: 'app planted secret' }]);
    assert.equal(result.logFiles, 3);

    const { code, output } = await runScanner(dir);
    assert.equal(code, 1, output);
    assert.match(output, /run-b\/gateway-1\.log contains the secret "app planted secret"/);
    assert.equal(output.includes(PLANTED), false, `the scanner printed the secret:\n${output}`);
  });

  it('passes clean logs', async () => {
    const dir = newDir('clean');
    makeTree(dir, { 'run-a/relay.log': 'info relay: listening\n', 'run-a/notes.txt': PLANTED });
    recordSecrets(path.join(dir, 'run-a'), [{ name: 'app planted secret', value: PLANTED }]);

    const { code, output } = await runScanner(dir);
    assert.equal(code, 0, output);
    assert.match(output, /none of 1 secrets \(from 1 runs\) appears in the 1 log files/);
  });

  it('fails without recorded secrets', async () => {
    const dir = newDir('unrecorded');
    makeTree(dir, { 'run-a/relay.log': `${PLANTED}\n` });

    const { code, output } = await runScanner(dir);
    assert.equal(code, 1, output);
    assert.match(output, /no recorded secrets/);
  });

  it('skips secrets too short to match', async () => {
    const dir = newDir('short');
    makeTree(dir, { 'run-a/relay.log': 'info relay: app s1 ready\n' });
    recordSecrets(path.join(dir, 'run-a'), [
      { name: 'short secret', value: 's1' },
      { name: 'app planted secret', value: PLANTED },
    ]);

    const { code, output } = await runScanner(dir);
    assert.equal(code, 0, output);
    assert.match(output, /skipped 1 secrets shorter than 6 characters: short secret/);
  });

  it('records each value once, owner-only', () => {
    const dir = newDir('record');
    recordSecrets(dir, [{ name: 'first', value: PLANTED }]);
    recordSecrets(dir, [{ name: 'second', value: PLANTED }, { name: 'empty', value: '' }]);
    const file = path.join(dir, 'secrets.json');
    assert.deepEqual(JSON.parse(fs.readFileSync(file, 'utf8')), [{ name: 'first', value: PLANTED }]);
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
  });

  it('collects secrets from the environment', () => {
    const dir = newDir('environment');
    const secretFile = path.join(dir, 'app-secret');
    const passwordFile = path.join(dir, 'redis-password');
    fs.writeFileSync(secretFile, 'secret-from-file\r\n\n');
    fs.writeFileSync(passwordFile, 'password-from-file\n');
    const env = {
      HERALD_APPS: JSON.stringify([
        { id: '1', key: 'k1', secret: 'inline-secret', webhooks: [{ url: 'http://x', headers: { 'X-Token': 'header-token' } }] },
        { id: '2', key: 'k2', secret_file: secretFile },
      ]),
      HERALD_REDIS_URL: 'redis://user:p%40ss-word@127.0.0.1:6379/0',
      HERALD_REDIS_PASSWORD: 'password-from-env',
      HERALD_REDIS_PASSWORD_FILE: passwordFile,
    };
    assert.deepEqual(secretsInEnvironment(env), [
      { name: 'app 1 secret', value: 'inline-secret' },
      { name: 'app 1 webhook header X-Token', value: 'header-token' },
      { name: 'app 2 secret_file', value: 'secret-from-file' },
      { name: 'HERALD_REDIS_URL password', value: 'p@ss-word' },
      { name: 'HERALD_REDIS_PASSWORD', value: 'password-from-env' },
      { name: 'HERALD_REDIS_PASSWORD_FILE', value: 'password-from-file' },
    ]);

    // Without HERALD_APPS the binaries run the development app.
    assert.deepEqual(secretsInEnvironment({ HERALD_REDIS_URL: 'redis://127.0.0.1:6379' }), [
      { name: 'development app secret', value: 'app-secret' },
    ]);
  });
});
