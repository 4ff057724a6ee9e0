/**
 * The failure detector's UDP socket (detector probes at the receiver's port number) under hostile
 * datagrams: unauthenticated, wrong-key, oversized, stale and truncated probes are refused and
 * counted (stats detector.refused) without an answer; authenticated ones that name a stranger
 * (an indirect probe of a non-member: reflection; a suspicion from a non-member) are refused too.
 * A valid ping is answered (the control: refusals come from the checks, not from a deaf socket),
 * and the two members keep each other throughout.
 */
import * as assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { after, before, describe, it } from 'node:test';
import type { Channel } from '../../src/index.js';
import { ClusterKeys } from '../../src/wire/auth.js';
import { decodeProbe, encodeProbe, type Probe, ProbeKind } from '../../src/wire/probe.js';
import { Resources } from '../helpers/raw-peer.js';
import { waitFor } from '../helpers/wait.js';

const KEY = '4c1d9a7e3b5f2e8a6c0d4b9f1e7a3c5d8b2f6e0a4c9d1b7f3e5a8c2d6b0f4e9a';
const OTHER = '0f9e8d7c6b5a49382716f5e4d3c2b1a0ffeeddccbbaa99887766554433221100';
const STRANGER = 'ab'.repeat(16);

describe('failure-detector datagrams from a hostile sender', () => {
  const res = new Resources();
  let a: Channel;
  let b: Channel;
  let attacker: Socket;
  const answers: Buffer[] = [];
  before(async () => {
    a = await res.node('a', { clusterKey: KEY });
    b = await res.node('b', { clusterKey: KEY });
    await waitFor(() => a.members().length === 1 && b.members().length === 1, 'a and b to see each other', {
      timeoutMs: 10_000,
    });
    attacker = createSocket('udp4');
    attacker.on('message', (m) => answers.push(m));
    await new Promise<void>((r) => attacker.bind(0, '127.0.0.1', () => r()));
  });
  after(async () => {
    attacker.close();
    await res.close();
  });

  function send(buf: Buffer): void {
    attacker.send(buf, a.local.port, '127.0.0.1');
  }
  const refused = () => a.stats().detector.refused;
  const ping = (over: Partial<Probe> = {}): Probe => ({
    kind: ProbeKind.PING,
    seq: 7,
    incarnation: 0,
    suspected: false,
    sender: STRANGER,
    subject: a.local.id,
    ...over,
  });

  it('runs the detector on a UDP socket', () => {
    const d = a.stats().detector;
    assert.equal(d.mode, 'lifeguard');
    assert.equal(d.udp, true);
  });

  it('refuses and counts unauthenticated, wrong-key, oversized, truncated and stale probes, answering none', async () => {
    const keys = new ClusterKeys(KEY);
    const stale = encodeProbe(ping(), keys);
    stale.writeDoubleBE(Date.now() - 10 * 60_000, 8);
    keys.heartbeatMac(stale.subarray(0, 56)).copy(stale, 56);
    const bad = [
      encodeProbe(ping(), undefined),
      encodeProbe(ping(), new ClusterKeys(OTHER)),
      Buffer.alloc(4096, 1),
      encodeProbe(ping(), keys).subarray(0, 60),
      stale,
    ];
    const before = refused();
    for (const d of bad) send(d);
    await waitFor(() => refused() >= before + bad.length, 'every bad datagram refused and counted', {
      timeoutMs: 5000,
    });
    assert.equal(refused(), before + bad.length);
    // Control: a valid ping (the insider's key) is answered; nothing answered the bad ones before it.
    send(encodeProbe(ping({ seq: 99 }), keys));
    await waitFor(() => answers.length > 0, 'the ack of the valid ping', { timeoutMs: 5000 });
    assert.equal(answers.length, 1, 'one answer: to the valid ping only');
    const ack = decodeProbe(answers[0]!, keys, 30_000);
    assert.equal(ack.kind, ProbeKind.ACK);
    assert.equal(ack.seq, 99);
    assert.equal(ack.subject, a.local.id);
  });

  it('refuses an indirect probe of a non-member (no reflection) and suspicions from or about strangers', async () => {
    const keys = new ClusterKeys(KEY);
    const before = refused();
    const answered = answers.length;
    send(encodeProbe(ping({ kind: ProbeKind.PING_REQ, sender: b.local.id, subject: STRANGER }), keys));
    send(encodeProbe(ping({ kind: ProbeKind.SUSPECT, sender: STRANGER, subject: b.local.id }), keys));
    send(encodeProbe(ping({ kind: ProbeKind.ALIVE, sender: STRANGER, subject: STRANGER }), keys));
    send(encodeProbe(ping({ subject: STRANGER }), keys)); // a ping for someone else
    await waitFor(() => refused() >= before + 4, 'the four claims refused', { timeoutMs: 5000 });
    assert.equal(answers.length, answered, 'nothing sent back');
    assert.equal(a.stats().detector.suspicions, 0, 'no suspicion from a stranger');
    assert.deepEqual(
      a.members().map((m) => m.name),
      ['b'],
    );
  });
});
