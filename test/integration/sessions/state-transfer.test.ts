/**
 * State transfer: a node that starts later holds every session of the cluster when its start()
 * resolves, and changes made while it was receiving them are not lost.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type DeltaManager, encode, type Member } from '../../../src/index.js';
import { Msg } from '../../../src/session/messages.js';
import { CookieJar, countOf, get, managerOf, portOf, startNodes, type TestCluster } from '../../helpers/http.js';
import { waitFor } from '../../helpers/wait.js';
import { probe } from './apps.js';

const N = 10_000;

/** One request's worth of change on `m`: the same calls the HTTP layer makes. */
function write(m: DeltaManager, id: string, name: string, value: unknown): void {
  const s = m.sessions.get(id);
  if (s === undefined) throw new Error(`no session ${id}`);
  m.requestStarted(s);
  s.setAttribute(name, value);
  m.requestCompleted(s);
}

function create(m: DeltaManager, attrs: Record<string, unknown>): string {
  const s = m.createSession();
  m.requestStarted(s);
  for (const [k, v] of Object.entries(attrs)) s.setAttribute(k, v);
  m.requestCompleted(s);
  return s.id;
}

/** Differences between two managers' sessions (ids and the given attributes), at most 5 listed. */
function differences(x: DeltaManager, y: DeltaManager, names: string[]): string[] {
  const out: string[] = [];
  for (const [id, s] of x.sessions) {
    const t = y.sessions.get(id);
    if (t === undefined) out.push(`${id.slice(0, 8)} missing`);
    else
      for (const n of names) {
        if (JSON.stringify(s.getAttribute(n)) !== JSON.stringify(t.getAttribute(n)))
          out.push(
            `${id.slice(0, 8)}.${n}: ${JSON.stringify(s.getAttribute(n))} vs ${JSON.stringify(t.getAttribute(n))}`,
          );
      }
    if (out.length >= 5) return out;
  }
  for (const id of y.sessions.keys()) {
    if (!x.sessions.has(id)) out.push(`${id.slice(0, 8)} extra`);
    if (out.length >= 5) return out;
  }
  return out;
}

describe(`state transfer of ${N} sessions`, () => {
  let cluster: TestCluster;
  const ids: string[] = [];
  before(async () => {
    cluster = await startNodes(1);
    const m = managerOf(cluster.node('a'));
    for (let i = 0; i < N; i++) ids.push(create(m, { count: i, name: `user-${i}` }));
  });
  after(async () => {
    await cluster?.stop();
  });

  test('B holds all of them with their values when start() resolves', async (t) => {
    const a = managerOf(cluster.node('a'));
    assert.equal(a.sessions.size, N);
    const started = Date.now();
    const b = await cluster.add('b');
    const mb = managerOf(b);
    assert.equal(mb.sessions.size, N, 'every session arrived before start() resolved');
    const st = mb.stats().stateTransfer as { state: string; sessions: number; donor: string; durationMs: number };
    assert.equal(st.state, 'done');
    assert.equal(st.sessions, N);
    assert.equal(st.donor, 'a');
    t.diagnostic(`B started in ${Date.now() - started} ms; transfer took ${st.durationMs} ms`);
    for (let i = 0; i < N; i++) {
      const s = mb.sessions.get(ids[i]!);
      assert.ok(s, `session ${i}`);
      assert.equal(s.getAttribute('count'), i);
      assert.equal(s.getAttribute('name'), `user-${i}`);
    }
    // A sample through HTTP on B, with the cookies A issued.
    const pb = portOf(b);
    for (let i = 0; i < N; i += 997) {
      const res = await get(pb, '/app/read', `JSESSIONID=${ids[i]}.a`);
      assert.equal(res.status, 200);
      assert.equal(countOf(res.body), i);
    }
  });

  test('changes, creations and invalidations on A and B while C receives the sessions are not lost', async (t) => {
    const a = managerOf(cluster.node('a'));
    const b = managerOf(cluster.node('b'));
    const c = cluster.create('c');
    let starting = true;
    let changes = 0;
    let duringTransfer = 0;
    const mutator = (async () => {
      for (let k = 0; starting; k++) {
        const transferring =
          (c.managers[0]?.stats().stateTransfer as { state: string } | undefined)?.state === 'transferring';
        if (transferring) duringTransfer++;
        // Spread the changes over the whole id space, so some land in chunks already sent.
        const id = ids[(k * 7919) % N]!;
        if (a.sessions.has(id)) {
          if (k % 50 === 49) a.sessions.get(id)!.invalidate();
          else write(a, id, 'count', 1_000_000 + k);
        }
        // B is not the donor: its changes reach C only as live deltas.
        const other = ids[(k * 104_729 + 13) % N]!;
        if (k % 3 === 0 && b.sessions.has(other)) write(b, other, 'name', `b-${k}`);
        if (transferring && k % 10 === 0) ids.push(create(a, { count: -k, name: `late-${k}` }));
        changes++;
        await new Promise((r) => setImmediate(r));
      }
    })();
    try {
      await c.start();
    } finally {
      starting = false;
      await mutator;
    }
    cluster.nodes.push(c);
    await cluster.formed();
    t.diagnostic(
      `${changes} rounds of changes on A and B while C started, ${duringTransfer} while it was transferring`,
    );
    assert.ok(duringTransfer > 0, 'some changes happened during the transfer');
    const mc = managerOf(c);
    assert.equal((mc.stats().stateTransfer as { state: string }).state, 'done');
    let diff: string[] = [];
    await waitFor(
      () => {
        diff = differences(a, mc, ['count', 'name']);
        return diff.length === 0;
      },
      'C to hold exactly the sessions of A with their values',
      { timeoutMs: 15_000, intervalMs: 50 },
    ).catch((err: Error) => {
      throw new Error(`${err.message}: ${diff.join('; ')}`);
    });
    // B and A converged too.
    await waitFor(
      () => {
        diff = differences(a, b, ['count', 'name']);
        return diff.length === 0;
      },
      'B to hold exactly the sessions of A',
      { timeoutMs: 15_000, intervalMs: 50 },
    ).catch((err: Error) => {
      throw new Error(`${err.message}: ${diff.join('; ')}`);
    });
  });
});

