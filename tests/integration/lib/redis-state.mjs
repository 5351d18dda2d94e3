// Waits on the state that gateways keep in the cluster's Redis: the hashes
// of per-gateway counts and the heartbeat keys. Tests use them to know that
// the cluster has seen a change before they act on it, instead of sleeping.

import { EVENT_TIMEOUT_MS, waitUntil } from './wait.mjs';

function sumOfValues(hash) {
  return Object.values(hash).reduce((total, value) => total + Number.parseInt(value, 10), 0);
}

/**
 * Waits until the values of the Redis hash `key` add up to `expected` and
 * returns the hash. Gateways keep one field per node in these hashes, for
 * example <prefix>conns:{<app id>} and <prefix>subs:{<app id>:<channel>}.
 */
export async function waitForHashTotal(cluster, key, expected, { timeout = EVENT_TIMEOUT_MS } = {}) {
  let hash = {};
  await waitUntil(
    async () => {
      hash = await cluster.redisHash(key);
      return sumOfValues(hash) === expected;
    },
    { timeout, interval: 20, what: `the values of ${key} to add up to ${expected} (last: ${JSON.stringify(hash)})` },
  );
  return hash;
}

/**
 * Waits until gateway `index` has sent `count` heartbeats after this call.
 *
 * Each heartbeat runs the connection-count script and then refreshes the
 * key <prefix>node:<node id> with SET … PX, both on one Redis connection,
 * so a rise of the key's PTTL shows that a heartbeat has run. The default
 * of two heartbeats makes sure that the count script of a whole heartbeat
 * ran after the call, and that the gateway had a full interval to read its
 * reply.
 */
export async function waitForHeartbeats(cluster, index, { count = 2, timeout = EVENT_TIMEOUT_MS } = {}) {
  const key = `${cluster.prefix}node:${await cluster.gatewayNodeId(index)}`;
  let previous = Number.parseInt(await cluster.redisCli('PTTL', key), 10);
  let seen = 0;
  await waitUntil(
    async () => {
      const current = Number.parseInt(await cluster.redisCli('PTTL', key), 10);
      if (current > previous) {
        seen += 1;
      }
      previous = current;
      return seen >= count;
    },
    { timeout, interval: 20, what: `${count} heartbeats of gateway ${index + 1} (PTTL ${key}, seen ${seen})` },
  );
}
