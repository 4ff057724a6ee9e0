/**
 * MERGE_REQUEST (a member found this node back after a silence and asks it to merge its
 * sessions) is taken only from a member in view, for a context served here; otherwise refused
 * and counted (`rejoins.refused`), with nothing started.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { Msg } from '../../../src/session/messages.js';
import { managerOf, startPair, stopAll, type TestCluster } from '../../helpers/http.js';
import { waitFor } from '../../helpers/wait.js';

describe('MERGE_REQUEST', () => {
  let cluster: TestCluster | undefined;
  after(() => stopAll(cluster));

  test('refused for a context not served here; taken from a member in view: a merge from it', async () => {
    ({ cluster } = await startPair());
    const [a, b] = cluster.nodes as [NonNullable<TestCluster['nodes'][0]>, NonNullable<TestCluster['nodes'][0]>];
    const ma = managerOf(a);
    const mb = managerOf(b);
    const s = ma.createSession();
    ma.requestStarted(s);
    s.setAttribute('x', 1);
    ma.requestCompleted(s);
    const rejoins = () => b.stats().rejoins as { asked: number; refused: number };
    const merges = () => mb.stats().lateMemberMerges as number;
    const before = merges();

    await a.channel.send(b.channel.local, [Msg.MERGE_REQUEST, '/not-here'], { options: 'use_ack,sync' });
    assert.deepEqual({ ...rejoins() }, { noticed: 0, asked: 0, refused: 1, sendFailures: 0 });
    assert.equal(merges(), before, 'nothing started');

    await a.channel.send(b.channel.local, [Msg.MERGE_REQUEST, ma.contextName], { options: 'use_ack,sync' });
    assert.equal(rejoins().asked, 1);
    assert.equal(merges(), before + 1, 'b merges the sessions of a');
    await waitFor(() => mb.sessions.get(s.id)?.getAttribute('x') === 1, 'b to hold the session');
  });
});
