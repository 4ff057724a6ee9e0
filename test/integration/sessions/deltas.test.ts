/**
 * Ordering of replication messages: tombstones stop late messages from reviving an invalidated
 * session; stale and duplicate deltas are counted and never applied over newer data; concurrent
 * writes on two nodes converge (different attributes both survive, the same attribute is reported
 * as a conflict and one value wins everywhere).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type ConflictInfo, type DeltaManager, encode, type Member } from '../../../src/index.js';
import { MSG_NAMES, Msg } from '../../../src/session/messages.js';
import {
  CookieJar,
  countOf,
  field,
  get,
  idOf,
  managerOf,
  RawConnection,
  sessionCookie,
  startPair,
  type TestCluster,
} from '../../helpers/http.js';
import { waitFor } from '../../helpers/wait.js';
import { APP, aheadOfChange, COUNTER_AND_PROBE, PROBE, probeSessionOn, received, rendezvous, stat } from './apps.js';

/** [DELTA, ctx, id, base, version, names, values, removed, maxInactive] */
function delta(
  ctx: string,
  id: string,
  base: number,
  version: number,
  set: Record<string, unknown>,
  removed: string[] = [],
): unknown[] {
  const names = Object.keys(set);
  return [Msg.DELTA, ctx, id, base, version, names, names.map((n) => encode(set[n])), removed, null];
}

