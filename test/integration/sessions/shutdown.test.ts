/**
 * Graceful stop: the other nodes keep the sessions (unless expireSessionsOnShutdown), requests in
 * flight finish and their changes still replicate.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import { CookieJar, countOf, get, managerOf, portOf, startNodes, type TestCluster } from '../../helpers/http.js';
import { waitFor } from '../../helpers/wait.js';
import { COUNTER_AND_PROBE, rendezvous } from './apps.js';

/** `n` sessions made on A through HTTP (counter once each), and waited for on B without touching them there. */
async function sessionsOnA(cluster: TestCluster, n: number): Promise<CookieJar[]> {
  const pa = portOf(cluster.node('a'));
  const jars: CookieJar[] = [];
  for (let i = 0; i < n; i++) {
    const jar = new CookieJar();
    for (let k = 0; k <= i; k++) await jar.get(pa, '/app/counter');
    jars.push(jar);
  }
  const b = managerOf(cluster.node('b'));
  await waitFor(
    () => jars.every((j, i) => b.sessions.get(j.id)?.getAttribute('count') === i + 1),
    'B to hold the sessions made on A',
  );
  return jars;
}

describe('graceful stop', () => {
  let cluster: TestCluster | undefined;
  afterEach(async () => {
    await cluster?.stop();
    cluster = undefined;
  });

  test('stopping A does not expire its sessions on B; B serves them', async () => {
    cluster = await startNodes(2);
    const jars = await sessionsOnA(cluster, 5);
    const a = cluster.node('a');
    const b = cluster.node('b');
    const pa = portOf(a);
    await a.stop();
    assert.equal(a.ready, false);
    await assert.rejects(get(pa, '/app/health'), 'A no longer accepts connections');
    await waitFor(() => b.channel.members().length === 0, 'B to see A leave', { timeoutMs: 15_000 });
    const mb = managerOf(b);
    assert.equal(mb.sessions.size, 5);
    assert.equal(mb.stats().sessionsExpired, 0);
    assert.equal((mb.stats().received as Record<string, number>).expired ?? 0, 0);
    for (const [i, jar] of jars.entries()) {
      const res = await get(portOf(b), '/app/read', jar.cookie);
      assert.equal(countOf(res.body), i + 1, `session ${i} on B`);
      const next = await get(portOf(b), '/app/counter', jar.cookie);
      assert.equal(countOf(next.body), i + 2);
    }
  });

  test('with expireSessionsOnShutdown on A, its sessions are expired on B too', async () => {
    cluster = await startNodes(2, {
      perNode: (i) => (i === 0 ? { sessions: { expireSessionsOnShutdown: true } } : {}),
    });
    const jars = await sessionsOnA(cluster, 5);
    const b = cluster.node('b');
    const mb = managerOf(b);
    const destroyed: string[] = [];
    mb.on('sessionDestroyed', (s, reason, replicated) => destroyed.push(`${s.id}:${reason}:${replicated}`));
    await cluster.node('a').stop();
    await waitFor(() => mb.sessions.size === 0, 'B to drop the sessions A expired on shutdown', { timeoutMs: 15_000 });
    assert.deepEqual(destroyed.sort(), jars.map((j) => `${j.id}:expired:true`).sort());
    for (const jar of jars) {
      const res = await get(portOf(b), '/app/read', jar.cookie);
      assert.equal(countOf(res.body), 0);
    }
  });

  test('a request in flight when stop() is called finishes, and its change reaches B', async () => {
    cluster = await startNodes(2, {
      apps: COUNTER_AND_PROBE,
    });
    const a = cluster.node('a');
    const b = cluster.node('b');
    const jar = new CookieJar();
    await jar.get(portOf(a), '/probe/set?name=step&value=1');
    const pending = get(portOf(a), '/probe/set-wait?name=step&value=2&gate=stop&parties=2', jar.cookie);
    await waitFor(() => a.stats().inFlight === 1, 'the request to be in flight');
    const stopping = a.stop();
    await rendezvous('stop', 2); // lets the request finish
    const res = await pending;
    assert.equal(res.status, 200);
    await stopping;
    const mb = managerOf(b, 1);
    await waitFor(() => mb.sessions.get(jar.id)?.getAttribute('step') === '2', 'B to have the last change', {
      timeoutMs: 15_000,
    });
  });
});
