/**
 * Nodes started with no key configured (the loopback default) against a local process that does
 * not have the key: before, such a process could say HELLO with an unauthenticated descriptor and
 * then read every session (STATE_REQUEST), rewrite an attribute (DELTA at version 1e15), plant a
 * session under an id of its choosing (CREATED: session fixation), invalidate sessions and fill
 * the tombstones (EXPIRED), or join by multicast heartbeat. Now the nodes use the per-user key file
 * (here under a temporary XDG_CONFIG_HOME), and each attempt is refused at the hello (or heartbeat)
 * and counted. Real sockets throughout; the attacker writes its hello and its message in one write.
 */
import * as assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SendFlag } from '../../src/config/send-options.js';
import { type ClusterNode, decode, encode } from '../../src/index.js';
import { FrameReader, FrameType } from '../../src/wire/frame.js';
import { encodeHeartbeat, HeartbeatKind } from '../../src/wire/heartbeat.js';
import { encodeHello } from '../../src/wire/hello.js';
import { encodeMember, PROTOCOL_VERSION } from '../../src/wire/member.js';
import { CookieJar, countOf, get, managerOf, portOf, startNodes, type TestCluster } from '../helpers/http.js';
import { dataFrame, Resources, rawConnect } from '../helpers/raw-peer.js';
import { waitFor } from '../helpers/wait.js';

const CTX = '/app';
const WAIT = { timeoutMs: 15_000 };

