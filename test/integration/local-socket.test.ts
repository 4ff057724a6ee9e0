/**
 * Peers on one host over the local (abstract Unix) socket: used by default between nodes that share
 * a network namespace, TCP when a peer has it off, bounded and authenticated like the TCP receiver.
 */
import assert from 'node:assert/strict';
import { connect, createServer, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { type Channel, createChannel, type Member, silentLogger } from '../../src/index.js';
import { LOCAL_SOCKETS_SUPPORTED, localSocketPath } from '../../src/transport/local-socket.js';
import { isolatedMulticast, waitFor } from '../helpers/wait.js';

const KEY = 'a-cluster-key-for-the-local-socket-tests-0123456789';

function pair(localSocket: [boolean, boolean], extra: Record<string, unknown> = {}): Channel[] {
  const { port, domain } = isolatedMulticast();
  return (['a', 'b'] as const).map((name, i) =>
    createChannel(
      {
        name,
        domain,
        clusterKey: KEY,
        receiver: { port: 0, localSocket: localSocket[i], ...extra },
        membership: { type: 'multicast', port, frequencyMs: 100, dropTimeMs: 1000 },
      },
      { logger: silentLogger },
    ),
  );
}

const peerOf = (ch: Channel): Member => ch.members()[0]!;

/** Each channel sends the other a message with an acknowledgement, and receives the other's. */
async function exchange(a: Channel, b: Channel): Promise<void> {
  const got: unknown[] = [];
  const offs = [a, b].map((ch) => ch.onMessage((m) => void got.push(m.value)));
  try {
    await Promise.all([
      a.send(peerOf(a), { from: 'a' }, { options: 'use_ack,sync' }),
      b.send(peerOf(b), { from: 'b' }, { options: 'use_ack,sync' }),
    ]);
    await waitFor(() => got.length === 2, 'both messages received');
    assert.deepEqual(got.map((v) => (v as { from: string }).from).sort(), ['a', 'b']);
  } finally {
    for (const off of offs) off();
  }
}

/** A raw connection to a local socket; resolves once connected (rejects when nobody listens). */
function rawLocal(path: string, sockets: Set<Socket>): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ path });
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}
const closed = (s: Socket) => new Promise<void>((r) => (s.destroyed ? r() : s.once('close', () => r())));

