/**
 * Expiry: the node that served a session last (its primary) expires it cluster-wide after its
 * max inactive interval; the copies follow; a session in use somewhere stays alive everywhere.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import type { DestroyReason, Session } from '../../../src/index.js';
import {
  CookieJar,
  countOf,
  field,
  get,
  idOf,
  managerOf,
  sessionCookie,
  startPair,
  type TestCluster,
} from '../../helpers/http.js';
import { waitFor } from '../../helpers/wait.js';
import { APP, COUNTER_AND_PROBE, PROBE } from './apps.js';

describe('expiry (processExpiresFrequency 1 s)', () => {
  let cluster: TestCluster;
  let pa: number;
  let pb: number;
  before(async () => {
    ({ cluster, pa, pb } = await startPair({
      apps: COUNTER_AND_PROBE,
      sessions: { processExpiresFrequency: 1 },
    }));
  });
  after(async () => {
    await cluster?.stop();
  });

  async function sessionOnBoth(path = '/app/counter', i = APP): Promise<CookieJar> {
    const jar = new CookieJar();
    await jar.get(pa, path);
    await waitFor(() => managerOf(cluster.node('b'), i).sessions.has(jar.id), 'B to receive the session');
    return jar;
  }

  test('expire-soon on B: B (the primary) expires it, A drops it too (replicated), and it stays gone', async () => {
    const jar = await sessionOnBoth();
    const id = jar.id;
    const ma = managerOf(cluster.node('a'), APP);
    const mb = managerOf(cluster.node('b'), APP);
    const events: string[] = [];
    const on =
      (node: string) =>
      (s: Session, reason: DestroyReason, replicated: boolean): void => {
        if (s.id === id) events.push(`${node}:${reason}:${replicated}`);
      };
    const onA = on('a');
    const onB = on('b');
    ma.on('sessionDestroyed', onA);
    mb.on('sessionDestroyed', onB);
    try {
      const expiredB = mb.stats().sessionsExpired as number;
      const res = await get(pb, '/app/expire-soon?seconds=1', jar.cookie);
      assert.equal(field(res.body, 'expires-in'), '1');
      assert.equal(field(res.body, 'node'), 'b');
      await waitFor(() => ma.sessions.get(id)?.maxInactiveInterval === 1, 'A to learn the new interval');
      const expiredMsgsA = (ma.stats().received as Record<string, number>).expired ?? 0;
      await waitFor(() => events.length === 2, 'the session to be destroyed on both nodes', { timeoutMs: 15_000 });
      // B expired it as the primary (told everyone); A dropped its copy as a replicated destruction.
      assert.deepEqual([...events].sort(), ['a:expired:true', 'b:expired:false']);
      await waitFor(
        () => ((ma.stats().received as Record<string, number>).expired ?? 0) === expiredMsgsA + 1,
        "B's EXPIRED message to reach A",
      );
      assert.equal((mb.stats().sessionsExpired as number) - expiredB, 1);
      assert.equal(ma.sessions.has(id), false);
      assert.equal(mb.sessions.has(id), false);
      assert.equal(countOf((await get(pa, '/app/read', jar.cookie)).body), 0);
      assert.equal(countOf((await get(pb, '/app/read', jar.cookie)).body), 0);
      // Using the old cookie starts afresh.
      const fresh = await get(pa, '/app/counter', jar.cookie);
      assert.equal(countOf(fresh.body), 1);
      assert.notEqual(idOf(sessionCookie(fresh)!), id);
    } finally {
      ma.off('sessionDestroyed', onA);
      mb.off('sessionDestroyed', onB);
    }
  });

  /** Reads the session on `port` every 250 ms (a user's pace, not a wait for a condition) for `ms`. */
  async function keepReading(port: number, cookie: string, ms: number, what: string): Promise<void> {
    const until = Date.now() + ms;
    while (Date.now() < until) {
      const r = await get(port, '/app/read', cookie);
      assert.equal(countOf(r.body), 1, what);
      await delay(250);
    }
  }

  /** B serves the session read-only (interval 1 s): A must keep its copy, so failover keeps the user. */
  async function readOnB(): Promise<void> {
    const jar = await sessionOnBoth();
    const id = jar.id;
    const ma = managerOf(cluster.node('a'), APP);
    await get(pb, '/app/expire-soon?seconds=1', jar.cookie);
    await waitFor(() => ma.sessions.get(id)?.maxInactiveInterval === 1, 'A to learn the new interval');
    await keepReading(pb, jar.cookie!, 3500, 'B serves the session');
    assert.ok(ma.sessions.has(id), 'A still holds the session that B keeps serving');
    const failover = await get(pa, '/app/counter', jar.cookie);
    assert.equal(countOf(failover.body), 2, 'failover to A keeps the session');
  }

  /**
   * After one request on B, B considers itself the primary. A serves the session again
   * (read-only, interval 1 s): B must learn of it before it would expire the session cluster-wide.
   */
  async function backOnA(): Promise<void> {
    const jar = await sessionOnBoth();
    const id = jar.id;
    const ma = managerOf(cluster.node('a'), APP);
    const mb = managerOf(cluster.node('b'), APP);
    await get(pa, '/app/expire-soon?seconds=1', jar.cookie);
    await waitFor(() => mb.sessions.get(id)?.maxInactiveInterval === 1, 'B to learn the new interval');
    const accessed = (ma.stats().received as Record<string, number>).accessed ?? 0;
    assert.equal(countOf((await get(pb, '/app/read', jar.cookie)).body), 1);
    await waitFor(
      () => ((ma.stats().received as Record<string, number>).accessed ?? 0) > accessed,
      'A to hear that B served it',
    );
    await keepReading(pa, jar.cookie!, 3500, 'A keeps serving the session');
    assert.ok(mb.sessions.has(id), 'B did not expire the session A keeps serving');
  }

  test('a session in use (read-only, interval 1 s) on one node stays alive on the other', async () => {
    // Two sessions at once: one read on B (its primary) only; one served once on B, then on A only.
    await Promise.all([readOnB(), backOnA()]);
  });

  test('setMaxInactiveInterval(-1) (never expire) replicates, and neither node expires the session however long it is idle', async () => {
    const jar = await sessionOnBoth('/probe/set?name=k&value=1', PROBE);
    const mb = managerOf(cluster.node('b'), PROBE);
    const r = await get(pa, '/probe/max?seconds=600', jar.cookie);
    assert.equal(JSON.parse(r.body).maxInactiveInterval, 600);
    await waitFor(() => mb.sessions.get(jar.id)?.maxInactiveInterval === 600, 'B to see 600');
    const never = await get(pa, '/probe/max?seconds=-1', jar.cookie);
    assert.equal(JSON.parse(never.body).maxInactiveInterval, -1);
    // A later ordinary change proves the delta carrying -1 has been applied on B.
    await get(pa, '/probe/set?name=k&value=2', jar.cookie);
    await waitFor(() => mb.sessions.get(jar.id)?.getAttribute('k') === '2', 'B to see k=2');
    assert.equal(mb.sessions.get(jar.id)!.maxInactiveInterval, -1, 'B keeps the session forever too');
    // Idle for a year on both nodes, and each runs its expiry pass: the session stays everywhere,
    // and a request on either still finds it.
    const ma = managerOf(cluster.node('a'), PROBE);
    const yearAgo = Date.now() - 365 * 86_400_000;
    for (const m of [ma, mb]) {
      m.sessions.get(jar.id)!.lastAccessedTime = yearAgo;
      m.processExpires(Date.now());
    }
    assert.ok(ma.sessions.has(jar.id) && mb.sessions.has(jar.id), 'not expired on A nor on B');
    assert.deepEqual(JSON.parse((await get(pb, '/probe/attrs', jar.cookie)).body).attrs, { k: '2' });
  });
});
