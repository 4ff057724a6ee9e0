/**
 * A member that sends the BackupManager's messages with hostile intent, over the real
 * connections: each refusal is counted (refusedBackupMessages, or the shared malformed counters),
 * nothing is lost and no node crashes. A RELEASE cannot drop a copy newer than the sender's, one
 * this node serves, or one it never gave; an unasked FETCHED is refused, a granted one too (it
 * neither plants a session nor its ownership); a FETCH of a session answers only what the asked
 * node holds, a "take" hands over only what it owns; malformed ids, modes and oversized chunks are
 * refused whole.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { MAX_CHUNK } from '../../src/session/backup-messages.js';
import { Msg } from '../../src/session/messages.js';
import { CookieJar, managerOf, portOf, startNodes, type TestCluster } from '../helpers/http.js';
import { waitFor } from '../helpers/wait.js';
import { counter, freshId, ScriptedMember } from './scripted-member.js';

describe('hostile backup messages (BackupManager, 2 nodes + a scripted member)', () => {
  let cluster: TestCluster;
  let x: ScriptedMember;
  before(async () => {
    // a on the scripted member's host (its receiver address, as it advertises none): a's copies
    // avoid x (anti-affinity) and go to b.
    cluster = await startNodes(2, {
      sessions: { manager: 'backup', backups: 1 },
      perNode: (i) => (i === 0 ? { placement: { host: '127.0.0.1' } } : {}),
    });
    x = await ScriptedMember.join(cluster, 'x');
  });
  after(async () => {
    await x?.stop();
    await cluster?.stop();
  });

  test('RELEASE cannot drop a copy newer than the sender’s, nor one the node serves', async () => {
    const [a, b] = [cluster.node('a'), cluster.node('b')];
    const jar = new CookieJar();
    for (let j = 0; j < 3; j++) await jar.get(portOf(a), '/app/counter');
    const id = jar.id;
    await waitFor(() => managerOf(b).sessions.has(id), 'the copy on b');
    const refusedA = counter(a, 'refusedBackupMessages');
    await x.send(a, [Msg.RELEASE, '/app', [id], [1_000_000]]);
    await x.handled(a);
    assert.equal(counter(a, 'refusedBackupMessages'), refusedA + 1, 'a serves it: refused');
    assert.ok(managerOf(a).sessions.has(id), 'the primary keeps its session');
    const version = managerOf(b).sessions.get(id)!.version;
    const refused = counter(b, 'refusedBackupMessages');
    await x.send(b, [Msg.RELEASE, '/app', [id], [version - 1]]);
    await x.handled(b);
    assert.equal(counter(b, 'refusedBackupMessages'), refused + 1, 'older than the copy: refused');
    assert.ok(managerOf(b).sessions.has(id), 'the copy is kept');
  });

  test('an unasked FETCHED, malformed ids and oversized chunks are refused and counted', async () => {
    const a = cluster.node('a');
    const refused = counter(a, 'refusedBackupMessages');
    const malformed = counter(a, 'malformed');
    await x.send(a, [Msg.FETCHED, '/app', 12345, null]);
    await x.send(a, [Msg.FETCH, '/app', 'not-a-session-id', 1]);
    await x.send(a, [Msg.RELEASE, '/app', ['x'], [1]]);
    await x.send(a, [Msg.COPIES, '/app', new Array(MAX_CHUNK + 1).fill(0)]);
    await x.send(a, [Msg.COPIES, '/app', [['garbage']]]);
    await x.send(a, [Msg.SHARE_SENT, '/app', 'extra']);
    await x.handled(a);
    // FETCHED unasked, FETCH and RELEASE with bad ids, the oversized COPIES, SHARE_SENT malformed.
    assert.equal(counter(a, 'refusedBackupMessages'), refused + 5);
    assert.equal(counter(a, 'malformed'), malformed + 1, 'the garbage record is refused by the record reader');
  });

  test('a FETCH is answered with the asked node’s copy, or null when it holds none', async () => {
    const a = cluster.node('a');
    const jar = new CookieJar();
    await jar.get(portOf(a), '/app/counter');
    await x.send(a, [Msg.FETCH, '/app', jar.id, 77]);
    const answer = await x.received((m) => m[0] === Msg.FETCHED && m[2] === 77, 'the answer');
    assert.equal((answer[3] as unknown[])[0], jar.id);
    await x.send(a, [Msg.FETCH, '/app', freshId(), 78]);
    const none = await x.received((m) => m[0] === Msg.FETCHED && m[2] === 78, 'the empty answer');
    assert.equal(none[3], null);
  });

  test('an unasked granted FETCHED plants nothing; bad fetch modes and grants without a record are refused', async () => {
    const a = cluster.node('a');
    const refused = counter(a, 'refusedBackupMessages');
    const id = freshId();
    const record = [id, Date.now(), Date.now(), 1800, 5, [], [], [], [], x.id];
    await x.send(a, [Msg.FETCHED, '/app', 4242, record, true]);
    await x.send(a, [Msg.FETCHED, '/app', 4243, null, true]);
    await x.send(a, [Msg.FETCHED, '/app', 4244, record, 'yes']);
    await x.send(a, [Msg.FETCH, '/app', id, 9, 'grab']);
    await x.send(a, [Msg.FETCH, '/app', id, 9, false]);
    await x.handled(a);
    assert.equal(counter(a, 'refusedBackupMessages'), refused + 5);
    assert.equal(managerOf(a).sessions.has(id), false, 'no session planted by an unasked grant');
  });

  test('a FETCH "take" hands over only a session the asked node owns, with its copy', async () => {
    const [a, b] = [cluster.node('a'), cluster.node('b')];
    const jar = new CookieJar();
    await jar.get(portOf(a), '/app/counter');
    await waitFor(() => managerOf(b).sessions.has(jar.id), 'the copy on b');
    // b holds a backup copy only: its answer is the copy, no grant, and a keeps the session.
    await x.send(b, [Msg.FETCH, '/app', jar.id, 91, 'take']);
    const copy = await x.received((m) => m[0] === Msg.FETCHED && m[2] === 91, 'b’s answer');
    assert.equal(copy.length, 4, 'no grant from a backup');
    assert.equal(managerOf(a).sessions.get(jar.id)!.ownerId, managerOf(a).localId);
    await x.send(a, [Msg.FETCH, '/app', jar.id, 92, 'take']);
    const granted = await x.received((m) => m[0] === Msg.FETCHED && m[2] === 92, 'a’s answer');
    assert.equal(granted[4], true);
    assert.equal((granted[3] as unknown[])[0], jar.id);
    // a handed it over: its copy names x, or a dropped it (not a holder once x serves it).
    await waitFor(() => {
      const copy = managerOf(a).sessions.get(jar.id);
      return copy === undefined ? counter(a, 'copiesReleased') > 0 : copy.ownerId === x.id;
    }, 'a handed the session over');
  });
});
