// Launches Debian's Chromium (package chromium) through playwright-core.
// Playwright cannot download its own browser builds on this network.

import fs from 'node:fs';

import { chromium } from 'playwright-core';

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

// --no-sandbox because the tests run as root. The rest keep Chromium from
// reaching for hosts outside loopback (updates, sync, field trials), which
// are closed here.
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/**
 * Launches headless Chromium. Playwright gives each launch a new, empty
 * profile directory (--user-data-dir) and deletes it on close.
 */
export async function launchChromium() {
  if (!fs.existsSync(CHROMIUM_PATH)) {
    throw new Error(`${CHROMIUM_PATH} not found: install Debian's chromium package (apt-get install chromium) or set CHROMIUM_PATH`);
  }
  return chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: CHROMIUM_ARGS });
}
