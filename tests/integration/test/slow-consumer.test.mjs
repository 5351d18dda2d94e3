// A client that stops reading: with max_outbound_queue_bytes at 64 KiB, the
// gateway closes it with 4100 and drops its queue. A client on the same
// gateway that keeps reading receives every event of the stream in time,
// and the gateway's memory does not grow with the stream.
//
// The slow client is a raw `ws` client whose socket is paused, so nothing
// is read from the network. The kernel's socket buffers fill first (2 to
// 4 MB on loopback here), then the gateway's queue for the client, until
// it passes the limit.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import { after, before, describe, it } from 'node:test';

import { startCluster } from '../lib/cluster.mjs';
import { RawClient } from '../lib/raw-client.mjs';
import { waitUntil } from '../lib/wait.mjs';

const QUEUE_LIMIT_BYTES = 65536;
const CHANNEL = 'slow-consumer-stream';
// Event data of about 9 KB, under the default max_event_payload_bytes
// (10240).
const PADDING = 'x'.repeat(9000);
// 2200 events of about 9 KB: about 20 MB, several times what the loopback
// socket buffers take in before the gateway queues anything for the slow
// client (2 to 4 MB here).
const EVENTS = 2200;
// One trigger at a time with this pause after each keeps the stream at
// about 2 to 3 MB/s, in events that arrive one by one. The limit counts
// what the gateway holds for a client beyond its socket buffers, so a
// client that reads more slowly than the stream for long enough is closed
// too. The pause keeps the reading client, which shares this busy Node.js
// process, well clear of that.
const PUBLISH_INTERVAL_MS = 3;
// Maximum time from a trigger's 200 response to the reading client's
// receipt of its event. Generous for the sanitizer build on a shared 2-core
// machine, where the slowest delivery measured was 23 ms.
const MAX_DELIVERY_MS = 3000;
// Largest growth of the gateway's peak RSS (VmHWM) over the whole stream.
// Each event is one shared buffer of about 9 KB, freed once written to the
// reading client, and the slow client may keep at most 64 KiB queued before
// it is dropped. What remains is allocator caching and, in the sanitizer
// build, its quarantine of freed memory, capped at 4 MB for this gateway
// (ASAN_OPTIONS below). Without the queue limit, the slow client's queue
// would keep alive all of the stream that its socket buffers cannot take.
// Measured with the sanitizer build: about 5 MB of growth with the limit,
// 26 MB with the limit raised to 1 GiB.
const MAX_RSS_GROWTH_KB = 12 * 1024;

/** VmRSS and VmHWM (peak RSS) of process `pid` in kB, from /proc/<pid>/status. */
function memoryOf(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name) => {
    const match = status.match(new RegExp(`^${name}:\\s+(\\d+) kB$`, 'm'));
    if (!match) {
      throw new Error(`/proc/${pid}/status has no ${name} line`);
    }
    return Number(match[1]);
  };
  return { rssKb: field('VmRSS'), peakKb: field('VmHWM') };
}

/** Value of the Prometheus counter or gauge `name` in the gateway's /metrics. */
async function metric(port, name) {
  const response = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(5000) });
  const text = await response.text();
  const line = text.split('\n').find((candidate) => candidate.startsWith(`${name} `));
  if (line === undefined) {
    throw new Error(`GET /metrics on port ${port} has no ${name}:\n${text}`);
  }
  return Number(line.split(' ')[1]);
}

function eventData(seq) {
  return JSON.stringify({ seq, padding: PADDING });
}

