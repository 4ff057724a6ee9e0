/**
 * A member back from a pause or a partition is merged both ways, on real processes on loopback:
 * - paused: a node frozen (SIGSTOP) until the others drop it misses a session created meanwhile;
 *   once resumed it receives it at its latest value without the session being written again,
 *   and serves it after its creator is killed;
 * - partitioned (test partition interceptor, test/fixtures/partition.ts): both sides create and
 *   write sessions and one invalidates a session during the split; after the heal every node
 *   holds every session at its latest value, the invalidated one does not come back, and the
 *   attribute written on both sides is counted as a conflict and reported through the hook.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { CookieJar, closeClient, countOf, get } from '../../helpers/http.js';
import { type SessionNodeOptions, SessionProcess } from '../../helpers/session-process.js';
import { isolatedMulticast, waitFor } from '../../helpers/wait.js';

const FREQUENCY = 100;
const DROP = 1000;

function options(extra: Partial<SessionNodeOptions> = {}): SessionNodeOptions {
  return { ...isolatedMulticast(), frequencyMs: FREQUENCY, dropTimeMs: DROP, ...extra };
}

async function startThree(all: SessionProcess[], o = options()): Promise<SessionProcess[]> {
  // One after the other, as a cluster usually comes up: each later node is younger than the
  // earlier ones were when they became ready (which decides who merges whom at a "late" join).
  const nodes: SessionProcess[] = [];
  for (const name of ['a', 'b', 'c']) {
    const n = new SessionProcess(name, o);
    all.push(n);
    nodes.push(await n.started());
  }
  await waitFor(async () => (await Promise.all(nodes.map((n) => n.members()))).every((m) => m === 2), 'three members', {
    timeoutMs: 10_000,
    intervalMs: 50,
  });
  return nodes;
}

/** Waits until every node in `nodes` holds session `id` at `count` (null: holds none). */
async function holds(nodes: SessionProcess[], id: string, count: number | null, what: string, timeoutMs = 15_000) {
  await waitFor(async () => (await Promise.all(nodes.map((n) => n.peek(id)))).every((c) => c === count), what, {
    timeoutMs,
    intervalMs: 50,
  });
}

async function counter(jar: CookieJar, node: SessionProcess, times: number): Promise<number> {
  let count = 0;
  for (let i = 0; i < times; i++) count = countOf((await jar.get(node.http, '/app/counter')).body);
  return count;
}

interface ManagerStats {
  lateMemberMerges: number;
  conflicts: number;
}

function sessionStats(stats: { sessions: ManagerStats[] }): ManagerStats {
  return stats.sessions[0]!;
}

