/**
 * Owner forwarding on real nodes (http.forward): with the BackupManager, a request that lands on a
 * node other than its session's owner is proxied to the owner, so the session never moves under
 * load spread (no fetch, no take-over) and the cookie keeps naming its owner. When the owner
 * stops, its sessions are served by the others as before, at their latest count.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { BackupManager } from '../../../src/session/backup-manager.js';
import {
  CookieJar,
  countOf,
  field,
  get,
  managerOf,
  portOf,
  routeOf,
  startNodes,
  type TestCluster,
} from '../../helpers/http.js';
import { freePorts, waitFor } from '../../helpers/wait.js';

type Forward = { forwarded: number; received: number; servedHere: number; failed: number };
const forwardOf = (n: TestCluster['nodes'][number]) =>
  (n.stats().http as { forward?: Forward }).forward ?? { forwarded: 0, received: 0, servedHere: 0, failed: 0 };

/** Nodes on fixed HTTP ports (forwarding advertises the port before the node listens). */
async function fixedPorts(n: number, forward: 'auto' | 'always' | 'off', sessions: Record<string, unknown>) {
  const ports = await freePorts(n);
  return startNodes(n, {
    sessions,
    perNode: (i) => ({ http: { port: ports[i]!, drainMs: 0, forward } }),
  });
}

describe('owner forwarding: BackupManager, 3 nodes, k = 1, requests spread over every node', () => {
  let cluster: TestCluster;
  before(async () => {
    cluster = await fixedPorts(3, 'auto', { manager: 'backup', backups: 1 });
  });
  after(() => cluster.stop());

  test('every request is served by the owner: counts in order, no fetch, the cookie keeps its route', async () => {
    const ports = cluster.nodes.map(portOf);
    const jar = new CookieJar();
    const first = await jar.get(ports[0]!, '/app/counter');
    assert.equal(field(first.body, 'node'), 'a');
    for (let i = 1; i <= 30; i++) {
      const res = await jar.get(ports[i % 3]!, '/app/counter');
      assert.equal(res.status, 200);
      assert.equal(countOf(res.body), i + 1);
      assert.equal(field(res.body, 'node'), 'a', `request ${i} (at ${'abc'[i % 3]}) served by the owner`);
    }
    assert.equal(routeOf(jar.cookie!), 'a');
    const fetches = cluster.nodes.map((n) => (managerOf(n) as unknown as BackupManager).stats().fetches);
    assert.deepEqual(fetches, [0, 0, 0], 'the session never moved');
    const [fa, fb, fc] = cluster.nodes.map(forwardOf);
    assert.equal(fb!.forwarded + fc!.forwarded, 20, 'the 20 requests at b and c were forwarded');
    assert.equal(fa!.received, 20);
    assert.equal(fb!.servedHere + fc!.servedHere + fb!.failed + fc!.failed, 0);
  });

  test('concurrent clients of one session through every node: no lost increment', async () => {
    const ports = cluster.nodes.map(portOf);
    const jar = new CookieJar();
    await jar.get(ports[1]!, '/app/counter');
    let ok = 1;
    await Promise.all(
      Array.from({ length: 6 }, async (_, c) => {
        for (let r = 0; r < 25; r++) {
          const res = await get(ports[(c + r) % 3]!, '/app/counter', jar.cookie);
          if (res.status === 200) ok++;
        }
      }),
    );
    assert.equal(ok, 151);
    for (const port of ports) assert.equal(countOf((await get(port, '/app/read', jar.cookie)).body), 151);
  });

  test('the owner stops: its sessions are served by the others at their latest count (forwarding ends with it)', async () => {
    const ports = cluster.nodes.map(portOf);
    const jar = new CookieJar();
    await jar.get(ports[2]!, '/app/counter'); // owned by c
    for (let i = 0; i < 5; i++) await jar.get(ports[i % 2]!, '/app/counter'); // at a and b: forwarded to c
    assert.equal(countOf((await get(ports[0]!, '/app/read', jar.cookie)).body), 6);
    await cluster.node('c').stop();
    await waitFor(() => cluster.node('a').channel.members().length === 1, 'c gone from a');
    const res = await get(ports[0]!, '/app/counter', jar.cookie);
    assert.equal(res.status, 200);
    assert.equal(countOf(res.body), 7, 'the latest count, served at a');
    assert.equal(field(res.body, 'node'), 'a');
  });
});

describe('owner forwarding: modes', () => {
  test('"auto" forwards nothing for DeltaManager applications; "always" does; "off" never', async () => {
    for (const [mode, expectForwarded] of [
      ['auto', false],
      ['always', true],
      ['off', false],
    ] as const) {
      const cluster = await fixedPorts(2, mode, { manager: 'delta' });
      try {
        const [pa, pb] = cluster.nodes.map(portOf) as [number, number];
        const jar = new CookieJar();
        await jar.get(pa, '/app/counter');
        await waitFor(
          async () => countOf((await get(pb, '/app/read', jar.cookie)).body) === 1,
          'the session replicated to b',
        );
        const before = forwardOf(cluster.node('b')).forwarded;
        const res = await get(pb, '/app/counter', jar.cookie);
        assert.equal(countOf(res.body), 2);
        assert.equal(field(res.body, 'node'), expectForwarded ? 'a' : 'b', `mode ${mode}`);
        assert.equal(forwardOf(cluster.node('b')).forwarded - before, expectForwarded ? 1 : 0, `mode ${mode}`);
      } finally {
        await cluster.stop();
      }
    }
  });

  test('http.port 0: nothing to advertise, so the node forwards nothing (requests served where they land)', async () => {
    const cluster = await startNodes(2, { sessions: { manager: 'backup', backups: 1 } });
    try {
      const [pa, pb] = cluster.nodes.map(portOf) as [number, number];
      const jar = new CookieJar();
      await jar.get(pa, '/app/counter');
      const res = await get(pb, '/app/counter', jar.cookie);
      assert.equal(field(res.body, 'node'), 'b');
      assert.equal((cluster.node('b').stats().http as { forward?: unknown }).forward, undefined);
    } finally {
      await cluster.stop();
    }
  });
});
