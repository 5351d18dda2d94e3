// Watchlists: a signed-in user's user_data may name up to 100 user ids. The
// connection gets their current online state right after signin_success,
// then "online" when a watched user's first signed-in connection anywhere
// in the cluster opens and "offline" when the last one closes, including
// when a gateway dies. Signed with the `pusher` SDK's authenticateUser.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { startCluster } from '../lib/cluster.mjs';
import { RawClient } from '../lib/raw-client.mjs';

let cluster;
const clients = [];

async function connect(gatewayIndex, name) {
  const client = await RawClient.connect(cluster.gatewayUrl(gatewayIndex), { name });
  clients.push(client);
  return client;
}

/** Signs `client` in as `userData`; returns the inbox mark taken before the sign-in. */
async function signIn(client, userData) {
  const since = client.mark();
  client.send({ event: 'pusher:signin', data: cluster.sdk().authenticateUser(client.socketId, userData) });
  await client.waitForFrame((frame) => frame.event === 'pusher:signin_success', { since, what: 'signin_success' });
  return since;
}

/** Waits for a watchlist event naming `name` and returns its user ids. */
async function watchlistEvent(client, name, since) {
  const item = await client.waitForFrame((frame) => {
    if (frame.event !== 'pusher_internal:watchlist_events') return false;
    return JSON.parse(frame.data).events.some((event) => event.name === name);
  }, { since, what: `a watchlist "${name}" event` });
  return JSON.parse(item.frame.data).events.find((event) => event.name === name).user_ids;
}

describe('watchlists', () => {
  before(async () => {
    cluster = await startCluster('watchlist', { env: { HERALD_NODE_TIMEOUT: '2' } });
  });

  after(async () => {
    for (const client of clients) client.close();
    if (cluster) await cluster.stop();
  });

  it('sends the current state after signin', async () => {
    const bob = await connect(1, 'bob');
    await signIn(bob, { id: 'bob' });

    const alice = await connect(0, 'alice');
    const since = await signIn(alice, { id: 'alice', watchlist: ['bob', 'carol'] });
    assert.deepEqual(await watchlistEvent(alice, 'online', since), ['bob']);
    assert.deepEqual(await watchlistEvent(alice, 'offline', since), ['carol']);
  });

  it('reports online once per user across gateways', async () => {
    const watcher = await connect(0, 'watcher');
    await signIn(watcher, { id: 'watcher', watchlist: ['dave'] });

    let since = watcher.mark();
    const daveOne = await connect(1, 'dave on gateway 2');
    await signIn(daveOne, { id: 'dave' });
    assert.deepEqual(await watchlistEvent(watcher, 'online', since), ['dave']);

    // A second connection of dave and then the close of the first one change
    // nothing; the offline event comes only with the last close. The frame
    // count proves that no online or offline event came in between.
    since = watcher.mark();
    const daveTwo = await connect(0, 'dave on gateway 1');
    await signIn(daveTwo, { id: 'dave' });
    daveOne.close();
    daveTwo.close();
    assert.deepEqual(await watchlistEvent(watcher, 'offline', since), ['dave']);
    const between = watcher.inbox.filter((item) => item.frame?.event === 'pusher_internal:watchlist_events', since);
    assert.equal(between.length, 1, `watchlist events after the second sign-in: ${JSON.stringify(between.map((item) => item.frame))}`);
  });

  it('cuts a watchlist over 100 ids with 4302', async () => {
    const client = await connect(0, 'long list');
    const watchlist = Array.from({ length: 101 }, (_, index) => `user-${index}`);
    const since = await signIn(client, { id: 'long-list', watchlist });
    const error = await client.waitForFrame((frame) => frame.event === 'pusher:error', { since, what: 'the 4302 error' });
    assert.equal(error.frame.data.code, 4302);
    const offline = await watchlistEvent(client, 'offline', since);
    assert.equal(offline.length, 100);
    assert.ok(!offline.includes('user-100'), 'the 101st id is dropped');
  });

  it('reports offline when a gateway dies', async () => {
    const watcher = await connect(0, 'watcher of erin');
    await signIn(watcher, { id: 'watcher-2', watchlist: ['erin'] });
    const erin = await connect(1, 'erin');
    let since = watcher.mark();
    await signIn(erin, { id: 'erin' });
    await watchlistEvent(watcher, 'online', since);

    since = watcher.mark();
    await cluster.killGateway(1);
    // The survivor reaps the dead gateway within node_timeout plus one heartbeat.
    assert.deepEqual(await watchlistEvent(watcher, 'offline', since), ['erin']);
  });
});
