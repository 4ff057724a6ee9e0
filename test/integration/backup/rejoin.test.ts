/**
 * BackupManager, a partition that heals (3 in-process nodes, k = 1, the test partition
 * interceptor of test/fixtures/partition.ts): both sides serve and write the same session, and one
 * side invalidates another. After the heal the copies merge by stamps: wherever the session is
 * held it has the newest write of each attribute, the conflict is counted and reported through
 * the `conflict` event, one node serves it, it is held on exactly 1 + k nodes again, and the
 * invalidated session does not come back.
 */
import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import { after, describe, test } from 'node:test';
import { type ClusterNode, DEFAULT_INTERCEPTORS } from '../../../src/index.js';
import type { ConflictInfo } from '../../../src/session/delta-manager.js';
import { type Partition, partitionInterceptor } from '../../fixtures/partition.js';
import { CookieJar, field, managerOf, portOf, type SessionRequest, TestCluster } from '../../helpers/http.js';
import { waitFor } from '../../helpers/wait.js';

/** `/set?side=X`: count + 1 and side = X; `/invalidate`. */
function sideApp(req: SessionRequest, res: ServerResponse): void {
  const session = req.session as unknown as Record<string, unknown> & { invalidate(): void; id: string };
  const url = req.url ?? '/';
  if (url.startsWith('/invalidate')) {
    session.invalidate();
    res.end('invalidated=1\n');
    return;
  }
  const side = /side=(\w+)/.exec(url)?.[1] ?? '';
  session.count = ((session.count as number | undefined) ?? 0) + 1;
  session.side = side;
  res.end(`count=${session.count} side=${side} id=${session.id}\n`);
}

let cluster: TestCluster | undefined;
after(async () => {
  await cluster?.stop();
});

/** Three nodes a, b, c (k = 1) on the partition interceptor, and what the tests need of them. */
async function splitCluster() {
  const parts = new Map<string, Partition>();
  const c0: TestCluster = new TestCluster({
    apps: [{ path: '/app', app: sideApp as never }],
    sessions: { manager: 'backup', backups: 1 },
    perNode: (_i, name) => {
      const p = partitionInterceptor();
      parts.set(name, p);
      const { port, domain } = c0.multicast;
      return {
        cluster: {
          domain,
          receiver: { port: 0 },
          membership: { type: 'multicast', port, frequencyMs: 100, dropTimeMs: 1000 },
          interceptors: [p, ...DEFAULT_INTERCEPTORS],
        },
      };
    },
  });
  cluster = c0;
  const created = ['a', 'b', 'c'].map((n) => c0.create(n));
  await Promise.all(created.map((n) => n.start()));
  c0.nodes.push(...created);
  await c0.formed();
  const [a, b, c] = created as [ClusterNode, ClusterNode, ClusterNode];
  const nodes = [a, b, c];
  const conflicts: { node: string; info: ConflictInfo }[] = [];
  for (const n of nodes) managerOf(n).on('conflict', (info) => conflicts.push({ node: n.name, info }));
  const holding = (id: string) => nodes.filter((n) => managerOf(n).sessions.get(id)?.valid === true);
  /** A session created on a whose backup is c: both sides of the split will hold it. */
  const onBothSides = async (): Promise<CookieJar> => {
    for (let i = 0; i < 50; i++) {
      const jar = new CookieJar();
      await jar.get(portOf(a), '/app/set?side=before');
      await waitFor(() => holding(jar.id).length === 2, 'the session on 1 + k nodes');
      if (holding(jar.id).includes(c)) return jar;
    }
    throw new Error('no session with its backup on c');
  };
  const split = async () => {
    parts.get('a')!.cut(['c']);
    parts.get('b')!.cut(['c']);
    parts.get('c')!.cut(['a', 'b']);
    await waitFor(
      () => a.channel.members().length === 1 && b.channel.members().length === 1 && c.channel.members().length === 0,
      'the split',
    );
  };
  const heal = async () => {
    for (const p of parts.values()) p.heal();
    await waitFor(() => nodes.every((n) => n.channel.members().length === 2), 'the heal');
  };
  return { a, b, c, nodes, conflicts, holding, onBothSides, split, heal };
}

