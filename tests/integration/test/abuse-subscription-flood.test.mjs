// One connection that subscribes to thousands of public channels must not
// stall its gateway for everyone else, nor cost it more CPU per channel the
// more channels it already has. Public channels need no authorization, so
// any visitor can send such a flood.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, describe, it } from 'node:test';

import { startCluster } from '../lib/cluster.mjs';
import { RawClient } from '../lib/raw-client.mjs';

// About 1.5 MB of subscribe frames. Short names make each frame cheap to
// handle, and such a flood delays the neighbour the most.
const LATENCY_FLOOD_CHANNELS = 30000;
// A neighbour's event normally arrives within milliseconds. The limit
// leaves room for a slow CI machine and the sanitizer build.
const MAX_NEIGHBOUR_LATENCY_MS = 3000;
const PROBE_INTERVAL_MS = 250;

// Two floods, the second twice the size of the first. Each channel name is
// 157 characters (the limit is 164) and shares its first 150 with the
// others, the worst case for comparing names.
const SMALL_FLOOD_CHANNELS = 5000;
const SHARED_PREFIX = `flood-${'x'.repeat(144)}`;
// Twice the channels should cost about twice the CPU. A cost that grows
// with the square of the count gives about 4.
const MAX_CPU_GROWTH = 3;

const FLOOD_DEADLINE_MS = 120000;
const CLOCK_TICKS_PER_SECOND = 100; // Linux USER_HZ, the unit of /proc/<pid>/stat times

let cluster;
const clients = [];

async function connect(name) {
  const client = await RawClient.connect(cluster.gatewayUrl(0), { name });
  clients.push(client);
  return client;
}

/** Sends one pusher:subscribe per name without waiting for replies. */
function sendSubscribes(client, names) {
  for (const channel of names) {
    client.send({ event: 'pusher:subscribe', data: { channel } });
  }
}

/** Number of subscribe replies (success or error) `client` has received. */
function subscribeReplies(client) {
  return (
    client.events('pusher_internal:subscription_succeeded').length +
    client.events('pusher:subscription_error').length +
    client.events('pusher:error').length
  );
}

/** CPU time in seconds that gateway 0 has used so far. */
function gatewayCpuSeconds() {
  const stat = fs.readFileSync(`/proc/${cluster.gateways[0].process.pid}/stat`, 'utf8');
  const fields = stat.split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
}

/** Subscribes a new connection to `names` and returns the gateway CPU seconds until every reply arrived. */
async function floodCpuSeconds(label, names) {
  const flooder = await connect(label);
  const before = gatewayCpuSeconds();
  sendSubscribes(flooder, names);
  const deadline = Date.now() + FLOOD_DEADLINE_MS;
  while (subscribeReplies(flooder) < names.length && flooder.isOpen && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, PROBE_INTERVAL_MS));
  }
  assert.equal(subscribeReplies(flooder), names.length, `${label}: not every subscribe got a reply`);
  // The connection stays open until after(), so that closing it does not
  // add to the CPU time of the next flood.
  return gatewayCpuSeconds() - before;
}

describe('subscription flood from one connection', () => {
  before(async () => {
    cluster = await startCluster('abuse-subscription-flood', { gateways: 1 });
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

  it(
    'keeps delivering to neighbours',
    async () => {
      const neighbour = await connect('neighbour');
      await neighbour.subscribe('flood-neighbour');
      const flooder = await connect('flooder');
      sendSubscribes(
        flooder,
        Array.from({ length: LATENCY_FLOOD_CHANNELS }, (_, index) => `f${index}`),
      );

      // Probe the neighbour until the gateway has replied to every subscribe.
      const latencies = [];
      const deadline = Date.now() + FLOOD_DEADLINE_MS;
      while (subscribeReplies(flooder) < LATENCY_FLOOD_CHANNELS && flooder.isOpen && Date.now() < deadline) {
        const started = Date.now();
        const since = neighbour.mark();
        await cluster.sdk().trigger('flood-neighbour', 'probe', { sent: started });
        await neighbour.waitForEvent('probe', { since, timeout: FLOOD_DEADLINE_MS });
        latencies.push(Date.now() - started);
        await new Promise((resolve) => setTimeout(resolve, PROBE_INTERVAL_MS));
      }
      flooder.close();

      const worst = Math.max(...latencies);
      assert.ok(
        worst <= MAX_NEIGHBOUR_LATENCY_MS,
        `the neighbour's events took up to ${worst} ms (limit ${MAX_NEIGHBOUR_LATENCY_MS} ms) while one ` +
          `connection subscribed to ${LATENCY_FLOOD_CHANNELS} channels; latencies ${latencies.join(', ')} ms`,
      );
    },
  );

  it(
    'costs linear CPU per channel',
    async () => {
      const names = (count, tag) => Array.from({ length: count }, (_, index) => `${SHARED_PREFIX}${tag}${index}`);
      const small = await floodCpuSeconds('small flood', names(SMALL_FLOOD_CHANNELS, 's'));
      const large = await floodCpuSeconds('large flood', names(2 * SMALL_FLOOD_CHANNELS, 'l'));
      const growth = large / Math.max(small, 1 / CLOCK_TICKS_PER_SECOND);
      assert.ok(
        growth <= MAX_CPU_GROWTH,
        `${SMALL_FLOOD_CHANNELS} subscriptions cost ${small.toFixed(2)} s of gateway CPU and ` +
          `${2 * SMALL_FLOOD_CHANNELS} cost ${large.toFixed(2)} s, ${growth.toFixed(1)} times as much`,
      );
    },
  );
});
