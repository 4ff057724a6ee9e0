/**
 * A 6-node loopback cluster with the BackupManager keeps every session at exactly 1 + k holders
 * through a join, a graceful leave and a SIGKILL: five in-process nodes (whose sessions the test
 * inspects one by one) and one `clowder start` process (killable; its holdings counted through
 * /_clowder/stats). After each change, every session is held by exactly 1 + k nodes, exactly one
 * of which serves it, and none is under-replicated; after the kill every session still answers
 * with its latest value.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { ClusterNode } from '../../../src/index.js';
import { CookieJar, countOf, get, managerOf, portOf, TestCluster } from '../../helpers/http.js';
import { type CliProcess, get as getUrl, startNode } from '../../helpers/node-process.js';
import { waitFor } from '../../helpers/wait.js';

const K = 1;
const SESSIONS = 60;
const dir = mkdtempSync(join(tmpdir(), 'clowder-six-'));
let cluster: TestCluster | undefined;
let proc: CliProcess | undefined;
after(async () => {
  await proc?.destroy();
  await cluster?.stop();
  rmSync(dir, { recursive: true, force: true });
});

interface ProcStats {
  activeSessions: number;
  primarySessions: number;
  underReplicated: number;
}

async function procStats(p: CliProcess): Promise<ProcStats> {
  const res = await getUrl(`${p.url}/_clowder/stats`);
  return (JSON.parse(res.body) as { sessions: ProcStats[] }).sessions[0]!;
}

/**
 * Whether every session is on exactly 1 + k nodes with one primary: in-process nodes are looked
 * at session by session; the process (while alive) must hold exactly the sessions the others hold
 * only k times, and serve the rest of the primaries.
 */
async function exact(
  nodes: readonly ClusterNode[],
  ids: readonly string[],
  p: CliProcess | undefined,
): Promise<string | true> {
  let missing = 0;
  let primaries = 0;
  for (const id of ids) {
    let held = 0;
    for (const n of nodes) {
      const s = managerOf(n).sessions.get(id);
      if (s === undefined) continue;
      held++;
      if (s.ownerId === n.channel.local.id) primaries++;
    }
    if (held === 1 + K) continue;
    if (held === K && p !== undefined) missing++;
    else return `session ${id.slice(0, 8)} on ${held} in-process nodes`;
  }
  let under = 0;
  for (const n of nodes) under += (managerOf(n).stats() as unknown as ProcStats).underReplicated;
  if (p !== undefined) {
    const ps = await procStats(p);
    if (ps.activeSessions !== missing) return `the process holds ${ps.activeSessions}, the others miss ${missing}`;
    primaries += ps.primarySessions;
    under += ps.underReplicated;
  }
  if (primaries !== ids.length) return `${primaries} primaries for ${ids.length} sessions`;
  if (under !== 0) return `${under} under-replicated`;
  return true;
}

async function settle(nodes: readonly ClusterNode[], ids: readonly string[], p: CliProcess | undefined, what: string) {
  let last: string | true = 'not checked';
  try {
    await waitFor(
      async () => {
        last = await exact(nodes, ids, p);
        return last === true;
      },
      what,
      { timeoutMs: 20_000, intervalMs: 50 },
    );
  } catch (err) {
    throw new Error(`${(err as Error).message}: ${last}`);
  }
}

/** Waits until every in-process node sees `total - 1` members. */
async function seeAll(c: TestCluster, total: number): Promise<void> {
  await waitFor(() => c.nodes.every((n) => n.channel.members().length === total - 1), `${total} members`);
}

describe('BackupManager: 6 nodes keep every session at exactly 1 + k holders', () => {
  test('through a join, a leave and a kill', async () => {
    cluster = new TestCluster({ sessions: { manager: 'backup', backups: K } });
    for (const name of ['a', 'b', 'c', 'd']) await cluster.add(name);
    const file = join(dir, 'x.json');
    writeFileSync(file, JSON.stringify(cluster.options('x')));
    proc = startNode('x', ['--config', file, '--json']);
    await proc.ready(20_000);
    await seeAll(cluster, 5);
    const jars: CookieJar[] = [];
    for (let i = 0; i < SESSIONS; i++) {
      const jar = new CookieJar();
      const n = cluster.nodes[i % cluster.nodes.length]!;
      await jar.get(portOf(n), '/app/counter');
      jars.push(jar);
    }
    // A few sessions served by the process too.
    const xJars: string[] = [];
    for (let i = 0; i < 6; i++) {
      const res = await getUrl(`${proc.url}/app/counter`);
      xJars.push(res.session!);
    }
    const ids = [...jars.map((j) => j.id), ...xJars.map((c) => c.split('.')[0]!)];
    await settle(cluster.nodes, ids, proc, 'exactly 1 + k holders (5 nodes)');
    const e = cluster.create('e');
    await e.start();
    cluster.nodes.push(e);
    await seeAll(cluster, 6);
    await settle(cluster.nodes, ids, proc, 'exactly 1 + k holders after e joined (6 nodes)');
    const b = cluster.node('b');
    await b.stop();
    cluster.nodes.splice(cluster.nodes.indexOf(b), 1);
    await seeAll(cluster, 5);
    await settle(cluster.nodes, ids, proc, 'exactly 1 + k holders after b left');
    proc.kill('SIGKILL');
    await proc.exited();
    await seeAll(cluster, 4);
    await settle(cluster.nodes, ids, undefined, 'exactly 1 + k holders after x was killed');
    // Every session answers with its latest value (each was incremented once).
    const c = cluster.node('c');
    for (const [i, jar] of jars.entries()) {
      const res = await get(portOf(c), '/app/counter', jar.cookie);
      assert.equal(countOf(res.body), 2, `session ${i}`);
    }
    for (const [i, cookie] of xJars.entries()) {
      const res = await get(portOf(c), '/app/counter', `JSESSIONID=${cookie}`);
      assert.equal(countOf(res.body), 2, `session ${i} of x`);
    }
  });
});
