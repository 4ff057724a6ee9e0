/**
 * EXPIRED and ID_CHANGED act only on ids this node holds: a member can neither fill the
 * tombstones with ids (each remembered for tombstoneTtlMs) nor rename a session onto another one.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Msg } from '../../src/session/messages.js';
import { CookieJar, managerOf, startNodes, type TestCluster, throwFailures } from '../helpers/http.js';
import { counter, freshId, ScriptedMember } from './scripted-member.js';

describe('EXPIRED and ID_CHANGED only for ids held here', () => {
  let cluster: TestCluster;
  let x: ScriptedMember;
  before(async () => {
    cluster = await startNodes(1);
    x = await ScriptedMember.join(cluster, 'x');
  });
  after(async () => {
    throwFailures(await Promise.allSettled([x?.stop(), cluster?.stop()]), 'cleaning up');
  });

  test('expiries of unknown or malformed ids leave no tombstones', async () => {
    const a = cluster.node('a');
    const m = managerOf(a);
    const tombstones = m.stats().tombstones;
    const refused = counter(a, 'refusedExpired');
    const malformed = counter(a, 'malformedIds');
    for (let i = 0; i < 300; i++) await x.send(a, [Msg.EXPIRED, '/app', freshId(), 'invalidated']);
    const bad = ['+'.repeat(32), 'A='.repeat(16), 'A'.repeat(33), 'A'.repeat(50_000), 7, null];
    for (const id of bad) await x.send(a, [Msg.EXPIRED, '/app', id, 'expired']);
    await x.handled(a);
    assert.equal(m.stats().tombstones, tombstones, 'no tombstone added');
    assert.equal(counter(a, 'refusedExpired'), refused + 300);
    assert.equal(counter(a, 'malformedIds'), malformed + bad.length);
  });

  test('an expiry of a session held here still ends it', async () => {
    const a = cluster.node('a');
    const jar = new CookieJar();
    await jar.get(a.address.port, '/app/counter');
    await x.send(a, [Msg.EXPIRED, '/app', jar.id, 'invalidated']);
    await x.handled(a);
    assert.equal(managerOf(a).sessions.has(jar.id), false);
  });

  test('a rename onto a session held here, or of an unknown id, is refused', async () => {
    const a = cluster.node('a');
    const m = managerOf(a);
    const one = new CookieJar();
    const two = new CookieJar();
    await one.get(a.address.port, '/app/counter'); // count 1
    await two.get(a.address.port, '/app/counter');
    await two.get(a.address.port, '/app/counter'); // count 2
    const s2 = m.sessions.get(two.id)!;
    const refused = counter(a, 'refusedIdChanges');
    const tombstones = m.stats().tombstones;
    await x.send(a, [Msg.ID_CHANGED, '/app', one.id, two.id]);
    await x.send(a, [Msg.ID_CHANGED, '/app', freshId(), freshId()]);
    await x.handled(a);
    assert.equal(m.sessions.get(two.id), s2, 'the second session is still there');
    assert.equal(s2.getAttribute('count'), 2);
    assert.equal(m.sessions.get(one.id)?.getAttribute('count'), 1, 'the first kept its id');
    assert.equal(m.stats().tombstones, tombstones, 'no tombstone added');
    assert.equal(counter(a, 'refusedIdChanges'), refused + 2);
  });
});
