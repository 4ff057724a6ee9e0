/**
 * Multicast membership spoofing over real sockets (group on 127.0.0.1, TTL 0). Without a cluster
 * key (`insecure: true`) anyone on the host can send heartbeats: a forged LEAVING, a forged
 * restart at a live member's address, a forged descriptor or an absurd sequence number must not
 * remove a live member nor make its later heartbeats refused. With a key, a captured heartbeat
 * replayed must not change membership. A real leave must still be seen at once.
 */
import * as assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { Channel, Member } from '../../src/index.js';
import { encodeFrame, FrameType } from '../../src/wire/frame.js';
import { HeartbeatKind } from '../../src/wire/heartbeat.js';
import { encodeHello } from '../../src/wire/hello.js';
import { encodeMember } from '../../src/wire/member.js';
import { joined, Resources, rawConnect } from '../helpers/raw-peer.js';
import { Spoofer } from '../helpers/spoofer.js';
import { freePorts, nextEvent, waitFor } from '../helpers/wait.js';

const INSECURE = { insecure: true } as const;
const KEY = '9f2c4e6a8b0d1f3e5a7c9b2d4f6e8a0c1b3d5f7e9a2c4e6b8d0f1a3c5e7b9d2f'; // random-looking: used as it is (a passphrase would be stretched)
const WAIT = { timeoutMs: 15_000 };
/** The test nodes' dropTimeMs (Resources.node): heartbeats of a member missing this long time it out. */
const DROP_MS = 600;

/** A membership counter of `ch` (0 when absent). */
function count(ch: Channel, name: string): number {
  return (ch.stats().membership as unknown as Record<string, number>)[name] ?? 0;
}

/** How many verifications `ch`'s failure detector ran (each one follows a timeout or a suspicion). */
function detectorChecks(ch: Channel): number {
  return ch.stats().interceptors.failureDetector?.verifications ?? 0;
}

const sees = (ch: Channel, id: string) => ch.members().some((m) => m.id === id);