describe('BackupManager: a healed partition merges the copies by stamps', () => {
  test('both sides write one session: after the heal the newest write wherever it is held, the conflict reported, 1 + k holders, the invalidated one gone', async (t) => {
    const { a, c, nodes, conflicts, holding, onBothSides, split, heal } = await splitCluster();
    const shared = await onBothSides();
    const doomed = await onBothSides();
    await split();

    // Each side writes the shared session once (the same version on both: concurrent writes).
    assert.match((await shared.get(portOf(a), '/app/set?side=A')).body, /count=2 side=A/);
    assert.match((await shared.get(portOf(c), '/app/set?side=C')).body, /count=2 side=C/);
    assert.match((await doomed.get(portOf(a), '/app/invalidate')).body, /invalidated=1/);
    assert.equal(holding(doomed.id).includes(c), true, 'c, cut off, still holds the invalidated session');

    const healedAt = Date.now();
    await heal();

    // Equal versions: the write of the greater writer id is the newer on every node.
    const winner = a.channel.local.id > c.channel.local.id ? 'A' : 'C';
    const state = () =>
      holding(shared.id).map((n) => {
        const s = managerOf(n).sessions.get(shared.id)!;
        return `${n.name}:${s.getAttribute('side')}:${s.getAttribute('count')}:${s.ownerId === n.channel.local.id ? 'owner' : 'copy'}`;
      });
    await waitFor(
      () => {
        const held = holding(shared.id);
        const owners = held.filter((n) => managerOf(n).sessions.get(shared.id)!.ownerId === n.channel.local.id);
        return (
          held.length === 2 &&
          owners.length === 1 &&
          held.every((n) => managerOf(n).sessions.get(shared.id)!.getAttribute('side') === winner) &&
          holding(doomed.id).length === 0
        );
      },
      `the shared session on 2 nodes with side ${winner}, one owner, the invalidated one gone`,
      { timeoutMs: 15_000, intervalMs: 20 },
    ).catch((err: Error) => {
      const doomedOn = holding(doomed.id).map((n) => n.name);
      throw new Error(`${err.message}: ${state().join(' ')}; invalidated one on [${doomedOn.join(',')}]`);
    });
    t.diagnostic(`merged ${Date.now() - healedAt} ms after the heal: ${state().join(' ')}`);
    const reported = conflicts.filter((x) => x.info.sessionId === shared.id);
    assert.ok(reported.length > 0, 'the conflict is reported through the conflict event');
    assert.ok(
      reported.every((x) => x.info.attribute === 'side' || x.info.attribute === 'count'),
      JSON.stringify(reported),
    );
    const counted = nodes.reduce((sum, n) => sum + managerOf(n).stats().conflicts, 0);
    assert.ok(counted > 0, 'and counted');
    const merged = nodes.reduce(
      (sum, n) => sum + (managerOf(n).stats() as unknown as { rejoinExchanges: number }).rejoinExchanges,
      0,
    );
    assert.ok(merged >= 2, `rejoin exchanges ${merged}`);

    // The node that serves it now answers with the merged session; the invalidated one stays gone.
    const owner = holding(shared.id).find((n) => managerOf(n).sessions.get(shared.id)!.ownerId === n.channel.local.id)!;
    const res = await shared.get(portOf(owner), `/app/set?side=${winner}`);
    assert.equal(field(res.body, 'count'), '3', res.body);
    await waitFor(() => holding(doomed.id).length === 0, 'the invalidated session to stay gone');
  });

  test('the two sides write a session a different number of times: the conflict is still reported (forks, not versions alone)', async () => {
    await cluster?.stop();
    const { a, c, nodes, conflicts, holding, onBothSides, split, heal } = await splitCluster();
    const shared = await onBothSides();
    await split();
    // a writes twice, c five times: c's versions run ahead of a's, and c's base exceeds a's
    // version without having seen a's writes (the versions-only rule took c's as a plain update).
    for (let i = 0; i < 2; i++) await shared.get(portOf(a), '/app/set?side=A');
    for (let i = 0; i < 5; i++) await shared.get(portOf(c), '/app/set?side=C');
    await heal();
    await waitFor(
      () => {
        const held = holding(shared.id);
        return (
          held.length === 2 && held.every((n) => managerOf(n).sessions.get(shared.id)!.getAttribute('side') === 'C')
        );
      },
      'the newer side everywhere it is held',
      { timeoutMs: 15_000, intervalMs: 20 },
    );
    await waitFor(
      () => conflicts.some((x) => x.info.sessionId === shared.id),
      'the conflict reported through the conflict event',
      { timeoutMs: 5_000 },
    );
    const counted = nodes.reduce((sum, n) => sum + managerOf(n).stats().conflicts, 0);
    assert.ok(counted > 0, 'and counted');
  });
});
