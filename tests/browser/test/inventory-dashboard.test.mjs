// examples/inventory-dashboard end to end: two Chromium contexts signed in
// as two demo users open the same warehouse on a private Herald cluster,
// each behind a different gateway. A stock change by one appears on the
// other's page without a reload, and a closed page leaves the viewer list.
// Screenshots go to tests/browser/artifacts/.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';

import { startCluster } from '../../integration/lib/cluster.mjs';
import { launchChromium } from '../lib/chromium.mjs';
import { BackendClient, DemoBackend, buildFrontEnd } from '../lib/demo-backend.mjs';

const ARTIFACTS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'artifacts');

// The time a change may take from A's submit to B's page.
const MAX_UPDATE_LATENCY_MS = 1000;
// Deadline of each wait on the DOM. Longer than the latency limit, so a
// slow update fails on the measured latency, not on a timeout.
const DOM_TIMEOUT_MS = 10_000;

const AVA = { id: 1, name: 'Ava Morgan' };
const BEN = { id: 2, name: 'Ben Ortiz' };
const CHEN = { id: 3, name: 'Chen Li' };

let runDir;
let cluster;
let backend;
let browser;

function viewer(page, user) {
  return page.locator(`ul[aria-label="Viewers"] li[data-user-id="${user.id}"]`);
}

function quantityCell(page, sku) {
  return page.locator(`tr[data-sku="${sku}"] [data-testid="quantity"]`);
}

/**
 * Opens a new browser context and page, recording the page's console
 * output, its errors and the WebSocket frames it sends and receives.
 */
async function openPage(label) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 760 } });
  const page = await context.newPage();
  page.label = label;
  page.consoleLines = [];
  page.pageErrors = [];
  page.frameLines = [];
  page.on('console', (message) => page.consoleLines.push(`[${message.type()}] ${message.text()}`));
  page.on('pageerror', (error) => page.pageErrors.push(error.stack ?? String(error)));
  page.on('websocket', (socket) => {
    const record = (direction) => (frame) => page.frameLines.push(`${new Date().toISOString()} ${direction} ${frame.payload}`);
    page.frameLines.push(`${new Date().toISOString()} open ${socket.url()}`);
    socket.on('framesent', record('>'));
    socket.on('framereceived', record('<'));
    socket.on('close', () => page.frameLines.push(`${new Date().toISOString()} close`));
  });
  return { context, page };
}

/** Writes `page`'s console output and WebSocket frames to the run's artifacts folder. */
function savePageRecords(page) {
  fs.writeFileSync(path.join(runDir, `console-${page.label}.txt`), `${page.consoleLines.join('\n')}\n`);
  fs.writeFileSync(path.join(runDir, `frames-${page.label}.txt`), `${page.frameLines.join('\n')}\n`);
}

/** Signs in through the form and waits until the warehouse's stock is loaded. */
async function signIn(page, user) {
  await page.goto(`${backend.url}/`);
  await page.getByLabel('Demo user').selectOption({ label: user.name });
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('[data-testid="warehouse"][data-status="ready"]').waitFor({ timeout: DOM_TIMEOUT_MS });
  await viewer(page, user).waitFor({ timeout: DOM_TIMEOUT_MS });
}

/**
 * Starts recording, in `page`, the time (performance.timeOrigin + now, in
 * ms) at which the quantity cell of `sku` first shows `quantity`.
 */
async function watchQuantity(page, sku, quantity) {
  await page.evaluate(
    ({ sku: watchedSku, quantity: expected }) => {
      window.shownAt = null;
      const check = () => {
        const cell = document.querySelector(`tr[data-sku="${watchedSku}"] [data-testid="quantity"]`);
        if (window.shownAt === null && cell?.textContent === String(expected)) {
          window.shownAt = performance.timeOrigin + performance.now();
        }
      };
      window.quantityObserver?.disconnect();
      window.quantityObserver = new MutationObserver(check);
      window.quantityObserver.observe(document.body, { subtree: true, childList: true, characterData: true });
      check();
    },
    { sku, quantity },
  );
}

/**
 * Sets `sku` to `quantity` through `page`'s form and returns the time of the
 * form's submit event in the same clock as watchQuantity.
 */
