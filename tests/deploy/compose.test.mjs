// Offline checks of docker-compose.yml and the two HAProxy configurations.
// `docker-compose config` and `haproxy -c` must accept them. HAProxy's
// servers must be the compose services on the ports they listen on, and
// the configuration that scripts/cluster-haproxy.sh generates must keep
// the same timeouts, routing and health checks.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import test from 'node:test';

import YAML from 'yaml';

import { backendServers, parseHaproxyConfig } from './lib/haproxy.mjs';
import { repoRoot, run } from './lib/repo.mjs';

const composeFile = path.join(repoRoot, 'docker-compose.yml');
const composeHaproxyConfig = path.join(repoRoot, 'deploy', 'haproxy', 'haproxy.cfg');
const clusterScript = path.join(repoRoot, 'scripts', 'cluster-haproxy.sh');

// docker-compose interpolates ${HERALD_*} from the environment, so the
// checks run without the caller's HERALD_* variables to see the defaults.
function environmentWithoutHerald() {
  return Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('HERALD_')));
}

function dockerCompose(args) {
  return run('docker-compose', ['-f', composeFile, ...args], { env: environmentWithoutHerald() });
}

let renderedCompose;
function composeServices() {
  if (!renderedCompose) {
    const result = dockerCompose(['config']);
    assert.equal(result.status, 0, `docker-compose config failed:\n${result.output}`);
    renderedCompose = YAML.parse(result.stdout);
  }
  return renderedCompose.services;
}

// Seconds of a compose duration such as "30s", "1m30s" or "1m".
function durationSeconds(text) {
  const match = /^(?:(\d+)m)?(?:(\d+)s)?$/.exec(text);
  assert.notEqual(text, '', 'empty duration');
  assert.ok(match, `unsupported duration ${text}`);
  return Number(match[1] ?? 0) * 60 + Number(match[2] ?? 0);
}

// Container ports a service publishes, from short ("127.0.0.1:8404:8404/tcp")
// or long ({ published, target }) syntax.
function publishedTargets(service) {
  return (service.ports ?? []).map((port) => {
    if (typeof port === 'object') {
      return Number(port.target);
    }
    return Number(String(port).replace(/\/\w+$/, '').split(':').at(-1));
  });
}

const heraldServices = {
  'gateway-1': 'gateway',
  'gateway-2': 'gateway',
  'gateway-3': 'gateway',
  'relay-1': 'relay',
  'relay-2': 'relay',
};
const portVariables = { gateway: 'HERALD_GATEWAY_PORT', relay: 'HERALD_RELAY_PORT' };
const hostVariables = { gateway: 'HERALD_GATEWAY_HOST', relay: 'HERALD_RELAY_HOST' };

test('docker-compose config accepts the file', () => {
  const result = dockerCompose(['config', '-q']);
  assert.equal(result.status, 0, `docker-compose config -q failed:\n${result.output}`);
});

test('compose defines the cluster services', () => {
  const names = Object.keys(composeServices()).sort();
  assert.deepEqual(names, ['gateway-1', 'gateway-2', 'gateway-3', 'haproxy', 'redis', 'relay-1', 'relay-2']);
});

test('herald services choose binary and address', () => {
  const services = composeServices();
  for (const [name, binary] of Object.entries(heraldServices)) {
    const service = services[name];
    assert.deepEqual(service.command, [binary], `${name}: command chooses the binary`);
    assert.equal(service.build?.dockerfile, 'deploy/Dockerfile', `${name}: build.dockerfile`);
    assert.equal(service.environment[hostVariables[binary]], '0.0.0.0', `${name}: ${hostVariables[binary]}`);
    assert.match(service.environment.HERALD_REDIS_URL, /^redis:\/\/redis:6379/, `${name}: HERALD_REDIS_URL must name the redis service`);
    assert.equal(service.depends_on?.redis?.condition, 'service_healthy', `${name}: must wait for a healthy Redis`);
  }
});

test('herald health checks use /ready', () => {
  const services = composeServices();
  for (const name of Object.keys(heraldServices)) {
    assert.deepEqual(services[name].healthcheck?.test, ['CMD', 'herald-healthcheck', '/ready'], `${name}: healthcheck`);
  }
});

