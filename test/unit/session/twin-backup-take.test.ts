/**
 * The BackupManager's one-round-trip take-over on the in-memory channel twin (no sockets; on by
 * default, FETCH_TAKES in src/session/fetches.ts; the stress runs the FETCH-then-ACQUIRE path too): a node
 * serving a session it does not hold asks with a FETCH "take", and the owner hands the session over
 * in its answer (FETCHED granted), so no ACQUIRE follows; under requests spread over four nodes
 * at random (the benchmark's load without stickiness) no increment is lost and no two nodes own
 * a session at once (no conflicting writes).
 */
import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { resolveSessionConfig } from '../../../src/config/session-config.js';
import { silentLogger } from '../../../src/core/logger.js';
import { BackupManager } from '../../../src/session/backup-manager.js';
import { FETCH_TAKES } from '../../../src/session/fetches.js';
import { Msg } from '../../../src/session/messages.js';
import { ReplicationHub } from '../../../src/session/replication-hub.js';
import { type MemoryChannel, MemoryNetwork } from '../../helpers/memory-channel.js';
import { increment, request, stats, sum } from '../../helpers/twin-backup.js';
import { waitFor } from '../../helpers/wait.js';

interface Node {
  readonly name: string;
  readonly channel: MemoryChannel;
  readonly manager: BackupManager;
  readonly stop: () => Promise<void>;
}

/** `takes`: the managers fetch with mode "take" (false: FETCH, then ACQUIRE). */
async function startBackupNodes(net: MemoryNetwork, names: string[], takes = true): Promise<Node[]> {
  const nodes: Node[] = [];
  for (const name of names) {
    const channel = net.channel(name);
    const hub = new ReplicationHub(channel, silentLogger);
    const config = resolveSessionConfig({ contextName: 'app', manager: 'backup', backups: 1 });
    const manager = new BackupManager(config, hub, silentLogger);
    manager.fetchTakes = takes;
    channel.start();
    nodes.push({
      name,
      channel,
      manager,
      stop: async () => {
        await manager.stop();
        channel.stop();
      },
    });
  }
  await Promise.all(nodes.map((n) => n.manager.start()));
  return nodes;
}