describe('membership spoofing without a cluster key (insecure: true)', () => {
  let res: Resources;
  let spoofer: Spoofer;
  let a: Channel;
  let b: Channel;
  let removed: { id: string; reason: string }[];

  beforeEach(async () => {
    res = new Resources();
    spoofer = new Spoofer(res.group.port);
    await spoofer.start();
    a = await res.node('a', INSECURE);
    b = await res.node('b', INSECURE);
    await joined(a, b);
    removed = [];
    a.on('memberRemoved', (m, reason) => removed.push({ id: m.id, reason }));
    await waitFor(() => spoofer.last(b.local.id), 'a heartbeat of b captured by the spoofer', WAIT);
  });
  afterEach(async () => {
    spoofer.close();
    await res.close();
  });

  /** Waits for `n` more real heartbeats of b (as the spoofer hears them), i.e. for time to pass in heartbeats. */
  async function moreHeartbeatsOfB(n: number): Promise<void> {
    const seen = spoofer.from(b.local.id).length;
    await waitFor(() => spoofer.from(b.local.id).length >= seen + n, `${n} more heartbeats of b`, WAIT);
  }

  it('one LEAVING with sequence 2^64-1 neither evicts the member nor makes its later heartbeats refused', async () => {
    const member = spoofer.last(b.local.id)!.hb.member;
    const refused = a.stats().membership.heartbeatsRefused;
    const checks = detectorChecks(a);
    await spoofer.forge(HeartbeatKind.LEAVING, 2n ** 64n - 1n, member);
    await waitFor(() => count(a, 'sequenceJumps') === 1 || removed.length > 0, 'the forged LEAVING handled', WAIT);
    assert.deepEqual(removed, [], 'b stays a member');
    // More than a dropTime of b's real heartbeats: a must accept every one (else b times out at a).
    await moreHeartbeatsOfB(Math.ceil((2 * DROP_MS) / 100));
    assert.deepEqual(removed, []);
    assert.ok(sees(a, b.local.id));
    assert.equal(a.stats().membership.heartbeatsRefused, refused + 1, 'only the forged datagram was refused');
    assert.equal(detectorChecks(a), checks, 'b never missed heartbeats at a (none was refused as a replay)');
  });

  it('a LEAVING with a plausible sequence is verified over TCP: the member answers, so it stays', async () => {
    const last = spoofer.last(b.local.id)!.hb;
    await spoofer.forge(HeartbeatKind.LEAVING, last.seq + 3n, last.member);
    await waitFor(() => count(a, 'spoofedLeaving') === 1 || removed.length > 0, 'the forged LEAVING verified', WAIT);
    assert.deepEqual(removed, [], 'b stays a member');
    assert.ok(sees(a, b.local.id));
    assert.ok(count(a, 'verifications') >= 1);
  });

  it("a LEAVE over TCP under a live member's identity is verified: the member answers, so it stays", async () => {
    const member = spoofer.last(b.local.id)!.hb.member;
    const conn = await rawConnect(res, a.local.port);
    conn.socket.write(encodeHello(FrameType.HELLO, encodeMember(member), undefined, false).frame);
    conn.socket.write(encodeFrame(FrameType.LEAVE, 0, Buffer.alloc(4)));
    await waitFor(() => count(a, 'spoofedLeaving') === 1 || removed.length > 0, 'the forged LEAVE verified', WAIT);
    assert.deepEqual(removed, [], 'b stays a member');
    assert.ok(sees(a, b.local.id));
  });

  it("a new member id at a live member's address is not taken as its restart", async () => {
    const member = spoofer.last(b.local.id)!.hb.member;
    const impostor = { ...member, id: randomBytes(16).toString('hex'), startTime: Date.now() };
    await spoofer.forge(HeartbeatKind.ALIVE, 1n, impostor);
    await waitFor(() => count(a, 'spoofedRestarts') === 1 || removed.length > 0, 'the forged restart verified', WAIT);
    assert.deepEqual(removed, [], 'b stays a member');
    assert.ok(sees(a, b.local.id));
    assert.ok(!sees(a, impostor.id), 'the impostor is not a member');
    // Its further heartbeats are refused without another TCP check each.
    const verifications = count(a, 'verifications');
    await spoofer.forge(HeartbeatKind.ALIVE, 2n, impostor);
    await waitFor(() => count(a, 'spoofedRestarts') === 2, 'the second forged restart counted', WAIT);
    assert.equal(count(a, 'verifications'), verifications);
    assert.ok(!sees(a, impostor.id));
  });

  it('a heartbeat that moves a member to another address is refused (a later LEAVING is checked at the real one)', async () => {
    const last = spoofer.last(b.local.id)!.hb;
    const [closedPort] = await freePorts(1);
    // A new payload too: a member's payload may legitimately change, its address may not.
    const moved = {
      ...last.member,
      port: closedPort!,
      startTime: last.member.startTime + 1,
      payload: Buffer.from([1]),
    };
    // Datagrams on loopback reach a's socket in the order sent: the move, then the LEAVING.
    await spoofer.forge(HeartbeatKind.ALIVE, last.seq + 3n, moved);
    await spoofer.forge(HeartbeatKind.LEAVING, last.seq + 4n, last.member);
    await waitFor(() => count(a, 'spoofedLeaving') === 1 || removed.length > 0, 'the forged LEAVING verified', WAIT);
    assert.deepEqual(removed, [], 'b stays a member');
    assert.equal(count(a, 'conflictingDescriptors'), 1, 'the moved descriptor was refused');
    assert.equal(a.members().find((m) => m.id === b.local.id)?.port, b.local.port);
  });
});

