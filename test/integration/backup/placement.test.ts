/**
 * The BackupManager on real in-process nodes (loopback, multicast membership): each session is
 * held by its primary and exactly k backups (those placement.ts chooses), changes travel only to
 * them, a node that does not hold a session fetches it and takes it over (the copies follow it),
 * a joining node receives its share before it is ready, a lost member's sessions get their copies
 * back, a context on only some nodes replicates only among them, and k larger than the members
 * degrades and says so.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { resolvePlacementConfig } from '../../../src/config/placement-config.js';
import type { ClusterNode } from '../../../src/index.js';
import type { BackupManager } from '../../../src/session/backup-manager.js';
import { Placement } from '../../../src/session/placement.js';
import {
  COUNTER_APP,
  CookieJar,
  countOf,
  get,
  managerOf,
  portOf,
  startNodes,
  type TestCluster,
} from '../../helpers/http.js';
import { waitFor } from '../../helpers/wait.js';

const clusters: TestCluster[] = [];
after(async () => {
  await Promise.allSettled(clusters.map((c) => c.stop()));
});

function backupOf(node: ClusterNode, i = 0): BackupManager {
  return managerOf(node, i) as unknown as BackupManager;
}

/** Which live nodes hold session `id`. */
function holdersOf(cluster: TestCluster, id: string, i = 0): string[] {
  return cluster.nodes.filter((n) => managerOf(n, i).sessions.has(id)).map((n) => n.name);
}

/** The holders placement gives session `id` served by `primary`, as node names (every test node runs on this host). */
function expectedHolders(cluster: TestCluster, id: string, primary: ClusterNode, k: number): string[] {
  const host = resolvePlacementConfig().host;
  const p = new Placement(cluster.nodes.map((n) => ({ id: n.channel.local.id, host })));
  const ids = p.holders(id, primary.channel.local.id, k);
  return cluster.nodes.filter((n) => ids.includes(n.channel.local.id)).map((n) => n.name);
}

async function backupCluster(n: number, sessions: Record<string, unknown> = {}): Promise<TestCluster> {
  const c = await startNodes(n, { sessions: { manager: 'backup', backups: 1, ...sessions } });
  clusters.push(c);
  return c;
}

const sorted = (a: string[]) => [...a].sort();

describe('BackupManager: 1 + k holders', () => {
  test('each session lives on its primary and exactly k backups (the placement’s), and nowhere else', async () => {
    const cluster = await backupCluster(4, { backups: 1 });
    const a = cluster.node('a');
    const jars: CookieJar[] = [];
    for (let i = 0; i < 12; i++) {
      const jar = new CookieJar();
      await jar.get(portOf(a), '/app/counter');
      await jar.get(portOf(a), '/app/counter');
      jars.push(jar);
    }
    for (const jar of jars) {
      const want = sorted(expectedHolders(cluster, jar.id, a, 1));
      assert.equal(want.length, 2);
      await waitFor(() => sorted(holdersOf(cluster, jar.id)).join() === want.join(), `${jar.id} on ${want}`);
      for (const name of want) {
        const s = managerOf(cluster.node(name)).sessions.get(jar.id)!;
        assert.equal(Number(s.getAttribute('count')), 2, `${name} has the latest count`);
      }
    }
    const stats = cluster.nodes.map((n) => backupOf(n).stats());
    assert.equal(stats[0]!.manager, 'backup');
    assert.equal(stats[0]!.primarySessions, 12);
    assert.equal(
      stats.reduce((t, s) => t + s.backupSessions, 0),
      12,
    );
    assert.equal(
      stats.reduce((t, s) => t + s.underReplicated, 0),
      0,
    );
  });

  test('a node that does not hold a session fetches it, takes it over with the latest value, and the copies follow it', async () => {
    const cluster = await backupCluster(3, { backups: 1 });
    const [a] = [cluster.node('a')];
    const jar = new CookieJar();
    for (let i = 0; i < 3; i++) await jar.get(portOf(a), '/app/counter');
    const holders = expectedHolders(cluster, jar.id, a, 1);
    await waitFor(() => sorted(holdersOf(cluster, jar.id)).join() === sorted(holders).join(), 'the copy placed');
    const outsider = cluster.nodes.find((n) => !holders.includes(n.name))!;
    const res = await get(portOf(outsider), '/app/counter', jar.cookie);
    assert.equal(res.status, 200);
    assert.equal(countOf(res.body), 4, 'the fetched session continued from the latest count');
    assert.ok(
      res.setCookie.some((c) => c.includes(`.${outsider.name}`)),
      'the cookie is re-issued for the new node',
    );
    const ms = backupOf(outsider);
    assert.equal(ms.stats().fetches, 1);
    assert.equal(managerOf(outsider).sessions.get(jar.id)?.ownerId, outsider.channel.local.id);
    const want = sorted(expectedHolders(cluster, jar.id, outsider, 1));
    await waitFor(
      () => sorted(holdersOf(cluster, jar.id)).join() === want.join(),
      `holders ${want} after the take-over`,
    );
    // And it goes on from there.
    jar.update(res);
    assert.equal(countOf((await jar.get(portOf(outsider), '/app/counter')).body), 5);
  });

  test('a context on only some nodes replicates only among them', async () => {
    const counterApp = { path: '/app', module: COUNTER_APP };
    const cluster = await startNodes(3, {
      sessions: { manager: 'backup', backups: 2 },
      perNode: (i) => ({ apps: i === 2 ? [{ path: '/other', module: counterApp.module }] : [counterApp] }),
    });
    clusters.push(cluster);
    const [a, b, c] = [cluster.node('a'), cluster.node('b'), cluster.node('c')];
    const jar = new CookieJar();
    await jar.get(portOf(a), '/app/counter');
    await waitFor(() => managerOf(b).sessions.has(jar.id), 'B (serving /app) to hold the copy');
    assert.equal(managerOf(c).sessions.has(jar.id), false, 'C does not serve /app: no copy');
    // k = 2 with one other member serving /app: degraded, said in stats.
    const st = backupOf(a).stats();
    assert.equal(st.effectiveBackups, 1);
    assert.equal(st.degraded, true);
    assert.equal(st.underReplicated, 1);
    assert.equal(managerOf(c).sessions.size, 0);
  });
});

