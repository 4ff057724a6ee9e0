/**
 * Cluster-key authentication over real loopback connections: keyed nodes talk, nodes with a wrong
 * key or none are kept out of membership and transport, tampered / replayed / unsealed records
 * close the connection, and the config refuses an exposed node without a key.
 */
import * as assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  type Channel,
  ConfigError,
  createChannel,
  type Member,
  resolveChannelConfig,
  SendError,
  silentLogger,
} from '../../src/index.js';
import { ClusterKeys, RecordOpener, RecordSealer } from '../../src/wire/auth.js';
import { FrameReader, FrameType, HEADER_BYTES, writeHeader } from '../../src/wire/frame.js';
import { decodeHello, encodeHello } from '../../src/wire/hello.js';
import { decodeMember } from '../../src/wire/member.js';
import {
  dataFrame,
  type Frame,
  joined,
  memberOf,
  type RawConn,
  Resources,
  rawConnect,
  rawDescriptor,
} from '../helpers/raw-peer.js';
import { waitFor } from '../helpers/wait.js';

// Random-looking keys are used as they are (a passphrase-like one would be stretched with scrypt
// by the channel, and the raw hellos below, made with ClusterKeys directly, would not match).
const KEY = 'q8Vw3nZ0Lr5TgY2mKc7XbH1sJd9FpA4eUo6iNx0lWzQ=';
const WRONG_KEY = 'R2dT7kPq9Xv4Lm1Nc8Bz5Hs3Jw6Ye0Ua2Gi7Ko9Ft1E=';
const WAIT = { timeoutMs: 15_000 };

/** Waits for the `index`th frame from the server. */
async function frameAt(conn: RawConn, index: number, what: string): Promise<Frame> {
  await waitFor(() => conn.frames.length > index, what, WAIT);
  return conn.frames[index]!;
}

/** Performs a valid client hello with `keys`; returns the record sealer (c2s) and opener (s2c). */
async function keyedHello(res: Resources, port: number, keys: ClusterKeys, encrypt: boolean) {
  const conn = await rawConnect(res, port);
  const { frame, nonce } = encodeHello(FrameType.HELLO, rawDescriptor(res.group.domain), keys, encrypt);
  conn.socket.write(frame);
  const ack = await frameAt(conn, 0, 'HELLO_ACK');
  assert.equal(ack.type, FrameType.HELLO_ACK);
  const hello = decodeHello(FrameType.HELLO_ACK, ack.flags, ack.body, keys, 30_000, nonce);
  const { c2s, s2c } = keys.recordKeys(nonce, hello.nonce);
  return { conn, sealer: new RecordSealer(c2s, encrypt), opener: new RecordOpener(s2c, encrypt), server: hello.member };
}

/** One SEALED record holding `plain`, as FrameWriter builds it. */
function sealRecord(sealer: RecordSealer, plain: Buffer): Buffer {
  const header = Buffer.allocUnsafe(HEADER_BYTES);
  writeHeader(header, 0, FrameType.SEALED, 0, plain.length + 16);
  return Buffer.concat([header, ...sealer.seal([plain], header)]);
}

/** Opens a SEALED record received from the server and returns its inner frames. */
function openRecord(opener: RecordOpener, record: Frame): Frame[] {
  assert.equal(record.type, FrameType.SEALED);
  const aad = Buffer.allocUnsafe(HEADER_BYTES);
  writeHeader(aad, 0, FrameType.SEALED, record.flags, record.body.length);
  const plain = opener.open(record.body, aad);
  assert.ok(plain, 'server record authenticates');
  const inner: Frame[] = [];
  new FrameReader(1 << 24, (type, flags, body) => inner.push({ type, flags, body: Buffer.from(body) })).push(plain);
  return inner;
}