describe('peers on one host over the local socket', { skip: !LOCAL_SOCKETS_SUPPORTED && 'Linux only' }, () => {
  describe('both with the default (on)', () => {
    let nodes: Channel[] = [];
    const sockets = new Set<Socket>();
    before(async () => {
      nodes = pair([true, true]);
      await Promise.all(nodes.map((n) => n.start()));
      await waitFor(() => nodes.every((n) => n.members().length === 1), 'membership');
    });
    after(async () => {
      for (const s of sockets) s.destroy();
      await Promise.all(nodes.map((n) => n.stop()));
    });

    test('they connect over it, not TCP, and messages flow both ways', async () => {
      const [a, b] = nodes as [Channel, Channel];
      await exchange(a, b);
      for (const ch of [a, b]) {
        const t = ch.stats().transport;
        assert.ok(t.localConnects >= 1, `localConnects ${t.localConnects}`);
        assert.equal(t.localConnects, t.connects, 'every outbound connection is local');
        assert.equal(t.localMisses, 0);
      }
    });

    test('its name carries the member id: no other process can take it while the node runs', async () => {
      const [a] = nodes as [Channel];
      const squatter = createServer();
      const err = await new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
        squatter.once('error', resolve);
        squatter.listen({ path: localSocketPath(a.local.id) }, () => resolve(undefined));
      });
      squatter.close();
      assert.equal(err?.code, 'EADDRINUSE');
    });

    test('an unauthenticated client on it is refused and counted; the peers go on', async () => {
      const [a, b] = nodes as [Channel, Channel];
      const before = a.stats().transport;
      const s = await rawLocal(localSocketPath(a.local.id), sockets);
      s.write(Buffer.alloc(64, 0xab)); // not a hello frame
      await closed(s);
      const after = a.stats().transport;
      assert.equal(after.protocolErrors, before.protocolErrors + 1);
      await exchange(a, b);
    });

    test('connections on it share one per-address budget (maxConnectionsPerAddress)', async () => {
      const [a] = nodes as [Channel];
      const refused0 = a.stats().transport.connectionsRefusedPerAddress;
      const cap = 64; // the default; the peer's own connection holds one of them
      const conns = await Promise.all(
        Array.from({ length: cap + 3 }, () => rawLocal(localSocketPath(a.local.id), sockets)),
      );
      await waitFor(
        () => a.stats().transport.connectionsRefusedPerAddress - refused0 >= 4,
        'the connections past the cap refused',
      );
      for (const c of conns) c.destroy();
      await Promise.all(conns.map(closed));
    });
  });

  describe('a peer with it off', () => {
    let nodes: Channel[] = [];
    before(async () => {
      nodes = pair([true, false]);
      await Promise.all(nodes.map((n) => n.start()));
      await waitFor(() => nodes.every((n) => n.members().length === 1), 'membership');
    });
    after(async () => {
      await Promise.all(nodes.map((n) => n.stop()));
    });

    test('is reached over TCP (the local miss counted), and messages flow both ways', async () => {
      const [a, b] = nodes as [Channel, Channel];
      await exchange(a, b);
      const ta = a.stats().transport;
      assert.ok(ta.localMisses >= 1, `a: localMisses ${ta.localMisses}`);
      assert.equal(ta.localConnects, 0, 'a: no local connection');
      assert.ok(ta.connects >= 1);
      const tb = b.stats().transport;
      assert.equal(tb.localConnects, 0, 'b (off) never tries it');
      assert.equal(tb.localMisses, 0);
      await assert.rejects(
        rawLocal(localSocketPath(b.local.id), new Set()),
        (e: NodeJS.ErrnoException) => e.code === 'ECONNREFUSED',
      );
    });
  });

  test('maxConnections is one budget for TCP and the local socket together', async () => {
    const { port, domain } = isolatedMulticast();
    const node = createChannel(
      {
        name: 'alone',
        domain,
        clusterKey: KEY,
        receiver: { port: 0, maxConnections: 4 },
        membership: { type: 'multicast', port, frequencyMs: 100, dropTimeMs: 1000 },
      },
      { logger: silentLogger },
    );
    await node.start();
    const sockets = new Set<Socket>();
    try {
      const path = localSocketPath(node.local.id);
      const tcp = () =>
        new Promise<Socket>((resolve, reject) => {
          const s = connect({ host: '127.0.0.1', port: node.local.port });
          sockets.add(s);
          s.once('connect', () => resolve(s));
          s.once('error', reject);
        });
      const accepted = [await tcp(), await tcp(), await rawLocal(path, sockets), await rawLocal(path, sockets)];
      await waitFor(() => node.stats().transport.connectionsAccepted === 4, 'the four connections accepted');
      const refused0 = node.stats().transport.connectionsRefused;
      const fifth = await rawLocal(path, sockets);
      await closed(fifth);
      assert.equal(node.stats().transport.connectionsRefused, refused0 + 1, 'the fifth refused and counted');
      assert.ok(
        accepted.every((s) => !s.destroyed),
        'the four within the budget stay open',
      );
    } finally {
      for (const s of sockets) s.destroy();
      await node.stop();
    }
  });

  test('a stopped node no longer listens on it', async () => {
    const nodes = pair([true, true]);
    const sockets = new Set<Socket>();
    try {
      await Promise.all(nodes.map((n) => n.start()));
      const path = localSocketPath(nodes[0]!.local.id);
      (await rawLocal(path, sockets)).destroy();
      await Promise.all(nodes.map((n) => n.stop()));
      await assert.rejects(rawLocal(path, sockets), (e: NodeJS.ErrnoException) => e.code === 'ECONNREFUSED');
    } finally {
      for (const s of sockets) s.destroy();
      await Promise.all(nodes.map((n) => n.stop())); // again after a failure: stop() of a stopped channel is a no-op
    }
  });
});
