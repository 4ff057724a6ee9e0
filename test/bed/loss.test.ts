/**
 * 10 % packet loss and 20 ms delay on one node's link (h3: 10 % of the frames it sends and,
 * independently, 10 % of those it receives, dropped on the bridge; every packet it sends held
 * 20 ms) for a bounded period under light load: no member is removed, and every write on h3 still
 * reaches h1. Reports the replication latency (write request to h3 → h1 received it) without
 * and with the faults.
 *
 * The kernel here has no netem: the delay is an NFQUEUE held by scripts/netbed-delay.py
 * (NetBed.delay), the loss nftables `numgen random` on the bridge.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { bedUnavailable, countOf, NetBed } from '../helpers/netbed.js';
import { waitFor } from '../helpers/wait.js';

const skip = await bedUnavailable(['nft', 'iptables', 'python3']);
const DROP = 2000;
const LOSS = 10;
const DELAY = 20;
/** How long the loss lasts: several dropTimes, so that a false removal would have had its chances. */
const PERIOD = 4 * DROP;

/** Replication messages (session created or changed) node `k` has received for /app. */
async function received(bed: NetBed, k: number): Promise<number> {
  const apps = (await bed.stats(k)).sessions as { context: string; received: Record<string, number> }[];
  const r = apps.find((a) => a.context === '/app')?.received ?? {};
  return (r.created ?? 0) + (r.delta ?? 0);
}

/**
 * Writes on h3 for `ms` and measures, for each write, the time from its request until h1 has
 * received the replication (h1's own counters, read locally: no request on h1 touches the
 * session, so no ownership exchange with h3 is timed). Then h1 must serve the latest count.
 */
async function replicate(bed: NetBed, cookie: string, ms: number): Promise<number[]> {
  const latencies: number[] = [];
  const end = Date.now() + ms;
  let count = 0;
  while (Date.now() < end) {
    const before = await received(bed, 1);
    // From the request's start: its replication cannot leave h3 earlier, however late the answer.
    const written = Date.now();
    const res = await bed.get(3, '/app/counter', cookie);
    assert.equal(res.status, 200, res.body);
    count = countOf(res.body);
    await waitFor(async () => (await received(bed, 1)) > before, `h1 to receive count=${count}`, {
      timeoutMs: 4 * DROP,
      intervalMs: 2,
    });
    latencies.push(Date.now() - written);
  }
  const served = await bed.get(1, '/app/read', cookie);
  assert.equal(countOf(served.body), count, `h1 serves the latest count: ${served.body}`);
  return latencies;
}

function summary(xs: number[]): string {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  return `n=${s.length} p50=${q(0.5)} ms p95=${q(0.95)} ms max=${s[s.length - 1]} ms`;
}

describe(`bed: ${LOSS} % loss and ${DELAY} ms delay on one node's link`, { skip }, () => {
  let bed: NetBed | undefined;
  before(async () => {
    bed = await NetBed.create({ nodes: 3, membership: 'multicast', dropTimeMs: DROP });
  });
  after(async () => {
    await bed?.destroy();
  });

  test('no member is removed and replication continues', async (t) => {
    const t0 = Date.now();
    const b = bed!;
    await b.waitView(b.fullMesh(), 'the full cluster', 15_000);
    const cookie = (await b.get(3, '/app/counter')).session!;
    const baseline = await replicate(b, cookie, 1_000);

    const lossAt = Date.now();
    await b.loss(3, LOSS);
    let lossy: number[];
    let dropped = 0;
    let delayed = 0;
    try {
      await b.delay(3, DELAY);
      lossy = await replicate(b, cookie, PERIOD);
      dropped = await b.net.lossDropped();
      delayed = await b.delayedPackets(3);
    } finally {
      await b.loss(3, 0);
      await b.delay(3, 0);
    }
    const removals = b.hosts.flatMap((h) =>
      b.logsSince(h.k, 'member removed', lossAt).map((l) => `h${h.k}: ${l.member}`),
    );
    const suspicions = b.hosts.flatMap((h) =>
      b.logsSince(h.k, 'member missed heartbeats but answers over TCP: kept, and watched', lossAt),
    ).length;
    t.diagnostic(`replication h3 → h1 without loss: ${summary(baseline)}`);
    t.diagnostic(
      `replication h3 → h1 with ${LOSS} % loss each way and ${DELAY} ms delay out of h3 for ${PERIOD} ms: ${summary(lossy)}`,
    );
    t.diagnostic(`frames dropped on h3's link: ${dropped}; packets delayed: ${delayed}`);
    assert.ok(dropped > 0, 'the loss rules dropped frames');
    assert.ok(delayed > 0, 'the delay rule queued packets');
    // Every replication crossed the delay: none was faster than it.
    assert.ok(Math.min(...lossy) >= DELAY, `replication took at least the delay: ${summary(lossy)}`);
    t.diagnostic(`false removals: ${removals.length}; suspicions cleared by the failure detector: ${suspicions}`);
    assert.deepEqual(removals, [], 'no member removed under loss');
    assert.ok(b.viewIs(b.fullMesh()), `membership whole: ${b.describeViews()}`);
    assert.ok(lossy.length >= 10, `replication went on (${lossy.length} writes replicated)`);
    t.diagnostic(`test took ${Date.now() - t0} ms`);
  });
});