describe('both managers side by side', () => {
  test('one node, two contexts: /app with the BackupManager, /d with the DeltaManager', async () => {
    const cluster = await startNodes(3, {
      apps: [
        { path: '/app', module: COUNTER_APP, sessions: { manager: 'backup', backups: 1 } },
        { path: '/d', module: COUNTER_APP, sessions: { manager: 'delta' } },
      ],
    });
    clusters.push(cluster);
    const a = cluster.node('a');
    const backupJar = new CookieJar();
    await backupJar.get(portOf(a), '/app/counter');
    const deltaJar = new CookieJar();
    await deltaJar.get(portOf(a), '/d/counter');
    await waitFor(() => holdersOf(cluster, deltaJar.id, 1).length === 3, 'the delta session on every node');
    await waitFor(() => holdersOf(cluster, backupJar.id, 0).length === 2, 'the backup session on 1 + 1 nodes');
    assert.equal(managerOf(a, 0).stats().manager, 'backup');
    assert.equal(managerOf(a, 1).stats().manager, 'delta');
    assert.equal(holdersOf(cluster, backupJar.id, 0).length, 2, 'and no more');
  });
});

describe('BackupManager: membership changes', () => {
  test('a joining node receives its share before it is ready; a lost member’s sessions get their copies back', async () => {
    const cluster = await backupCluster(2, { backups: 1 });
    const a = cluster.node('a');
    const jars: CookieJar[] = [];
    for (let i = 0; i < 30; i++) {
      const jar = new CookieJar();
      await jar.get(portOf(a), '/app/counter');
      jars.push(jar);
    }
    await waitFor(() => managerOf(cluster.node('b')).sessions.size === 30, 'B to hold every copy (2 nodes)');
    const c = await cluster.add('c');
    // Ready: C holds its share (the sessions placement gives it) already.
    const share = jars.filter((j) => expectedHolders(cluster, j.id, a, 1).includes('c'));
    assert.ok(share.length > 0 && share.length < 30, `C's share: ${share.length}`);
    for (const j of share) assert.ok(managerOf(c).sessions.has(j.id), 'C holds its share when ready');
    for (const j of jars) {
      const want = sorted(expectedHolders(cluster, j.id, a, 1));
      await waitFor(() => sorted(holdersOf(cluster, j.id)).join() === want.join(), `${j.id}: exactly ${want}`);
    }
    assert.ok(backupOf(a).stats().sessionsMoved >= share.length);
    // B leaves: the sessions it backed up get a copy on C again.
    const b = cluster.node('b');
    await b.stop();
    cluster.nodes.splice(cluster.nodes.indexOf(b), 1);
    await cluster.formed();
    for (const j of jars) await waitFor(() => sorted(holdersOf(cluster, j.id)).join() === 'a,c', `${j.id} on a and c`);
    assert.ok(backupOf(a).stats().lastRestoredAt !== null);
    // A leaves too: C serves every session with its latest value.
    await a.stop();
    cluster.nodes.splice(cluster.nodes.indexOf(a), 1);
    for (const j of jars) {
      const res = await get(portOf(c), '/app/counter', j.cookie);
      assert.equal(countOf(res.body), 2, 'served on C with the latest value');
    }
  });
});
