/**
 * Bed: a member back from a pause or a partition is merged both ways (issue 21, "A merge that does
 * not happen today"), across network namespaces with a cluster key, nodes started one after the
 * other (which made the old merge run one way only).
 */
import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import { bedUnavailable, countOf, NetBed } from '../helpers/netbed.js';
import { waitFor } from '../helpers/wait.js';

const skip = await bedUnavailable(['nft']);
const DROP = 2000;

// biome-ignore lint/suspicious/noExplicitAny: stats JSON
type Stats = any;
const manager = (s: Stats) => s.sessions[0] as { activeSessions: number; lateMemberMerges: number; conflicts: number };

async function allStats(bed: NetBed, ks: number[]): Promise<Stats[]> {
  return Promise.all(ks.map((k) => bed.stats(k)));
}

describe('bed: rejoin merges', { skip }, () => {
  let bed: NetBed | undefined;
  afterEach(async () => {
    await bed?.destroy();
    bed = undefined;
  });

  test('partition: both sides create, write, invalidate; after the heal every node holds the latest', async (t) => {
    bed = await NetBed.create({ nodes: 3, membership: 'multicast', dropTimeMs: DROP });
    const b = bed;
    await b.waitView(b.fullMesh(), 'the full cluster', 15_000);
    const both = (await b.get(1, '/app/counter')).session!;
    const doomed = (await b.get(1, '/app/counter')).session!;
    await waitFor(async () => manager(await b.stats(3)).activeSessions === 2, 'h3 to hold both sessions', {
      timeoutMs: 10_000,
      intervalMs: 50,
    });

    await b.cut(3);
    await b.waitView({ 1: [2], 2: [1], 3: [] }, 'each side to remove the other', 5 * DROP);
    const left = (await b.get(1, '/app/counter')).session!;
    assert.equal(countOf((await b.get(1, '/app/counter', left)).body), 2);
    const right = (await b.get(3, '/app/counter')).session!;
    await b.get(3, '/app/counter', right);
    assert.equal(countOf((await b.get(3, '/app/counter', right)).body), 3);
    assert.equal(countOf((await b.get(1, '/app/counter', both)).body), 2);
    assert.equal(countOf((await b.get(3, '/app/counter', both)).body), 2);
    assert.match((await b.get(1, '/app/invalidate', doomed)).body, /invalidated=1/);

    const healAt = Date.now();
    await b.heal();
    const converged = await b.waitView(b.fullMesh(), 'membership after the heal', 5 * DROP);
    assert.ok(converged <= 2 * DROP, `membership whole in ${converged} ms`);
    // left, right and both everywhere; doomed nowhere.
    await waitFor(
      async () =>
        (await allStats(b, [1, 2, 3])).every(
          (s) => manager(s).activeSessions === 3 && manager(s).lateMemberMerges >= 1,
        ),
      'every node to hold the three live sessions',
      { timeoutMs: 5 * DROP, intervalMs: 100 },
    );
    const stats = await allStats(b, [1, 2, 3]);
    t.diagnostic(
      `merged ${Date.now() - healAt} ms after the heal; conflicts ${stats.map((s) => manager(s).conflicts)}`,
    );
    assert.ok(
      stats.some((s) => manager(s).conflicts > 0),
      'the attribute written on both sides is a conflict',
    );

    // Failover: both creators die; h2 serves everything at its latest value, and not the invalidated one.
    await Promise.all([b.kill(1), b.kill(3)]);
    await b.waitView({ 2: [] }, 'h2 alone', 5 * DROP);
    assert.equal(countOf((await b.get(2, '/app/read', left)).body), 2);
    assert.equal(countOf((await b.get(2, '/app/read', right)).body), 3);
    assert.equal(countOf((await b.get(2, '/app/read', both)).body), 2);
    assert.equal(countOf((await b.get(2, '/app/read', doomed)).body), 0, 'the invalidated session did not come back');
  });

  test('pause: h3 frozen until dropped misses a session, gets it on resume, serves it after a failover', async () => {
    bed = await NetBed.create({ nodes: 3, membership: 'multicast', dropTimeMs: DROP });
    const b = bed;
    await b.waitView(b.fullMesh(), 'the full cluster', 15_000);
    b.pause(3);
    try {
      await b.waitView({ 1: [2], 2: [1] }, 'h1 and h2 to drop frozen h3', 5 * DROP);
      const s = (await b.get(1, '/app/counter')).session!;
      await b.get(1, '/app/counter', s);
      assert.equal(countOf((await b.get(1, '/app/counter', s)).body), 3);
      b.resume(3);
      await waitFor(async () => manager(await b.stats(3)).activeSessions >= 1, 'h3 to receive it without a write', {
        timeoutMs: 5 * DROP,
        intervalMs: 50,
      });
      await b.kill(1);
      await b.waitView({ 2: [3], 3: [2] }, 'h1 gone', 5 * DROP);
      assert.equal(countOf((await b.get(3, '/app/read', s)).body), 3);
    } finally {
      b.resume(3);
    }
  });
});
