/**
 * GRANT is taken only from the member that was asked (ACQUIRE), for the request id it was asked
 * with, which is random: a member cannot take a session from a node that waits for its owner by
 * guessing the (formerly sequential) id, nor by answering for the owner with the right one.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { encode } from '../../src/index.js';
import { Msg } from '../../src/session/messages.js';
import { CookieJar, countOf, get, managerOf, startNodes, type TestCluster, throwFailures } from '../helpers/http.js';
import { waitFor } from '../helpers/wait.js';
import { counter, ScriptedMember } from './scripted-member.js';

describe('GRANT only from the member asked, for the random id it was asked with', () => {
  let cluster: TestCluster;
  let x: ScriptedMember;
  let y: ScriptedMember;
  before(async () => {
    // The node waits long for x's answer: the test, not a timeout, decides when it comes.
    cluster = await startNodes(1, { sessions: { ownershipTimeoutMs: 60_000 } });
    x = await ScriptedMember.join(cluster, 'x');
    y = await ScriptedMember.join(cluster, 'y');
  });
  after(async () => {
    throwFailures(await Promise.allSettled([x?.stop(), y?.stop(), cluster?.stop()]), 'cleaning up');
  });

  test("another member's grants, guessed or copied, do not hand the session over", async () => {
    const a = cluster.node('a');
    const m = managerOf(a);
    const port = a.address.port;
    const jar = new CookieJar();
    await jar.get(port, '/app/counter'); // count 1, created on a
    const id = jar.id;
    const s = m.sessions.get(id)!;
    // x writes a newer version: a now believes x owns the session.
    await x.send(a, [Msg.DELTA, '/app', id, s.version, s.version + 1, ['count'], [encode(5)], [], null]);
    await waitFor(() => s.ownerId === x.id, 'a to take x for the owner');
    // A request on a: a asks x for the session, and waits for x's grant.
    const onA = get(port, '/app/counter', jar.cookie);
    const ask = await x.received((msg) => msg[0] === Msg.ACQUIRE && msg[2] === id, 'a to ask x');
    const requestId = ask[3] as number;
    assert.ok(Number.isSafeInteger(requestId) && requestId > 2 ** 20, `a random request id (${requestId})`);
    const before = counter(a, 'refusedGrant');
    // y guesses sequential ids, and copies the right one: none of it is x's answer.
    for (let guess = 0; guess <= 64; guess++) await y.send(a, [Msg.GRANT, '/app', id, guess, y.id, true]);
    await y.send(a, [Msg.GRANT, '/app', id, requestId, y.id, true]);
    // x itself, for another id, or for another session with the right id.
    await x.send(a, [Msg.GRANT, '/app', id, requestId + 1, a.channel.local.id, true]);
    await x.send(a, [Msg.GRANT, '/app', 'F'.repeat(32), requestId, a.channel.local.id, true]);
    await y.handled(a);
    await x.handled(a);
    assert.equal(s.ownerId, x.id, 'a still waits for x');
    assert.equal(counter(a, 'refusedGrant'), before + 68);
    // x's own answer hands it over: a serves the request, counting on from x's write.
    await x.send(a, [Msg.GRANT, '/app', id, requestId, a.channel.local.id, true]);
    assert.equal(countOf((await onA).body), 6);
    assert.equal(s.ownerId, a.channel.local.id);
  });
});