describe('slow consumer', { timeout: 240000 }, () => {
  let cluster;
  const clients = [];

  before(async () => {
    // A small quarantine keeps AddressSanitizer from holding on to tens of
    // MB of freed event buffers, so RSS shows what the gateway keeps alive.
    // Later options override earlier ones.
    const asanOptions = [process.env.ASAN_OPTIONS, 'quarantine_size_mb=4'].filter(Boolean).join(':');
    cluster = await startCluster('slow-consumer', {
      gateways: 1,
      env: { HERALD_MAX_OUTBOUND_QUEUE_BYTES: String(QUEUE_LIMIT_BYTES), ASAN_OPTIONS: asanOptions },
    });
  });

  after(async () => {
    for (const client of clients) {
      client.close();
    }
    if (cluster) {
      await cluster.stop();
    }
  });

  it('closes the slow client only', async (t) => {
    const port = cluster.gatewayPort(0);
    const gatewayPid = cluster.gateways[0].process.pid;
    const sdk = cluster.sdk();

    const reader = await RawClient.connect(cluster.gatewayUrl(0), { name: 'reading client' });
    clients.push(reader);
    await reader.subscribe(CHANNEL);
    const slow = await RawClient.connect(cluster.gatewayUrl(0), { name: 'slow client' });
    clients.push(slow);
    await slow.subscribe(CHANNEL);

    // Warm up: one event reaches both clients before the measurement.
    await sdk.trigger(CHANNEL, 'big', eventData(0));
    for (const client of [reader, slow]) {
      await client.waitForFrame((frame) => frame.event === 'big' && JSON.parse(frame.data).seq === 0, {
        what: 'the warm-up event',
      });
    }
    const readerSince = reader.mark();
    const before = memoryOf(gatewayPid);
    assert.equal(await metric(port, 'herald_gateway_slow_consumers_closed_total'), 0, 'slow consumers closed before the stream');

    slow.socket.pause();

    // receivedAt[seq]: when the reading client got the event.
    const receivedAt = [];
    reader.inbox.onItem = (item) => {
      if (item.frame?.event === 'big') {
        receivedAt[JSON.parse(item.frame.data).seq] = performance.now();
      }
    };
    // acceptedAt[seq]: when the relay returned 200 for the event. One
    // trigger at a time, so events arrive one by one.
    const acceptedAt = [];
    const lastSeq = EVENTS;
    let nextSeq = 1;
    const publishing = (async () => {
      for (; nextSeq <= lastSeq; nextSeq += 1) {
        await sdk.trigger(CHANNEL, 'big', eventData(nextSeq));
        acceptedAt[nextSeq] = performance.now();
        await new Promise((resolve) => setTimeout(resolve, PUBLISH_INTERVAL_MS));
      }
    })();

    // The gateway counts the slow client as soon as its queue passes the
    // limit. Reading again then lets the close frame through.
    await waitUntil(async () => (await metric(port, 'herald_gateway_slow_consumers_closed_total')) >= 1, {
      timeout: 60000,
      interval: 100,
      what: 'herald_gateway_slow_consumers_closed_total to reach 1',
    });
    const closedAtSeq = nextSeq - 1;
    slow.socket.resume();
    const { code, reason } = await slow.waitForClose(20000);
    assert.equal(code, 4100, `slow client's close code (reason "${reason}")`);

    await publishing;
    await waitUntil(() => receivedAt.filter(Boolean).length === lastSeq, {
      timeout: 20000,
      what: `the reading client to receive all ${lastSeq} events (has ${receivedAt.filter(Boolean).length})`,
    });
    const after = memoryOf(gatewayPid);

    // The reading client got every event once and in order, each within
    // MAX_DELIVERY_MS of the relay accepting it.
    const seqs = reader.events('big', { channel: CHANNEL, since: readerSince }).map((item) => JSON.parse(item.frame.data).seq);
    assert.deepEqual(seqs, Array.from({ length: lastSeq }, (_, index) => index + 1), 'events the reading client received');
    let slowest = { seq: 0, delayMs: 0 };
    for (let seq = 1; seq <= lastSeq; seq += 1) {
      const delayMs = receivedAt[seq] - acceptedAt[seq];
      if (delayMs > slowest.delayMs) {
        slowest = { seq, delayMs };
      }
    }
    assert.ok(slowest.delayMs < MAX_DELIVERY_MS, `seq ${slowest.seq} reached the reading client ${Math.round(slowest.delayMs)} ms after the relay accepted it`);
    assert.ok(reader.isOpen, 'the reading client is still connected');

    assert.equal(await metric(port, 'herald_gateway_slow_consumers_closed_total'), 1, 'slow consumers closed');
    assert.equal(await metric(port, 'herald_gateway_connections'), 1, 'open connections after the slow client left');

    const growthKb = after.peakKb - before.rssKb;
    t.diagnostic(
      `slow client closed after about seq ${closedAtSeq} of ${lastSeq} (${Math.round((closedAtSeq * 9.1) / 1024)} MB); ` +
        `slowest delivery ${Math.round(slowest.delayMs)} ms; gateway RSS ${before.rssKb} kB before, ${after.rssKb} kB after, ` +
        `peak ${after.peakKb} kB (peak before the stream ${before.peakKb} kB)`,
    );
    assert.ok(growthKb < MAX_RSS_GROWTH_KB, `gateway peak RSS grew by ${growthKb} kB over a ${Math.round((lastSeq * 9.1) / 1024)} MB stream`);

    cluster.assertAllRunning();
  });
});