test('gateway stop grace exceeds drain', () => {
  const services = composeServices();
  for (const [name, binary] of Object.entries(heraldServices)) {
    if (binary !== 'gateway') {
      continue;
    }
    const drainSeconds = Number(services[name].environment.HERALD_DRAIN_SECONDS ?? 10);
    const grace = durationSeconds(services[name].stop_grace_period ?? '10s');
    // The drain window, up to 3 s for closing handshakes, and a margin.
    assert.ok(grace >= drainSeconds + 5, `${name}: stop_grace_period ${grace} s must be at least HERALD_DRAIN_SECONDS ${drainSeconds} + 5`);
  }
});

test('haproxy mounts config and publishes port', () => {
  const haproxy = composeServices().haproxy;
  const mount = haproxy.volumes.find((volume) => String(volume).includes('/usr/local/etc/haproxy/haproxy.cfg'));
  assert.ok(mount, 'haproxy: deploy/haproxy/haproxy.cfg is not mounted at /usr/local/etc/haproxy/haproxy.cfg');
  assert.ok(String(mount).startsWith(`${composeHaproxyConfig}:`), `haproxy: mounts ${mount}, expected ${composeHaproxyConfig}`);

  const sections = parseHaproxyConfig(fs.readFileSync(composeHaproxyConfig, 'utf8'));
  const bind = sections.get('frontend public').find((line) => line.startsWith('bind '));
  const bindPort = Number(bind.split(':').at(-1));
  assert.ok(publishedTargets(haproxy).includes(bindPort), `haproxy: port ${bindPort} of "frontend public" is not published`);
});

test('haproxy servers are compose services', () => {
  const services = composeServices();
  const sections = parseHaproxyConfig(fs.readFileSync(composeHaproxyConfig, 'utf8'));
  for (const [backend, binary] of [['gateways', 'gateway'], ['relays', 'relay']]) {
    const servers = backendServers(sections, backend);
    const expected = Object.entries(heraldServices).filter(([, kind]) => kind === binary).map(([name]) => name);
    assert.deepEqual(servers.map((server) => server.host).sort(), expected, `backend ${backend}: servers`);
    for (const server of servers) {
      const port = Number(services[server.host].environment[portVariables[binary]]);
      assert.equal(server.port, port, `backend ${backend}: server ${server.name} port differs from ${portVariables[binary]} of ${server.host}`);
    }
  }
});

test('haproxy -c accepts compose config', () => {
  const result = run('haproxy', ['-c', '-f', composeHaproxyConfig]);
  assert.equal(result.status, 0, `haproxy -c failed:\n${result.output}`);
  assert.doesNotMatch(result.output, /\[WARNING\]|\[ALERT\]/, `haproxy -c reported problems:\n${result.output}`);
});

test('haproxy -c accepts generated config', () => {
  const result = run('bash', [clusterScript, '--check-config']);
  assert.equal(result.status, 0, `cluster-haproxy.sh --check-config failed:\n${result.output}`);
  assert.doesNotMatch(result.output, /\[WARNING\]|\[ALERT\]/, `haproxy -c reported problems:\n${result.output}`);
});

test('generated config matches compose config', () => {
  const result = run('bash', [clusterScript, '--print-config']);
  assert.equal(result.status, 0, `cluster-haproxy.sh --print-config failed:\n${result.output}`);
  const local = parseHaproxyConfig(result.stdout);
  const compose = parseHaproxyConfig(fs.readFileSync(composeHaproxyConfig, 'utf8'));

  // Addresses and name resolution differ by design. Every other directive
  // (timeouts, routing, balancing, health checks, retries) must match.
  const comparable = (lines) =>
    lines
      .filter((line) => !/^(bind|server) /.test(line))
      .map((line) => line.replace(/ resolvers \S+/, '').replace(/ init-addr \S+/, ''));

  for (const section of ['defaults', 'frontend public', 'backend gateways', 'backend relays', 'frontend stats']) {
    assert.ok(compose.has(section), `deploy/haproxy/haproxy.cfg has no section "${section}"`);
    assert.ok(local.has(section), `generated configuration has no section "${section}"`);
    assert.deepEqual(comparable(local.get(section)), comparable(compose.get(section)), `section "${section}" differs`);
  }
  for (const backend of ['gateways', 'relays']) {
    assert.deepEqual(
      backendServers(local, backend).map((server) => server.name),
      backendServers(compose, backend).map((server) => server.name),
      `backend ${backend}: server names differ`,
    );
  }
});