describe('BackupManager take-over in one round trip (FETCH take, FETCHED granted)', () => {
  it('a node that holds no copy gets the session and its ownership from the owner in one answer: no ACQUIRE', async () => {
    const net = new MemoryNetwork();
    const nodes = await startBackupNodes(net, ['A', 'B', 'C', 'D']);
    try {
      const [a] = nodes;
      const s = a!.manager.createSession();
      await request(a!.manager, s.id, increment);
      await waitFor(() => nodes.filter((n) => n.manager.sessions.has(s.id)).length === 2, 'the session on 1 + 1 nodes');
      const outsider = nodes.find((n) => !n.manager.sessions.has(s.id))!;
      const acquiresBefore = sum(nodes, 'ownershipMoves');
      await request(outsider.manager, s.id, increment);
      const got = outsider.manager.findSession(s.id)!;
      assert.equal(got.getAttribute('count'), 2);
      assert.equal(got.ownerId, outsider.manager.localId);
      assert.equal(stats(outsider.manager).fetchGrants, 1, 'the owner granted in its answer');
      assert.equal(sum(nodes, 'ownershipMoves'), acquiresBefore, 'no ACQUIRE was needed');
      assert.equal(outsider.manager.stats().received?.grant ?? 0, 0);
      // The former owner now names the new one, and the copies settle on 1 + k nodes again.
      assert.equal(a!.manager.sessions.get(s.id)?.ownerId ?? outsider.manager.localId, outsider.manager.localId);
      await waitFor(() => nodes.filter((n) => n.manager.sessions.has(s.id)).length === 2, 'back on 1 + 1 nodes');
    } finally {
      for (const n of nodes) await n.stop();
    }
  });

  it('an ACQUIRE or FETCH for a session this node is taking over by a fetch waits for it (else two owners)', async () => {
    const net = new MemoryNetwork();
    const nodes = await startBackupNodes(net, ['A', 'B', 'C', 'D']);
    try {
      const a = nodes[0]!;
      const s = a.manager.createSession();
      await request(a.manager, s.id, increment);
      await waitFor(() => nodes.filter((n) => n.manager.sessions.has(s.id)).length === 2, 'the session on 1 + 1 nodes');
      const [x, slow] = nodes.filter((n) => !n.manager.sessions.has(s.id));
      // x asks everyone (no route); the answer of `slow` (null: it holds no copy) is held back: x
      // serves on the owner's grant without it, and a asks x meanwhile or right after.
      net.hold(slow!.channel, x!.channel);
      const atX = request(x!.manager, s.id, increment);
      // Handed over: a's copy names x, or a dropped it (not a holder once x serves it).
      await waitFor(
        () => (a.manager.sessions.get(s.id)?.ownerId ?? x!.manager.localId) === x!.manager.localId,
        'the owner handed over to x',
      );
      // The former owner serves the session again at once: it asks x, which holds nothing yet.
      const atA = request(a.manager, s.id, increment);
      // An ACQUIRE (a kept its copy) or a FETCH (it dropped it).
      const asked = () => (x!.manager.stats().received?.acquire ?? 0) + (x!.manager.stats().received?.fetch ?? 0);
      await waitFor(() => asked() >= 1, 'a asks x');
      net.release(slow!.channel, x!.channel);
      await Promise.all([atX, atA]);
      const owners = nodes.filter((n) => n.manager.sessions.get(s.id)?.ownerId === n.manager.localId);
      assert.deepEqual(
        owners.map((n) => n.name),
        [a.name],
        'one owner: the node that asked last',
      );
      assert.equal(a.manager.findSession(s.id)!.getAttribute('count'), 3, 'both increments counted');
      assert.equal(sum(nodes, 'conflicts'), 0);
    } finally {
      for (const n of nodes) await n.stop();
    }
  });

  // Longer: TWIN_SESSIONS=3 TWIN_CLIENTS=4 TWIN_ROUNDS=400 (or 2/4/500, 1/2/300, 6/16/60).
  for (const takes of [FETCH_TAKES, !FETCH_TAKES])
    it(`under requests spread at random over 4 nodes (${takes ? 'take' : 'fetch, then acquire'}): every increment counted, no two owners (0 conflicts)`, async () => {
      const net = new MemoryNetwork();
      const nodes = await startBackupNodes(net, ['A', 'B', 'C', 'D'], takes);
      try {
        const ids: string[] = [];
        for (let i = 0; i < Number(process.env.TWIN_SESSIONS ?? 12); i++) {
          const home = nodes[i % nodes.length]!.manager;
          const s = home.createSession();
          await request(home, s.id, increment);
          ids.push(s.id);
        }
        const expected = new Map(ids.map((id) => [id, 1]));
        let seed = 7;
        const random = (n: number) => {
          seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
          return (seed >>> 8) % n;
        };
        // 8 clients, each one request after the other (as wrk's connections), each to a random node.
        const client = async () => {
          for (let r = 0; r < Number(process.env.TWIN_ROUNDS ?? 40); r++) {
            const id = ids[random(ids.length)]!;
            const m = nodes[random(nodes.length)]!.manager;
            expected.set(id, expected.get(id)! + 1);
            await request(m, id, increment);
          }
        };
        await Promise.all(Array.from({ length: Number(process.env.TWIN_CLIENTS ?? 8) }, client));
        for (const id of ids) {
          // The owner's value: every increment of every node, in order.
          await waitFor(() => nodes.some((n) => n.manager.sessions.get(id)?.ownerId === n.manager.localId), 'an owner');
          const owner = nodes.find((n) => n.manager.sessions.get(id)?.ownerId === n.manager.localId)!;
          const why = ['ownershipTimeouts', 'ownershipForced', 'fencedWrites', 'conflicts', 'fetchTimeouts']
            .map((k) => `${k} ${sum(nodes, k)}`)
            .join(', ');
          assert.equal(
            owner.manager.sessions.get(id)!.getAttribute('count'),
            expected.get(id),
            `${id.slice(0, 8)}: ${why}`,
          );
        }
        assert.equal(sum(nodes, 'conflicts'), 0, 'no concurrent writes: one owner at a time');
        if (takes) assert.ok(sum(nodes, 'fetchGrants') > 0, 'take-overs came with the fetch');
        assert.equal(sum(nodes, 'ownershipForced') + sum(nodes, 'ownershipTimeouts'), 0);
        assert.equal(Msg.FETCH, 17);
      } finally {
        for (const n of nodes) await n.stop();
      }
    });
});
