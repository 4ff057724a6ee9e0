/**
 * A fetch asks the node the cookie's route names (it served the session last) and that node's
 * backups first: one round trip, the other members not asked. A route naming a node that does not
 * serve the session still finds it (the others are asked on a miss).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { ClusterNode } from '../../../src/index.js';
import type { BackupManager } from '../../../src/session/backup-manager.js';
import { Msg } from '../../../src/session/messages.js';
import { CookieJar, countOf, get, idOf, managerOf, portOf, startNodes, type TestCluster } from '../../helpers/http.js';

const backup = (n: ClusterNode) => managerOf(n) as unknown as BackupManager;
/** FETCH messages each node received (counted around the manager's handler of its own messages). */
const fetchCounts = new Map<ClusterNode, number>();
const fetchesReceived = (n: ClusterNode) => fetchCounts.get(n) ?? 0;
function countFetches(n: ClusterNode): void {
  const m = backup(n) as unknown as { receiveOther(msg: unknown[], from: unknown): boolean };
  const handle = m.receiveOther.bind(m);
  m.receiveOther = (msg, from) => {
    if (msg[0] === Msg.FETCH) fetchCounts.set(n, fetchesReceived(n) + 1);
    return handle(msg, from);
  };
}

describe('BackupManager: fetches go to the route’s holders first (4 nodes, k = 1)', () => {
  let cluster: TestCluster;
  before(async () => {
    cluster = await startNodes(4, { sessions: { manager: 'backup', backups: 1 } });
    for (const n of cluster.nodes) countFetches(n);
  });
  after(() => cluster.stop());

  const holders = (id: string) => cluster.nodes.filter((n) => managerOf(n).sessions.has(id));

  test('the route node and its backup are asked; the other member is not', async () => {
    const a = cluster.node('a');
    const jar = new CookieJar();
    await jar.get(portOf(a), '/app/counter');
    await jar.get(portOf(a), '/app/counter');
    const held = holders(jar.id);
    assert.equal(held.length, 2, 'a and its backup');
    const [asker, other] = cluster.nodes.filter((n) => !held.includes(n));
    const before = new Map(cluster.nodes.map((n) => [n, fetchesReceived(n)]));
    const fallbacks = backup(asker!).stats().fetchFallbacks;
    const res = await get(portOf(asker!), '/app/counter', jar.cookie);
    assert.equal(countOf(res.body), 3);
    for (const n of held) assert.equal(fetchesReceived(n), before.get(n)! + 1, 'a holder was asked');
    assert.equal(fetchesReceived(other!), before.get(other!), 'the member holding nothing was not asked');
    assert.equal(backup(asker!).stats().fetchFallbacks, fallbacks);
  });

  test('a route naming a node that does not serve the session: the others are asked, the session is found', async () => {
    const a = cluster.node('a');
    const jar = new CookieJar();
    for (let i = 0; i < 3; i++) await jar.get(portOf(a), '/app/counter');
    const held = holders(jar.id);
    const [asker, misnamed] = cluster.nodes.filter((n) => !held.includes(n));
    const cookie = `JSESSIONID=${idOf(jar.cookie!)}.${managerOf(misnamed!).route}`;
    const misses = backup(asker!).stats().fetchMisses;
    const res = await get(portOf(asker!), '/app/counter', cookie);
    assert.equal(countOf(res.body), 4, 'the latest value, found');
    assert.equal(backup(asker!).stats().fetchMisses, misses);
  });
});
