/**
 * Connection slots over real sockets. A HELLO captured from the wire used to be accepted again
 * within replayWindowMs, and the connection then held one of maxConnections forever (no idle
 * timeout): four replays locked a legitimate member out. Now: the first authenticated record must
 * follow the hello within handshakeTimeoutMs, a seen nonce is refused, silent connections are
 * closed after idleTimeoutMs (idle peers PING), and connections per address are capped.
 */
import * as assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Channel } from '../../src/index.js';
import { ClusterKeys } from '../../src/wire/auth.js';
import { encodeFrame, FrameType, HEADER_BYTES } from '../../src/wire/frame.js';
import { encodeHello } from '../../src/wire/hello.js';
import { joined, type RawConn, Resources, rawConnect, rawDescriptor } from '../helpers/raw-peer.js';
import { waitFor } from '../helpers/wait.js';

const KEY = 'c0a1f3e59b7d24686e1fd0c3b5a79e21c0a1f3e59b7d24686e1fd0c3b5a79e2f'; // random-looking: used as it is (a passphrase would be stretched)
const HANDSHAKE_MS = 300;
const WAIT = { timeoutMs: 15_000 };
const MiB = 1024 * 1024;

function ping(seq: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(seq, 0);
  return encodeFrame(FrameType.PING, 0, b);
}

function memberIn(ch: Channel, target: Channel) {
  const m = ch.members().find((x) => x.id === target.local.id);
  assert.ok(m, `${target.config.name} visible to ${ch.config.name}`);
  return m;
}

describe('replayed hellos', () => {
  const res = new Resources();
  let node: Channel;
  before(async () => {
    node = await res.node('keyed', {
      clusterKey: KEY,
      receiver: { port: 0, handshakeTimeoutMs: HANDSHAKE_MS, maxConnections: 4 },
    });
  });
  after(() => res.close());
  const t = () => node.stats().transport;

  it('a replayed hello is refused, and the first one is closed for sending no record', async () => {
    const captured = encodeHello(FrameType.HELLO, rawDescriptor(res.group.domain), new ClusterKeys(KEY), true).frame;
    const first = await rawConnect(res, node.local.port);
    first.socket.write(captured);
    await waitFor(() => first.frames.length > 0, 'HELLO_ACK', WAIT);
    const again = await rawConnect(res, node.local.port);
    again.socket.write(captured);
    await waitFor(() => again.closed(), 'the replay refused', WAIT);
    assert.equal(again.frames.length, 0, 'no HELLO_ACK for a replay');
    assert.equal(t().helloReplays, 1);
    const timeouts = t().handshakeTimeouts;
    await waitFor(() => first.closed(), 'the connection without a record closed (handshakeTimeoutMs)', WAIT);
    assert.equal(t().handshakeTimeouts, timeouts + 1);
  });

  it('replays cannot lock a legitimate member out of maxConnections', async () => {
    const captured = encodeHello(FrameType.HELLO, rawDescriptor(res.group.domain), new ClusterKeys(KEY), true).frame;
    const conns: RawConn[] = [];
    for (let i = 0; i < 4; i++) {
      const c = await rawConnect(res, node.local.port);
      c.socket.write(captured);
      conns.push(c);
    }
    await waitFor(() => conns.every((c) => c.closed()), 'every replayed connection closed', WAIT);
    const peer = await res.node('keyed-peer', { clusterKey: KEY });
    await joined(node, peer);
    const got: unknown[] = [];
    node.onMessage((m) => {
      got.push(m.value);
    });
    await peer.send(memberIn(peer, node), { hi: 1 }, { options: 'use_ack,sync', timeoutMs: 15_000 });
    assert.deepEqual(got, [{ hi: 1 }]);
  });
});

