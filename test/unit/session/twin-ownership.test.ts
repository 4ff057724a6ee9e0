// The ownership protocol between DeltaManagers on the in-memory channel twin (no sockets):
// hand-over, redirect to the current owner, forced take-over of an owner that holds on (fencing),
// and an owner that leaves while a node waits for it.
import * as assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { waitFor } from '../../helpers/wait.js';
import { MemoryNetwork, request, startNodes, stat, stopAll, type TwinNode } from './twin-cluster.js';

let nodes: TwinNode[] = [];
afterEach(async () => {
  await stopAll(nodes);
  nodes = [];
});

describe('ownership on the channel twin', () => {
  it('a request on another node takes the session over: the owner hands over after its last change', async () => {
    const net = new MemoryNetwork();
    nodes = await startNodes(net, ['a', 'b']);
    const [a, b] = [nodes[0]!.manager, nodes[1]!.manager];
    const { session } = await request(a, undefined, (s) => s.setAttribute('n', 1));
    const id = session.id;
    await waitFor(() => b.sessions.has(id), 'b to get the session');
    // a changes it again and, in the same turn, b asks for it: the hand-over follows the change.
    await request(a, id, (s) => s.setAttribute('n', 2));
    const { session: copy } = await request(b, id, (s) => {
      assert.equal(s.getAttribute('n'), 2, "b serves a's last change");
      s.setAttribute('n', 3);
    });
    assert.equal(copy.ownerId, b.localId, 'b owns it');
    assert.equal(stat(b, 'ownershipMoves'), 1);
    assert.equal(b.stats().received.grant, 1);
    await waitFor(() => a.sessions.get(id)?.getAttribute('n') === 3, "a to apply b's change");
    assert.equal(a.sessions.get(id)?.ownerId, b.localId);
    assert.equal(a.sessions.get(id)?.primary, false);
    // Back on a: a takes it back the same way.
    await request(a, id, (s) => s.setAttribute('n', 4));
    assert.equal(a.sessions.get(id)?.ownerId, a.localId);
    assert.equal(stat(a, 'ownershipForced'), 0);
  });

  it('a node that asks a former owner is redirected to the current one', async () => {
    const net = new MemoryNetwork();
    nodes = await startNodes(net, ['a', 'b', 'c']);
    const [a, b, c] = nodes.map((n) => n.manager) as [TwinNode['manager'], TwinNode['manager'], TwinNode['manager']];
    const [, cb, cc] = nodes.map((n) => n.channel);
    const { session } = await request(a, undefined, (s) => s.setAttribute('n', 1));
    const id = session.id;
    await waitFor(() => b.sessions.has(id) && c.sessions.has(id), 'the members to get the session');
    // c does not hear from b for now: it still believes a owns the session.
    net.hold(cb!, cc!);
    await request(b, id, (s) => s.setAttribute('n', 2));
    assert.equal(c.sessions.get(id)?.ownerId, a.localId, "c's view is stale");
    c.requestStarted(c.sessions.get(id)!);
    const taking = c.acquire(c.sessions.get(id)!);
    assert.ok(taking !== undefined, 'c must ask');
    // a answers "ask b"; b's answer (and its change) come once c hears from b again.
    await waitFor(() => (c.stats().received.grant ?? 0) === 1, "a's redirect");
    net.release(cb!, cc!);
    await taking;
    const s = c.sessions.get(id)!;
    assert.equal(s.ownerId, c.localId, 'c owns it now');
    assert.equal(s.getAttribute('n'), 2, "c serves b's change");
    assert.equal(c.stats().received.grant, 2, 'a redirect, then the grant');
    c.requestCompleted(s);
  });

  it('an owner that holds on past ownershipTimeoutMs is taken over and fenced: its late write is dropped everywhere', async () => {
    const net = new MemoryNetwork();
    nodes = await startNodes(net, ['a', 'b', 'c'], { ownershipTimeoutMs: 100 });
    const [a, b, c] = nodes.map((n) => n.manager) as [TwinNode['manager'], TwinNode['manager'], TwinNode['manager']];
    const { session } = await request(a, undefined, (s) => s.setAttribute('x', 'first'));
    const id = session.id;
    await waitFor(() => b.sessions.has(id) && c.sessions.has(id), 'the members to get the session');
    // A long request on a: it holds the session past b's wait.
    a.requestStarted(session);
    session.setAttribute('x', 'from a, too late');
    await request(b, id, (s) => s.setAttribute('x', 'from b'));
    assert.equal(stat(b, 'ownershipTimeouts'), 1);
    assert.equal(b.stats().sent.taken, 1, 'b tells every member it took the session');
    await waitFor(
      () => a.sessions.get(id)?.ownerId === b.localId && c.sessions.get(id)?.getAttribute('x') === 'from b',
      "the take-over notice and b's write",
    );
    // a's request ends: its change is dropped, not replicated; a's copy becomes b's.
    a.requestCompleted(session);
    await waitFor(() => a.sessions.get(id)?.getAttribute('x') === 'from b', "a to revert to the new owner's copy");
    assert.ok(stat(a, 'fencedWrites') >= 1, 'counted on the fenced owner');
    assert.equal(c.sessions.get(id)?.getAttribute('x'), 'from b');
    assert.equal(b.sessions.get(id)?.getAttribute('x'), 'from b');
    // b keeps serving it without asking anyone.
    await request(b, id, (s) => s.setAttribute('x', 'b again'));
    await waitFor(() => a.sessions.get(id)?.getAttribute('x') === 'b again', "a to apply b's next write");
  });

  it("a silent owner's write sent before it heard of the take-over is refused as stale on every member", async () => {
    const net = new MemoryNetwork();
    nodes = await startNodes(net, ['a', 'b', 'c'], { ownershipTimeoutMs: 100 });
    const [a, b, c] = nodes.map((n) => n.manager) as [TwinNode['manager'], TwinNode['manager'], TwinNode['manager']];
    const [ca, cb] = [nodes[0]!.channel, nodes[1]!.channel];
    const { session } = await request(a, undefined, (s) => s.setAttribute('x', 'first'));
    const id = session.id;
    await waitFor(() => b.sessions.has(id) && c.sessions.has(id), 'the members to get the session');
    // a hears nothing from b: neither b's ACQUIRE nor its take-over notice.
    net.hold(cb, ca);
    a.requestStarted(session);
    await request(b, id, (s) => s.setAttribute('x', 'from b'));
    assert.equal(stat(b, 'ownershipTimeouts'), 1);
    await waitFor(() => c.sessions.get(id)?.getAttribute('x') === 'from b', "c to apply the notice and b's write");
    // a, still believing it owns the session, ends its request and replicates: too late.
    session.setAttribute('x', 'from a');
    a.requestCompleted(session);
    await waitFor(() => stat(c, 'fencedWrites') === 1 && stat(b, 'fencedWrites') === 1, "a's write to be refused");
    assert.equal(c.sessions.get(id)?.getAttribute('x'), 'from b');
    assert.equal(b.sessions.get(id)?.getAttribute('x'), 'from b');
    // a hears from b at last: it gives the session up and converges on b's copy.
    net.release(cb, ca);
    await waitFor(() => a.sessions.get(id)?.getAttribute('x') === 'from b', 'a to revert to the new owner');
    assert.equal(a.sessions.get(id)?.ownerId, b.localId);
  });

  it('an owner removed while a node waits for it frees the session at once (not after ownershipTimeoutMs)', async () => {
    const net = new MemoryNetwork();
    nodes = await startNodes(net, ['a', 'b'], { ownershipTimeoutMs: 60_000 });
    const [a, b] = [nodes[0]!.manager, nodes[1]!.manager];
    const { session } = await request(a, undefined, (s) => s.setAttribute('n', 1));
    const id = session.id;
    await waitFor(() => b.sessions.has(id), 'b to get the session');
    a.requestStarted(session); // a holds it: no hand-over
    const copy = b.sessions.get(id)!;
    b.requestStarted(copy);
    const taking = b.acquire(copy)!;
    await waitFor(() => (a.stats().received.acquire ?? 0) === 1, 'a to be asked');
    const t0 = Date.now();
    await a.stop();
    nodes[0]!.channel.stop(); // a crashes: b removes it
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      taking,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('the wait outlived the member')), 10_000);
      }),
    ]);
    clearTimeout(timer);
    assert.ok(Date.now() - t0 < 10_000);
    assert.equal(copy.ownerId, b.localId);
    assert.equal(stat(b, 'ownershipForced'), 1);
    b.requestCompleted(copy);
    nodes = [nodes[1]!];
  });
});
