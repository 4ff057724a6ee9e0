/**
 * Key rotation without downtime: a 3-node cluster under a steady load of writes (sync mode,
 * sessions spread over the nodes) rotates its key one node at a time, [K1] → [K1,K2] → [K2,K1] →
 * [K2], by rolling restart. Membership never splits (no member is ever removed for any reason but
 * a graceful leave, and every two running nodes see each other at every sample), no session is
 * lost, and no write is lost (every response's count is the previous one plus one, and every node
 * ends with the last count of every session). Both keys verified hellos or heartbeats on the way.
 */
import * as assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { type Channel, type ClusterNode, createClusterNode, silentLogger } from '../../src/index.js';
import { ClusterKeys } from '../../src/wire/auth.js';
import { FrameType } from '../../src/wire/frame.js';
import { encodeHello } from '../../src/wire/hello.js';
import { CookieJar, countOf, get, managerOf, portOf, TestCluster, throwFailures } from '../helpers/http.js';
import { memberOf, Resources, rawConnect, rawDescriptor } from '../helpers/raw-peer.js';
import { waitFor } from '../helpers/wait.js';

const K1 = 'q8Vw3nZ0Lr5TgY2mKc7XbH1sJd9FpA4eUo6iNx0lWzQ=';
const K2 = 'R2dT7kPq9Xv4Lm1Nc8Bz5Hs3Jw6Ye0Ua2Gi7Ko9Ft1E=';
const NAMES = ['a', 'b', 'c'];
const SESSIONS = 6;
const WORKERS = 3;
/** Heartbeat silence before a member is suspected: a refused key would split within this. */
const DROP_MS = 1000;

describe('key rotation under load, one node at a time', () => {
  const group = new TestCluster({ sessions: { sendOptions: 'sync' } });
  const nodes: (ClusterNode | undefined)[] = [];
  /** Nodes a worker may send to (started, formed, not about to stop). */
  const available = new Set<number>();
  /** Nodes whose membership is checked (started and formed). */
  const settled = new Set<number>();
  const inFlight = [0, 0, 0];
  const violations: string[] = [];
  const all: ClusterNode[] = [];

  after(async () => {
    throwFailures(await Promise.allSettled(all.map((n) => n.stop())), 'cleaning up');
  });

  async function startNode(i: number, keys: string[]): Promise<void> {
    const options = group.options(NAMES[i]!, i);
    const node = createClusterNode(
      { ...options, cluster: { ...options.cluster, clusterKey: keys } },
      { logger: silentLogger },
    );
    all.push(node);
    node.channel.on('memberRemoved', (m, reason) => {
      if (reason !== 'leave') violations.push(`${NAMES[i]} removed ${m.name} (${reason}) with keys [${label(keys)}]`);
    });
    await node.start();
    nodes[i] = node;
    // Formed: it sees every other running node, and they see it.
    await waitFor(
      () =>
        [...settled].every(
          (j) =>
            node.channel.members().some((m) => m.id === nodes[j]!.channel.local.id) &&
            nodes[j]!.channel.members().some((m) => m.id === node.channel.local.id),
        ),
      `${NAMES[i]} to join the others`,
      { timeoutMs: 15_000 },
    );
    settled.add(i);
    available.add(i);
  }

  async function stopNode(i: number): Promise<void> {
    available.delete(i);
    await waitFor(() => inFlight[i] === 0, `requests in flight to ${NAMES[i]} to end`, { timeoutMs: 10_000 });
    settled.delete(i);
    await nodes[i]!.stop();
    nodes[i] = undefined;
  }

  function label(keys: string[]): string {
    return keys.map((k) => (k === K1 ? 'K1' : 'K2')).join(',');
  }

  it('[K1] → [K1,K2] → [K2,K1] → [K2]: no split, no session or write lost', async () => {
    await Promise.all(NAMES.map((_, i) => startNode(i, [K1])));

    const jars: CookieJar[] = [];
    const counts: number[] = [];
    for (let s = 0; s < SESSIONS; s++) {
      const jar = new CookieJar();
      assert.equal(countOf((await jar.get(portOf(nodes[s % 3]!), '/app/counter')).body), 1);
      jars.push(jar);
      counts.push(1);
    }

    // The split monitor: every two settled nodes see each other, sampled every 20 ms.
    const monitor = setInterval(() => {
      for (const i of settled)
        for (const j of settled) {
          if (i === j) continue;
          const a = nodes[i];
          const b = nodes[j];
          if (a && b && !a.channel.members().some((m) => m.id === b.channel.local.id))
            violations.push(`${NAMES[i]} does not see ${NAMES[j]}`);
        }
    }, 20);

    // The load: each worker owns sessions w, w + WORKERS, ... and writes them in turn, on the
    // session's home node while it is available, else on the next available one.
    let running = true;
    let writes = 0;
    const errors: string[] = [];
    const worker = async (w: number): Promise<void> => {
      for (let k = 0; running; k++) {
        const s = w + WORKERS * (k % (SESSIONS / WORKERS));
        let target = -1;
        for (let d = 0; d < 3 && target < 0; d++) if (available.has((s + d) % 3)) target = (s + d) % 3;
        if (target < 0) {
          await new Promise((r) => setTimeout(r, 5));
          continue;
        }
        inFlight[target]!++;
        try {
          const res = await jars[s]!.get(portOf(nodes[target]!), '/app/counter');
          const count = countOf(res.body);
          if (count !== counts[s]! + 1)
            errors.push(`session ${s} on ${NAMES[target]}: count ${count} after ${counts[s]} (lost or stale write)`);
          counts[s] = count;
          writes++;
        } catch (err) {
          errors.push(`session ${s} on ${NAMES[target]}: ${(err as Error).message}`);
        } finally {
          inFlight[target]!--;
        }
      }
    };
    const workers = Array.from({ length: WORKERS }, (_, w) => worker(w));

    try {
      for (const keys of [[K1, K2], [K2, K1], [K2]]) {
        for (let i = 0; i < 3; i++) {
          const before = writes;
          await stopNode(i);
          await startNode(i, keys);
          // Some writes while the cluster runs with mixed keys.
          await waitFor(() => writes >= before + 10, `writes after ${NAMES[i]} moved to [${label(keys)}]`, {
            timeoutMs: 15_000,
          });
        }
      }
      // A full drop time with every node on [K2]: a refused heartbeat would have split by now.
      const end = Date.now() + DROP_MS + 500;
      await waitFor(() => Date.now() > end, 'the observation window', { timeoutMs: DROP_MS + 15_000 });
    } finally {
      running = false;
      await Promise.all(workers);
      clearInterval(monitor);
    }

    assert.deepEqual(violations, [], 'membership never split');
    assert.deepEqual(errors, [], 'every write answered, none lost');
    assert.ok(writes > 90, `writes under load: ${writes}`);
    for (let i = 0; i < 3; i++) {
      const n = nodes[i]!;
      assert.equal(n.channel.members().length, 2, `${NAMES[i]} sees both others`);
      assert.deepEqual(n.channel.stats().auth.keys, 1);
      assert.ok(n.channel.stats().auth.acceptedByKey[0]! > 0, `${NAMES[i]} verified with K2`);
      for (let s = 0; s < SESSIONS; s++) {
        assert.ok(managerOf(n).sessions.has(jars[s]!.id), `session ${s} on ${NAMES[i]}`);
        assert.equal(countOf((await get(portOf(n), '/app/read', jars[s]!.cookie)).body), counts[s], `count ${s}`);
      }
    }
  });
});

