/**
 * BackupManager, a graceful stop (3 in-process nodes, k = 1, sync): the stopping node hands its
 * sessions over before it leaves, so at the moment the others see it go — before any of them
 * could restore a copy — every session is already held by 1 + k of the survivors, and none is
 * lost.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import type { ClusterNode } from '../../../src/index.js';
import type { BackupManager } from '../../../src/session/backup-manager.js';
import { CookieJar, countOf, get, managerOf, portOf, startNodes, type TestCluster } from '../../helpers/http.js';
import { waitFor } from '../../helpers/wait.js';

let cluster: TestCluster | undefined;
after(async () => {
  await cluster?.stop();
});

describe('BackupManager: a graceful stop hands the sessions over before leaving', () => {
  test('when the survivors see the node go, every session is already on 1 + k of them; none lost', async () => {
    const started = await startNodes(3, { sessions: { manager: 'backup', backups: 1, sendOptions: 'sync' } });
    cluster = started;
    const [a, b, c] = started.nodes as [ClusterNode, ClusterNode, ClusterNode];
    const survivors = [a, b];
    const jars: { jar: CookieJar; count: number }[] = [];
    for (let i = 0; i < 30; i++) {
      const jar = new CookieJar();
      const node = started.nodes[i % 3]!;
      let count = 0;
      for (let j = 0; j <= i % 3; j++) count = countOf((await jar.get(portOf(node), '/app/counter')).body);
      jars.push({ jar, count });
    }
    const holders = (id: string, nodes = started.nodes) =>
      nodes.filter((n) => managerOf(n).sessions.get(id)?.valid === true).length;
    await waitFor(() => jars.every(({ jar }) => holders(jar.id) === 2), 'every session on 1 + k nodes');
    const onC = jars.filter(({ jar }) => managerOf(c).sessions.has(jar.id)).length;
    assert.ok(onC >= 10, `c holds ${onC} sessions`);

    // The first moment a survivor sees c gone: nothing has been restored yet (a rebalance runs
    // after this event, and its copies need a round trip).
    const seen: string[] = [];
    const check = (who: string) => (m: { name: string }) => {
      if (m.name !== 'c' || seen.length > 0) return;
      const short = jars.filter(({ jar }) => holders(jar.id, survivors) < 2).map(({ jar }) => jar.id.slice(0, 8));
      seen.push(
        `${who}: ${short.length} session(s) on fewer than 2 survivors${short.length > 0 ? ` (${short.join(', ')})` : ''}`,
      );
    };
    a.channel.on('memberRemoved', check('a'));
    b.channel.on('memberRemoved', check('b'));
    await c.stop();
    await waitFor(
      () => seen.length > 0 && survivors.every((n) => n.channel.members().length === 1),
      'a and b to see c go',
    );
    assert.match(seen[0]!, /: 0 session\(s\)/, seen[0]);
    const stats = (managerOf(c) as unknown as BackupManager).stats();
    assert.ok(stats.stopHandOvers > 0, `stopHandOvers ${stats.stopHandOvers}`);
    assert.equal(stats.stopHandOverMissed, 0);

    // None lost: each session served by a survivor at its count.
    for (const [i, { jar, count }] of jars.entries()) {
      const res = await get(portOf(survivors[i % 2]!), '/app/read', jar.cookie);
      assert.equal(countOf(res.body), count, `session ${i}: ${res.body}`);
    }
    await waitFor(() => jars.every(({ jar }) => holders(jar.id, survivors) === 2), 'still 1 + k after the rebalance');
  });
});