function pingFrame(seq: number): Buffer {
  const f = Buffer.allocUnsafe(HEADER_BYTES + 4);
  writeHeader(f, 0, FrameType.PING, 0, 4);
  f.writeUInt32BE(seq, HEADER_BYTES);
  return f;
}

for (const encrypt of [true, false]) {
  describe(`same cluster key (encrypt: ${encrypt})`, () => {
    const res = new Resources();
    after(() => res.close());

    it('two nodes form membership and exchange acknowledged messages both ways', async () => {
      const a = await res.node('a', { clusterKey: KEY, encrypt });
      const b = await res.node('b', { clusterKey: KEY, encrypt });
      const atA: unknown[] = [];
      const atB: unknown[] = [];
      a.onMessage((m) => {
        atA.push(m.value);
      });
      b.onMessage((m) => {
        atB.push(m.value);
      });
      await joined(a, b);
      await a.send(memberOf(a, b.local.id), { hello: 'from a', n: 1 }, { options: 'use_ack,sync' });
      assert.deepEqual(atB, [{ hello: 'from a', n: 1 }]);
      await b.send(memberOf(b, a.local.id), ['from b', 2n], { options: 'use_ack,sync' });
      assert.deepEqual(atA, [['from b', 2n]]);
      await a.send(undefined, new Uint8Array([1, 2, 3]), { options: 'use_ack' });
      await waitFor(() => atB.length === 2, 'byte message at b', WAIT);
      const bytes: unknown = atB[1];
      assert.ok(bytes instanceof Uint8Array);
      assert.deepEqual([...bytes], [1, 2, 3]);
      assert.equal(a.stats().transport.authFailures, 0);
      assert.equal(b.stats().transport.authFailures, 0);
      assert.equal(a.stats().membership.heartbeatsRefused, 0);
    });
  });
}

describe('nodes without the cluster key are kept out', () => {
  const res = new Resources();
  let keyed: Channel;
  let peer: Channel;
  const received: unknown[] = [];
  const added: string[] = [];

  before(async () => {
    keyed = await res.node('keyed', { clusterKey: KEY });
    keyed.on('memberAdded', (m) => added.push(m.id));
    keyed.onMessage((m) => {
      received.push(m.value);
    });
    peer = await res.node('keyed-peer', { clusterKey: KEY });
    await joined(keyed, peer);
  });
  after(() => res.close());

  for (const [label, extra] of [
    ['a wrong key', { clusterKey: WRONG_KEY }],
    ['no key', { insecure: true }],
  ] as const) {
    it(`a node with ${label} never becomes a member and cannot connect`, async () => {
      const refusedBefore = keyed.stats().membership.heartbeatsRefused;
      const outsider = await res.node(`outsider-${label.replace(/ /g, '-')}`, extra);
      // Several heartbeat periods of the outsider, all refused.
      await waitFor(
        () => keyed.stats().membership.heartbeatsRefused >= refusedBefore + 5,
        'five refused heartbeats',
        WAIT,
      );
      assert.ok(!keyed.members().some((m) => m.id === outsider.local.id), 'outsider is no member of the keyed node');
      assert.ok(!peer.members().some((m) => m.id === outsider.local.id), 'outsider is no member of the keyed peer');
      assert.ok(!added.includes(outsider.local.id), 'no memberAdded for the outsider');
      assert.deepEqual(outsider.members(), [], 'the outsider sees no keyed node either');
      assert.ok(
        keyed.members().some((m) => m.id === peer.local.id),
        'the keyed pair stays joined',
      );

      // A direct connection, addressing the keyed node by a fabricated member.
      const authBefore = keyed.stats().transport.authFailures;
      const target: Member = { ...keyed.local };
      await assert.rejects(
        outsider.send(target, { steal: 'sessions' }, { options: 'use_ack,sync', timeoutMs: 3000 }),
        (err: unknown) => err instanceof SendError,
      );
      assert.ok(keyed.stats().transport.authFailures > authBefore, 'auth failure counted');
      assert.deepEqual(received, [], 'nothing reached the keyed node');
      assert.equal(keyed.stats().messages.received, 0);
      await outsider.stop();
    });
  }

  it('a raw hello made with another key is refused before any answer', async () => {
    for (const keys of [new ClusterKeys(WRONG_KEY), undefined]) {
      const before = keyed.stats().transport.authFailures;
      const conn = await rawConnect(res, keyed.local.port);
      conn.socket.write(encodeHello(FrameType.HELLO, rawDescriptor(res.group.domain), keys, true).frame);
      await waitFor(() => conn.closed(), 'the keyed node to close the connection', WAIT);
      assert.equal(conn.frames.length, 0, 'no HELLO_ACK for a bad hello');
      assert.equal(keyed.stats().transport.authFailures, before + 1);
    }
  });

  it('a raw hello with the right key but another encrypt setting is refused', async () => {
    const before = keyed.stats().transport.authFailures;
    const conn = await rawConnect(res, keyed.local.port);
    conn.socket.write(encodeHello(FrameType.HELLO, rawDescriptor(res.group.domain), new ClusterKeys(KEY), false).frame);
    await waitFor(() => conn.closed(), 'the keyed node to close the connection', WAIT);
    assert.equal(conn.frames.length, 0);
    assert.equal(keyed.stats().transport.authFailures, before + 1);
  });

  it('the keyed pair still exchanges messages', async () => {
    await peer.send(memberOf(peer, keyed.local.id), 'still here', { options: 'use_ack,sync' });
    assert.deepEqual(received, ['still here']);
  });
});