async function submitStock(page, sku, quantity) {
  const form = page.getByRole('form', { name: 'Change a stock level' });
  await form.getByLabel('Item').selectOption(sku);
  await form.getByLabel('New quantity').fill(String(quantity));
  await page.evaluate(() => {
    window.submittedAt = null;
    document.querySelector('form.stock-form').addEventListener(
      'submit',
      () => {
        window.submittedAt = performance.timeOrigin + performance.now();
      },
      { capture: true, once: true },
    );
  });
  await form.getByRole('button', { name: 'Update stock' }).click();
  return page.evaluate(() => window.submittedAt);
}

/** Waits until `page` shows `quantity` for `sku` and returns the time it first did. */
async function waitForQuantity(page, sku, quantity) {
  await page.waitForFunction(() => window.shownAt !== null, null, { timeout: DOM_TIMEOUT_MS });
  assert.equal(await quantityCell(page, sku).textContent(), String(quantity));
  return page.evaluate(() => window.shownAt);
}

async function sessionGatewayPort(page) {
  return page.evaluate(async () => (await (await fetch('/api/session')).json()).echo.wsPort);
}

async function eventsReceived(page) {
  return Number(await page.locator('[data-testid="warehouse"]').getAttribute('data-events-received'));
}

// Computes the expected `auth` value of a channel authorization with
// node:crypto, independently of the `pusher` SDK that the backend signs with.
function expectedAuth(socketId, channel, channelData) {
  const parts = channelData === undefined ? [socketId, channel] : [socketId, channel, channelData];
  const signature = crypto.createHmac('sha256', cluster.app.secret).update(parts.join(':')).digest('hex');
  return `${cluster.app.key}:${signature}`;
}

