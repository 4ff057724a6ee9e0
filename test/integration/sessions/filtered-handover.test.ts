/**
 * A request on a replicationFilter path still hands the session over when it ends: a node that
 * asked for the session meanwhile gets it at once (with what the filtered request changed), not
 * after sessions.ownershipTimeoutMs through a forced take-over that fences the owner.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { CookieJar, get, managerOf, portOf, startPair, type TestCluster } from '../../helpers/http.js';
import { waitFor } from '../../helpers/wait.js';
import { probe, rendezvous, stat } from './apps.js';

describe('a filtered request (replicationFilter) and a waiting node', () => {
  let cluster: TestCluster;
  before(async () => {
    // A wait that ended by the timeout would take 60 s: far beyond the deadline below.
    ({ cluster } = await startPair({
      apps: [{ path: '/f', app: probe, sessions: { replicationFilter: '^/f/static/' } }],
      sessions: { ownershipTimeoutMs: 60_000 },
    }));
  });
  after(async () => {
    await cluster?.stop();
  });

  test('the owner hands over when its filtered request ends: no forced take-over, the change travels', async () => {
    const [a, b] = [cluster.node('a'), cluster.node('b')];
    const [ma, mb] = [managerOf(a), managerOf(b)];
    const jar = new CookieJar();
    await jar.get(portOf(a), '/f/set?name=k&value=1');
    const id = jar.id;
    await waitFor(() => mb.sessions.has(id), 'B to receive the session');
    // A filtered request on A holds the session (it waits at a gate) ...
    const onA = get(portOf(a), '/f/static/set-wait?name=k&value=2&gate=filtered&parties=2', jar.cookie);
    await waitFor(() => ma.sessions.get(id)?.active === 1, "A's filtered request to be running");
    // ... while B is asked to write it: B waits for A's hand-over.
    const onB = get(portOf(b), '/f/set?name=other&value=x', jar.cookie, 90_000);
    await waitFor(() => ma.sessions.get(id)?.waiters !== undefined, 'B to ask A for the session (a waiter at A)');
    void rendezvous('filtered', 2); // releases A's request (the app and the test share the module)
    assert.equal((await onA).status, 200);
    const deadline = new Promise<'deadline'>((r) => setTimeout(() => r('deadline'), 30_000).unref());
    const answer = await Promise.race([onB, deadline]);
    assert.notEqual(answer, 'deadline', 'B was served after the filtered request ended, not after the timeout');
    assert.equal((answer as { status: number }).status, 200);
    assert.equal(stat(mb, 'ownershipTimeouts'), 0, 'no take-over by timeout');
    assert.equal(stat(mb, 'ownershipForced'), 0);
    assert.equal(stat(ma, 'fencedWrites'), 0);
    // The filtered change reached B with the hand-over, and B's write is on top of it.
    const r = await get(portOf(b), '/f/attrs', jar.cookie);
    const attrs = (JSON.parse(r.body) as { attrs: Record<string, unknown> }).attrs;
    assert.equal(attrs.k, '2');
    assert.equal(attrs.other, 'x');
  });
});