describe('static membership without a cluster key (insecure: true)', () => {
  const res = new Resources();
  afterEach(() => res.close());

  it("a hello from a new member id claiming a live member's address is not taken as its restart", async () => {
    const ports = await freePorts(2);
    const members = ports.map((p) => `127.0.0.1:${p}`);
    const node = (name: string, port: number) =>
      res.node(name, {
        ...INSECURE,
        receiver: { port, autoBind: 1 },
        membership: { type: 'static', members, pingIntervalMs: 100, dropTimeMs: DROP_MS },
      });
    const a = await node('a', ports[0]!);
    const b = await node('b', ports[1]!);
    await joined(a, b);
    const removed: string[] = [];
    a.on('memberRemoved', (m) => removed.push(m.id));
    const impostor = { ...a.members()[0]!, id: randomBytes(16).toString('hex'), payload: new Uint8Array(0) };
    const conn = await rawConnect(res, a.local.port);
    conn.socket.write(encodeHello(FrameType.HELLO, encodeMember(impostor), undefined, false).frame);
    // A hello counts once the connection's first frame follows it (receiver.handshakeTimeoutMs).
    conn.socket.write(encodeFrame(FrameType.PING, 0, Buffer.alloc(4)));
    await waitFor(() => count(a, 'spoofedRestarts') === 1 || removed.length > 0, 'the claimed restart verified', WAIT);
    assert.deepEqual(removed, [], 'b stays a member');
    assert.ok(sees(a, b.local.id));
    assert.ok(!sees(a, impostor.id));
  });
});

describe('a real leave over multicast alone is still seen at once', () => {
  const res = new Resources();
  afterEach(() => res.close());

  it('a member that leaves without a TCP connection to the peer is dropped at once, not after dropTime nor as a spoof', async (t) => {
    // a heartbeats once a minute: l starts after a's first heartbeat, so l never sees a and sends
    // it no LEAVE over TCP; only l's multicast LEAVING tells a.
    const a = await res.node('a', {
      ...INSECURE,
      membership: { type: 'multicast', port: res.group.port, frequencyMs: 60_000, dropTimeMs: 120_000 },
    });
    const l = await res.node('l', INSECURE);
    await waitFor(() => sees(a, l.local.id), 'a sees l', WAIT);
    assert.equal(l.members().length, 0, 'l does not see a');
    const gone = nextEvent<[Member, string]>(a, 'memberRemoved', (m) => m.id === l.local.id, 30_000);
    const stoppedAt = Date.now();
    await l.stop();
    const [, reason] = await gone;
    const at = Date.now();
    // a's dropTime is 2 minutes: removed within 30 s, it was removed on the LEAVING, not suspected.
    assert.ok(at - stoppedAt < 30_000, `dropped ${at - stoppedAt} ms after the stop (dropTime 120 s)`);
    assert.ok(reason === 'leave' || reason === 'unreachable', reason);
    t.diagnostic(`dropped after ${at - stoppedAt} ms, reason ${reason}`);
    assert.equal(count(a, 'spoofedLeaving'), 0, 'the LEAVING was verified as real: its receiver no longer accepts');
  });
});

describe('replayed authenticated heartbeats (cluster key)', () => {
  const res = new Resources();
  const spoofer = new Spoofer(res.group.port, KEY);
  afterEach(async () => {
    spoofer.close();
    await res.close();
  });

  it('a captured heartbeat of a member that has left, replayed within the replay window, does not bring it back', async () => {
    await spoofer.start();
    const a = await res.node('a', { clusterKey: KEY });
    const b = await res.node('b', { clusterKey: KEY });
    await joined(a, b);
    await waitFor(() => spoofer.last(b.local.id), 'a heartbeat of b captured', WAIT);
    const captured = spoofer.last(b.local.id)!;
    const added: string[] = [];
    a.on('memberAdded', (m) => added.push(m.id));
    await b.stop();
    await waitFor(() => !sees(a, b.local.id), 'b gone at a', WAIT);
    const goneAt = Date.now();
    // Replays until well after a would accept b again (its grave lasts dropTime): each must be
    // refused as a replay, and b must not come back.
    let replays = 0;
    while (Date.now() - goneAt < 3 * DROP_MS) {
      const before = count(a, 'replays');
      await spoofer.send(captured.raw);
      replays++;
      // Each replay is handled one way or the other: refused as a replay (counted), or b is back.
      await waitFor(() => count(a, 'replays') > before || added.length > 0, `replay ${replays} handled`, WAIT);
      assert.deepEqual(added, [], `b was brought back by replay ${replays}`);
    }
    assert.ok(replays > 0);
    assert.ok(!sees(a, b.local.id));
  });
});