describe('inventory dashboard', () => {
  before(async () => {
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    runDir = path.join(ARTIFACTS_DIR, `${stamp}-${process.pid}`);
    fs.mkdirSync(runDir, { recursive: true });

    const distDir = path.join(runDir, 'dist');
    await buildFrontEnd(distDir, path.join(runDir, 'vite-build.log'));
    cluster = await startCluster('browser-inventory-dashboard');
    backend = await DemoBackend.start({ cluster, distDir, logFile: path.join(runDir, 'backend.log') });
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await backend?.stop();
    if (cluster) {
      try {
        cluster.assertAllRunning();
      } finally {
        await cluster.stop();
      }
    }
  });

  it('answers /broadcasting/auth like Laravel', async () => {
    const socketId = '1234.5678';
    const guest = new BackendClient(backend.url);
    await guest.request('GET', '/api/session');
    const guestAuth = await guest.request('POST', '/broadcasting/auth', { form: { socket_id: socketId, channel_name: 'presence-warehouse.1' } });
    assert.equal(guestAuth.status, 403, `guest: ${guestAuth.text}`);

    const ben = new BackendClient(backend.url);
    await ben.signIn(BEN.id);

    const presence = await ben.request('POST', '/broadcasting/auth', { form: { socket_id: socketId, channel_name: 'presence-warehouse.1' } });
    assert.equal(presence.status, 200, presence.text);
    assert.deepEqual(Object.keys(presence.body), ['auth', 'channel_data']);
    assert.deepEqual(JSON.parse(presence.body.channel_data), { user_id: '2', user_info: { id: 2, name: 'Ben Ortiz' } });
    assert.equal(presence.body.auth, expectedAuth(socketId, 'presence-warehouse.1', presence.body.channel_data));

    const own = await ben.request('POST', '/broadcasting/auth', { form: { socket_id: socketId, channel_name: 'private-App.Models.User.2' } });
    assert.equal(own.status, 200, own.text);
    assert.deepEqual(own.body, { auth: expectedAuth(socketId, 'private-App.Models.User.2') });

    const other = await ben.request('POST', '/broadcasting/auth', { form: { socket_id: socketId, channel_name: 'private-App.Models.User.1' } });
    assert.equal(other.status, 403, `another user's channel: ${other.text}`);

    const withoutToken = await ben.request('POST', '/broadcasting/auth', {
      form: { socket_id: socketId, channel_name: 'presence-warehouse.1' },
      csrf: false,
    });
    assert.equal(withoutToken.status, 419, `no CSRF token: ${withoutToken.text}`);

    const chen = new BackendClient(backend.url);
    await chen.signIn(CHEN.id);
    const denied = await chen.request('POST', '/broadcasting/auth', { form: { socket_id: socketId, channel_name: 'presence-warehouse.1' } });
    assert.equal(denied.status, 403, `warehouse 1 for Chen Li: ${denied.text}`);
    const allowed = await chen.request('POST', '/broadcasting/auth', { form: { socket_id: socketId, channel_name: 'presence-warehouse.2' } });
    assert.equal(allowed.status, 200, `warehouse 2 for Chen Li: ${allowed.text}`);
  });

  it('shows viewers and stock changes live', async (t) => {
    const a = await openPage('a-ava');
    const b = await openPage('b-ben');
    try {
      await signIn(a.page, AVA);
      await signIn(b.page, BEN);

      // The backend hands out the two gateways in turn, so presence and
      // events cross from one gateway to the other.
      const portA = await sessionGatewayPort(a.page);
      const portB = await sessionGatewayPort(b.page);
      assert.notEqual(portA, portB, `both pages use gateway port ${portA}`);

      await viewer(a.page, BEN).waitFor({ timeout: DOM_TIMEOUT_MS });
      await viewer(b.page, AVA).waitFor({ timeout: DOM_TIMEOUT_MS });
      assert.equal(await a.page.locator('ul[aria-label="Viewers"] li').count(), 2);
      assert.equal(await b.page.locator('ul[aria-label="Viewers"] li').count(), 2);

      // Survives only if B's page is not reloaded.
      await b.page.evaluate(() => {
        window.sameDocument = true;
      });

      // A changes a stock level, and B's page must show it within the limit.
      const sku = 'BOX-L-60';
      const quantityFromA = 417;
      assert.notEqual(await quantityCell(b.page, sku).textContent(), String(quantityFromA));
      await watchQuantity(b.page, sku, quantityFromA);
      const submittedAt = await submitStock(a.page, sku, quantityFromA);
      const shownAt = await waitForQuantity(b.page, sku, quantityFromA);
      const latency = shownAt - submittedAt;
      t.diagnostic(`A's submit to B's page: ${latency.toFixed(1)} ms (gateway ports ${portA} -> ${portB})`);
      fs.appendFileSync(path.join(runDir, 'latency.txt'), `A submit -> B page: ${latency.toFixed(1)} ms\n`);
      assert.ok(latency >= 0, `B showed ${quantityFromA} before A submitted (${latency} ms)`);
      assert.ok(latency < MAX_UPDATE_LATENCY_MS, `B's page showed the change ${latency.toFixed(1)} ms after A's submit; the limit is ${MAX_UPDATE_LATENCY_MS} ms`);

      assert.equal(await b.page.evaluate(() => window.sameDocument), true, "B's page was reloaded");
      await b.page.locator(`tr[data-sku="${sku}"] [data-testid="updated-by"]`).filter({ hasText: AVA.name }).waitFor({ timeout: DOM_TIMEOUT_MS });
      await b.page.locator(`ol[aria-label="Live updates"] li[data-sku="${sku}"]`).filter({ hasText: `${AVA.name} set ${sku} to ${quantityFromA}` }).waitFor({ timeout: DOM_TIMEOUT_MS });
      await a.page.getByRole('status').filter({ hasText: `Saved: ${sku} is now ${quantityFromA}.` }).waitFor({ timeout: DOM_TIMEOUT_MS });
      assert.equal(await quantityCell(a.page, sku).textContent(), String(quantityFromA));

      // B makes a change of its own. Had toOthers() not excluded A from
      // A's own event, that event would have reached A before B's.
      const otherSku = 'TAPE-48';
      const quantityFromB = 88;
      await watchQuantity(a.page, otherSku, quantityFromB);
      const submittedByB = await submitStock(b.page, otherSku, quantityFromB);
      const shownToA = await waitForQuantity(a.page, otherSku, quantityFromB);
      const latencyBack = shownToA - submittedByB;
      t.diagnostic(`B's submit to A's page: ${latencyBack.toFixed(1)} ms`);
      fs.appendFileSync(path.join(runDir, 'latency.txt'), `B submit -> A page: ${latencyBack.toFixed(1)} ms\n`);
      assert.ok(latencyBack < MAX_UPDATE_LATENCY_MS, `A's page showed B's change ${latencyBack.toFixed(1)} ms after B's submit; the limit is ${MAX_UPDATE_LATENCY_MS} ms`);
      assert.equal(await eventsReceived(a.page), 1, 'A received its own InventoryUpdated event or missed B\'s');
      assert.equal(await eventsReceived(b.page), 1, 'B received its own InventoryUpdated event or missed A\'s');

      await a.page.screenshot({ path: path.join(ARTIFACTS_DIR, 'dashboard-a-ava.png'), fullPage: true });
      await b.page.screenshot({ path: path.join(ARTIFACTS_DIR, 'dashboard-b-ben.png'), fullPage: true });

      // A closes the page. B's list drops A once the gateway detects the closed WebSocket.
      const closedAt = Date.now();
      await a.page.close();
      await viewer(b.page, AVA).waitFor({ state: 'detached', timeout: DOM_TIMEOUT_MS });
      t.diagnostic(`A left B's viewer list ${Date.now() - closedAt} ms after A's page closed`);
      assert.equal(await b.page.locator('ul[aria-label="Viewers"] li').count(), 1);
      await viewer(b.page, BEN).waitFor({ timeout: DOM_TIMEOUT_MS });
      await b.page.screenshot({ path: path.join(ARTIFACTS_DIR, 'dashboard-b-ben-after-a-left.png'), fullPage: true });

      assert.deepEqual(a.page.pageErrors, [], "errors thrown in A's page");
      assert.deepEqual(b.page.pageErrors, [], "errors thrown in B's page");
      const consoleErrors = (page) => page.consoleLines.filter((line) => line.startsWith('[error]'));
      assert.deepEqual(consoleErrors(a.page), [], "console errors in A's page");
      assert.deepEqual(consoleErrors(b.page), [], "console errors in B's page");
    } finally {
      savePageRecords(a.page);
      savePageRecords(b.page);
      await a.context.close();
      await b.context.close();
    }
  });

  it('leaves a warehouse on switch and sign-out', async () => {
    const a = await openPage('switch-ava');
    const c = await openPage('switch-chen');
    try {
      await signIn(a.page, AVA);
      await signIn(c.page, CHEN);

      // Chen Li may open Leeds only, so the picker offers nothing else.
      const chenWarehouses = await c.page.getByLabel('Warehouse').locator('option').allTextContents();
      assert.deepEqual(chenWarehouses, ['Leeds']);
      assert.match(c.page.url(), /[?&]warehouse=2\b/);

      // Ava opens Leeds too and Chen sees her join.
      await a.page.getByLabel('Warehouse').selectOption({ label: 'Leeds' });
      await a.page.locator('[data-testid="warehouse"][data-status="ready"]').waitFor({ timeout: DOM_TIMEOUT_MS });
      await viewer(c.page, AVA).waitFor({ timeout: DOM_TIMEOUT_MS });
      await viewer(a.page, CHEN).waitFor({ timeout: DOM_TIMEOUT_MS });
      assert.equal(await a.page.locator('tr[data-sku="WRAP-500"]').count(), 1, "Ava's table does not show the Leeds stock");

      // Back to Rotterdam: Echo.leave unsubscribes, and Chen sees Ava leave.
      await a.page.getByLabel('Warehouse').selectOption({ label: 'Rotterdam' });
      await viewer(c.page, AVA).waitFor({ state: 'detached', timeout: DOM_TIMEOUT_MS });
      await a.page.locator('tr[data-sku="BOX-S-30"]').waitFor({ timeout: DOM_TIMEOUT_MS });

      // A reload keeps the session and the open warehouse.
      await c.page.reload();
      await c.page.locator('[data-testid="warehouse"][data-status="ready"]').waitFor({ timeout: DOM_TIMEOUT_MS });
      await c.page.getByTestId('signed-in-user').filter({ hasText: CHEN.name }).waitFor({ timeout: DOM_TIMEOUT_MS });
      await viewer(c.page, CHEN).waitFor({ timeout: DOM_TIMEOUT_MS });

      // Signing out closes Echo's connection and shows the sign-in form again.
      await a.page.getByLabel('Warehouse').selectOption({ label: 'Leeds' });
      await viewer(c.page, AVA).waitFor({ timeout: DOM_TIMEOUT_MS });
      await a.page.getByRole('button', { name: 'Sign out' }).click();
      await a.page.getByRole('button', { name: 'Sign in' }).waitFor({ timeout: DOM_TIMEOUT_MS });
      await viewer(c.page, AVA).waitFor({ state: 'detached', timeout: DOM_TIMEOUT_MS });
      const session = await a.page.evaluate(async () => (await fetch('/api/session')).json());
      assert.equal(session.user, null);

      assert.deepEqual(a.page.pageErrors, [], "errors thrown in Ava's page");
      assert.deepEqual(c.page.pageErrors, [], "errors thrown in Chen's page");
    } finally {
      savePageRecords(a.page);
      savePageRecords(c.page);
      await a.context.close();
      await c.context.close();
    }
  });
});
