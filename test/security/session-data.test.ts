/**
 * SESSION_DATA (a whole session) is taken only as the answer to this node's SESSION_REQUEST, from
 * the member it asked: a member cannot plant sessions or overwrite one with a record nobody asked for.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { encode } from '../../src/index.js';
import { Msg } from '../../src/session/messages.js';
import { CookieJar, managerOf, startNodes, type TestCluster, throwFailures } from '../helpers/http.js';
import { waitFor } from '../helpers/wait.js';
import { counter, freshId, ScriptedMember } from './scripted-member.js';

/** A record of session `id` with one attribute `count` = `value` stamped (version, writer). */
function record(id: string, value: number, version: number, writer: string): unknown[] {
  const now = Date.now();
  return [id, now, now, 1800, version, ['count'], [encode(value)], [version], [writer], writer];
}

describe('SESSION_DATA only in answer to a request, from the member asked', () => {
  let cluster: TestCluster;
  let x: ScriptedMember;
  let y: ScriptedMember;
  before(async () => {
    cluster = await startNodes(1, { sessions: { stateTransferChunkSize: 1 } }); // a transfer spans several turns
    x = await ScriptedMember.join(cluster, 'x');
    y = await ScriptedMember.join(cluster, 'y');
  });
  after(async () => {
    throwFailures(await Promise.allSettled([x?.stop(), y?.stop(), cluster?.stop()]), 'cleaning up');
  });

  test('an unsolicited record neither creates a session nor overwrites one', async () => {
    const a = cluster.node('a');
    const m = managerOf(a);
    const jar = new CookieJar();
    await jar.get(a.address.port, '/app/counter'); // count 1, created on a
    const s = m.sessions.get(jar.id)!;
    const planted = freshId();
    const before = counter(a, 'refusedSessionData');
    await x.send(a, [Msg.SESSION_DATA, '/app', record(planted, 42, 5, x.id)]);
    await x.send(a, [Msg.SESSION_DATA, '/app', record(jar.id, 1000, s.version + 10, x.id)]);
    await x.handled(a);
    assert.equal(m.sessions.has(planted), false, 'no session planted');
    assert.equal(s.getAttribute('count'), 1, 'the session kept its value');
    assert.equal(counter(a, 'refusedSessionData'), before + 2);
  });

  test('the answer to a repair is taken from the member asked only', async () => {
    const a = cluster.node('a');
    const m = managerOf(a);
    const id = freshId();
    // A delta for a session a never saw whole: a keeps it and asks x for the rest.
    await x.send(a, [Msg.DELTA, '/app', id, 6, 7, ['b'], [encode('from-delta')], [], null]);
    await x.received((msg) => msg[0] === Msg.SESSION_REQUEST && msg[2] === id, 'a to ask x for the session');
    const before = counter(a, 'refusedSessionData');
    // y answers in x's place, first: refused.
    await y.send(a, [Msg.SESSION_DATA, '/app', record(id, 666, 7, y.id)]);
    await y.handled(a);
    assert.equal(m.sessions.get(id)!.getAttribute('count'), undefined, "y's record was not taken");
    assert.equal(counter(a, 'refusedSessionData'), before + 1);
    // x, asked, answers: taken.
    await x.send(a, [Msg.SESSION_DATA, '/app', record(id, 7, 7, x.id)]);
    await waitFor(() => m.sessions.get(id)!.getAttribute('count') === 7, "x's record to be taken");
    // Once: the same answer again is not awaited any more.
    await x.send(a, [Msg.SESSION_DATA, '/app', record(id, 8, 8, x.id)]);
    await x.handled(a);
    assert.equal(m.sessions.get(id)!.getAttribute('count'), 7);
    assert.equal(counter(a, 'refusedSessionData'), before + 2);
  });

  test('state-transfer messages for no transfer of this node are refused', async () => {
    const a = cluster.node('a');
    const m = managerOf(a);
    const before = counter(a, 'refusedSessionData');
    const planted = freshId();
    await x.send(a, [Msg.STATE_CHUNK, '/app', `${a.channel.local.id.slice(0, 8)}-1`, 0, [record(planted, 1, 1, x.id)]]);
    await x.send(a, [Msg.STATE_COMPLETE, '/app', `${a.channel.local.id.slice(0, 8)}-1`, 0, []]);
    await x.handled(a);
    assert.equal(m.sessions.has(planted), false);
    assert.equal(counter(a, 'refusedSessionData'), before + 2);
  });

  test('a member gets every session streamed once at a time, however often it asks', async () => {
    const a = cluster.node('a');
    const m = managerOf(a);
    for (let i = 0; i < 6; i++) await new CookieJar().get(a.address.port, '/app/counter');
    const before = counter(a, 'refusedStateRequests');
    // Two requests written together: the second arrives while the first is being answered.
    await Promise.all([
      x.send(a, [Msg.STATE_REQUEST, '/app', 'first']),
      x.send(a, [Msg.STATE_REQUEST, '/app', 'second']),
    ]);
    await x.received((msg) => msg[0] === Msg.STATE_COMPLETE && msg[2] === 'first', 'the first transfer to complete');
    await x.handled(a);
    assert.equal(counter(a, 'refusedStateRequests'), before + 1);
    assert.ok(
      x.inbox.some((msg) => msg[0] === Msg.STATE_NONE && msg[2] === 'second'),
      'the second was answered "none"',
    );
    assert.equal(x.inbox.filter((msg) => msg[0] === Msg.STATE_CHUNK && msg[2] === 'second').length, 0);
    assert.ok(m.sessions.size >= 6);
  });
});
