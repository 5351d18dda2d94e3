// User authentication (pusher:signin), signed by the `pusher` Node SDK's
// authenticateUser, and the #server-to-user-<id> channel that the SDK's
// sendToUser publishes to through the relay.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import Pusher from 'pusher';

import { startCluster } from '../lib/cluster.mjs';
import { RawClient } from '../lib/raw-client.mjs';

// app-1 allows connections that never sign in; app-2 requires sign-in
// within one second.
const APPS = [
  { id: 'app-1', key: 'app-key', secret: 'app-secret' },
  { id: 'app-2', key: 'key-2', secret: 'secret-2', enable_user_authentication: true, user_authentication_timeout: 1 },
];
const ALICE = { id: '7', user_info: { name: 'Alice ✓' } };

let cluster;
const clients = [];

async function connect(gatewayIndex, name, appKey = 'app-key') {
  const client = await RawClient.connect(cluster.gatewayUrl(gatewayIndex, { appKey }), { name });
  clients.push(client);
  return client;
}

/** Sends pusher:signin with `signature` ({ auth, user_data }) and returns the first reply. */
async function signIn(client, signature) {
  const since = client.mark();
  client.send({ event: 'pusher:signin', data: signature });
  const item = await client.waitForFrame(
    (frame) => frame.event === 'pusher:signin_success' || frame.event === 'pusher:error',
    { since, what: 'a reply to pusher:signin' },
  );
  return item.frame;
}

describe('user sign-in', () => {
  before(async () => {
    cluster = await startCluster('signin', { env: { HERALD_APPS: JSON.stringify(APPS) } });
  });

  after(async () => {
    for (const client of clients) {
      client.close();
    }
    if (cluster) {
      try {
        cluster.assertAllRunning();
      } finally {
        await cluster.stop();
      }
    }
  });

  it('returns the exact user_data', async () => {
    const client = await connect(0, 'alice');
    const signature = cluster.sdk().authenticateUser(client.socketId, ALICE);
    const reply = await signIn(client, signature);
    assert.equal(reply.event, 'pusher:signin_success', JSON.stringify(reply));
    assert.equal(typeof reply.data, 'string', 'signin_success data must be a JSON-encoded string');
    assert.equal(JSON.parse(reply.data).user_data, signature.user_data);
  });

  it('rejects a bad signature', async () => {
    const client = await connect(0, 'forger');
    const forger = new Pusher({ appId: 'app-1', key: 'app-key', secret: 'not-the-secret' });
    const reply = await signIn(client, forger.authenticateUser(client.socketId, ALICE));
    assert.equal(reply.event, 'pusher:error');
    await client.ping();
    assert.ok(client.isOpen, 'an app that does not require sign-in keeps the connection');
  });

  it('delivers sendToUser to the signed-in user', async () => {
    const alice = await connect(1, 'alice on gateway 2');
    const stranger = await connect(0, 'stranger');
    const reply = await signIn(alice, cluster.sdk().authenticateUser(alice.socketId, ALICE));
    assert.equal(reply.event, 'pusher:signin_success', JSON.stringify(reply));

    await alice.subscribe(`#server-to-user-${ALICE.id}`, { auth: '' });
    const since = stranger.mark();
    stranger.send({ event: 'pusher:subscribe', data: { channel: `#server-to-user-${ALICE.id}`, auth: '' } });
    const refused = await stranger.waitForEvent('pusher:subscription_error', { channel: `#server-to-user-${ALICE.id}`, since });
    assert.equal(refused.frame.data.status, 401);

    const response = await cluster.sdk().sendToUser(ALICE.id, 'notice', { text: 'für dich' });
    assert.equal(response.status, 200);
    const item = await alice.waitForEvent('notice', { channel: `#server-to-user-${ALICE.id}` });
    assert.deepEqual(JSON.parse(item.frame.data), { text: 'für dich' });
    await stranger.ping();
    assert.equal(stranger.events('notice').length, 0);
  });

  it('closes unsigned connections with 4009 when required', async () => {
    // Both connect together. The lurker's close marks the sign-in deadline,
    // which the member, signed in by then, must outlive.
    const [lurker, member] = await Promise.all([connect(0, 'lurker', 'key-2'), connect(0, 'member', 'key-2')]);
    const sdk = cluster.sdk({ appId: 'app-2', key: 'key-2', secret: 'secret-2' });
    const reply = await signIn(member, sdk.authenticateUser(member.socketId, ALICE));
    assert.equal(reply.event, 'pusher:signin_success', JSON.stringify(reply));

    const { code } = await lurker.waitForClose(8000);
    assert.equal(code, 4009);
    await member.ping();
    assert.ok(member.isOpen, 'the signed-in connection was closed');
  });
});