describe('state transfer carries what late messages are checked against', () => {
  let cluster: TestCluster;
  before(async () => {
    cluster = await startNodes(2, { apps: [{ path: '/probe', app: probe }] });
  });
  after(async () => {
    await cluster?.stop();
  });

  /** A as `node` sees it. */
  function memberA(node: string): Member {
    return cluster
      .node(node)
      .channel.members()
      .find((m) => m.name === 'a')!;
  }

  test('a late delta for a session invalidated before C started revives it neither on B nor on C', async () => {
    const pa = portOf(cluster.node('a'));
    const mb = managerOf(cluster.node('b'));
    const jar = new CookieJar();
    await jar.get(pa, '/probe/set?name=k&value=1');
    const id = jar.id;
    await waitFor(() => mb.sessions.has(id), 'B to receive the session');
    const version = mb.sessions.get(id)!.version;
    await jar.get(pa, '/probe/invalidate');
    await waitFor(() => !mb.sessions.has(id), 'B to drop it');
    const c = await cluster.add('c');
    const mc = managerOf(c);
    assert.equal(mc.sessions.has(id), false);
    // A delta written before the invalidation, delivered late (e.g. queued during C's transfer).
    const late = [Msg.DELTA, '/probe', id, version, version + 1, ['k'], [encode('late')], [], null];
    const staleB = mb.stats().staleDeltas as number;
    await mb.receive(late, memberA('b'));
    assert.equal(mb.sessions.has(id), false, 'B: not revived');
    assert.equal(mb.stats().staleDeltas, staleB + 1);
    await mc.receive(late, memberA('c'));
    assert.equal(mc.stats().malformed, 0);
    assert.equal(mc.sessions.has(id), false, 'C: not revived');
  });

  test('an older write delivered after an attribute was removed does not bring it back on the new node', async () => {
    const pa = portOf(cluster.node('a'));
    const mb = managerOf(cluster.node('b'));
    const jar = new CookieJar();
    await jar.get(pa, '/probe/set?name=keep&value=1');
    await jar.get(pa, '/probe/set?name=y&value=old');
    await waitFor(() => mb.sessions.get(jar.id)?.getAttribute('y') === 'old', 'B to receive y');
    const setVersion = mb.sessions.get(jar.id)!.version;
    await jar.get(pa, '/probe/delete?name=y');
    await waitFor(() => mb.sessions.get(jar.id)?.hasAttribute('y') === false, 'B to remove y');
    const d = await cluster.add('d');
    const md = managerOf(d);
    assert.equal(md.sessions.get(jar.id)?.getAttribute('keep'), '1');
    assert.equal(md.sessions.get(jar.id)!.hasAttribute('y'), false);
    // The write of y, delivered again late: stale everywhere, also on the node that joined after the removal.
    const late = [Msg.DELTA, '/probe', jar.id, setVersion - 1, setVersion, ['y'], [encode('old')], [], null];
    await mb.receive(late, memberA('b'));
    assert.equal(mb.sessions.get(jar.id)!.hasAttribute('y'), false, 'B: stale');
    await md.receive(late, memberA('d'));
    assert.equal(md.sessions.get(jar.id)!.hasAttribute('y'), false, 'D: stale too');
  });
});

describe('state transfer of large sessions', () => {
  let cluster: TestCluster;
  const SESSIONS = 20;
  const SIZE = 100_000;
  before(async () => {
    // Messages of at most 1 MiB: 20 sessions of 100 kB do not fit in one message.
    cluster = await startNodes(1, {
      cluster: { maxFrameBytes: 64 * 1024, maxMessageBytes: 1024 * 1024 },
      sessions: { stateTransferTimeoutMs: 30_000 }, // a deadline only: the transfer takes milliseconds
    });
  });
  after(async () => {
    await cluster?.stop();
  });

  test('sessions that together exceed maxMessageBytes all arrive (chunks are bounded by size, not only count)', async () => {
    const a = managerOf(cluster.node('a'));
    const ids: string[] = [];
    // Every other blob is 3 UTF-8 bytes a character: a chunk is bounded by bytes, not string length.
    for (let i = 0; i < SESSIONS; i++) ids.push(create(a, { blob: `${i}:`.padEnd(SIZE, i % 2 ? '漢' : 'x') }));
    const b = await cluster.add('b');
    const mb = managerOf(b);
    const st = mb.stats().stateTransfer as { state: string; sessions: number };
    assert.equal(st.state, 'done');
    assert.equal(mb.sessions.size, SESSIONS);
    for (const [i, id] of ids.entries()) {
      const blob = mb.sessions.get(id)?.getAttribute('blob') as string | undefined;
      assert.equal(blob?.length, SIZE);
      assert.ok(blob.startsWith(`${i}:`));
    }
  });
});