describe('message ordering (ownership none)', () => {
  let cluster: TestCluster;
  let pa: number;
  let pb: number;
  /** A as B sees it. */
  let memberA: Member;
  before(async () => {
    // ownership "none": Tomcat's behaviour, two nodes may serve one session at the same time.
    ({ cluster, pa, pb } = await startPair({
      apps: COUNTER_AND_PROBE,
      sessions: { ownership: 'none' },
    }));
    memberA = cluster
      .node('b')
      .channel.members()
      .find((m) => m.name === 'a')!;
  });
  after(async () => {
    await cluster?.stop();
  });

  /** A session made on A through /probe/set, once B has it. */
  const probeSession = (name: string, value: string) => probeSessionOn(cluster, pa, 'b', name, value);

  test('a DELTA with one undecodable value changes nothing (all or nothing) and is counted as malformed', async () => {
    const jar = await probeSession('k1', 'v1');
    const mb = managerOf(cluster.node('b'), PROBE);
    const s = mb.sessions.get(jar.id)!;
    const version = s.version;
    const malformed = stat(mb, 'malformed');
    // A string that claims 127 bytes and carries 1.
    const bad = Buffer.from([0x01, 0x06, 0x7f, 0x41]);
    await mb.receive(
      [Msg.DELTA, '/probe', jar.id, version, version + 1, ['k1', 'k2'], [encode('new'), bad], [], null],
      memberA,
    );
    assert.equal(stat(mb, 'malformed'), malformed + 1);
    assert.equal(s.getAttribute('k1'), 'v1', 'the good value of the same message was not applied');
    assert.equal(s.hasAttribute('k2'), false);
    assert.equal(s.version, version);
    // The next well-formed delta applies as usual; received scalars read back as values.
    await mb.receive(delta('/probe', jar.id, version, version + 1, { k1: 'new', n: 7, t: true, z: null }), memberA);
    assert.deepEqual(
      ['k1', 'n', 't', 'z'].map((k) => s.getAttribute(k)),
      ['new', 7, true, null],
    );
  });

  test('messages are counted by type; an unknown or non-integer type is counted as unknown and changes nothing', async () => {
    const jar = await probeSession('k9', 'v9');
    const mb = managerOf(cluster.node('b'), PROBE);
    const s = mb.sessions.get(jar.id)!;
    const version = s.version;
    const [unknown, deltas, malformed] = [received(mb, 'unknown'), received(mb, 'delta'), stat(mb, 'malformed')];
    for (const type of [99, 1.5, -3, 0, 'delta']) await mb.receive([type, '/probe', jar.id, version], memberA);
    await mb.receive(delta('/probe', jar.id, version, version + 1, { k9: 'w9' }), memberA);
    assert.equal(received(mb, 'unknown'), unknown + 5);
    assert.equal(received(mb, 'delta'), deltas + 1);
    assert.equal(stat(mb, 'malformed'), malformed + 5);
    const names = new Set(Object.values(MSG_NAMES));
    for (const k of Object.keys(mb.stats().received as object))
      assert.ok(k === 'unknown' || names.has(k), `no counter named ${k}`);
    assert.equal(s.getAttribute('k9'), 'w9', 'only the well-formed delta applied');
    assert.equal(s.version, version + 1);
  });

  test('invalidated on A: gone on B, and late messages for it do not revive it', async () => {
    const jar = new CookieJar();
    await jar.get(pa, '/app/counter');
    await jar.get(pa, '/app/counter');
    const id = jar.id;
    const mb = managerOf(cluster.node('b'), APP);
    await waitFor(() => mb.sessions.get(id)?.getAttribute('count') === 2, 'B to receive the session');
    const version = mb.sessions.get(id)!.version;

    const inv = await get(pa, '/app/invalidate', jar.cookie);
    assert.equal(field(inv.body, 'invalidated'), '1');
    assert.equal(
      inv.setCookie.find((l) => l.startsWith('JSESSIONID=')),
      undefined,
      'no Set-Cookie after invalidate (as express-session after destroy)',
    );
    await waitFor(() => !mb.sessions.has(id), 'B to drop the invalidated session');
    assert.equal(countOf((await get(pb, '/app/read', jar.cookie)).body), 0);

    const stale = stat(mb, 'staleDeltas');
    await mb.receive(delta('/app', id, version, version + 10, { count: 99 }), memberA);
    assert.equal(mb.sessions.has(id), false, 'a late DELTA does not resurrect it');
    assert.equal(stat(mb, 'staleDeltas'), stale + 1);
    await mb.receive([Msg.CREATED, '/app', id, Date.now(), 1800, version + 20, ['count'], [encode(5)]], memberA);
    assert.equal(mb.sessions.has(id), false, 'a late CREATED does not resurrect it');
    assert.equal(stat(mb, 'staleDeltas'), stale + 2);
    await mb.receive([Msg.ACCESSED, '/app', id, Date.now()], memberA);
    assert.equal(mb.sessions.has(id), false, 'a late ACCESSED does not resurrect it');

    assert.equal(countOf((await get(pb, '/app/read', jar.cookie)).body), 0);
    const again = await get(pb, '/app/counter', jar.cookie);
    assert.equal(countOf(again.body), 1, 'a new session starts from zero');
    assert.notEqual(idOf(sessionCookie(again)!), id, 'the invalidated id is not reused');
    const ma = managerOf(cluster.node('a'), APP);
    assert.equal(ma.sessions.has(id), false);
  });

  test('duplicate and older deltas are counted as stale and never applied over newer data', async () => {
    const jar = await probeSession('x', 'v0');
    const id = jar.id;
    const mb = managerOf(cluster.node('b'), PROBE);
    const s = mb.sessions.get(id)!;
    const V = s.version;
    const stale0 = stat(mb, 'staleDeltas');
    const conflicts0 = stat(mb, 'conflicts');
    const d1 = delta('/probe', id, V, V + 1, { x: 'one' });
    const d2 = delta('/probe', id, V + 1, V + 2, { x: 'two' });

    await mb.receive(d1, memberA);
    assert.equal(s.getAttribute('x'), 'one');
    await mb.receive(d2, memberA);
    assert.equal(s.getAttribute('x'), 'two');
    assert.equal(stat(mb, 'staleDeltas'), stale0, 'in-order deltas are not stale');

    await mb.receive(d2, memberA); // duplicate
    assert.equal(s.getAttribute('x'), 'two');
    assert.equal(stat(mb, 'staleDeltas'), stale0 + 1);
    await mb.receive(d1, memberA); // older after newer
    assert.equal(s.getAttribute('x'), 'two');
    assert.equal(stat(mb, 'staleDeltas'), stale0 + 2);
    assert.equal(s.version, V + 2);

    // Out of order on an attribute B did not have: the newer one stays.
    await mb.receive(delta('/probe', id, V + 3, V + 4, { y: 'new' }), memberA);
    await mb.receive(delta('/probe', id, V + 2, V + 3, { y: 'old' }), memberA);
    assert.equal(s.getAttribute('y'), 'new');
    assert.equal(stat(mb, 'staleDeltas'), stale0 + 3);

    // A removal is stamped too: an older write does not bring the attribute back.
    await mb.receive(delta('/probe', id, V + 4, V + 5, {}, ['y']), memberA);
    assert.equal(s.getAttribute('y'), undefined);
    await mb.receive(delta('/probe', id, V + 3, V + 4, { y: 'new' }), memberA);
    assert.equal(s.getAttribute('y'), undefined, 'an older write after a removal is stale');
    assert.equal(stat(mb, 'staleDeltas'), stale0 + 4);
    assert.deepEqual(s.attributeNames().sort(), ['x']);
    assert.equal(stat(mb, 'conflicts'), conflicts0, 'one writer never conflicts with itself');

    // Over HTTP on B the newest values show.
    const res = await get(pb, '/probe/attrs', jar.cookie);
    assert.deepEqual(JSON.parse(res.body).attrs, { x: 'two' });
  });

  test('while a request here changes an attribute, a late older write to it is stale, not a conflict; a newer one is', async () => {
    const jar = await probeSession('late', 'v0');
    const mb = managerOf(cluster.node('b'), PROBE);
    const s = mb.sessions.get(jar.id)!;
    const V = s.version;
    const [stale0, conflicts0] = [stat(mb, 'staleDeltas'), stat(mb, 'conflicts')];
    mb.requestStarted(s);
    try {
      s.setAttribute('late', 'local');
      // The write B already has, arriving again (as from a former owner, two hand-overs late).
      await mb.receive(delta('/probe', jar.id, V - 1, V, { late: 'v0' }), memberA);
      assert.equal(stat(mb, 'conflicts'), conflicts0, 'a write this one had seen is no conflict');
      assert.equal(stat(mb, 'staleDeltas'), stale0 + 1);
      // A write B had not seen: concurrent with the local one.
      await mb.receive(delta('/probe', jar.id, V, V + 1, { late: 'remote' }), memberA);
      assert.equal(stat(mb, 'conflicts'), conflicts0 + 1);
      assert.equal(s.getAttribute('late'), 'local', 'the local write wins (it is stamped newer)');
    } finally {
      mb.requestCompleted(s);
    }
  });

  test('concurrent writes to different attributes on A and B: both survive on both nodes, no conflict', async () => {
    const jar = await probeSession('init', '0');
    const ma = managerOf(cluster.node('a'), PROBE);
    const mb = managerOf(cluster.node('b'), PROBE);
    const conflicts: ConflictInfo[] = [];
    const onConflict = (c: ConflictInfo) => conflicts.push(c);
    ma.on('conflict', onConflict);
    mb.on('conflict', onConflict);
    try {
      // Each request sets its attribute, then waits until the other one has set its own: truly concurrent.
      const [ra, rb] = await Promise.all([
        get(pa, '/probe/set-wait?name=x&value=fromA&gate=xy&parties=2', jar.cookie),
        get(pb, '/probe/set-wait?name=y&value=fromB&gate=xy&parties=2', jar.cookie),
      ]);
      assert.equal(ra.status, 200);
      assert.equal(rb.status, 200);
      const both = (m: DeltaManager) => {
        const s = m.sessions.get(jar.id);
        return s?.getAttribute('x') === 'fromA' && s.getAttribute('y') === 'fromB';
      };
      await waitFor(() => both(ma) && both(mb), 'x and y on both nodes');
      assert.deepEqual(conflicts, []);
    } finally {
      ma.off('conflict', onConflict);
      mb.off('conflict', onConflict);
    }
  });

  test('concurrent writes to the same attribute on A and B: a conflict is reported and both converge', async () => {
    const jar = await probeSession('z', 'initial');
    const a = cluster.node('a');
    const ma = managerOf(a, PROBE);
    const mb = managerOf(cluster.node('b'), PROBE);
    const conflicts: ConflictInfo[] = [];
    const onConflict = (c: ConflictInfo) => conflicts.push(c);
    ma.on('conflict', onConflict);
    mb.on('conflict', onConflict);
    try {
      await Promise.all([
        get(pa, '/probe/set-wait?name=z&value=fromA&gate=zz&parties=2', jar.cookie),
        get(pb, '/probe/set-wait?name=z&value=fromB&gate=zz&parties=2', jar.cookie),
      ]);
      await waitFor(() => conflicts.length > 0, 'a conflict event');
      const value = (m: DeltaManager) => m.sessions.get(jar.id)?.getAttribute('z');
      await waitFor(() => value(ma) === value(mb), 'A and B to converge on z');
      const winners = new Set(conflicts.map((c) => c.winner));
      assert.equal(winners.size, 1, `every node names the same winner: ${JSON.stringify(conflicts)}`);
      const winner = conflicts[0]!.winner;
      assert.equal(value(ma), winner === a.channel.local.id ? 'fromA' : 'fromB', 'the reported winner is what stays');
      for (const c of conflicts) {
        assert.equal(c.sessionId, jar.id);
        assert.equal(c.attribute, 'z');
        assert.notEqual(c.local, c.remote);
      }
      // Converged for good: HTTP on both nodes shows the same value.
      const onA = JSON.parse((await get(pa, '/probe/attrs', jar.cookie)).body).attrs.z;
      const onB = JSON.parse((await get(pb, '/probe/attrs', jar.cookie)).body).attrs.z;
      assert.equal(onA, onB);
    } finally {
      ma.off('conflict', onConflict);
      mb.off('conflict', onConflict);
    }
  });

  test('sequential writes to the same attribute on A then B are not a conflict', async () => {
    const jar = await probeSession('w', '1');
    const ma = managerOf(cluster.node('a'), PROBE);
    const mb = managerOf(cluster.node('b'), PROBE);
    const before = stat(ma, 'conflicts') + stat(mb, 'conflicts');
    await get(pb, '/probe/set?name=w&value=2', jar.cookie);
    await waitFor(() => ma.sessions.get(jar.id)?.getAttribute('w') === '2', 'A to see w=2');
    await get(pa, '/probe/set?name=w&value=3', jar.cookie);
    await waitFor(() => mb.sessions.get(jar.id)?.getAttribute('w') === '3', 'B to see w=3');
    assert.equal(stat(ma, 'conflicts') + stat(mb, 'conflicts'), before);
  });

  test("an increment on B that arrives together with A's change, ahead of it, counts on from A's value: no conflict", async () => {
    const jar = new CookieJar();
    await jar.get(pa, '/app/counter');
    const ma = managerOf(cluster.node('a'), APP);
    const mb = managerOf(cluster.node('b'), APP);
    await waitFor(() => mb.sessions.get(jar.id)?.getAttribute('count') === 1, 'B to receive the session');
    const before = stat(ma, 'conflicts') + stat(mb, 'conflicts');
    const body = await aheadOfChange(cluster, pb, '/app/counter', jar.cookie!, 'a', 7);
    assert.equal(countOf(body), 8, "B counted on from A's change");
    await waitFor(() => ma.sessions.get(jar.id)?.getAttribute('count') === 8, 'A to see 8');
    assert.equal(stat(ma, 'conflicts') + stat(mb, 'conflicts'), before);
  });
});

