/**
 * Copies of other nodes' sessions are bounded (maxReplicaSessions), and maxActiveSessions counts
 * only the sessions a node created: a member that floods a node with sessions can neither make it
 * hold them all nor stop it from creating its own.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { encode } from '../../src/index.js';
import { Msg } from '../../src/session/messages.js';
import { CookieJar, get, managerOf, startNodes, type TestCluster, throwFailures } from '../helpers/http.js';
import { counter, freshId, ScriptedMember } from './scripted-member.js';

describe('replica bound and maxActiveSessions', () => {
  let cluster: TestCluster;
  let x: ScriptedMember;
  before(async () => {
    cluster = await startNodes(1, { sessions: { maxReplicaSessions: 20, maxActiveSessions: 3 } });
    x = await ScriptedMember.join(cluster, 'x');
  });
  after(async () => {
    throwFailures(await Promise.allSettled([x?.stop(), cluster?.stop()]), 'cleaning up');
  });

  test('a flood of new sessions stops at maxReplicaSessions; the sender sees its sends succeed', async () => {
    const a = cluster.node('a');
    const m = managerOf(a);
    const now = Date.now();
    for (let i = 0; i < 50; i++) {
      // Acknowledged once applied, as in synchronous mode: the owner's send succeeds either way.
      await x.channel.send(x.member(a), [Msg.CREATED, '/app', freshId(), now, 1800, 1, ['count'], [encode(i)]], {
        options: 'use_ack,sync',
      });
    }
    // A delta for an unknown session at the limit: refused too, and not asked for (no repair).
    const unknown = freshId();
    await x.send(a, [Msg.DELTA, '/app', unknown, 1, 2, ['count'], [encode(1)], [], null]);
    await x.handled(a);
    assert.equal(m.sessions.size, 20);
    assert.equal(m.stats().replicaSessions, 20);
    assert.equal(counter(a, 'refusedReplicaLimit'), 31);
    assert.equal(
      x.inbox.some((msg) => msg[0] === Msg.SESSION_REQUEST && msg[2] === unknown),
      false,
      'no repair asked',
    );
  });

  test('the node still creates its own sessions, up to maxActiveSessions of them', async () => {
    const a = cluster.node('a');
    const port = a.address.port;
    for (let i = 0; i < 3; i++) {
      const res = await new CookieJar().get(port, '/app/counter');
      assert.equal(res.status, 200, `own session ${i + 1} of 3`);
    }
    assert.equal((await get(port, '/app/counter')).status, 503, 'the fourth is refused');
    assert.equal(managerOf(a).sessions.size, 23);
  });

  test('an expired copy makes room for another', async () => {
    const a = cluster.node('a');
    const m = managerOf(a);
    const copy = [...m.sessions.values()].find((s) => !s.primary)!;
    await x.send(a, [Msg.EXPIRED, '/app', copy.id, 'invalidated']);
    const id = freshId();
    await x.send(a, [Msg.CREATED, '/app', id, Date.now(), 1800, 1, [], []]);
    await x.handled(a);
    assert.equal(m.sessions.has(id), true);
    assert.equal(m.stats().replicaSessions, 20);
  });
});
