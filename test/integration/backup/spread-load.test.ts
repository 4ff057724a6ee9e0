/**
 * The BackupManager under load spread without stickiness (issue 20): every session's requests hit
 * every node at once, so sessions move between owners all the time, through fetches, hand-overs
 * and releases. No increment may be lost: each session's final count equals its 200 responses,
 * read on every node; and no fetch misses a session that exists.
 *
 * Before the fix this lost increments in two ways: an owner handed a session over to a node that
 * held an old copy it no longer sent changes to (a former owner or holder not released yet, a
 * fetcher superseded by another), which then served and replicated that old value; and a node
 * that had dropped its copy (RELEASE) granted the session to an asker whose copy still named it
 * as the owner, making a second owner.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { BackupManager } from '../../../src/session/backup-manager.js';
import { CookieJar, countOf, get, managerOf, portOf, startNodes, type TestCluster } from '../../helpers/http.js';

const NODES = 4;
const SESSIONS = 8;
const CLIENTS_PER_SESSION = 4;
const REQUESTS_PER_CLIENT = 30;

describe('BackupManager: load spread over 4 nodes without stickiness (k = 1)', () => {
  let cluster: TestCluster;
  before(async () => {
    cluster = await startNodes(NODES, { sessions: { manager: 'backup', backups: 1 } });
  });
  after(() => cluster.stop());

  const stats = () => cluster.nodes.map((n) => (managerOf(n) as unknown as BackupManager).stats());

  test('every 200 response is an increment kept: the final counts match on every node, no fetch misses', async () => {
    const ports = cluster.nodes.map(portOf);
    // Sessions created round-robin over the nodes (their primaries spread).
    const cookies: string[] = [];
    for (let i = 0; i < SESSIONS; i++) {
      const jar = new CookieJar();
      const res = await jar.get(ports[i % NODES]!, '/app/counter');
      assert.equal(res.status, 200);
      cookies.push(jar.cookie!);
    }
    const ok = new Array<number>(SESSIONS).fill(1); // the creating request
    // Each client sends its requests one after another, each to the next node (the cookie as
    // first issued, as a client behind a non-sticky balancer that ignores re-homed cookies).
    const clients: Promise<void>[] = [];
    for (let s = 0; s < SESSIONS; s++)
      for (let c = 0; c < CLIENTS_PER_SESSION; c++)
        clients.push(
          (async () => {
            for (let r = 0; r < REQUESTS_PER_CLIENT; r++) {
              const res = await get(ports[(s + c + r) % NODES]!, '/app/counter', cookies[s]);
              if (res.status === 200) ok[s]!++;
            }
          })(),
        );
    await Promise.all(clients);
    const total = ok.reduce((a, b) => a + b, 0);
    assert.ok(total > SESSIONS * CLIENTS_PER_SESSION * REQUESTS_PER_CLIENT * 0.99, `${total} responses were 200`);
    for (let s = 0; s < SESSIONS; s++)
      for (const port of ports) {
        const res = await get(port, '/app/read', cookies[s]);
        assert.equal(res.status, 200);
        assert.equal(countOf(res.body), ok[s], `session ${s}: count read on port ${port} = its 200 responses`);
      }
    const all = stats();
    assert.equal(
      all.reduce((a, x) => a + x.fetchMisses, 0),
      0,
      'no fetch missed a session that exists',
    );
    assert.ok(all.reduce((a, x) => a + x.fetches, 0) > 0, 'sessions were fetched (the load really moved them)');
  });
});
