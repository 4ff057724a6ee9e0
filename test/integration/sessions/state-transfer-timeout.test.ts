/**
 * State transfer when the donor does not deliver: a member that advertises the context but never
 * answers (a hung donor) makes a starting node wait stateTransferTimeoutMs, then start cold with
 * its stats saying so, or refuse to start (onStateTransferTimeout: "fail"); a donor that leaves
 * mid-transfer makes it ask the next oldest member, from which everything arrives. A node stopped
 * (SIGTERM) while it waits ends the transfer at once and never starts serving.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import {
  type Channel,
  type ChannelConfigInput,
  ClusterError,
  type ClusterNode,
  createChannel,
  silentLogger,
} from '../../../src/index.js';
import type { StateTransferStats } from '../../../src/session/delta-manager.js';
import { managerOf, type StartOptions, TestCluster, throwFailures } from '../../helpers/http.js';
import { CliProcess, COUNTER_APP } from '../../helpers/node-process.js';
import { freePorts, waitFor } from '../../helpers/wait.js';

/**
 * A member that says it serves /app but never answers a state request. `config`: its channel
 * settings (by default those a node of `cluster` gets: its group, domain and heartbeat timing).
 */
async function hungDonor(cluster: TestCluster | undefined, config: ChannelConfigInput = {}): Promise<Channel> {
  const channel = createChannel(
    { name: 'hung', ...cluster?.options('hung').cluster, ...config },
    { logger: silentLogger },
  );
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
    throwFailures(
      await Promise.allSettled([...clusters.map((c) => c.stop()), ...channels.map((c) => c.stop())]),
      'cleaning up',
    );
  });

  /** A cluster (stopped after the tests) whose oldest member is a hung donor. */
  async function withHungDonor(options: StartOptions): Promise<{ cluster: TestCluster; hung: Channel }> {
    const cluster = new TestCluster(options);
    clusters.push(cluster);
    const hung = await hungDonor(cluster);
    channels.push(hung);
    return { cluster, hung };
  }

  test('after stateTransferTimeoutMs the node starts cold (the default) and its stats say timed-out', async () => {
    const { cluster } = await withHungDonor({ sessions: { stateTransferTimeoutMs: 400 } });
    const b = cluster.create('b');
    const t0 = performance.now();
    await b.start();
    const waited = performance.now() - t0;
    const st = transferOf(b)!;
    assert.equal(st.state, 'timed-out');
    assert.equal(st.donor, 'hung');
    assert.equal(st.sessions, 0);
    // Not before the timeout (a timer may fire a millisecond early; the bound is the promise).
    assert.ok(waited >= 395, `started after ${waited.toFixed(0)} ms, before the timeout (400 ms)`);
    assert.equal(managerOf(b).ready, true);
  });

  test('with onStateTransferTimeout "fail" the node refuses to start, naming the setting', async () => {
    const { cluster } = await withHungDonor({
      sessions: { stateTransferTimeoutMs: 300, onStateTransferTimeout: 'fail' },
    });
    const b = cluster.create('b');
    await assert.rejects(
      b.start(),
      (err: unknown) => err instanceof ClusterError && /onStateTransferTimeout is "fail"/.test(err.message),
    );
    assert.equal(transferOf(b)?.state, 'timed-out');
  });

  test('a donor that leaves mid-transfer: the next oldest member is asked and every session arrives', async () => {
    const { cluster, hung } = await withHungDonor({
      // a starts after the hung donor and would wait for it: it has nothing to lose, so it starts cold at once
      perNode: (_i, name) => (name === 'a' ? { sessions: { stateTransferTimeoutMs: 200 } } : {}),
    });
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
    // A minute: ending far sooner shows the fallback did not wait for the timeout, however loaded the machine.
    const b = cluster.create('b', { sessions: { stateTransferTimeoutMs: 60_000 } });
    const starting = b.start();
    // The oldest member is the hung donor: b asks it first.
    await waitFor(() => transferOf(b)?.donor === 'hung', 'b asking the hung donor');
    const t0 = Date.now();
    await hung.stop(); // a graceful leave: b drops it at once
    await starting;
    const st = transferOf(b)!;
    assert.equal(st.state, 'done');
    assert.equal(st.donor, 'a');
    assert.equal(st.sessions, ids.length);
    assert.ok(Date.now() - t0 < 30_000, `the fallback took ${Date.now() - t0} ms (timeout 60 s)`);
    const mb = managerOf(b);
    for (const [i, id] of ids.entries()) assert.equal(mb.sessions.get(id)?.getAttribute('n'), i);
  });

  test('a stop during the state transfer ends it at once: start() rejects, nothing listens, nothing is left running', async () => {
    const { cluster } = await withHungDonor({ sessions: { stateTransferTimeoutMs: 120_000 } });
    const b = cluster.create('b');
    const starting = b.start();
    const outcome = starting.then(
      () => 'started',
      (err: unknown) => err,
    );
    await waitFor(() => transferOf(b)?.state === 'transferring', 'b asking the hung donor');
    const t0 = Date.now();
    await b.stop();
    const err = await outcome;
    // The timeout is 2 minutes (longer than the test may run): start() ended by the stop.
    assert.ok(Date.now() - t0 < 60_000, `start() ended ${Date.now() - t0} ms after the stop (timeout 120 s)`);
    assert.ok(err instanceof ClusterError && err.code === 'ERR_CLOWDER_STOPPED', `start() ended with ${String(err)}`);
    assert.equal(transferOf(b)?.state, 'stopped');
    assert.equal(b.ready, false);
    assert.throws(() => b.address, /not listening/);
    assert.equal(b.channel.members().length, 0);
    await b.stop(); // again: nothing to do
  });

  test('`clowder start` stopped by SIGTERM during the state transfer exits at once, cleanly', async () => {
    const [donorPort, nodePort] = await freePorts(2);
    const members = [`127.0.0.1:${donorPort}`, `127.0.0.1:${nodePort}`];
    channels.push(
      await hungDonor(undefined, {
        receiver: { port: donorPort!, autoBind: 1 },
        membership: { type: 'static', members },
      }),
    );
    // A node that would wait 60 s (the default stateTransferTimeoutMs) for a donor that never answers.
    const node = new CliProcess('b', [
      'start',
      '--name',
      'b',
      '--port',
      '0',
      '--cluster-port',
      String(nodePort),
      '--membership',
      'static',
      '--members',
      members.join(','),
      '--app',
      `/app=${COUNTER_APP}`,
      '--json',
    ]);
    try {
      await node.waitLog((l) => l.msg === 'asking for the sessions of this context', 'b asking the hung donor');
      node.kill('SIGTERM');
      const exit = await node.exited(30_000); // rejects if it takes longer: half the 60 s it would wait
      assert.deepEqual(exit, { code: 0, signal: null });
      assert.equal(node.readyLine, undefined, 'it never said it was ready');
      assert.equal(node.logsWith('node stopped').length, 1);
    } finally {
      await node.destroy();
    }
  });
});
