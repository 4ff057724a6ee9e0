/**
 * Bed: a 2|2 partition under load, healed (issue 21, "Partition into two sides under load" and
 * "sync mode: 0 acknowledged writes lost; async: loss counted and reported"). Four hosts
 * (multicast across the bridge, encrypted), split h1,h2 | h3,h4 on the bridge (silent drops). Load:
 * - own sessions: two clients per host, each writing its own session on its home host in sequence,
 *   before, during and after the partition, and one client per side whose session is created
 *   during it;
 * - shared sessions: created before the split, then written on both sides during it (each side
 *   alternating its two hosts): the same attributes (`count`, `payload`) written concurrently;
 * - invalidated sessions: created before the split, invalidated on one side during it.
 * Every acknowledged write (200 with its count) is accounted for after the heal, where every node
 * reads every session through the probe app's peek (its local copy, no request on the session):
 * all nodes agree; an own session holds its last acknowledged count (0 lost); a shared session
 * holds one side's last count, and the other side's acknowledged writes, lost, are each reported
 * by a `conflict` event naming the session, the attribute and the kept writer (events and the
 * nodes' `conflicts` counters match the collisions exactly); invalidated sessions stay gone;
 * membership converges within 2 × dropTime. Run in sync and in async mode, with the figures.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { bedUnavailable, countOf, NetBed } from '../helpers/netbed.js';
import { type ConflictLine, conflictsOf, type Peek, peek, versions, writeProbeApp } from '../helpers/netbed-probe.js';
import { waitFor } from '../helpers/wait.js';

const skip = await bedUnavailable(['nft']);
const A = [1, 2];
const B = [3, 4];
const ALL = [...A, ...B];
/** Writes of each shared session during the split: [side A, side B] (unequal by ≥ 2, equal, reversed). */
const SHARED_WRITES: [number, number][] = [
  [2, 5],
  [4, 4],
  [6, 3],
];

// biome-ignore lint/suspicious/noExplicitAny: stats JSON
type Stats = any;

interface Ack {
  k: number;
  count: number;
  at: number;
}

/** A client with its own cookie writing `/app/counter` in sequence on the nodes `route(i)` names. */
class Client {
  cookie: string | undefined;
  readonly acks: Ack[] = [];
  /** Writes not acknowledged (no answer or not 200): they may or may not have been applied. */
  readonly unacked: { k: number; at: number; error: string }[] = [];
  readonly broken: string[] = [];
  /** The longest a write took to be acknowledged. */
  maxMs = 0;
  #stop = false;
  #loop: Promise<void> | undefined;

  constructor(
    readonly label: string,
    readonly bed: NetBed,
    readonly route: (i: number) => number,
    cookie?: string,
    /** The count of the session when this client takes it up (another client wrote it before). */
    readonly base = 0,
  ) {
    this.cookie = cookie;
  }

  get last(): number {
    return this.acks.at(-1)?.count ?? this.base;
  }

  /** One write; true when acknowledged. */
  async write(): Promise<boolean> {
    const k = this.route(this.acks.length + this.unacked.length);
    const at = Date.now();
    try {
      // A synchronous write waits for the unreachable side until it is removed: allow for the detection.
      const res = await this.bed.get(k, '/app/counter', this.cookie, 5 * this.bed.options.dropTimeMs);
      if (res.status !== 200) throw new Error(`status ${res.status}: ${res.body.slice(0, 80)}`);
      this.cookie ??= res.session;
      const n = countOf(res.body);
      // +1 on the last acknowledged count, or more by the unacknowledged writes since (applied but unanswered).
      const since = this.unacked.filter((u) => u.at > (this.acks.at(-1)?.at ?? 0)).length;
      if (n < this.last + 1 || n > this.last + 1 + since)
        this.broken.push(`${this.label} on h${k}: count ${n} after ${this.last}`);
      this.acks.push({ k, count: n, at });
      this.maxMs = Math.max(this.maxMs, Date.now() - at);
      return true;
    } catch (err) {
      this.unacked.push({ k, at, error: (err as Error).message });
      return false;
    }
  }

  /** Writes `n` times in sequence (acknowledged or not). */
  async writes(n: number): Promise<void> {
    for (let i = 0; i < n; i++) await this.write();
  }

  /** Writes in a loop until stop(), one every `everyMs`. */
  run(everyMs = 30): void {
    this.#loop = (async () => {
      while (!this.#stop) {
        const at = Date.now();
        await this.write();
        await waitFor(() => Date.now() - at >= everyMs, 'the next write slot', { timeoutMs: 10_000, intervalMs: 5 });
      }
    })();
  }

  async stop(): Promise<void> {
    this.#stop = true;
    await this.#loop;
  }
}

/** The peeks of session `cookie` on every node. */
const peekAll = (bed: NetBed, cookie: string): Promise<Peek[]> => Promise.all(ALL.map((k) => peek(bed, k, cookie)));
const same = (ps: Peek[]) => ps.every((p) => JSON.stringify(p) === JSON.stringify(ps[0]));
const manager = (s: Stats) =>
  s.sessions[0] as { conflicts: number; lateMemberMerges: number; fencedWrites: number; replicationErrors: number };

