/**
 * Session ids from the network are always checked (32 base64url characters; clowder makes upper-case hex): a malformed
 * one, in any message, is refused and counted, never stored, looked up or answered.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { encode } from '../../src/index.js';
import { Msg } from '../../src/session/messages.js';
import { managerOf, startNodes, type TestCluster, throwFailures } from '../helpers/http.js';
import { counter, ScriptedMember } from './scripted-member.js';

const BAD_IDS: unknown[] = [
  '+'.repeat(32), // ids are 32 characters of the base64url alphabet (clowder's: upper-case hex)
  'A/'.repeat(16),
  'A'.repeat(31),
  `${'A'.repeat(32)}.x`,
  'A'.repeat(100_000),
  1,
  null,
];

describe('ids from the network are checked in every message', () => {
  let cluster: TestCluster;
  let x: ScriptedMember;
  before(async () => {
    cluster = await startNodes(1);
    x = await ScriptedMember.join(cluster, 'x');
  });
  after(async () => {
    throwFailures(await Promise.allSettled([x?.stop(), cluster?.stop()]), 'cleaning up');
  });

  test('a malformed id is refused and counted in each message type', async () => {
    const a = cluster.node('a');
    const m = managerOf(a);
    const now = Date.now();
    const messages = (id: unknown): unknown[][] => [
      [Msg.CREATED, '/app', id, now, 1800, 1, ['k'], [encode(1)]],
      [Msg.DELTA, '/app', id, 1, 2, ['k'], [encode(1)], [], null],
      [Msg.ACCESSED, '/app', id, now],
      [Msg.EXPIRED, '/app', id, 'expired'],
      [Msg.ID_CHANGED, '/app', id, 'B'.repeat(32)],
      [Msg.SESSION_REQUEST, '/app', id],
      [Msg.ACQUIRE, '/app', id, 12345],
      [Msg.GRANT, '/app', id, 12345, x.id, true],
      [Msg.SESSION_DATA, '/app', [id, now, now, 1800, 1, [], [], [], [], x.id]],
    ];
    const before = counter(a, 'malformedIds');
    const sessions = m.sessions.size;
    const tombstones = m.stats().tombstones;
    for (const id of BAD_IDS) for (const msg of messages(id)) await x.send(a, msg);
    await x.handled(a);
    assert.equal(counter(a, 'malformedIds'), before + BAD_IDS.length * 9);
    assert.equal(m.sessions.size, sessions, 'no session made');
    assert.equal(m.stats().tombstones, tombstones, 'no tombstone made');
    const answers = x.inbox.filter((msg) => msg[0] === Msg.GRANT || msg[0] === Msg.SESSION_DATA);
    assert.deepEqual(answers, [], 'nothing answered');
  });
});