/** The attacker's listener: answers any hello without a key and records every message it is sent. */
async function attackerListener(): Promise<{ server: Server; port: number; messages: unknown[] }> {
  const messages: unknown[] = [];
  let port = 0;
  const server = createServer((socket) => {
    socket.on('error', () => {});
    const reader = new FrameReader(64 * 1024 * 1024, (type, _flags, body) => {
      if (type === FrameType.HELLO) {
        const nonce = Buffer.from(body.subarray(0, 16));
        socket.write(encodeHello(FrameType.HELLO_ACK, descriptor(port), undefined, false, nonce).frame);
      } else if (type === FrameType.DATA) {
        try {
          messages.push(decode(Buffer.from(body.subarray(4))));
        } catch {
          // not a value message
        }
      }
    });
    socket.on('data', (chunk: Buffer) => {
      try {
        reader.push(chunk);
      } catch {
        socket.destroy();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as { port: number }).port;
  return { server, port, messages };
}

let domain = '';
const attackerId = randomBytes(16).toString('hex');

/** The attacker's member descriptor: it claims to serve /app and to listen on `port`. */
function descriptor(port: number): Buffer {
  return encodeMember({
    id: attackerId,
    protocolVersion: PROTOCOL_VERSION,
    host: '127.0.0.1',
    port,
    name: 'intruder',
    domain,
    startTime: Date.now(),
    payload: encode({ contexts: [CTX] }),
  });
}

/** Every session id found anywhere in what the attacker received. */
function idsIn(value: unknown, out: string[] = []): string[] {
  if (typeof value === 'string' && /^[0-9A-F]{32}$/.test(value)) out.push(value);
  else if (Array.isArray(value)) for (const v of value) idsIn(v, out);
  return out;
}

describe('no key configured: a local process without the key is refused and counted', () => {
  const res = new Resources();
  let dir = '';
  let cluster: TestCluster;
  let a: ClusterNode;
  let b: ClusterNode;
  let listener: Awaited<ReturnType<typeof attackerListener>>;
  const victims: CookieJar[] = [];
  /** Every member either node ever added. */
  const added = new Set<string>();

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'clowder-attack-'));
    // The per-user key file goes here, not into the machine's real ~/.clowder.
    process.env.XDG_CONFIG_HOME = dir;
    cluster = await startNodes(2, { sessions: { sendOptions: 'sync' } });
    a = cluster.node('a');
    b = cluster.node('b');
    domain = a.channel.config.domain;
    for (const n of [a, b]) n.channel.on('memberAdded', (m) => added.add(m.id));
    assert.equal(a.channel.config.clusterKey, undefined, 'no key configured');
    for (let i = 0; i < 3; i++) {
      const jar = new CookieJar();
      assert.equal(countOf((await jar.get(portOf(a), '/app/counter')).body), 1);
      victims.push(jar);
    }
    listener = await attackerListener();
  });

  after(async () => {
    await res.close();
    listener?.server.close();
    await cluster?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  /** Connects to node `n`'s receiver and writes an unauthenticated hello followed by `message`. */
  async function intrude(n: ClusterNode, ...messages: unknown[]) {
    const conn = await rawConnect(res, n.channel.local.port);
    const frames = messages.map((m, i) => dataFrame(i + 1, SendFlag.ASYNCHRONOUS, encode(m)));
    conn.socket.write(
      Buffer.concat([encodeHello(FrameType.HELLO, descriptor(listener.port), undefined, false).frame, ...frames]),
    );
    return conn;
  }

  const authFailures = (n: ClusterNode) => n.channel.stats().transport.authFailures;
  const readCount = async (n: ClusterNode, jar: CookieJar) =>
    countOf((await get(portOf(n), '/app/read', jar.cookie)).body);

  it('STATE_REQUEST: no session reaches the attacker', async () => {
    const before = authFailures(a);
    const conn = await intrude(a, [6, CTX, 1]);
    await waitFor(() => conn.closed() || listener.messages.length > 0, 'the node to close or to answer', WAIT);
    assert.deepEqual(idsIn(listener.messages), [], 'session ids sent to the attacker');
    await waitFor(() => conn.closed(), 'the node to close the connection', WAIT);
    assert.equal(conn.frames.length, 0, 'no HELLO_ACK');
    assert.equal(authFailures(a), before + 1, 'the refused hello is counted');
  });

  it('DELTA at version 1e15: the attribute is not rewritten', async () => {
    const victim = victims[0]!;
    const before = authFailures(b);
    const conn = await intrude(b, [2, CTX, victim.id, 1, 1e15, ['count'], [encode(1000)], [], null]);
    await waitFor(async () => conn.closed() || (await readCount(b, victim)) !== 1, 'close or rewrite', WAIT);
    assert.equal(await readCount(b, victim), 1, 'count on b');
    assert.equal(await readCount(a, victim), 1, 'count on a');
    assert.ok(conn.closed());
    assert.equal(authFailures(b), before + 1);
  });

  it('CREATED: a session id the attacker chose is never served (no fixation)', async () => {
    const planted = randomBytes(16).toString('hex').toUpperCase(); // a well-formed session id
    const before = authFailures(a);
    const conn = await intrude(a, [1, CTX, planted, Date.now(), 1800, 1, ['count'], [encode(41)]]);
    await waitFor(() => conn.closed() || managerOf(a).sessions.has(planted), 'close or plant', WAIT);
    assert.equal(managerOf(a).sessions.has(planted), false, 'planted session on a');
    const r = await get(portOf(a), '/app/counter', `JSESSIONID=${planted}.a`);
    assert.equal(countOf(r.body), 1, 'a fresh session, not the planted one');
    assert.doesNotMatch(r.body, new RegExp(planted));
    assert.ok(conn.closed());
    assert.equal(authFailures(a), before + 1);
  });

  it('EXPIRED: no session is invalidated and no tombstone is planted (200 KB id)', async () => {
    const victim = victims[1]!;
    const tombstones = () => managerOf(a).stats().tombstones as number;
    const stonesBefore = tombstones();
    const before = authFailures(a);
    const conn = await intrude(a, [4, CTX, victim.id, 'invalidated'], [4, CTX, 'x'.repeat(200 * 1024), 'expired']);
    await waitFor(
      () => conn.closed() || !managerOf(a).sessions.has(victim.id) || tombstones() !== stonesBefore,
      'close or expire',
      WAIT,
    );
    assert.ok(managerOf(a).sessions.has(victim.id), 'victim session still on a');
    assert.equal(tombstones(), stonesBefore, 'tombstones on a');
    assert.equal(await readCount(b, victim), 1);
    assert.ok(conn.closed());
    assert.equal(authFailures(a), before + 1);
  });

  it('a heartbeat without the key does not make the attacker a member (refused and counted)', async () => {
    const socket = createSocket({ type: 'udp4', reuseAddr: true });
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    socket.setMulticastInterface('127.0.0.1');
    socket.setMulticastTTL(0);
    const group = a.channel.config.membership as { address: string; port: number };
    const before = a.channel.stats().membership.heartbeatsRefused;
    try {
      let seq = 1n;
      await waitFor(
        () => {
          socket.send(
            encodeHeartbeat(HeartbeatKind.ALIVE, seq++, descriptor(listener.port), undefined),
            group.port,
            group.address,
          );
          return a.channel.stats().membership.heartbeatsRefused >= before + 3 || added.has(attackerId);
        },
        'three refused heartbeats (or the attacker joined)',
        { timeoutMs: WAIT.timeoutMs, intervalMs: 50 },
      );
      assert.ok(!added.has(attackerId), 'the attacker was never added as a member');
    } finally {
      socket.close();
    }
  });

  it('the nodes themselves form their cluster with the key file, and it is 0600 in a 0700 directory', async () => {
    assert.equal(a.channel.members().length, 1);
    assert.equal(countOf((await victims[2]!.get(portOf(b), '/app/counter')).body), 2);
    assert.equal(await readCount(a, victims[2]!), 2);
    const { stat } = await import('node:fs/promises');
    const file = join(dir, 'clowder', 'cluster.key');
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    assert.equal((await stat(join(dir, 'clowder'))).mode & 0o777, 0o700);
  });
});
