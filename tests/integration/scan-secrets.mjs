// Fails when a server log below DIR contains a secret that a test run
// recorded in a secrets.json file below DIR (see lib/secret-scan.mjs).
// Prints the log file and the secret's name, never the secret.
//
//   node scan-secrets.mjs DIR
//
// Exit status: 0 when no log contains a secret, 1 on a leak or when DIR
// contains logs but no recorded secrets, 2 on a usage error.

import fs from 'node:fs';

import { MIN_SECRET_LENGTH, scanForSecrets, SECRETS_FILE } from './lib/secret-scan.mjs';

const [root] = process.argv.slice(2);
if (!root || process.argv.length !== 3) {
  console.error('usage: node scan-secrets.mjs DIR');
  process.exit(2);
}
if (!fs.existsSync(root)) {
  console.error(`scan-secrets: ${root} not found; run the tests that write their logs there first`);
  process.exit(2);
}

const result = scanForSecrets(root);

if (result.logFiles > 0 && result.secretCount === 0) {
  // A scan with nothing to look for would pass whatever the logs contain.
  console.error(
    `scan-secrets: ${root} contains ${result.logFiles} log files but no recorded secrets ` +
      `(no ${SECRETS_FILE}); the test harness must record the secrets of every run`,
  );
  process.exit(1);
}
if (result.skipped.length > 0) {
  console.log(
    `scan-secrets: skipped ${result.skipped.length} secrets shorter than ${MIN_SECRET_LENGTH} characters: ` +
      result.skipped.join(', '),
  );
}
if (result.leaks.length > 0) {
  for (const { file, name } of result.leaks) {
    console.error(`scan-secrets: ${file} contains the secret "${name}"`);
  }
  console.error(`scan-secrets: ${result.leaks.length} secret leaks in the logs below ${root}`);
  process.exit(1);
}
console.log(
  `scan-secrets: none of ${result.secretCount} secrets (from ${result.recordFiles} runs) ` +
    `appears in the ${result.logFiles} log files below ${root}`,
);