describe('a member back from a pause or a partition is merged both ways', () => {
  const all: SessionProcess[] = [];
  after(async () => {
    closeClient();
    await Promise.all(all.map((n) => n.destroy()));
  });

  test('paused until dropped: the resumed node gets what was created meanwhile, and serves it after a failover', async (t) => {
    const [a, b, c] = await startThree(all);
    const frozenAt = Date.now();
    c!.signal('SIGSTOP');
    await waitFor(async () => (await a!.members()) === 1 && (await b!.members()) === 1, 'a and b to drop frozen c', {
      timeoutMs: 15_000,
      intervalMs: 50,
    });
    t.diagnostic(`a and b dropped c ${Date.now() - frozenAt} ms after SIGSTOP`);

    const jar = new CookieJar();
    assert.equal(await counter(jar, a!, 3), 3);
    await holds([a!, b!], jar.id, 3, 'b to hold the session created on a');

    // The failure detector dropped c in well under dropTime: keep it frozen past dropTime anyway
    // (a long pause: c's own view of a and b expires too, and a and b take it back at once).
    await waitFor(async () => Date.now() - frozenAt > 2 * DROP, 'the pause to outlast dropTime', {
      timeoutMs: 4 * DROP,
      intervalMs: 20,
    });
    const resumedAt = Date.now();
    c!.signal('SIGCONT');
    // Nobody writes the session again: c must get it from the merge alone.
    await holds([c!], jar.id, 3, 'resumed c to hold the session created while it was frozen');
    t.diagnostic(`c held it ${Date.now() - resumedAt} ms after SIGCONT`);
    await waitFor(async () => (await c!.members()) === 2, 'c to see a and b', { timeoutMs: 10_000, intervalMs: 50 });
    const merges = await Promise.all([a!, b!, c!].map(async (n) => sessionStats(await n.stats()).lateMemberMerges));
    t.diagnostic(`lateMemberMerges a/b/c: ${merges.join('/')}`);
    const cStats = await c!.stats();
    t.diagnostic(`c: channel rejoins ${cStats.channel.membership.rejoins}, hub ${JSON.stringify(cStats.rejoins)}`);
    assert.ok(merges[2]! >= 1, 'c counts its merges');
    assert.ok(merges[0]! >= 1 && merges[1]! >= 1, 'a and b merged what c held too');

    // Failover: the creator dies; c serves the session at its latest value.
    await a!.destroy();
    await waitFor(async () => (await c!.members()) === 1, 'c to drop killed a', { timeoutMs: 10_000, intervalMs: 50 });
    const res = await get(c!.http, '/app/read', jar.cookie);
    assert.equal(countOf(res.body), 3, `c serves the session at its latest count: ${res.body}`);
    await Promise.all([b!, c!].map((n) => n.destroy()));
  });

  test('partition: both sides create, write and invalidate; after the heal every node holds the latest of everything', async (t) => {
    const [a, b, c] = await startThree(all);
    const nodes = [a!, b!, c!];
    // Before the split: one session written on both sides later, one invalidated on a's side.
    const both = new CookieJar();
    const doomed = new CookieJar();
    assert.equal(await counter(both, a!, 1), 1);
    assert.equal(await counter(doomed, a!, 1), 1);
    await holds(nodes, both.id, 1, 'every node to hold the shared session');
    await holds(nodes, doomed.id, 1, 'every node to hold the doomed session');
    const doomedId = doomed.id;

    await Promise.all([a!.cut(['c']), b!.cut(['c']), c!.cut(['a', 'b'])]);
    await waitFor(
      async () => (await a!.members()) === 1 && (await b!.members()) === 1 && (await c!.members()) === 0,
      'the split',
      { timeoutMs: 5_000, intervalMs: 50 },
    );

    // During the split, on each side: a new session, the shared one written (a conflict), and
    // the doomed one invalidated on a's side.
    const left = new CookieJar();
    const right = new CookieJar();
    assert.equal(await counter(left, a!, 2), 2);
    assert.equal(await counter(right, c!, 3), 3);
    assert.equal(await counter(both, a!, 1), 2);
    assert.equal(await counter(both, c!, 1), 2);
    assert.match((await doomed.get(a!.http, '/app/invalidate')).body, /invalidated=1/);
    await holds([a!, b!], left.id, 2, "a's side to hold its new session");
    await holds([a!, b!], doomedId, null, "a's side to drop the invalidated session");
    assert.equal(await c!.peek(left.id), null, 'c is cut off');
    assert.equal(await c!.peek(doomedId), 1, 'c still holds the session invalidated on the other side');
    assert.equal(await a!.peek(right.id), null, 'a is cut off');

    const healedAt = Date.now();
    await Promise.all(nodes.map((n) => n.heal()));
    await holds(nodes, left.id, 2, "every node to hold a's side's new session");
    await holds(nodes, right.id, 3, "every node to hold c's side's new session");
    await holds(nodes, doomedId, null, 'no node to hold the invalidated session');
    await holds(nodes, both.id, 2, 'every node to agree on the shared session');
    t.diagnostic(`merged ${Date.now() - healedAt} ms after the heal`);

    // The conflict: both writes have the same version, so the writer with the greater id wins
    // everywhere. Every node of the losing side meets the winning write in its merge and counts
    // the conflict (the winning side counts it only if it merged before the losers took the
    // winning write: a race), and reports it through the hook.
    const winner = c!.id > a!.id ? c! : a!;
    const losers = winner === c ? [a!, b!] : [c!];
    await waitFor(
      async () =>
        (await Promise.all(losers.map(async (n) => sessionStats(await n.stats()).conflicts))).every((x) => x > 0),
      `${losers.map((n) => n.name).join(' and ')}, whose write lost, to count the conflict`,
      { timeoutMs: 10_000, intervalMs: 50 },
    );
    for (const n of losers) {
      const reported = n.events.filter((e) => e.type === 'conflict' && e.sessionId === both.id);
      assert.ok(reported.length > 0, `${n.name} reported the conflict through the hook`);
      assert.ok(
        reported.every((e) => (e.attribute === 'count' || e.attribute === 'payload') && e.winner === winner.id),
        JSON.stringify(reported),
      );
    }
    const counted = await Promise.all(nodes.map(async (n) => sessionStats(await n.stats()).conflicts));
    t.diagnostic(`conflicts counted a/b/c: ${counted.join('/')}`);
    const stats = await Promise.all(nodes.map((n) => n.stats()));
    for (const [i, s] of stats.entries()) {
      assert.ok(sessionStats(s).lateMemberMerges >= 1, `${nodes[i]!.name} merged`);
      assert.ok(s.channel.membership.rejoins >= 1, `${nodes[i]!.name} noticed a rejoin`);
    }
    // Still gone once every merge is over (a merge under way would have brought it back by now).
    await holds(nodes, doomedId, null, 'the invalidated session to stay gone');

    // Failover: both creators die; b serves both sessions at their latest values.
    await Promise.all([a!.destroy(), c!.destroy()]);
    await waitFor(async () => (await b!.members()) === 0, 'b alone', { timeoutMs: 10_000, intervalMs: 50 });
    assert.equal(countOf((await get(b!.http, '/app/read', left.cookie)).body), 2);
    assert.equal(countOf((await get(b!.http, '/app/read', right.cookie)).body), 3);
    assert.equal(countOf((await get(b!.http, '/app/read', both.cookie)).body), 2);
    await b!.destroy();
  });

  test('paused past dropTime but resumed within the verification: kept in view, and still merged both ways', async (t) => {
    // The failure detector's probe waits VERIFY ms for an answer; c resumes as soon as a's probe
    // started, so a keeps c (it answered) although its membership lost c for dropTime.
    const VERIFY = 5000;
    // The heartbeat path (dropTime, then the failure-detector interceptor's verification) is what
    // this exercises: the SWIM detector would remove the frozen c in ~0.5 s, before dropTime.
    const [a, b, c] = await startThree(all, options({ verifyTimeoutMs: VERIFY, detector: 'off' }));
    const probes = async () => (await a!.stats()).channel.interceptors.failureDetector.verifications as number;
    const before = await probes();
    c!.signal('SIGSTOP');
    await waitFor(async () => (await probes()) > before, "a's failure detector to probe frozen c", {
      timeoutMs: 10_000,
      intervalMs: 20,
    });
    c!.signal('SIGCONT');
    await waitFor(async () => (await a!.stats()).channel.membership.rejoins >= 1, 'a to see c back after its silence', {
      timeoutMs: 10_000,
      intervalMs: 50,
    });
    assert.ok(!a!.events.some((e) => e.type === 'removed' && e.name === 'c'), 'a kept c in view');
    // a asked c to merge too: each pulled the other's sessions.
    await waitFor(
      async () =>
        sessionStats(await c!.stats()).lateMemberMerges >= 1 && sessionStats(await a!.stats()).lateMemberMerges >= 1,
      'a and c to merge each other',
      { timeoutMs: 10_000, intervalMs: 50 },
    );
    const cStats = await c!.stats();
    t.diagnostic(`c: ${JSON.stringify(cStats.rejoins)}; a: ${JSON.stringify((await a!.stats()).rejoins)}`);
    assert.ok(cStats.rejoins.asked >= 1, 'c merged because a asked it to');
    await Promise.all([a!, b!, c!].map((n) => n.destroy()));
  });
});