describe('key rotation without restart: channel.setClusterKeys()', () => {
  const res = new Resources();
  after(() => res.close());

  /** Whether `to` answers a fresh hello signed with the first of `keys` (what a new connection does). */
  async function helloAccepted(to: Channel, keys: string[]): Promise<boolean> {
    const conn = await rawConnect(res, to.local.port);
    conn.socket.write(encodeHello(FrameType.HELLO, rawDescriptor(res.group.domain), new ClusterKeys(keys), true).frame);
    await waitFor(() => conn.closed() || conn.frames.length > 0, 'an answer or a close', { timeoutMs: 15_000 });
    const accepted = conn.frames.length > 0;
    conn.socket.destroy();
    return accepted;
  }

  it('[K1] → [K1,K2] → [K2,K1] → [K2] live, with messages flowing: no split, new hellos accepted at every step', async () => {
    const nodes = await Promise.all(['r1', 'r2', 'r3'].map((name) => res.node(name, { clusterKey: [K1] })));
    const keysOf = nodes.map(() => [K1]);
    await waitFor(() => nodes.every((x) => x.members().length === 2), 'three channels to see each other', {
      timeoutMs: 15_000,
    });
    const removed: string[] = [];
    for (const n of nodes)
      n.on('memberRemoved', (m, reason) => removed.push(`${n.config.name} removed ${m.name} (${reason})`));
    let delivered = 0;
    for (const n of nodes)
      n.onMessage(() => {
        delivered++;
      });
    // Synchronous messages around the ring while the keys change.
    let running = true;
    const errors: string[] = [];
    const loop = (async () => {
      for (let k = 0; running; k++) {
        const from = nodes[k % 3]!;
        const to = nodes[(k + 1) % 3]!;
        try {
          await from.send(memberOf(from, to.local.id), { k }, { options: 'use_ack,sync' });
        } catch (err) {
          errors.push((err as Error).message);
        }
      }
    })();
    try {
      for (const keys of [[K1, K2], [K2, K1], [K2]]) {
        for (let i = 0; i < 3; i++) {
          await nodes[i]!.setClusterKeys(keys);
          keysOf[i] = keys;
          // A new connection from any node to any other is accepted with the keys each has now.
          for (let a = 0; a < 3; a++)
            for (let b = 0; b < 3; b++)
              if (a !== b) assert.ok(await helloAccepted(nodes[b]!, keysOf[a]!), `a hello from node ${a} to node ${b}`);
          const before = delivered;
          await waitFor(() => delivered >= before + 20, 'messages after the change', { timeoutMs: 15_000 });
        }
      }
      // A full drop time (600 ms here) and more with every node on [K2]: heartbeats are accepted.
      const end = Date.now() + 1000;
      await waitFor(() => Date.now() > end, 'the observation window', { timeoutMs: 15_000 });
    } finally {
      running = false;
      await loop;
    }
    assert.deepEqual(removed, [], 'no member was ever removed');
    assert.deepEqual(errors, [], 'every message acknowledged');
    for (const n of nodes) {
      assert.equal(n.members().length, 2);
      assert.deepEqual([n.stats().auth.keySource, n.stats().auth.keys], ['clusterKey', 1]);
      assert.ok(n.stats().auth.acceptedByKey[0]! > 0, 'heartbeats verified with K2');
    }
    assert.equal(await helloAccepted(nodes[0]!, [K1]), false, 'K1 is no longer accepted for a new connection');
    await assert.rejects(nodes[0]!.setClusterKeys('too-short'), /at least 32 characters \(got 9/);
  });
});
