// Checks of deploy/Dockerfile that need no Docker engine. The build stage
// must copy everything CMake reads. The runtime stage must install a
// Debian package for every shared library the binaries link, checked with
// readelf, ldd and dpkg against the local build. The entrypoint must start
// the binary named by its first argument.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import test from 'node:test';

import {
  aptPackagesOfStage,
  binariesBuilt,
  buildDir,
  commandExists,
  gatewayBinary,
  parseDockerfile,
  relayBinary,
  repoRoot,
  run,
} from './lib/repo.mjs';

const dockerfile = path.join(repoRoot, 'deploy', 'Dockerfile');
const instructions = parseDockerfile(dockerfile);
const stages = instructions.filter(({ instruction }) => instruction === 'FROM').map(({ argument }) => argument);
const finalStage = instructions.at(-1).stage;
const entrypoint = path.join(repoRoot, 'deploy', 'docker', 'entrypoint.sh');

// Packages of debian:12-slim itself, which the runtime stage need not list.
const basePackages = new Set(['libc6', 'libgcc-s1', 'zlib1g']);

function finalStageInstructions(name) {
  return instructions.filter(({ instruction, stage }) => instruction === name && stage === finalStage);
}

// Source paths of the COPY instructions that read the build context.
function contextCopySources() {
  return instructions
    .filter(({ instruction, argument }) => instruction === 'COPY' && !argument.startsWith('--from'))
    .flatMap(({ argument }) => argument.split(' ').slice(0, -1));
}

// Lines of a CMakeLists.txt outside `if(HERALD_TESTS)` and `if(HERALD_FUZZ)`
// blocks, which the image leaves out: both options are off in its build.
function linesWithoutTests(file) {
  const lines = [];
  let testsDepth = 0;
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (testsDepth === 0 && /^\s*if\s*\(\s*HERALD_(TESTS|FUZZ)\s*\)/.test(line)) {
      testsDepth = 1;
      continue;
    }
    if (testsDepth > 0) {
      if (/^\s*if\s*\(/.test(line)) {
        testsDepth++;
      } else if (/^\s*endif\s*\(/.test(line)) {
        testsDepth--;
      }
      continue;
    }
    lines.push(line);
  }
  return lines;
}

// Top-level paths of the repository that CMake reads for the image build:
// the directories added with add_subdirectory() and the paths named with
// ${CMAKE_SOURCE_DIR}/ in any of their CMakeLists.txt files.
function cmakeInputs() {
  const inputs = new Set(['CMakeLists.txt']);
  const visited = new Set();
  const pending = ['.'];
  while (pending.length > 0) {
    const directory = pending.pop();
    visited.add(directory);
    const file = path.join(repoRoot, directory, 'CMakeLists.txt');
    for (const line of linesWithoutTests(file)) {
      const subdirectory = /^\s*add_subdirectory\s*\(\s*([^\s)]+)/.exec(line);
      if (subdirectory) {
        const relative = path.normalize(path.join(directory, subdirectory[1]));
        inputs.add(relative.split(path.sep)[0]);
        if (!visited.has(relative)) {
          pending.push(relative);
        }
      }
      for (const match of line.matchAll(/\$\{CMAKE_SOURCE_DIR\}\/([^\s/)]+)/g)) {
        inputs.add(match[1]);
      }
    }
  }
  return [...inputs];
}

