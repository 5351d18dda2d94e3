// Paths and small helpers shared by the deployment checks.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

// Directory with the built binaries: HERALD_BUILD_DIR (absolute or relative
// to the repository) or build/.
export const buildDir = path.resolve(repoRoot, process.env.HERALD_BUILD_DIR || 'build');
export const gatewayBinary = path.join(buildDir, 'gateway', 'herald-gateway');
export const relayBinary = path.join(buildDir, 'relay', 'herald-relay');

export function binariesBuilt() {
  return [gatewayBinary, relayBinary].every((file) => fs.existsSync(file));
}

// Runs a command to completion and returns its status and output. Never
// throws on a non-zero exit, so a test can assert on the status and show
// the output.
export function run(command, args, options = {}) {
  const result = spawnSync(command, args, {
    cwd: repoRoot,
    encoding: 'utf8',
    timeout: 60_000,
    ...options,
  });
  if (result.error) {
    throw new Error(`${command} ${args.join(' ')} failed to run: ${result.error.message}`);
  }
  return {
    status: result.status,
    stdout: result.stdout,
    stderr: result.stderr,
    output: `${result.stdout}${result.stderr}`,
  };
}

export function commandExists(command) {
  return spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
}

// Instructions of a Dockerfile with continuation lines joined and comments
// removed, each as { instruction, argument, stage } where stage is the
// name (or image) of the FROM it belongs to.
export function parseDockerfile(file) {
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  const instructions = [];
  let pending = '';
  let stage = null;
  for (const line of lines) {
    // Docker also skips comment lines inside a continued instruction.
    if (/^\s*#/.test(line)) {
      continue;
    }
    const continued = /\\\s*$/.test(line);
    pending += ` ${line.replace(/\\\s*$/, '')}`;
    if (continued) {
      continue;
    }
    const text = pending.trim();
    pending = '';
    if (text === '') {
      continue;
    }
    const match = /^(\S+)\s*(.*)$/.exec(text);
    const instruction = match[1].toUpperCase();
    const argument = match[2].replace(/\s+/g, ' ');
    if (instruction === 'FROM') {
      const from = /^(\S+)(?:\s+AS\s+(\S+))?/i.exec(argument);
      stage = from[2] ?? from[1];
    }
    instructions.push({ instruction, argument, stage });
  }
  return instructions;
}

// Packages that the `apt-get install` commands of one Dockerfile stage
// install.
export function aptPackagesOfStage(instructions, stage) {
  const packages = [];
  for (const { instruction, argument, stage: owner } of instructions) {
    if (instruction !== 'RUN' || owner !== stage) {
      continue;
    }
    for (const command of argument.split('&&')) {
      const words = command.trim().split(' ');
      const install = words.indexOf('install');
      if (!words.includes('apt-get') || install < 0) {
        continue;
      }
      packages.push(...words.slice(install + 1).filter((word) => word !== '' && !word.startsWith('-')));
    }
  }
  return packages;
}
