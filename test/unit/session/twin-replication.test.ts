// Replication between DeltaManagers on the in-memory channel twin (no sockets): creation, deltas,
// removals, timeout changes, expiry, invalidation, id changes, turn batching and state transfer,
// through the real managers, hub, codec and readers.
import * as assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { waitFor } from '../../helpers/wait.js';
import { MemoryNetwork, request, startNode, startNodes, stat, stopAll, type TwinNode } from './twin-cluster.js';

let nodes: TwinNode[] = [];
afterEach(async () => {
  await stopAll(nodes);
  nodes = [];
});

describe('replication on the channel twin', () => {
  it('a new session reaches every member whole (CREATED), then only its changes (DELTA)', async () => {
    const net = new MemoryNetwork();
    nodes = await startNodes(net, ['a', 'b', 'c']);
    const [a, b, c] = nodes.map((n) => n.manager) as [TwinNode['manager'], TwinNode['manager'], TwinNode['manager']];
    const { session } = await request(a, undefined, (s) => {
      s.setAttribute('user', { name: 'ann' });
      s.setAttribute('n', 1);
    });
    const id = session.id;
    for (const m of [b, c]) {
      await waitFor(() => m.sessions.get(id)?.getAttribute('n') === 1, `${m.route} to get the session`);
      assert.deepEqual(m.sessions.get(id)?.getAttribute('user'), { name: 'ann' });
      assert.equal(m.sessions.get(id)?.ownerId, a.localId, 'the writer owns it');
      assert.equal(m.sessions.get(id)?.primary, false);
    }
    assert.equal(a.stats().sent.created, 1);

    await request(a, id, (s) => {
      s.setAttribute('n', 2);
      s.removeAttribute('user');
      s.setMaxInactiveInterval(600);
    });
    for (const m of [b, c]) {
      await waitFor(() => m.sessions.get(id)?.getAttribute('n') === 2, `${m.route} to apply the delta`);
      const copy = m.sessions.get(id)!;
      assert.equal(copy.hasAttribute('user'), false, 'the removal applies');
      assert.equal(copy.maxInactiveInterval, 600, 'the timeout travels');
      assert.equal(copy.version, session.version, "the copies reach the writer's version");
    }
    assert.equal(a.stats().sent.delta, 1);
    assert.equal(b.stats().received.delta, 1);
    assert.ok(stat(a, 'valueBytesSent') > 0);
  });

  it("a turn's changes of several sessions travel as one BATCH per member, applied in order", async () => {
    const net = new MemoryNetwork();
    nodes = await startNodes(net, ['a', 'b']);
    const [a, b] = [nodes[0]!.manager, nodes[1]!.manager];
    const s1 = a.createSession();
    const s2 = a.createSession();
    // Two requests end in the same turn: both are queued, endTurn sends them together.
    a.requestStarted(s1);
    a.requestStarted(s2);
    s1.setAttribute('x', 1);
    s2.setAttribute('x', 2);
    a.requestCompleted(s1);
    a.requestCompleted(s2);
    await waitFor(() => b.sessions.get(s2.id)?.getAttribute('x') === 2, 'b to get both sessions');
    assert.equal(b.sessions.get(s1.id)?.getAttribute('x'), 1);
    assert.equal(a.stats().sent.batch, 1, 'one batch');
    assert.equal(a.stats().sent.created, 2, 'holding two messages (each counted)');
    assert.equal(b.stats().received.batch, 1);
    assert.equal(b.stats().received.created, 2);
  });

  it('an invalidation removes the session everywhere and leaves a tombstone a late write cannot pass', async () => {
    const net = new MemoryNetwork();
    nodes = await startNodes(net, ['a', 'b', 'c']);
    const [a, b, c] = nodes.map((n) => n.manager) as [TwinNode['manager'], TwinNode['manager'], TwinNode['manager']];
    const [ca, cb] = [nodes[0]!.channel, nodes[1]!.channel];
    const { session } = await request(a, undefined, (s) => s.setAttribute('k', 'v'));
    const id = session.id;
    await waitFor(() => b.sessions.has(id) && c.sessions.has(id), 'the members to get the session');
    // a's next write is late to b; meanwhile c takes the session over and invalidates it.
    net.hold(ca, cb);
    await request(a, id, (s) => s.setAttribute('k', 'late'));
    await waitFor(() => c.sessions.get(id)?.getAttribute('k') === 'late', "c to apply a's write");
    await request(c, id, (s) => s.invalidate());
    await waitFor(() => !b.sessions.has(id) && !a.sessions.has(id), 'a and b to drop the invalidated session');
    assert.equal(b.endedLately(id), true, 'b keeps its tombstone');
    net.release(ca, cb);
    await waitFor(() => b.stats().received.delta === 1, "a's late write to reach b");
    assert.equal(b.sessions.has(id), false, 'the late write does not revive it');
    assert.equal(stat(b, 'staleDeltas'), 1, 'counted as stale');
    assert.equal(b.createSessionWithId(id), undefined, 'an ended id is not created again');
    assert.equal(stat(b, 'sessionsInvalidated'), 1);
    assert.equal(b.findSession(id), undefined);
  });

  it('a primary that expires a session tells every member; a copy alone expires only after twice the timeout', async () => {
    const net = new MemoryNetwork();
    nodes = await startNodes(net, ['a', 'b']);
    const [a, b] = [nodes[0]!.manager, nodes[1]!.manager];
    const { session } = await request(a, undefined, (s) => {
      s.setAttribute('k', 1);
      s.setMaxInactiveInterval(10);
    });
    const id = session.id;
    await waitFor(() => b.sessions.get(id)?.maxInactiveInterval === 10, 'b to get the session');
    const idle = session.lastAccessedTime + 10_000;
    // The copy on b is not expired at 1x its timeout (the primary may still be using it)...
    b.processExpires(idle + 1);
    assert.equal(b.sessions.has(id), true, 'a copy outlives one timeout');
    // ...the primary is, and says so.
    a.processExpires(idle + 1);
    assert.equal(a.sessions.has(id), false);
    await waitFor(() => !b.sessions.has(id), 'b to drop the session the primary expired');
    assert.equal(stat(b, 'sessionsExpired'), 1);
    assert.equal(b.stats().received.expired, 1);
  });

  it('an id change renames the session on every member; the old id is a tombstone', async () => {
    const net = new MemoryNetwork();
    nodes = await startNodes(net, ['a', 'b', 'c']);
    const [a, b, c] = nodes.map((n) => n.manager) as [TwinNode['manager'], TwinNode['manager'], TwinNode['manager']];
    const { session } = await request(a, undefined, (s) => s.setAttribute('cart', [1, 2]));
    const old = session.id;
    await waitFor(() => b.sessions.has(old) && c.sessions.has(old), 'the members to get the session');
    const { id } = a.changeSessionId(session);
    assert.notEqual(id, old);
    for (const m of [b, c]) {
      await waitFor(() => m.sessions.has(id), `${m.route} to rename the session`);
      assert.equal(m.sessions.has(old), false);
      assert.equal(m.endedLately(old), true);
      assert.deepEqual(m.sessions.get(id)?.getAttribute('cart'), [1, 2]);
    }
    // A change made under the new id reaches the members.
    await request(a, id, (s) => s.setAttribute('cart', [1, 2, 3]));
    await waitFor(() => (b.sessions.get(id)?.getAttribute('cart') as number[] | undefined)?.length === 3, 'b');
  });

  it('a starting member takes every session and the tombstones from the oldest one before it is ready', async () => {
    const net = new MemoryNetwork();
    nodes = await startNodes(net, ['a'], { stateTransferChunkSize: 7 }); // the donor's setting
    const a = nodes[0]!.manager;
    const ids: string[] = [];
    for (let i = 0; i < 40; i++) {
      const { session } = await request(a, undefined, (s) => s.setAttribute('i', i));
      ids.push(session.id);
    }
    const gone = ids.pop()!;
    a.findSession(gone)!.invalidate();
    const late = await startNode(net, 'b');
    nodes.push(late);
    const b = late.manager;
    assert.equal(b.ready, true);
    const st = b.stats().stateTransfer;
    assert.equal(st.state, 'done');
    assert.equal(st.sessions, ids.length);
    assert.ok(st.chunks >= Math.ceil(ids.length / 7), 'in chunks of stateTransferChunkSize');
    for (let i = 0; i < ids.length; i++) assert.equal(b.findSession(ids[i]!)?.getAttribute('i'), i);
    assert.equal(b.endedLately(gone), true, "the donor's tombstones travel too");
    assert.equal(b.stats().replicaSessions, ids.length);
    // After the transfer, live changes flow as usual.
    await request(a, ids[0], (s) => s.setAttribute('i', 100));
    await waitFor(() => b.sessions.get(ids[0]!)?.getAttribute('i') === 100, 'b to apply a change after the transfer');
  });

  it("a member that missed a session's creation asks for it whole (repair) on its first delta", async () => {
    const net = new MemoryNetwork();
    nodes = await startNodes(net, ['a', 'b']);
    const [a, b] = [nodes[0]!.manager, nodes[1]!.manager];
    const ca = nodes[0]!.channel;
    const cb = nodes[1]!.channel;
    net.hold(ca, cb);
    const { session } = await request(a, undefined, (s) => {
      s.setAttribute('x', 1);
      s.setAttribute('y', 2);
    });
    await waitFor(() => net.pending(ca, cb) === 1, 'the CREATED to be held');
    // Lost on the way: b never sees the creation.
    assert.equal(net.dropHeld(ca, cb), 1);
    net.release(ca, cb);
    await request(a, session.id, (s) => s.setAttribute('x', 3));
    await waitFor(() => b.sessions.get(session.id)?.getAttribute('y') === 2, 'b to repair the session');
    assert.equal(b.sessions.get(session.id)?.getAttribute('x'), 3);
    assert.equal(stat(b, 'repairs'), 1);
    assert.equal(a.stats().sent.sessionData, 1);
  });
});
