/**
 * BackupManager failover with real `clowder start --manager backup` processes: the node serving a
 * set of sessions is SIGKILLed; every session is then served by the survivors with its latest
 * value — in synchronous mode not one acknowledged write is lost — whether the survivor asked held
 * a backup copy or fetched it; and the survivors restore the replication factor.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { Cluster } from '../../helpers/balancer-cluster.js';
import { fields, get } from '../../helpers/node-process.js';
import { waitFor } from '../../helpers/wait.js';

let cluster: Cluster | undefined;
after(async () => {
  await cluster?.destroy();
});

interface Stats {
  sessions: { manager: string; primarySessions: number; backupSessions: number; underReplicated: number }[];
}

async function statsOf(url: string): Promise<Stats['sessions'][number]> {
  const res = await get(`${url}/_clowder/stats`);
  return (JSON.parse(res.body) as Stats).sessions[0]!;
}

describe('BackupManager: a killed primary (3 processes, sync mode)', () => {
  test('every session is served by a survivor with its latest acknowledged value, and the factor is restored', async () => {
    cluster = await Cluster.start(['--manager', 'backup', '--backups', '1', '--send', 'sync']);
    const a = cluster.node('node-a');
    const b = cluster.node('node-b');
    const c = cluster.node('node-c');
    const sessions: { cookie: string; count: number }[] = [];
    for (let i = 0; i < 20; i++) {
      let cookie: string | undefined;
      let count = 0;
      for (let j = 0; j <= i % 4; j++) {
        const res = await get(`${a.url}/app/counter`, cookie);
        assert.equal(res.status, 200);
        cookie = res.session ?? cookie;
        count = Number(fields(res.body).count);
      }
      sessions.push({ cookie: cookie!, count });
    }
    const before = await statsOf(a.url);
    assert.equal(before.manager, 'backup');
    assert.equal(before.primarySessions, 20);
    // Every write was acknowledged by its backup before its response: kill the primary now.
    a.kill('SIGKILL');
    await a.exited();
    // Half the sessions to each survivor: some hold the backup, the others fetch it.
    for (const [i, s] of sessions.entries()) {
      const node = i % 2 === 0 ? b : c;
      const res = await get(`${node.url}/app/counter`, s.cookie);
      assert.equal(res.status, 200, res.body);
      assert.equal(Number(fields(res.body).count), s.count + 1, `session ${i}: no acknowledged write lost`);
      const cookie = res.session;
      assert.ok(cookie?.endsWith(`.${node.label}`), `session ${i}: the cookie names ${node.label} now (${cookie})`);
      s.cookie = cookie!;
      s.count++;
    }
    // Two nodes left, k = 1: each session on both, no session under-replicated.
    await waitFor(
      async () => {
        const [sb, sc] = await Promise.all([statsOf(b.url), statsOf(c.url)]);
        return (
          sb.primarySessions + sc.primarySessions === 20 &&
          sb.backupSessions + sc.backupSessions === 20 &&
          sb.underReplicated + sc.underReplicated === 0
        );
      },
      'every session on both survivors (1 + 1 copies)',
      { timeoutMs: 10_000, intervalMs: 50 },
    );
  });
});
