/**
 * Races of the BackupManager's fetch with the ownership protocol on the in-memory channel twin
 * (no sockets), each driven through its exact interleaving with held links: what the twin stress
 * (twin-backup-take.test.ts, requests spread at random over four nodes) met now and then as lost
 * increments with ownership timeouts and fenced writes.
 */
import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encode } from '../../../src/codec/value-codec.js';
import { resolveSessionConfig } from '../../../src/config/session-config.js';
import { silentLogger } from '../../../src/core/logger.js';
import { BackupManager } from '../../../src/session/backup-manager.js';
import { releaseMsg } from '../../../src/session/backup-messages.js';
import { deltaMsg, sessionDataMsg } from '../../../src/session/message-builders.js';
import type { SessionRecord } from '../../../src/session/messages.js';
import { ReplicationHub } from '../../../src/session/replication-hub.js';
import { type MemoryChannel, MemoryNetwork } from '../../helpers/memory-channel.js';
import { increment, request, sum } from '../../helpers/twin-backup.js';
import { waitFor } from '../../helpers/wait.js';

interface Node {
  readonly name: string;
  readonly channel: MemoryChannel;
  readonly manager: BackupManager;
}

/** `takes` false: the fetch to serve asks for a copy only, and the ownership protocol follows (fetches.ts FETCH_TAKES). */
async function startBackupNodes(net: MemoryNetwork, names: string[], takes = true): Promise<Node[]> {
  const nodes: Node[] = [];
  for (const name of names) {
    const channel = net.channel(name);
    const hub = new ReplicationHub(channel, silentLogger);
    // A short hand-over wait: a run that waits for it fails fast (and counts ownershipTimeouts).
    const config = resolveSessionConfig({ contextName: 'app', manager: 'backup', backups: 1, ownershipTimeoutMs: 500 });
    const manager = new BackupManager(config, hub, silentLogger);
    manager.fetchTakes = takes;
    channel.start();
    nodes.push({ name, channel, manager });
  }
  await Promise.all(nodes.map((n) => n.manager.start()));
  return nodes;
}

async function stopAll(nodes: readonly Node[]): Promise<void> {
  for (const n of nodes) {
    await n.manager.stop();
    n.channel.stop();
  }
}

const received = (m: BackupManager, type: string) => (m.stats().received as Record<string, number>)[type] ?? 0;
const owners = (nodes: readonly Node[], id: string) =>
  nodes.filter((n) => n.manager.sessions.get(id)?.ownerId === n.manager.localId).map((n) => n.name);

describe('BackupManager: a fetch racing the ownership protocol', () => {
  it('a fetch whose last answer comes after this node took the session over (GRANT) leaves it the owner', async () => {
    const net = new MemoryNetwork();
    // The path without "take" (with it, the owner's answer is the hand-over and ends the fetch).
    const nodes = await startBackupNodes(net, ['A', 'B', 'C', 'D'], false);
    try {
      const a = nodes[0]!;
      const s = a.manager.createSession();
      await request(a.manager, s.id, increment);
      await waitFor(() => nodes.filter((n) => n.manager.sessions.has(s.id)).length === 2, 'the session on 1 + 1 nodes');
      const [d, slow] = nodes.filter((n) => !n.manager.sessions.has(s.id));
      // d fetches (a request for a session it does not hold); the answer of `slow` (none: it
      // holds no copy) is held back, so the fetch is still waiting when what follows happened.
      net.hold(slow!.channel, d!.channel);
      const fetching = d!.manager.fetchSession(s.id)!; // the start of a request for it on d
      await waitFor(() => received(d!.manager, 'fetched') >= 2, 'the owner and the backup answered d');
      // The owner's answer names the owner (a); a writes again: the change goes to its fetcher d,
      // which makes d a copy of the session before its fetch ended.
      await request(a.manager, s.id, increment);
      await waitFor(() => d!.manager.sessions.has(s.id), 'd holds a copy from the change a sent its fetcher');
      // Another request on d finds that copy and takes the session over (ACQUIRE, GRANT).
      await request(d!.manager, s.id, increment);
      assert.deepEqual(owners(nodes, s.id), [d!.name], 'd owns it (granted)');
      // The held answer arrives: the fetch ends. Its answers were sent before the GRANT: they name
      // a, which d must not believe over the grant (else d names a while a names d: their next
      // requests ask each other and both wait until ownershipTimeoutMs, then take it over: fenced).
      net.release(slow!.channel, d!.channel);
      await fetching;
      assert.deepEqual(owners(nodes, s.id), [d!.name], 'd still owns it');
      const moves = sum(nodes, 'ownershipMoves');
      await request(d!.manager, s.id, increment);
      assert.equal(sum(nodes, 'ownershipMoves'), moves, 'd served it without asking anyone');
      await request(a.manager, s.id, increment);
      assert.equal(a.manager.findSession(s.id)!.getAttribute('count'), 5, 'every increment counted');
      assert.equal(sum(nodes, 'ownershipForced') + sum(nodes, 'ownershipTimeouts'), 0, 'only hand-overs');
      assert.equal(sum(nodes, 'fencedWrites') + sum(nodes, 'conflicts'), 0);
    } finally {
      await stopAll(nodes);
    }
  });

  it('a repair answer for a copy dropped since does not bring it back (naming this node its owner)', async () => {
    const net = new MemoryNetwork();
    const [x, f] = await startBackupNodes(net, ['X', 'F']);
    try {
      const id = 'B'.repeat(32);
      const one = encode(1);
      // F's change of a session X never saw: X keeps it and asks F for the whole session (repair).
      await f!.channel.send(x!.channel.local, deltaMsg('app', id, 1, 2, ['count'], [one], [], null));
      await waitFor(() => x!.manager.sessions.has(id), 'X holds a copy');
      assert.equal(x!.manager.stats().repairs, 1);
      // F served it on, and released X's copy (X is no holder); the answer to the repair comes
      // late, from when X still served it.
      await f!.channel.send(x!.channel.local, releaseMsg('app', [id], [2]));
      await waitFor(() => !x!.manager.sessions.has(id), 'X dropped its copy');
      const record: SessionRecord = [
        id,
        0,
        Date.now(),
        1800,
        2,
        ['count'],
        [one],
        [2],
        [x!.manager.localId],
        x!.manager.localId,
      ];
      await f!.channel.send(x!.channel.local, sessionDataMsg('app', record)); // resolves once handled
      assert.equal(x!.manager.sessions.has(id), false, 'no copy naming X its owner: X would serve it without asking');
    } finally {
      await stopAll([x!, f!]);
    }
  });
});