describe('tampering on an authenticated connection', () => {
  const res = new Resources();
  const keys = new ClusterKeys(KEY);
  let keyed: Channel;
  let peer: Channel;
  const received: unknown[] = [];

  before(async () => {
    keyed = await res.node('keyed', { clusterKey: KEY });
    keyed.onMessage((m) => {
      received.push(m.value);
    });
    peer = await res.node('keyed-peer', { clusterKey: KEY });
    await joined(keyed, peer);
  });
  after(() => res.close());

  it('a valid raw hello gets an authenticated answer and a sealed PING is answered', async () => {
    const { conn, sealer, opener, server } = await keyedHello(res, keyed.local.port, keys, true);
    assert.equal(server.id, keyed.local.id);
    conn.socket.write(sealRecord(sealer, pingFrame(77)));
    const record = await frameAt(conn, 1, 'sealed ACK');
    const ack = openRecord(opener, record)[0]!;
    assert.equal(ack.type, FrameType.ACK);
    assert.equal(ack.body.readUInt32BE(0), 77);
    assert.equal(decodeMember(ack.body.subarray(4)).id, keyed.local.id);
    assert.equal(conn.closed(), false);
  });

  it('(a) an unsealed DATA frame after the hello closes the connection', async () => {
    const { conn } = await keyedHello(res, keyed.local.port, keys, true);
    const before = keyed.stats().transport.authFailures;
    conn.socket.write(dataFrame(1, 0x06, Buffer.from([0x01, 0x06, 0x01, 0x78])));
    await waitFor(() => conn.closed(), 'close after an unsealed frame', WAIT);
    assert.equal(keyed.stats().transport.authFailures, before + 1);
    assert.equal(conn.frames.length, 1, 'only the HELLO_ACK, no ACK');
  });

  it('(b) a sealed record with one flipped bit closes the connection', async () => {
    for (const where of ['header', 'data', 'tag'] as const) {
      const { conn, sealer } = await keyedHello(res, keyed.local.port, keys, true);
      const before = keyed.stats().transport.authFailures;
      const record = sealRecord(sealer, dataFrame(1, 0x06, Buffer.from('codec bytes here')));
      // Flags are part of the authenticated header: flipping one must fail too.
      const at = where === 'header' ? 5 : where === 'data' ? HEADER_BYTES + 6 : record.length - 3;
      record[at]! ^= 0x10;
      conn.socket.write(record);
      await waitFor(() => conn.closed(), `close after a flipped ${where} bit`, WAIT);
      assert.equal(keyed.stats().transport.authFailures, before + 1, `flipped ${where} bit counted`);
      assert.equal(conn.frames.length, 1, 'only the HELLO_ACK');
    }
  });

  it('(c) a replayed record closes the connection', async () => {
    const { conn, sealer, opener } = await keyedHello(res, keyed.local.port, keys, true);
    const record = sealRecord(sealer, pingFrame(5));
    conn.socket.write(record);
    const first = await frameAt(conn, 1, 'answer to the original record');
    assert.equal(openRecord(opener, first)[0]?.type, FrameType.ACK);
    const before = keyed.stats().transport.authFailures;
    conn.socket.write(record);
    await waitFor(() => conn.closed(), 'close after a replayed record', WAIT);
    assert.equal(keyed.stats().transport.authFailures, before + 1);
    assert.equal(conn.frames.length, 2, 'the replay got no answer');
  });

  it('(c) a record replayed on another connection is refused', async () => {
    const one = await keyedHello(res, keyed.local.port, keys, true);
    const record = sealRecord(one.sealer, dataFrame(1, 0x06, Buffer.from([0x01, 0x01])));
    const two = await keyedHello(res, keyed.local.port, keys, true);
    const before = keyed.stats().transport.authFailures;
    two.conn.socket.write(record);
    await waitFor(() => two.conn.closed(), 'close after a foreign record', WAIT);
    assert.equal(keyed.stats().transport.authFailures, before + 1);
    one.conn.socket.destroy();
  });

  it('no tampered message reached the handler, and the node still serves its real peer', async () => {
    assert.deepEqual(received, []);
    assert.equal(keyed.stats().messages.received, 0);
    assert.ok(keyed.running);
    await peer.send(memberOf(peer, keyed.local.id), { after: 'tampering' }, { options: 'use_ack,sync' });
    assert.deepEqual(received, [{ after: 'tampering' }]);
    assert.ok(keyed.members().some((m) => m.id === peer.local.id));
  });
});

