/**
 * Multicast membership across a real interface: three nodes in three network namespaces, each on
 * its own address, heartbeats over the bridge (interface 10.77.0.K, TTL 1), every frame
 * authenticated and encrypted with the cluster key. They form one cluster and a session written on
 * one node is read on the others.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { bedUnavailable, countOf, NetBed } from '../helpers/netbed.js';
import { waitFor } from '../helpers/wait.js';

const skip = await bedUnavailable([]);

describe('bed: multicast membership across the bridge', { skip }, () => {
  let bed: NetBed | undefined;
  const t0 = Date.now();
  before(async () => {
    bed = await NetBed.create({ nodes: 3, membership: 'multicast', startOrder: 'parallel' });
  });
  after(async () => {
    await bed?.destroy();
  });

  test('three hosts form one encrypted cluster and replicate a session', async (t) => {
    const b = bed!;
    const formed = await b.waitView(b.fullMesh(), 'every node to see the two others', 15_000);
    for (const h of b.hosts) {
      const s = await b.stats(h.k);
      const channel = s.channel as { membership: { members: number }; auth: { keySource: string; keys: number } };
      assert.equal(channel.membership.members, 2, `h${h.k} counts two members`);
      assert.equal(channel.auth.keys, 1, `h${h.k} runs with the cluster key`);
      const added = h.node.logs.find((l) => l.msg === 'member added');
      assert.match(String(added?.host), /^10\.77\.0\.\d+$/, 'members are found on their bed addresses');
    }
    const first = await b.get(1, '/app/counter');
    assert.equal(first.status, 200, first.body);
    const cookie = first.session!;
    assert.match(cookie, /\.h1$/);
    const second = await b.get(1, '/app/counter', cookie);
    assert.equal(countOf(second.body), 2);
    for (const k of [2, 3]) {
      await waitFor(async () => countOf((await b.get(k, '/app/read', cookie)).body) === 2, `h${k} to read count=2`, {
        timeoutMs: 5_000,
        intervalMs: 20,
      });
    }
    t.diagnostic(`cluster formed ${formed} ms after the nodes were ready; ${Date.now() - t0} ms in all`);
  });
});