async function scenario(send: 'sync' | 'async', diag: (s: string) => void, onBed: (b: NetBed) => void): Promise<void> {
  const t0 = Date.now();
  const dir = mkdtempSync(join(tmpdir(), 'clowder-partition-'));
  const bed = await NetBed.create({ nodes: 4, membership: 'multicast', send, app: writeProbeApp(dir) });
  onBed(bed);
  const b = bed;
  const drop = b.options.dropTimeMs;
  rmSync(dir, { recursive: true, force: true });
  await b.waitView(b.fullMesh(), 'the full cluster', 15_000);
  const ids = new Map<string, number>();
  for (const k of ALL) ids.set((await versions(b, k)).id, k);
  const sideOf = (id: string) => (A.includes(ids.get(id)!) ? 'A' : 'B');

  // Sessions that exist before the split, on every node.
  const shared = await Promise.all(
    SHARED_WRITES.map(async (_, j) => {
      const c = new Client(`shared ${j}`, b, () => 1);
      await c.writes(2);
      return c;
    }),
  );
  const doomed = [new Client('doomed A', b, () => 1), new Client('doomed B', b, () => 3)];
  for (const c of doomed) await c.write();
  const own = ALL.flatMap((k) => [0, 1].map((i) => new Client(`own h${k}.${i}`, b, () => k)));
  for (const c of own) await c.write();
  await waitFor(
    async () => {
      for (const c of [...shared, ...doomed, ...own])
        if (!(await peekAll(b, c.cookie!)).every((p) => p.count === c.last)) return false;
      return true;
    },
    'every node to hold every session',
    { timeoutMs: 10_000, intervalMs: 50 },
  );
  const sharedBase = shared.map((c) => c.last);
  for (const c of own) c.run();

  // The split: each side removes the other, serving its own sessions meanwhile.
  const cutAt = Date.now();
  await b.split(A, B);
  const detected = await b.waitView({ 1: [2], 2: [1], 3: [4], 4: [3] }, 'each side to remove the other', 5 * drop);
  const late = [new Client('late A', b, () => 2), new Client('late B', b, () => 4)];
  for (const c of late) c.run();
  // Shared sessions written on both sides, each side alternating its hosts (hand-overs within a side).
  const sideA = shared.map((c, j) => new Client(`shared ${j} on A`, b, (i) => A[i % 2]!, c.cookie, c.last));
  const sideB = shared.map((c, j) => new Client(`shared ${j} on B`, b, (i) => B[i % 2]!, c.cookie, c.last));
  const [, invalidated] = await Promise.all([
    Promise.all([
      ...sideA.map((c, j) => c.writes(SHARED_WRITES[j]![0])),
      ...sideB.map((c, j) => c.writes(SHARED_WRITES[j]![1])),
    ]),
    Promise.all([b.get(2, '/app/invalidate', doomed[0]!.cookie), b.get(4, '/app/invalidate', doomed[1]!.cookie)]),
  ]);
  for (const res of invalidated) assert.match(res.body, /invalidated=1/, 'invalidated on its side');
  await Promise.all([...own, ...late].map((c) => waitFor(() => c.acks.length >= 5, `${c.label} to write`)));

  // The heal: membership whole within 2 × dropTime, the load going on.
  const healAt = Date.now();
  await b.heal();
  const converged = await b.waitView(b.fullMesh(), 'membership after the heal', 5 * drop);
  const marks = [...own, ...late].map((c) => c.acks.length);
  await waitFor(() => [...own, ...late].every((c, i) => c.acks.length >= marks[i]! + 3), 'writes after the heal');
  await Promise.all([...own, ...late].map((c) => c.stop()));

  // Every replica agrees: each session read identically on every node; the invalidated ones held nowhere.
  let agreedAt = 0;
  await waitFor(
    async () => {
      for (const c of [...own, ...late, ...shared]) {
        const ps = await peekAll(b, c.cookie!);
        if (!ps.every((p) => p.held) || !same(ps)) return false;
      }
      for (const c of doomed) if ((await peekAll(b, c.cookie!)).some((p) => p.held)) return false;
      agreedAt = Date.now();
      return true;
    },
    'every replica to agree',
    { timeoutMs: 5 * drop, intervalMs: 100 },
  );

  // Own sessions: every acknowledged write kept.
  const lostOwn: string[] = [];
  let ownWrites = 0;
  for (const c of [...own, ...late]) {
    ownWrites += c.acks.length;
    const p = (await peekAll(b, c.cookie!))[0]!;
    const unackedAfter = c.unacked.filter((u) => u.at > c.acks.at(-1)!.at).length;
    if (p.count! < c.last) lostOwn.push(`${c.label}: ${c.last - p.count!} acknowledged writes lost (count ${p.count})`);
    else if (p.count! > c.last + unackedAfter) lostOwn.push(`${c.label}: count ${p.count} beyond ${c.last}`);
  }

  // Shared sessions: one side's writes kept, the other's lost and reported as conflicts.
  const events: (ConflictLine & { by: number })[] = ALL.flatMap((k) => conflictsOf(b, k).map((e) => ({ ...e, by: k })));
  const reportedLost: string[] = [];
  const unreported: string[] = [];
  let sharedWrites = 0;
  let lostToConflicts = 0;
  for (const [j, c] of shared.entries()) {
    const [a, bb] = [sideA[j]!, sideB[j]!];
    sharedWrites += a.acks.length + bb.acks.length;
    const p = (await peekAll(b, c.cookie!))[0]!;
    const winner = p.countStamp![1];
    const [kept, lost] = sideOf(winner) === 'A' ? [a, bb] : [bb, a];
    assert.equal(p.count, kept.last, `shared ${j}: the kept side's last count (${sharedBase[j]} + its writes)`);
    lostToConflicts += lost.acks.length;
    const id = c.cookie!.split('.')[0]!;
    const reports = events.filter((e) => e.sessionId === id && e.attribute === 'count');
    const reported = reports.some(
      (e) => e.winner === winner && [e.local, e.remote].some((w) => sideOf(w) !== sideOf(winner)),
    );
    (reported ? reportedLost : unreported).push(
      `shared ${j} (A ${a.acks.length} writes, B ${bb.acks.length}): ${lost.acks.length} lost on ${lost === a ? 'A' : 'B'}, ` +
        `${reports.length} conflict events (${reports.map((e) => `h${e.by}:${ids.get(e.local)}/${ids.get(e.remote)}→${ids.get(e.winner)}`).join(' ')})`,
    );
  }
  const stats: Stats[] = await Promise.all(ALL.map((k) => b.stats(k)));
  const sharedIds = new Set(shared.map((c) => c.cookie!.split('.')[0]));
  const strayEvents = events.filter((e) => !sharedIds.has(e.sessionId) || !['count', 'payload'].includes(e.attribute));
  diag(
    `${send}: split detected ${detected} ms after the cut (dropTime ${drop}); held ${healAt - cutAt} ms; ` +
      `membership whole ${converged} ms after the heal, replicas agreed ${agreedAt - healAt} ms after it; ` +
      `own sessions ${own.length + late.length}: ${ownWrites} acknowledged writes, ${lostOwn.length} lost, ` +
      `${[...own, ...late].reduce((n, c) => n + c.unacked.length, 0)} unacknowledged, slowest ` +
      `${Math.max(...[...own, ...late].map((c) => c.maxMs))} ms; shared: ${sharedWrites} acknowledged ` +
      `writes, ${lostToConflicts} lost to conflicts (${reportedLost.length} sessions reported, ${unreported.length} not); ` +
      `conflict events ${events.length} (counters ${stats.map((s) => manager(s).conflicts)}); ` +
      `fencedWrites ${stats.map((s) => manager(s).fencedWrites)}; replicationErrors ` +
      `${stats.map((s) => manager(s).replicationErrors)}; ${Date.now() - t0} ms`,
  );
  for (const l of [...reportedLost, ...unreported]) diag(`${send}: ${l}`);

  assert.ok(converged <= 2 * drop, `membership whole in ${converged} ms, more than 2 × dropTime (${2 * drop} ms)`);
  assert.deepEqual(lostOwn, [], 'no acknowledged write to an own session lost');
  assert.deepEqual(
    [...own, ...late].flatMap((c) => c.unacked.map((u) => `${c.label} on h${u.k}: ${u.error}`)),
    [],
    'both sides served every request of their sessions',
  );
  assert.deepEqual(
    [...own, ...late, ...sideA, ...sideB].flatMap((c) => c.broken),
    [],
    'every count continues its client',
  );
  assert.deepEqual(unreported, [], 'every write lost to a conflict is reported');
  assert.deepEqual(strayEvents, [], 'no conflict reported for a session or attribute not written on both sides');
  // Exactly the collisions the test made: both attributes of every shared session, nothing else.
  assert.deepEqual(
    [...new Set(events.map((e) => `${e.sessionId} ${e.attribute}`))].sort(),
    [...sharedIds].flatMap((id) => [`${id} count`, `${id} payload`]).sort(),
  );
  assert.equal(
    stats.reduce((n, s) => n + manager(s).conflicts, 0),
    events.length,
    'every conflict counted is an event reported',
  );
  for (const c of doomed)
    for (const p of await peekAll(b, c.cookie!)) assert.ok(!p.held && p.ended, `${c.label} stays gone (tombstoned)`);
}

describe('bed: 2|2 partition under load, healed: every acknowledged write accounted for', { skip }, () => {
  let bed: NetBed | undefined;
  after(async () => {
    await bed?.destroy();
  });
  for (const send of ['sync', 'async'] as const) {
    test(`${send} replication`, async (t) => {
      try {
        await scenario(
          send,
          (s) => t.diagnostic(s),
          (b) => {
            bed = b;
          },
        );
      } finally {
        await bed?.destroy();
        bed = undefined;
      }
    });
  }
});