describe('secure by default (config only; nothing binds 0.0.0.0)', () => {
  it('a receiver on 0.0.0.0 without a key is refused, naming clusterKey', () => {
    assert.throws(
      () => resolveChannelConfig({ receiver: { address: '0.0.0.0' } }),
      (err: unknown) => err instanceof ConfigError && err.key === 'clusterKey' && /insecure/.test(err.expected),
    );
    assert.throws(() => createChannel({ receiver: { address: '0.0.0.0' } }, { logger: silentLogger }), ConfigError);
  });

  it('insecure: true resolves', () => {
    const c = resolveChannelConfig({ receiver: { address: '0.0.0.0' }, insecure: true });
    assert.equal(c.receiver.address, '0.0.0.0');
    assert.equal(c.clusterKey, undefined);
  });

  it('a clusterKey of 32+ characters resolves; a shorter one is refused', () => {
    const key32 = 'Xk3vQ9pL2mN8rT5wY7zA1bC4dE6fG0hJ';
    const c = resolveChannelConfig({ receiver: { address: '0.0.0.0' }, clusterKey: key32 });
    assert.equal(c.clusterKey, key32);
    assert.throws(
      () => resolveChannelConfig({ receiver: { address: '0.0.0.0' }, clusterKey: key32.slice(1) }),
      (err: unknown) => err instanceof ConfigError && err.key === 'clusterKey' && !err.message.includes(key32.slice(1)),
    );
  });

  it('loopback needs no key', () => {
    assert.equal(resolveChannelConfig({}).clusterKey, undefined);
    assert.equal(resolveChannelConfig({ receiver: { address: '127.0.0.5' } }).receiver.address, '127.0.0.5');
  });
});