describe('ownership migrate (the default): one node serves a session at a time', () => {
  let cluster: TestCluster;
  let pa: number;
  let pb: number;
  before(async () => {
    ({ cluster, pa, pb } = await startPair({
      apps: COUNTER_AND_PROBE,
    }));
  });
  after(async () => {
    await cluster?.stop();
  });

  test('20 increments on A and 20 on B at the same time: none is lost (count 41 on both)', async () => {
    const jar = new CookieJar();
    await jar.get(pa, '/app/counter');
    const id = jar.id;
    const ma = managerOf(cluster.node('a'), APP);
    const mb = managerOf(cluster.node('b'), APP);
    await waitFor(() => mb.sessions.has(id), 'B to receive the session');
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, i) => get(i % 2 === 0 ? pa : pb, '/app/counter', jar.cookie)),
    );
    for (const r of results) assert.equal(r.status, 200);
    const counts = results.map((r) => countOf(r.body)).sort((x, y) => x - y);
    assert.deepEqual(
      counts,
      Array.from({ length: 40 }, (_, i) => i + 2),
      'every request saw the previous one',
    );
    await waitFor(
      () => ma.sessions.get(id)?.getAttribute('count') === 41 && mb.sessions.get(id)?.getAttribute('count') === 41,
      'count 41 on both nodes',
    );
    assert.equal(stat(ma, 'conflicts') + stat(mb, 'conflicts'), 0);
    assert.equal(stat(ma, 'ownershipTimeouts') + stat(mb, 'ownershipTimeouts'), 0);
  });

  test('a request on B waits until the request in flight on A ended, then sees its write', async () => {
    const jar = await probeSessionOn(cluster, pa, 'b', 'x', '0');
    const id = jar.id;
    const ma = managerOf(cluster.node('a'), PROBE);
    // A's request writes x, then waits for the test at gate "m".
    const onA = get(pa, '/probe/set-wait?name=x&value=fromA&gate=m&parties=2', jar.cookie);
    await waitFor(() => ma.sessions.get(id)?.active === 1, "A's request to be in flight");
    const acquires = received(ma, 'acquire');
    let answered = false;
    const onB = get(pb, '/probe/attrs', jar.cookie).then((r) => {
      answered = true;
      return r;
    });
    try {
      await waitFor(() => received(ma, 'acquire') > acquires, 'B to ask A for the session');
      assert.equal((await get(pa, '/app/health')).status, 200);
      assert.equal(answered, false, 'B does not serve the session while A is using it');
    } finally {
      await rendezvous('m', 2);
    }
    assert.equal((await onA).status, 200);
    const res = await onB;
    assert.deepEqual(JSON.parse(res.body).attrs, { x: 'fromA' }, 'no stale read');
  });

  test("a request on B whose client goes away while it waits for A's hand-over leaves the session with A and never runs", async () => {
    const jar = await probeSessionOn(cluster, pa, 'b', 'x', '0');
    const id = jar.id;
    const ma = managerOf(cluster.node('a'), PROBE);
    const mb = managerOf(cluster.node('b'), PROBE);
    const written: unknown[] = [];
    const onWrite = (_s: unknown, name: string, value: unknown) => {
      if (name === 'x') written.push(value);
    };
    mb.on('attributeReplaced', onWrite);
    const onA = get(pa, '/probe/set-wait?name=x&value=fromA&gate=gone&parties=2', jar.cookie);
    let answered = false;
    let onB: Promise<unknown> | undefined;
    let conn: RawConnection | undefined;
    try {
      await waitFor(() => ma.sessions.get(id)?.active === 1, "A's request to be in flight");
      const acquires = received(ma, 'acquire');
      const abandoned = stat(mb, 'requestsAbandoned');
      conn = await RawConnection.open(pb);
      conn.send(`/probe/set?name=x&value=abandoned`, jar.cookie);
      await waitFor(() => received(ma, 'acquire') > acquires, 'B to ask A for the session');
      conn.close();
      await waitFor(() => stat(mb, 'requestsAbandoned') > abandoned, 'B to see its client go');
      assert.equal(mb.sessions.get(id)?.ownerId, ma.localId, 'A still owns it');
      assert.equal(mb.sessions.get(id)?.active, 0);
      // B's next request on it waits for A as the first would have (for the same ACQUIRE).
      onB = get(pb, '/probe/set?name=x&value=fromB', jar.cookie).then(() => {
        answered = true;
      });
      await waitFor(() => mb.sessions.get(id)?.active === 1, "B's next request to begin");
      assert.equal((await get(pa, '/app/health')).status, 200);
      assert.equal(answered, false, 'B does not serve the session while A is using it');
    } finally {
      conn?.close();
      await rendezvous('gone', 2);
    }
    assert.equal((await onA).status, 200);
    await onB;
    await waitFor(() => ma.sessions.get(id)?.getAttribute('x') === 'fromB', "B's write to reach A");
    mb.off('attributeReplaced', onWrite);
    assert.equal(mb.sessions.get(id)?.getAttribute('x'), 'fromB');
    assert.deepEqual(written, ['fromA', 'fromB'], 'the abandoned request never ran: only A and B wrote, in that order');
    assert.equal(stat(ma, 'conflicts') + stat(mb, 'conflicts'), 0);
  });
  // An owner that does not hand over within sessions.ownershipTimeoutMs: takeover.test.ts.
});
