// The relay's Pusher HTTP API: accepted requests are delivered, rejected
// ones get the documented status and deliver nothing at all.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { startCluster } from '../lib/cluster.mjs';
import { RawClient } from '../lib/raw-client.mjs';
import { rawPost, signedPost, signedPostAt } from '../lib/relay-request.mjs';

const CHANNEL = 'public-relay';
const OTHER_CHANNEL = 'public-relay-2';
const DEFAULT_MAX_EVENT_PAYLOAD_BYTES = 10240;
const DEFAULT_MAX_REQUEST_BODY_BYTES = 262144;

let cluster;
let watcher;
let markerCount = 0;

function eventBody(fields) {
  return JSON.stringify({ name: 'should-not-arrive', data: '{"x":1}', channel: CHANNEL, ...fields });
}

/**
 * Runs `rejectedRequests` (which asserts the statuses), then triggers a
 * marker on both watched channels and checks that the watcher received the
 * markers and nothing else since the start.
 */
async function assertNothingDelivered(rejectedRequests) {
  const since = watcher.mark();
  await rejectedRequests();

  markerCount += 1;
  const marker = `marker-${markerCount}`;
  await cluster.sdk().trigger([CHANNEL, OTHER_CHANNEL], marker, { marker: markerCount });
  await watcher.waitForEvent(marker, { channel: CHANNEL, since });
  await watcher.waitForEvent(marker, { channel: OTHER_CHANNEL, since });
  const unexpected = watcher.inbox
    .filter((item) => item.frame?.event !== marker, since)
    .map((item) => item.text);
  assert.deepEqual(unexpected, [], 'a rejected request delivered events');
}

function assertStatus(response, status, what) {
  assert.equal(response.status, status, `${what}: expected HTTP ${status}, got ${response.status} ${response.body}`);
}

