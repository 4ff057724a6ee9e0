// BackupManagers on the in-memory channel twin (no sockets): the periodic repair restores a copy
// whose send was lost, without any membership change; and the grant path: a node fetching a
// session whose owner does not answer in time must not be granted it by a holder whose old copy
// names the fetching node as owner (two owners, a stale value served).
import * as assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { BackupManager } from '../../../src/session/backup-manager.js';
import { Placement } from '../../../src/session/placement.js';
import type { Session } from '../../../src/session/session.js';
import { waitFor } from '../../helpers/wait.js';
import { MemoryNetwork, request, startNodes, stopAll, type TwinNode } from './twin-cluster.js';

let nodes: TwinNode[] = [];
// The managers' timers do not keep a process alive (unref), and the twin has no sockets: this does.
let alive: NodeJS.Timeout | undefined;
beforeEach(() => {
  alive = setInterval(() => {}, 1000);
});
afterEach(async () => {
  clearInterval(alive);
  await stopAll(nodes);
  nodes = [];
});

const backup = (n: TwinNode) => n.manager as BackupManager;

describe('BackupManager on the channel twin', () => {
  it('a copy whose send was lost is restored by the periodic repair, without a membership change', async () => {
    const net = new MemoryNetwork();
    nodes = await startNodes(net, ['a', 'b'], { manager: 'backup', backups: 1, repairIntervalMs: 100 });
    const [a, b] = nodes as [TwinNode, TwinNode];
    // The backup never receives the session's creation: lost on the link (the sender saw a success).
    net.hold(a.channel, b.channel);
    const { session } = await request(a.manager, undefined, (s) => s.setAttribute('n', 1));
    await waitFor(() => net.pending(a.channel, b.channel) > 0, 'the creation to be on its way to b');
    assert.ok(net.dropHeld(a.channel, b.channel) > 0, 'the copy is lost');
    net.release(a.channel, b.channel);
    assert.equal(b.manager.sessions.has(session.id), false, 'b lacks the copy');
    const viewBefore = a.channel.members().length;
    // Nobody writes the session again and nobody joins or leaves: only the repair can restore it.
    await waitFor(
      () => b.manager.sessions.get(session.id)?.getAttribute('n') === 1,
      'the repair to restore the copy on b',
      {
        timeoutMs: 5000,
      },
    );
    assert.equal(a.channel.members().length, viewBefore, 'no membership change');
    const stats = backup(a).stats();
    assert.ok(stats.copiesRepaired >= 1, `copiesRepaired ${stats.copiesRepaired}`);
    assert.ok(stats.repairRuns >= 1);
    await waitFor(() => backup(a).stats().underReplicated === 0, 'no session under-replicated');
    assert.equal(b.manager.sessions.get(session.id)?.ownerId, a.manager.localId, 'b holds it as a copy of a');
  });

  it('a fetch whose owner does not answer asks that owner, not a holder whose old copy names the fetching node', async () => {
    const net = new MemoryNetwork();
    nodes = await startNodes(net, ['a', 'b', 'c'], { manager: 'backup', backups: 1, ownershipTimeoutMs: 300 });
    const [a, b, c] = nodes as [TwinNode, TwinNode, TwinNode];
    // A session whose backup is b whether a or c serves it.
    const p = new Placement(nodes.map((n) => ({ id: n.channel.local.id, host: 'h' })));
    const [ia, ib, ic] = nodes.map((n) => n.channel.local.id) as [string, string, string];
    let id = '';
    for (let i = 0; i < 1000 && id === ''; i++) {
      const { session } = await request(a.manager, undefined, (s) => s.setAttribute('n', 1));
      if (p.backups(session.id, ia, 1)[0] === ib && p.backups(session.id, ic, 1)[0] === ib) id = session.id;
    }
    assert.notEqual(id, '', 'a session placed so');
    await waitFor(() => b.manager.sessions.get(id)?.getAttribute('n') === 1, 'b to hold the copy');
    assert.equal(b.manager.sessions.get(id)?.ownerId, ia);

    // c serves the session and writes it; b does not hear of it yet (its copy still names a).
    net.hold(c.channel, b.channel);
    const fetched = await backup(c).fetchSession(id, Date.now(), false, 'a');
    assert.ok(fetched !== undefined);
    c.manager.requestStarted(fetched);
    await c.manager.acquire(fetched);
    fetched.setAttribute('n', 2);
    await c.manager.requestCompleted(fetched);
    assert.equal(c.manager.sessions.get(id)?.ownerId, ic, 'c serves it');
    await waitFor(() => !a.manager.sessions.has(id), "a to drop its copy (c's backup is b)");
    assert.equal(b.manager.sessions.get(id)?.ownerId, ia, "b's copy still names a");

    // A request for it at a; c's answer to the fetch is late (a slow link, a pause).
    net.hold(c.channel, a.channel);
    const s = await backup(a).fetchSession(id, Date.now(), false, 'c');
    assert.ok(s !== undefined, 'b answered with its copy');
    net.release(c.channel, a.channel);
    a.manager.requestStarted(s);
    await a.manager.acquire(s);
    const owners = nodes.filter((n) => n.manager.sessions.get(id)?.ownerId === n.manager.localId).map((n) => n.name);
    assert.deepEqual(owners, ['a'], `one owner: ${owners.join(', ')}`);
    assert.equal(s.getAttribute('n'), 2, 'a serves the latest value, not the old copy b held');
    a.manager.requestCompleted(s);
    net.release(c.channel, b.channel);
  });

  it("a turn's changes travel as one BATCH per backup, even when the sessions' backups alternate", async () => {
    const net = new MemoryNetwork();
    nodes = await startNodes(net, ['a', 'b', 'c'], { manager: 'backup', backups: 1 });
    const [a, b, c] = nodes as [TwinNode, TwinNode, TwinNode];
    const p = new Placement(nodes.map((n) => ({ id: n.channel.local.id, host: 'h' })));
    const [ia, ib] = [a.channel.local.id, b.channel.local.id];
    const toB: Session[] = [];
    const toC: Session[] = [];
    while (toB.length < 3 || toC.length < 3) {
      const { session } = await request(a.manager, undefined, (s) => s.setAttribute('n', 0));
      (p.backups(session.id, ia, 1)[0] === ib ? toB : toC).push(session);
    }
    const sessions = [toB[0]!, toC[0]!, toB[1]!, toC[1]!, toB[2]!, toC[2]!]; // alternating backups
    for (const s of sessions)
      await waitFor(() => b.manager.sessions.has(s.id) || c.manager.sessions.has(s.id), 'copies');
    const batches = a.manager.stats().sent.batch ?? 0;
    const deltas = a.manager.stats().sent.delta ?? 0;
    const [inB, inC] = [b, c].map((n) => n.manager.stats().received.batch ?? 0);
    // Six requests end in one turn: each backup gets one batch of its three sessions' changes.
    for (const s of sessions) a.manager.requestStarted(s);
    for (const [i, s] of sessions.entries()) s.setAttribute('n', i + 1);
    for (const s of sessions) a.manager.requestCompleted(s);
    for (const [i, s] of sessions.entries()) {
      const holder = (toB.includes(s) ? b : c).manager;
      await waitFor(() => holder.sessions.get(s.id)?.getAttribute('n') === i + 1, 'the backups to apply the turn');
    }
    assert.equal((a.manager.stats().sent.batch ?? 0) - batches, 2, 'one batch to b, one to c');
    assert.equal((a.manager.stats().sent.delta ?? 0) - deltas, 6, 'holding the six changes');
    assert.equal((b.manager.stats().received.batch ?? 0) - inB!, 1);
    assert.equal((c.manager.stats().received.batch ?? 0) - inC!, 1);
  });
});