describe('idle connections and connections per address', () => {
  const res = new Resources();
  let node: Channel;
  before(async () => {
    node = await res.node('target', {
      insecure: true,
      receiver: { port: 0, handshakeTimeoutMs: HANDSHAKE_MS, idleTimeoutMs: 1000, maxConnectionsPerAddress: 6 },
    });
    node.onMessage(() => {});
  });
  after(() => res.close());
  const t = () => node.stats().transport;

  it('a connection that goes silent after its hello is closed after idleTimeoutMs', async () => {
    const idle = t().idleTimeouts;
    const conn = await rawConnect(res, node.local.port);
    conn.socket.write(encodeHello(FrameType.HELLO, rawDescriptor(res.group.domain), undefined, false).frame);
    conn.socket.write(ping(1));
    await waitFor(() => conn.frames.length >= 2, 'HELLO_ACK and the PING answer', WAIT);
    const since = Date.now();
    await waitFor(() => conn.closed(), 'the silent connection closed', WAIT);
    assert.ok(Date.now() - since >= 900, 'not before idleTimeoutMs');
    assert.equal(t().idleTimeouts, idle + 1);
  });

  it('a connection trickling one frame (slowloris) is closed after idleTimeoutMs', async () => {
    const slow = t().slowFrames;
    const conn = await rawConnect(res, node.local.port);
    conn.socket.write(encodeHello(FrameType.HELLO, rawDescriptor(res.group.domain), undefined, false).frame);
    conn.socket.write(ping(1));
    await waitFor(() => conn.frames.length >= 2, 'HELLO_ACK and the PING answer', WAIT);
    const h = Buffer.alloc(HEADER_BYTES + 1000);
    encodeFrame(FrameType.DATA, 0, Buffer.alloc(0)).copy(h, 0);
    h.writeUInt32BE(MiB, 6);
    conn.socket.write(h);
    const since = Date.now();
    const drip = setInterval(() => conn.socket.write(Buffer.from([0x61])), 100);
    try {
      await waitFor(() => conn.closed(), 'the trickling connection closed', WAIT);
    } finally {
      clearInterval(drip);
    }
    assert.ok(Date.now() - since >= 900, 'not before idleTimeoutMs');
    assert.equal(t().slowFrames, slow + 1);
  });

  it('idle members keep their connections (they PING) and still talk', async () => {
    const peer = await res.node('peer', { insecure: true, receiver: { port: 0, idleTimeoutMs: 1000 } });
    await joined(node, peer);
    const got: unknown[] = [];
    node.onMessage((m) => {
      if (m.from.id === peer.local.id) got.push(m.value);
    });
    await peer.send(memberIn(peer, node), 'first', { options: 'use_ack' });
    const idle = t().idleTimeouts;
    const disconnects = peer.stats().transport.disconnects;
    // Three idle timeouts without a message.
    const until = Date.now() + 3000;
    await waitFor(() => Date.now() >= until, 'three idle periods', { timeoutMs: 15_000, intervalMs: 100 });
    assert.equal(t().idleTimeouts, idle, 'no connection of the peer closed as idle');
    assert.equal(peer.stats().transport.disconnects, disconnects);
    await peer.send(memberIn(peer, node), 'second', { options: 'use_ack,sync' });
    assert.deepEqual(got, ['first', 'second']);
  });

  it('connections beyond maxConnectionsPerAddress are refused and counted', async () => {
    const refused = t().connectionsRefusedPerAddress;
    const hello = () => encodeHello(FrameType.HELLO, rawDescriptor(res.group.domain), undefined, false).frame;
    const open = await Promise.all(Array.from({ length: 10 }, () => rawConnect(res, node.local.port)));
    for (const c of open) c.socket.write(hello());
    // An accepted connection answers its hello; a refused one is closed without a frame. The
    // server's count and the client's close are seen in different turns: wait for both.
    await waitFor(() => open.every((c) => c.frames.length > 0 || c.closed()), 'every hello answered or refused', WAIT);
    const answered = open.filter((c) => c.frames.length > 0).length;
    // The peer of the previous test holds connections from 127.0.0.1 too: at most 6 in all.
    assert.ok(answered <= 6, `${answered} of 10 accepted beside the peer's connections (cap 6)`);
    const counted = () => t().connectionsRefusedPerAddress - refused;
    await waitFor(() => counted() >= 4, 'the refusals counted', WAIT);
    // Every counted refusal closed a connection that got no answer (a stall past handshakeTimeoutMs
    // may close an accepted one too, so not necessarily equal).
    assert.ok(counted() <= 10 - answered, `${counted()} refusals counted for ${10 - answered} unanswered`);
    for (const c of open) c.socket.destroy();
    await waitFor(
      async () => {
        const c = await rawConnect(res, node.local.port);
        c.socket.write(hello());
        await waitFor(() => c.frames.length > 0 || c.closed(), 'an answer or a close', WAIT);
        const ok = c.frames.length > 0;
        c.socket.destroy();
        return ok;
      },
      'a new connection accepted once the others closed',
      WAIT,
    );
  });
});

describe('claimed frame sizes', () => {
  const res = new Resources();
  let node: Channel;
  before(async () => {
    node = await res.node('target', { insecure: true, receiver: { port: 0, maxConnectionsPerAddress: 100 } });
  });
  after(() => res.close());

  it('a header claiming maxFrameBytes costs what was sent, not what was claimed (slowloris)', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    gc();
    const baseline = process.memoryUsage().arrayBuffers;
    const conns: RawConn[] = [];
    for (let i = 0; i < 32; i++) {
      const c = await rawConnect(res, node.local.port);
      c.socket.write(encodeHello(FrameType.HELLO, rawDescriptor(res.group.domain), undefined, false).frame);
      c.socket.write(ping(1));
      const h = Buffer.alloc(HEADER_BYTES + 1);
      encodeFrame(FrameType.DATA, 0, Buffer.alloc(0)).copy(h, 0);
      h.writeUInt32BE(node.config.maxFrameBytes, 6); // claims 4 MiB, sends 1 byte
      c.socket.write(h);
      conns.push(c);
    }
    await waitFor(() => conns.every((c) => c.frames.length >= 2), 'every connection past its first frame', WAIT);
    await waitFor(() => node.stats().transport.bytesIn >= 32 * (HEADER_BYTES + 1), 'the claims read', WAIT);
    gc();
    const growth = process.memoryUsage().arrayBuffers - baseline;
    // 32 claims of 4 MiB each were 128 MiB; now at most 256 KiB each.
    assert.ok(growth < 16 * MiB, `arrayBuffers grew by ${(growth / MiB).toFixed(1)} MiB for 32 claims of 4 MiB`);
    assert.ok(conns.every((c) => !c.closed()));
    for (const c of conns) c.socket.destroy();
  });
});