// The Debian package that contains `file`, tried under /usr and without
// it, because Debian 12 merges /lib into /usr/lib but dpkg records one of
// the two.
function owningPackage(file) {
  const real = fs.realpathSync(file);
  const candidates = new Set([real, real.replace(/^\/usr\//, '/'), file]);
  for (const candidate of candidates) {
    const result = run('dpkg', ['-S', candidate]);
    if (result.status === 0) {
      return result.stdout.split(':')[0].trim();
    }
  }
  return null;
}

// Paths of the shared libraries that `binary` names in DT_NEEDED, resolved
// by ldd. Transitive dependencies come with the packages' own Depends.
function directLibraries(binary) {
  const dynamic = run('readelf', ['-d', binary]);
  assert.equal(dynamic.status, 0, `readelf -d ${binary} failed:\n${dynamic.output}`);
  const needed = [...dynamic.stdout.matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((match) => match[1]);

  const ldd = run('ldd', [binary]);
  assert.equal(ldd.status, 0, `ldd ${binary} failed:\n${ldd.output}`);
  const resolved = new Map();
  for (const match of ldd.stdout.matchAll(/^\s*(\S+) => (\S+)/gm)) {
    resolved.set(match[1], match[2]);
  }
  return needed.map((soname) => {
    const file = resolved.get(soname);
    assert.notEqual(file, undefined, `${binary}: ldd does not list ${soname}`);
    assert.notEqual(file, 'not', `${binary}: ldd reports ${soname} not found`);
    return file;
  });
}

test('dockerfile builds on debian 12', () => {
  assert.equal(stages.length, 2, `expected a builder and a runtime stage, found: ${stages.join(', ')}`);
  assert.match(stages[0], /^debian:12 AS \S+$/i, 'builder stage image');
  assert.match(stages[1], /^debian:12-slim AS \S+$/i, 'runtime stage image');
});

test('builder copies every cmake input', () => {
  const sources = contextCopySources();
  for (const input of cmakeInputs()) {
    assert.ok(sources.includes(input), `CMake reads ${input} when HERALD_TESTS=OFF, but deploy/Dockerfile does not copy it`);
  }
  const cmake = instructions.find(({ instruction, argument }) => instruction === 'RUN' && argument.includes('cmake -S'));
  assert.ok(cmake, 'deploy/Dockerfile has no cmake -S step');
  assert.match(cmake.argument, /-DHERALD_TESTS=OFF/, 'the image build must leave out the unit tests and CUnit');
});

test('dockerignore keeps every copied path', () => {
  const rules = fs
    .readFileSync(path.join(repoRoot, '.dockerignore'), 'utf8')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
  assert.equal(rules[0], '*', '.dockerignore is expected to exclude everything first and then list what the build reads');
  const included = rules.filter((rule) => rule.startsWith('!')).map((rule) => rule.slice(1).replace(/\/$/, ''));
  for (const source of contextCopySources()) {
    const kept = included.some((rule) => source === rule || source.startsWith(`${rule}/`));
    assert.ok(kept, `deploy/Dockerfile copies ${source}, which .dockerignore leaves out of the build context`);
  }
});

test('runtime stage runs as non-root', () => {
  const [user] = finalStageInstructions('USER');
  assert.ok(user, 'the runtime stage has no USER');
  assert.match(user.argument, /^[1-9]\d*(:\d+)?$/, 'USER must be a numeric non-zero uid, so runAsNonRoot can verify it');
});

test('runtime stage has entrypoint and healthcheck', () => {
  const [entry] = finalStageInstructions('ENTRYPOINT');
  assert.ok(entry, 'the runtime stage has no ENTRYPOINT');
  assert.deepEqual(JSON.parse(entry.argument), ['herald-entrypoint']);
  const [healthcheck] = finalStageInstructions('HEALTHCHECK');
  assert.ok(healthcheck, 'the runtime stage has no HEALTHCHECK');
  assert.match(healthcheck.argument, /CMD \["herald-healthcheck", "\/up"\]/);
  const environment = finalStageInstructions('ENV').map(({ argument }) => argument).join(' ');
  assert.match(environment, /HERALD_GATEWAY_HOST=0\.0\.0\.0/, 'the image must listen on every address');
  assert.match(environment, /HERALD_RELAY_HOST=0\.0\.0\.0/, 'the image must listen on every address');
});

test('runtime packages cover linked libraries', (t) => {
  if (!binariesBuilt()) {
    t.skip(`no binaries in ${buildDir}; build them with scripts/build.sh`);
    return;
  }
  if (!commandExists('dpkg') || !commandExists('readelf')) {
    t.skip('dpkg or readelf is not installed');
    return;
  }
  const runtimePackages = new Set(aptPackagesOfStage(instructions, finalStage));
  for (const binary of [gatewayBinary, relayBinary]) {
    for (const library of directLibraries(binary)) {
      // Sanitizer builds link their runtime, which the image never has.
      if (/\/lib(asan|ubsan)\.so/.test(library)) {
        continue;
      }
      const owner = owningPackage(library);
      assert.ok(owner, `${binary}: no Debian package contains ${library}`);
      if (basePackages.has(owner)) {
        continue;
      }
      assert.ok(runtimePackages.has(owner), `${path.basename(binary)} links ${library} from ${owner}, which the runtime stage does not install`);
    }
  }
});

test('runtime packages include libuv plugin', (t) => {
  if (!commandExists('dpkg')) {
    t.skip('dpkg is not installed');
    return;
  }
  // libwebsockets loads its libuv event loop plugin with dlopen, so ldd of
  // herald-gateway does not show it.
  const plugin = run('dpkg', ['-S', 'libwebsockets-evlib_uv.so']);
  assert.equal(plugin.status, 0, `no installed package contains libwebsockets-evlib_uv.so:\n${plugin.output}`);
  const owner = plugin.stdout.split(':')[0].trim();
  assert.ok(aptPackagesOfStage(instructions, finalStage).includes(owner), `the runtime stage does not install ${owner}`);
});

test('entrypoint starts the named binary', (t) => {
  if (!binariesBuilt()) {
    t.skip(`no binaries in ${buildDir}; build them with scripts/build.sh`);
    return;
  }
  const environment = {
    ...process.env,
    PATH: `${path.dirname(gatewayBinary)}:${path.dirname(relayBinary)}:${process.env.PATH}`,
  };
  const gateway = run('sh', [entrypoint, 'gateway', '--help'], { env: environment });
  assert.equal(gateway.status, 0, gateway.output);
  assert.match(gateway.stdout, /^Usage: herald-gateway/);
  const relay = run('sh', [entrypoint, 'relay', '--help'], { env: environment });
  assert.equal(relay.status, 0, relay.output);
  assert.match(relay.stdout, /^Usage: herald-relay/);
});

test('entrypoint rejects missing binary name', () => {
  const empty = run('sh', [entrypoint]);
  assert.equal(empty.status, 2);
  assert.match(empty.stderr, /pass gateway or relay as the first argument/);
  const optionFirst = run('sh', [entrypoint, '--config', '/etc/herald.json']);
  assert.equal(optionFirst.status, 2);
  assert.match(optionFirst.stderr, /option --config came before the binary name/);
});