describe('relay HTTP API', () => {
  before(async () => {
    cluster = await startCluster('relay-api', { gateways: 1 });
    watcher = await RawClient.connect(cluster.gatewayUrl(0), { name: 'watcher' });
    await watcher.subscribe(CHANNEL);
    await watcher.subscribe(OTHER_CHANNEL);
  });

  after(async () => {
    watcher?.close();
    if (cluster) {
      try {
        cluster.assertAllRunning();
      } finally {
        await cluster.stop();
      }
    }
  });

  describe('accepted requests', () => {
    it('accepts "channel" as Pusher PHP SDK 7 sends it', async () => {
      const since = watcher.mark();
      const body = JSON.stringify({ name: 'App\\Events\\OrderShipped', data: '{"order_id":7}', channel: CHANNEL });
      const response = await signedPost(cluster, '/events', body);
      assertStatus(response, 200, 'trigger with "channel"');
      assert.equal(typeof JSON.parse(response.body), 'object');
      const item = await watcher.waitForEvent('App\\Events\\OrderShipped', { channel: CHANNEL, since });
      assert.equal(item.frame.data, '{"order_id":7}');
    });

    it('accepts "channels" as the Node SDK sends it', async () => {
      const since = watcher.mark();
      const response = await cluster.sdk().trigger([CHANNEL, OTHER_CHANNEL], 'both', 'plain');
      assert.equal(response.status, 200);
      assert.equal((await watcher.waitForEvent('both', { channel: CHANNEL, since })).frame.data, 'plain');
      assert.equal((await watcher.waitForEvent('both', { channel: OTHER_CHANNEL, since })).frame.data, 'plain');
    });

    it('accepts data of exactly the payload limit', async () => {
      const since = watcher.mark();
      const data = 'd'.repeat(DEFAULT_MAX_EVENT_PAYLOAD_BYTES);
      const response = await signedPost(cluster, '/events', JSON.stringify({ name: 'at-limit', data, channel: CHANNEL }));
      assertStatus(response, 200, 'data at the limit');
      const item = await watcher.waitForEvent('at-limit', { channel: CHANNEL, since });
      assert.equal(item.frame.data.length, DEFAULT_MAX_EVENT_PAYLOAD_BYTES);
    });
  });

  describe('authentication', () => {
    it('rejects a bad signature with 401', async () => {
      await assertNothingDelivered(async () => {
        const forger = cluster.sdk({ secret: 'wrong-secret' });
        assertStatus(await signedPost(cluster, '/events', eventBody(), { sdk: forger }), 401, 'wrong secret');
        assertStatus(await signedPost(cluster, '/batch_events', JSON.stringify({ batch: [{ name: 'x', data: '1', channel: CHANNEL }] }), { sdk: forger }), 401, 'wrong secret on batch');
      });
    });

    it('rejects a tampered body with 401 or 400', async () => {
      await assertNothingDelivered(async () => {
        const signedBody = eventBody({ data: '{"amount":1}' });
        const sentBody = eventBody({ data: '{"amount":1000}' });
        const path = `/apps/${cluster.app.id}/events`;
        const query = cluster.sdk().createSignedQueryString({ method: 'POST', path, body: signedBody });
        const response = await rawPost(cluster, `${path}?${query}`, sentBody);
        assert.ok([400, 401].includes(response.status), `body_md5 mismatch: expected 400 or 401, got ${response.status} ${response.body}`);
      });
    });

    it('rejects a key that is not the app key with 401', async () => {
      await assertNothingDelivered(async () => {
        const otherKey = cluster.sdk({ key: 'other-key' });
        assertStatus(await signedPost(cluster, '/events', eventBody(), { sdk: otherKey }), 401, 'wrong auth_key');
      });
    });

    it('rejects a request without signature with 401', async () => {
      await assertNothingDelivered(async () => {
        const response = await rawPost(cluster, `/apps/${cluster.app.id}/events`, eventBody());
        assertStatus(response, 401, 'no auth parameters');
      });
    });

    it('rejects a timestamp outside the window with 401', async () => {
      await assertNothingDelivered(async () => {
        const now = Math.floor(Date.now() / 1000);
        assertStatus(await signedPostAt(cluster, '/events', eventBody(), now - 3600), 401, 'timestamp one hour old');
        assertStatus(await signedPostAt(cluster, '/events', eventBody(), now + 3600), 401, 'timestamp one hour ahead');
      });
    });

    it('accepts a timestamp inside the window', async () => {
      const since = watcher.mark();
      const now = Math.floor(Date.now() / 1000);
      const response = await signedPostAt(cluster, '/events', eventBody({ name: 'slightly-old' }), now - 60);
      assertStatus(response, 200, 'timestamp one minute old');
      await watcher.waitForEvent('slightly-old', { channel: CHANNEL, since });
    });

    it('answers an unknown app with 404', async () => {
      await assertNothingDelivered(async () => {
        const stranger = cluster.sdk({ appId: 'no-such-app' });
        await assert.rejects(stranger.trigger(CHANNEL, 'should-not-arrive', {}), (error) => {
          assert.equal(error.status, 404, `expected 404, got ${error.status} ${error.body}`);
          return true;
        });
      });
    });
  });

  describe('validation', () => {
    it('rejects data over the payload limit with 413', async () => {
      await assertNothingDelivered(async () => {
        const data = 'd'.repeat(DEFAULT_MAX_EVENT_PAYLOAD_BYTES + 1);
        assertStatus(await signedPost(cluster, '/events', eventBody({ data })), 413, 'data one byte over the limit');
        const batch = JSON.stringify({ batch: [{ name: 'should-not-arrive', data, channel: CHANNEL }] });
        assertStatus(await signedPost(cluster, '/batch_events', batch), 413, 'batch item data over the limit');
      });
    });

    it('rejects a body over the request limit with 413', async () => {
      await assertNothingDelivered(async () => {
        const data = 'b'.repeat(DEFAULT_MAX_REQUEST_BODY_BYTES + 1);
        assertStatus(await signedPost(cluster, '/events', eventBody({ data })), 413, 'body over the request limit');
      });
    });

    it('rejects invalid JSON with 400', async () => {
      await assertNothingDelivered(async () => {
        assertStatus(await signedPost(cluster, '/events', '{"name":"x","data":'), 400, 'truncated JSON');
        assertStatus(await signedPost(cluster, '/events', '[]'), 400, 'JSON array body');
        assertStatus(await signedPost(cluster, '/events', 'name=x&data=y'), 400, 'form body');
        assertStatus(await signedPost(cluster, '/batch_events', '{"batch":'), 400, 'truncated batch JSON');
      });
    });

    it('rejects missing or mistyped fields with 400', async () => {
      await assertNothingDelivered(async () => {
        const cases = {
          'missing name': { data: '1', channel: CHANNEL },
          'missing data': { name: 'should-not-arrive', channel: CHANNEL },
          'missing channel': { name: 'should-not-arrive', data: '1' },
          'empty channels': { name: 'should-not-arrive', data: '1', channels: [] },
          'name not a string': { name: 42, data: '1', channel: CHANNEL },
          'channels not an array': { name: 'should-not-arrive', data: '1', channels: CHANNEL },
          'name too long': { name: 'n'.repeat(201), data: '1', channel: CHANNEL },
        };
        for (const [what, body] of Object.entries(cases)) {
          assertStatus(await signedPost(cluster, '/events', JSON.stringify(body)), 400, what);
        }
      });
    });

    it('rejects more than 100 channels with 400', async () => {
      await assertNothingDelivered(async () => {
        const channels = [CHANNEL, OTHER_CHANNEL];
        for (let n = 0; n < 99; n += 1) {
          channels.push(`public-extra-${n}`);
        }
        assert.equal(channels.length, 101);
        const response = await signedPost(cluster, '/events', JSON.stringify({ name: 'should-not-arrive', data: '1', channels }));
        assertStatus(response, 400, '101 channels');
      });
    });

    it('accepts exactly 100 channels', async () => {
      const since = watcher.mark();
      const channels = [CHANNEL];
      for (let n = 0; n < 99; n += 1) {
        channels.push(`public-hundred-${n}`);
      }
      const response = await signedPost(cluster, '/events', JSON.stringify({ name: 'hundred', data: '1', channels }));
      assertStatus(response, 200, '100 channels');
      await watcher.waitForEvent('hundred', { channel: CHANNEL, since });
    });

    it('rejects invalid channel names with 400', async () => {
      await assertNothingDelivered(async () => {
        const names = ['has space', 'bad!char', 'ümlaut', '', `public-${'l'.repeat(160)}`];
        for (const name of names) {
          const body = JSON.stringify({ name: 'should-not-arrive', data: '1', channels: [CHANNEL, name] });
          assertStatus(await signedPost(cluster, '/events', body), 400, `channel name ${JSON.stringify(name)}`);
        }
      });
    });

    it('rejects a malformed socket_id with 400', async () => {
      await assertNothingDelivered(async () => {
        for (const socketId of ['abc', '1.2.3', '12', '1.', '.1', '1.2 ', '-1.2']) {
          const response = await signedPost(cluster, '/events', eventBody({ socket_id: socketId }));
          assertStatus(response, 400, `socket_id ${JSON.stringify(socketId)}`);
        }
      });
    });

    it('rejects a whole batch when one item is bad', async () => {
      await assertNothingDelivered(async () => {
        const good = { name: 'should-not-arrive', data: '1', channel: CHANNEL };
        const badItems = {
          'invalid channel': { ...good, channel: 'bad channel' },
          'missing name': { data: '1', channel: OTHER_CHANNEL },
          'bad socket_id': { ...good, channel: OTHER_CHANNEL, socket_id: 'x.y' },
          'missing channel': { name: 'should-not-arrive', data: '1' },
        };
        for (const [what, bad] of Object.entries(badItems)) {
          const body = JSON.stringify({ batch: [good, bad, { ...good, channel: OTHER_CHANNEL }] });
          assertStatus(await signedPost(cluster, '/batch_events', body), 400, `batch with ${what}`);
        }
      });
    });

    it('rejects a batch of more than 10 items with 400', async () => {
      await assertNothingDelivered(async () => {
        const batch = Array.from({ length: 11 }, (_, n) => ({ name: 'should-not-arrive', data: String(n), channel: CHANNEL }));
        assertStatus(await signedPost(cluster, '/batch_events', JSON.stringify({ batch })), 400, '11 batch items');
      });
    });
  });

  it('keeps the gateway and relay running after all rejected requests', async () => {
    cluster.assertAllRunning();
    const since = watcher.mark();
    await cluster.sdk().trigger(CHANNEL, 'still-serving', { ok: true });
    await watcher.waitForEvent('still-serving', { channel: CHANNEL, since });
  });
});
