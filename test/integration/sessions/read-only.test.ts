/**
 * sessions.readOnlyFilter: requests on matching paths read the session from the node's own copy
 * without taking it over from its owner (no ACQUIRE/GRANT round trip, no waiting for the owner's
 * requests), never create one, may not change it (ERR_CLOWDER_SESSION_READ_ONLY), and what they
 * change in place is discarded. The others still learn of the access, and a cookie naming a node
 * that is gone is re-homed.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  CookieJar,
  countOf,
  get,
  managerOf,
  routeOf,
  sessionCookie,
  startPair,
  type TestCluster,
} from '../../helpers/http.js';
import { waitFor } from '../../helpers/wait.js';
import { APP, aheadOfChange, COUNTER_AND_PROBE, PROBE, received, rendezvous, stat } from './apps.js';

describe('read-only paths (sessions.readOnlyFilter)', () => {
  let cluster: TestCluster;
  let pa: number;
  let pb: number;
  before(async () => {
    ({ cluster, pa, pb } = await startPair({
      apps: COUNTER_AND_PROBE,
      sessions: { readOnlyFilter: '^/(app/read|probe/ro/)', accessedIntervalMs: 100 },
    }));
  });
  after(async () => {
    await cluster?.stop();
  });

  /** A session made on A with `path`, once B holds it too. */
  async function sessionOnA(path: string, app = PROBE): Promise<CookieJar> {
    const jar = new CookieJar();
    assert.equal((await jar.get(pa, path)).status, 200);
    const id = jar.id;
    await waitFor(() => managerOf(cluster.node('b'), app).sessions.has(id), 'B to receive the session');
    return jar;
  }

  test("a read on B while A's request holds the session is answered at once from B's copy; A stays the owner", async () => {
    const jar = await sessionOnA('/probe/set?name=x&value=0');
    const id = jar.id;
    const ma = managerOf(cluster.node('a'), PROBE);
    const mb = managerOf(cluster.node('b'), PROBE);
    const onA = get(pa, '/probe/set-wait?name=x&value=fromA&gate=ro&parties=2', jar.cookie);
    try {
      await waitFor(() => ma.sessions.get(id)?.active === 1, "A's request to be in flight");
      const acquires = received(ma, 'acquire');
      const res = await get(pb, '/probe/ro/attrs', jar.cookie);
      assert.equal(res.status, 200);
      assert.deepEqual(JSON.parse(res.body).attrs, { x: '0' }, 'the last replicated state');
      assert.equal(ma.sessions.get(id)?.active, 1, "answered while A's request still held the session");
      assert.equal(received(ma, 'acquire'), acquires, 'B did not ask A for the session');
      assert.equal(mb.sessions.get(id)?.ownerId, ma.localId, 'B still knows A as the owner');
      assert.equal(sessionCookie(res), undefined, 'the cookie keeps naming A, which is alive');
    } finally {
      await rendezvous('ro', 2);
    }
    assert.equal((await onA).status, 200);
    assert.equal(ma.sessions.get(id)?.ownerId, ma.localId);
    await waitFor(() => mb.sessions.get(id)?.getAttribute('x') === 'fromA', "A's write to reach B");
    assert.deepEqual(JSON.parse((await get(pb, '/probe/ro/attrs', jar.cookie)).body).attrs, { x: 'fromA' });
  });

  test("the counter's /app/read on B after each write on A: no hand-over either way, no count ahead of the write", async () => {
    const jar = await sessionOnA('/app/counter', APP);
    const ma = managerOf(cluster.node('a'), APP);
    const mb = managerOf(cluster.node('b'), APP);
    const moves = stat(ma, 'ownershipMoves') + stat(mb, 'ownershipMoves');
    const reads = stat(mb, 'readOnlyRequests');
    let fresh = 0;
    for (let i = 0; i < 20; i++) {
      const w = await get(pa, '/app/counter', jar.cookie);
      const r = await get(pb, '/app/read', jar.cookie);
      assert.equal(r.status, 200);
      assert.ok(countOf(r.body) <= countOf(w.body), `read ${r.body} is not ahead of the write ${w.body}`);
      if (countOf(r.body) === countOf(w.body)) fresh++;
    }
    // The write's change is sent before A answers, and B serves a read of a session owned
    // elsewhere only after the input that came with it was applied: no read is stale.
    assert.equal(fresh, 20, `${fresh} of 20 reads saw the write just made`);
    assert.equal(stat(ma, 'ownershipMoves') + stat(mb, 'ownershipMoves'), moves, 'nobody took the session over');
    assert.equal(stat(mb, 'readOnlyRequests') - reads, 20);
    assert.equal(ma.sessions.get(jar.id)?.getAttribute('count'), 21);
    assert.equal(ma.sessions.get(jar.id)?.ownerId, ma.localId, 'A owns it throughout');
  });

  test("a read on B that arrives together with A's change, ahead of it, is answered after the change applied", async () => {
    const jar = await sessionOnA('/app/counter', APP);
    const ma = managerOf(cluster.node('a'), APP);
    const mb = managerOf(cluster.node('b'), APP);
    const body = await aheadOfChange(cluster, pb, '/app/read', jar.cookie!, 'a', 7);
    assert.equal(countOf(body), 7, "B answered with A's change");
    assert.equal(mb.sessions.get(jar.id)?.ownerId, ma.localId, 'A still owns it');
  });

  test('changing the session on a read-only path throws ERR_CLOWDER_SESSION_READ_ONLY, on the owner too; nothing changes', async () => {
    const jar = await sessionOnA('/probe/set?name=k&value=v');
    const id = jar.id;
    const ma = managerOf(cluster.node('a'), PROBE);
    const mb = managerOf(cluster.node('b'), PROBE);
    const sentBefore = { a: ma.stats().replications as number, b: mb.stats().replications as number };
    for (const port of [pb, pa]) {
      const res = await get(port, '/probe/ro/try-writes', jar.cookie);
      assert.equal(res.status, 200, res.body);
      const body = JSON.parse(res.body);
      for (const [way, err] of Object.entries(body.errors as Record<string, { code: string; message: string }>)) {
        assert.equal(err?.code, 'ERR_CLOWDER_SESSION_READ_ONLY', `${way} on port ${port}: ${JSON.stringify(err)}`);
        assert.match(err.message, /sessions\.readOnlyFilter/);
      }
      assert.match(body.errors.assign.message, /"w"/, 'names the attribute');
      assert.match(body.errors.assign.message, /\/probe\/ro\/try-writes/, 'names the path');
      assert.deepEqual(body.attrs, { k: 'v' });
      assert.equal(body.id, id, 'same session, no new id');
    }
    for (const m of [ma, mb]) {
      const s = m.sessions.get(id);
      assert.ok(s?.valid, 'still valid');
      assert.deepEqual(s.attributeNames(), ['k']);
      assert.equal(s.maxInactiveInterval, 1800);
    }
    assert.equal(ma.stats().replications, sentBefore.a, 'A replicated nothing');
    assert.equal(mb.stats().replications, sentBefore.b, 'B replicated nothing');
  });

  test('an object changed in place on a read-only path is discarded and counted; the next write starts from the replicated value', async () => {
    const jar = await sessionOnA('/probe/cart/add?n=1');
    const id = jar.id;
    const ma = managerOf(cluster.node('a'), PROBE);
    const mb = managerOf(cluster.node('b'), PROBE);
    const discarded = stat(mb, 'readOnlyChangesDiscarded');
    const res = await get(pb, '/probe/ro/cart/add?n=2', jar.cookie);
    assert.equal(res.status, 200);
    assert.deepEqual(JSON.parse(res.body).items, [1, 2], 'the request saw its own change');
    assert.equal(stat(mb, 'readOnlyChangesDiscarded') - discarded, 1);
    assert.deepEqual(mb.sessions.get(id)?.getAttribute('cart'), { items: [1] }, "B's copy is the replicated one");
    assert.deepEqual(ma.sessions.get(id)?.getAttribute('cart'), { items: [1] });
    const write = await get(pb, '/probe/cart/add?n=3', jar.cookie);
    assert.deepEqual(JSON.parse(write.body).items, [1, 3]);
    await waitFor(
      () => JSON.stringify(ma.sessions.get(id)?.getAttribute('cart')) === '{"items":[1,3]}',
      "B's write to reach A",
    );
  });

  test('a read-only path creates no session', async () => {
    const ma = managerOf(cluster.node('a'), PROBE);
    const before = ma.sessions.size;
    const res = await get(pa, '/probe/ro/attrs');
    assert.equal(res.status, 200);
    assert.deepEqual(JSON.parse(res.body), { id: null, attrs: null });
    assert.equal(sessionCookie(res), undefined, 'no Set-Cookie');
    const tries = await get(pa, '/probe/ro/try-writes');
    assert.deepEqual(JSON.parse(tries.body).id, null);
    assert.equal(ma.sessions.size, before);
  });

  test('reads on B keep the session alive on A: B tells A of the access, rate-limited, and A stays the owner', async () => {
    const jar = await sessionOnA('/probe/set?name=t&value=1');
    const id = jar.id;
    const ma = managerOf(cluster.node('a'), PROBE);
    const mb = managerOf(cluster.node('b'), PROBE);
    const accessed = stat(mb, 'accessedSent');
    const noticesOnA = received(ma, 'accessed');
    // Access times have millisecond resolution: B's first read may fall in the millisecond of A's
    // write, so "A's time went up" is no evidence. A's count of notices is, and the time it then
    // holds is at least that of B's first read (one clock on loopback).
    const firstReadAt = Date.now();
    const t0 = performance.now();
    for (let i = 0; i < 10; i++) assert.equal((await get(pb, '/probe/ro/attrs', jar.cookie)).status, 200);
    const elapsed = performance.now() - t0;
    await waitFor(() => received(ma, 'accessed') > noticesOnA, "A to receive B's access notice");
    assert.ok(ma.sessions.get(id)!.lastAccessedTime >= firstReadAt, "A's access time is that of B's reads");
    const sent = stat(mb, 'accessedSent') - accessed;
    // accessedIntervalMs 100: one notice per 100 ms at most (+1 for the first).
    assert.ok(sent >= 1 && sent <= 1 + Math.floor(elapsed / 100), `${sent} notices for 10 reads in ${elapsed} ms`);
    assert.equal(ma.sessions.get(id)?.ownerId, ma.localId, 'A still owns it');
    assert.equal(ma.sessions.get(id)?.primary, true, 'and expires it cluster-wide');
  });

  test('a read on B of a session whose cookie names a node that is gone re-homes the cookie to B', async () => {
    const jar = await sessionOnA('/probe/set?name=f&value=1');
    const mb = managerOf(cluster.node('b'), PROBE);
    await cluster.node('a').stop();
    await waitFor(() => cluster.node('b').channel.members().length === 0, 'B to see A leave');
    const res = await get(pb, '/probe/ro/attrs', jar.cookie);
    assert.equal(res.status, 200);
    assert.deepEqual(JSON.parse(res.body).attrs, { f: '1' });
    const cookie = sessionCookie(res);
    assert.ok(cookie !== undefined, 're-issued');
    assert.equal(routeOf(cookie), 'b');
    // And a write there takes the session (its owner is gone).
    const write = await get(pb, '/probe/set?name=f&value=2', cookie);
    assert.equal(write.status, 200);
    assert.equal(mb.sessions.get(jar.id)?.ownerId, mb.localId);
  });
});
