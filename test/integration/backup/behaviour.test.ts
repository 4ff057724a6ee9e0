/**
 * The BackupManager keeps the DeltaManager's behaviour where the copies are: synchronous mode
 * answers only once the backups applied the change; an invalidated session ends on its holders
 * and cannot be fetched back (tombstones); a read-only request at a node without a copy reads the
 * latest value without taking the session over; listeners fire on the backups.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { ClusterNode } from '../../../src/index.js';
import type { BackupManager } from '../../../src/session/backup-manager.js';
import { CookieJar, countOf, get, managerOf, portOf, startNodes, type TestCluster } from '../../helpers/http.js';

const backup = (n: ClusterNode) => managerOf(n) as unknown as BackupManager;

describe('BackupManager: the DeltaManager’s behaviour on the copies (3 nodes, k = 1, sync)', () => {
  let cluster: TestCluster;
  before(async () => {
    cluster = await startNodes(3, {
      sessions: { manager: 'backup', backups: 1, sendOptions: 'sync', readOnlyFilter: '^/app/read' },
    });
  });
  after(() => cluster.stop());

  const holders = (id: string) => cluster.nodes.filter((n) => managerOf(n).sessions.has(id));

  test('sync: the response comes once the backup applied the change', async () => {
    const a = cluster.node('a');
    const jar = new CookieJar();
    await jar.get(portOf(a), '/app/counter');
    for (let i = 2; i <= 5; i++) {
      await jar.get(portOf(a), '/app/counter');
      const copies = holders(jar.id).filter((n) => n !== a);
      assert.equal(copies.length, 1, 'one backup');
      assert.equal(
        Number(managerOf(copies[0]!).sessions.get(jar.id)!.getAttribute('count')),
        i,
        'applied before the answer',
      );
    }
  });

  test('listeners fire on the backup; an invalidated session ends on its holders and cannot be fetched back', async () => {
    const a = cluster.node('a');
    const jar = new CookieJar();
    await jar.get(portOf(a), '/app/counter');
    const [backupNode] = holders(jar.id).filter((n) => n !== a);
    const outsider = cluster.nodes.find((n) => !holders(jar.id).includes(n))!;
    const destroyed: string[] = [];
    managerOf(backupNode!).once('sessionDestroyed', (s, reason, replicated) => {
      destroyed.push(`${s.id}:${reason}:${replicated}`);
    });
    await jar.get(portOf(a), '/app/invalidate');
    assert.deepEqual(destroyed, [`${jar.id}:invalidated:true`], 'the backup heard of it (sync: before the answer)');
    assert.equal(holders(jar.id).length, 0);
    const misses = backup(outsider).stats().fetchMisses;
    const res = await get(portOf(outsider), '/app/counter', jar.cookie);
    assert.equal(countOf(res.body), 1, 'a new session: the ended one is not brought back');
    assert.equal(backup(outsider).stats().fetchMisses, misses + 1);
  });

  test('a read-only request at a node without a copy reads the latest value and leaves the session with its owner', async () => {
    const a = cluster.node('a');
    const jar = new CookieJar();
    for (let i = 0; i < 3; i++) await jar.get(portOf(a), '/app/counter');
    const outsider = cluster.nodes.find((n) => !holders(jar.id).includes(n))!;
    const res = await get(portOf(outsider), '/app/read', jar.cookie);
    assert.equal(countOf(res.body), 3);
    assert.equal(managerOf(outsider).sessions.has(jar.id), false, 'the copy fetched for the read is dropped again');
    const ownerId = a.channel.local.id;
    assert.equal(managerOf(a).sessions.get(jar.id)?.ownerId, ownerId, 'A still serves it');
    // And A goes on serving it without a take-over.
    const moves = managerOf(a).stats().ownershipMoves;
    assert.equal(countOf((await jar.get(portOf(a), '/app/counter')).body), 4);
    assert.equal(managerOf(a).stats().ownershipMoves, moves);
  });
});
