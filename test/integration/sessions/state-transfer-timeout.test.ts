/**
 * State transfer when the donor does not deliver: a member that advertises the context but never
 * answers (a hung donor) makes a starting node wait stateTransferTimeoutMs, then start cold with
 * its stats saying so, or refuse to start (onStateTransferTimeout: "fail"); a donor that leaves
 * mid-transfer makes it ask the next oldest member, from which everything arrives.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { type Channel, ClusterError, type ClusterNode, createChannel, silentLogger } from '../../../src/index.js';
import type { StateTransferStats } from '../../../src/session/delta-manager.js';
import { managerOf, TestCluster } from '../../helpers/http.js';
import { waitFor } from '../../helpers/wait.js';

/** A member that says it serves /app but never answers a state request. */
async function hungDonor(cluster: TestCluster, name: string): Promise<Channel> {
  // The channel settings a node of this cluster gets (its group, domain and heartbeat timing).
  const channel = createChannel({ name, ...cluster.options(name).cluster }, { logger: silentLogger });
  channel.setPayload({ contexts: ['/app'] });
  await channel.start();
  return channel;
}

function transferOf(node: ClusterNode): StateTransferStats | undefined {
  return node.managers[0]?.stats().stateTransfer as StateTransferStats | undefined;
}

describe('state transfer from a donor that does not deliver', () => {
  const clusters: TestCluster[] = [];
  const channels: Channel[] = [];
  after(async () => {
    await Promise.allSettled([...clusters.map((c) => c.stop()), ...channels.map((c) => c.stop())]);
  });

  test('after stateTransferTimeoutMs the node starts cold (the default) and its stats say timed-out', async () => {
    const cluster = new TestCluster({ sessions: { stateTransferTimeoutMs: 400 } });
    clusters.push(cluster);
    channels.push(await hungDonor(cluster, 'hung'));
    const b = cluster.create('b');
    const t0 = Date.now();
    await b.start();
    const waited = Date.now() - t0;
    const st = transferOf(b)!;
    assert.equal(st.state, 'timed-out');
    assert.equal(st.donor, 'hung');
    assert.equal(st.sessions, 0);
    assert.ok(waited >= 400, `started after ${waited} ms, before the timeout`);
    assert.equal(managerOf(b).ready, true);
  });

  test('with onStateTransferTimeout "fail" the node refuses to start, naming the setting', async () => {
    const cluster = new TestCluster({ sessions: { stateTransferTimeoutMs: 300, onStateTransferTimeout: 'fail' } });
    clusters.push(cluster);
    channels.push(await hungDonor(cluster, 'hung'));
    const b = cluster.create('b');
    await assert.rejects(
      b.start(),
      (err: unknown) => err instanceof ClusterError && /onStateTransferTimeout is "fail"/.test(err.message),
    );
    assert.equal(transferOf(b)?.state, 'timed-out');
  });

  test('a donor that leaves mid-transfer: the next oldest member is asked and every session arrives', async () => {
    const cluster = new TestCluster({
      // a starts after the hung donor and would wait for it: it has nothing to lose, so it starts cold at once
      perNode: (_i, name) => (name === 'a' ? { sessions: { stateTransferTimeoutMs: 200 } } : {}),
    });
    clusters.push(cluster);
    const hung = await hungDonor(cluster, 'hung');
    channels.push(hung);
    const a = cluster.create('a');
    await a.start();
    const ma = managerOf(a);
    const ids: string[] = [];
    for (let i = 0; i < 50; i++) {
      const s = ma.createSession();
      ma.requestStarted(s);
      s.setAttribute('n', i);
      ma.requestCompleted(s);
      ids.push(s.id);
    }
    const b = cluster.create('b', { sessions: { stateTransferTimeoutMs: 20_000 } });
    const starting = b.start();
    // The oldest member is the hung donor: b asks it first.
    await waitFor(() => transferOf(b)?.donor === 'hung', 'b asking the hung donor', { timeoutMs: 5000 });
    const t0 = Date.now();
    await hung.stop(); // a graceful leave: b drops it at once
    await starting;
    const st = transferOf(b)!;
    assert.equal(st.state, 'done');
    assert.equal(st.donor, 'a');
    assert.equal(st.sessions, ids.length);
    assert.ok(Date.now() - t0 < 5000, 'the fallback did not wait for the timeout');
    const mb = managerOf(b);
    for (const [i, id] of ids.entries()) assert.equal(mb.sessions.get(id)?.getAttribute('n'), i);
  });
});
