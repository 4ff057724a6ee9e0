/**
 * Bed: sessions created on each side of a partition reach the other side after the heal, with
 * nodes started one after another (issue 21's two-way merge: before the rejoin work, h1 and h2
 * never received h3's session, because a node pulled only from members that started before it).
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { bedUnavailable, countOf, NetBed } from '../helpers/netbed.js';
import { waitFor } from '../helpers/wait.js';

const DROP = 2000;
const skip = await bedUnavailable(['nft']);
let bed: NetBed | undefined;
after(() => bed?.destroy());

test('bed: after a partition heals, every node holds and serves the sessions made on both sides', {
  skip,
}, async () => {
  const b = (bed = await NetBed.create({ nodes: 3, dropTimeMs: DROP })); // nodes start one after another
  await b.waitView(b.fullMesh(), 'the full cluster', 15_000);
  await b.cut(3);
  await b.waitView({ 1: [2], 2: [1], 3: [] }, 'each side to remove the other', 5 * DROP);
  const left = (await b.get(1, '/app/counter')).session!;
  await b.get(1, '/app/counter', left);
  const right = (await b.get(3, '/app/counter')).session!;
  await b.get(3, '/app/counter', right);
  await b.get(3, '/app/counter', right);
  await b.heal();
  await b.waitView(b.fullMesh(), 'membership after the heal', 5 * DROP);
  // Replication alone must bring them (no read first: a read could fetch on a miss).
  const held = async (k: number) =>
    ((await b.stats(k)).sessions as { context: string; activeSessions: number }[]).find((m) => m.context === '/app')
      ?.activeSessions;
  await waitFor(
    async () => (await Promise.all([1, 2, 3].map(held))).every((n) => n === 2),
    'both sessions everywhere',
    {
      timeoutMs: 4 * DROP,
      intervalMs: 100,
    },
  );
  await b.kill(1); // the creators die: h2 serves what it merged
  await b.kill(3);
  assert.equal(countOf((await b.get(2, '/app/read', left)).body), 2);
  assert.equal(countOf((await b.get(2, '/app/read', right)).body), 3);
});
