/**
 * Fragment floods over real sockets: a fragment header claims a count the sender chooses, and the
 * reassembler used to allocate from the claim (26 bytes claiming 65,537 parts: a 512 KiB array),
 * per fake sender id, 64 open messages each, kept 60 s. Now: fragments only from joined members,
 * parts kept as they arrive, open messages and bytes bounded per member and in total, a member's
 * incomplete messages freed when its connection closes.
 */
import * as assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Channel } from '../../src/index.js';
import { FrameFlag, FrameType } from '../../src/wire/frame.js';
import { encodeHello } from '../../src/wire/hello.js';
import { type FakeMember, fakeMember } from '../helpers/fake-member.js';
import { dataFrame, joined, type RawConn, Resources, rawConnect, rawDescriptor } from '../helpers/raw-peer.js';
import { waitFor } from '../helpers/wait.js';

const KiB = 1024;
const WAIT = { timeoutMs: 15_000 };

/** A fragment: message `id`, part `index` of `count`, `size` bytes of data. */
function fragment(id: number, index: number, count: number, size: number): Buffer {
  const p = Buffer.alloc(12 + size, 0x61);
  p.writeUInt32BE(id, 0);
  p.writeUInt32BE(index, 4);
  p.writeUInt32BE(count, 8);
  return dataFrame(0, FrameFlag.FRAGMENT, p);
}

describe('fragment floods', () => {
  const res = new Resources();
  let node: Channel;
  let member: FakeMember;
  const frag = () => node.stats().interceptors.fragmentation!;

  before(async () => {
    node = await res.node('target', {
      insecure: true,
      maxFrameBytes: 64 * KiB,
      maxMessageBytes: 256 * KiB,
      interceptors: [
        'throughput',
        'domainFilter',
        'messageDispatch',
        { type: 'fragmentation', fragmentBytes: 16 * KiB, maxOpenPerMember: 4, maxOpenMessages: 16 },
        'failureDetector',
      ],
    });
    node.onMessage(() => {});
    member = await fakeMember(res.group);
    await waitFor(() => node.members().some((m) => m.id === member.id), 'the fake member to join', WAIT);
  });
  after(async () => {
    await member.close();
    await res.close();
  });

  async function asMember(): Promise<RawConn> {
    const conn = await rawConnect(res, node.local.port);
    conn.socket.write(member.hello());
    return conn;
  }

  it('fragments from senders that never joined are refused and hold nothing', async () => {
    const before = frag().refusedNotMember ?? 0;
    const conns: RawConn[] = [];
    for (let i = 0; i < 8; i++) {
      const conn = await rawConnect(res, node.local.port);
      conn.socket.write(encodeHello(FrameType.HELLO, rawDescriptor(res.group.domain), undefined, false).frame);
      // 16 messages each claiming 65,537 parts: the old reassembler allocated 512 KiB per claim.
      for (let id = 1; id <= 16; id++) conn.socket.write(fragment(id, 0, 65_537, 16));
      conns.push(conn);
    }
    await waitFor(() => (frag().refusedNotMember ?? 0) >= before + 8 * 16, 'every stranger fragment refused', WAIT);
    assert.equal(frag().open, 0, 'no message opened');
    assert.equal(frag().openBytes, 0);
    for (const c of conns) c.socket.destroy();
  });

  it("a member's open messages are bounded in number, and a claimed count allocates nothing", async () => {
    const conn = await asMember();
    // Each claims 257 parts (the most 256 KiB allow at 1 KiB per part); each sends one of 100 bytes.
    for (let id = 1; id <= 10; id++) conn.socket.write(fragment(id, 0, 257, 100));
    await waitFor(() => frag().refusedOpenLimit === 6, '6 of 10 messages refused (maxOpenPerMember 4)', WAIT);
    assert.equal(frag().open, 4);
    assert.equal(frag().openBytes, 400, 'what arrived, not what was claimed');
    conn.socket.destroy();
    await waitFor(() => frag().open === 0, 'the open messages freed when the connection closed', WAIT);
  });

  it("a member's open bytes are bounded by maxMessageBytes", async () => {
    const conn = await asMember();
    const refused = frag().refusedBytes ?? 0;
    // 17 parts of 16 KiB = 272 KiB > maxMessageBytes 256 KiB: dropped at the 17th.
    for (let i = 0; i < 17; i++) conn.socket.write(fragment(77, i, 20, 16 * KiB));
    await waitFor(() => frag().refusedBytes === refused + 1, 'the message dropped past maxMessageBytes', WAIT);
    assert.equal(frag().open, 0);
    assert.equal(frag().openBytes, 0);
    conn.socket.destroy();
  });

  it("a member's incomplete messages are freed when its connection closes", async () => {
    const dropped = frag().droppedOnDisconnect ?? 0;
    const conn = await asMember();
    conn.socket.write(fragment(5, 0, 3, 1000));
    conn.socket.write(fragment(6, 0, 3, 1000));
    await waitFor(() => frag().open === 2, 'two messages open', WAIT);
    conn.socket.destroy();
    await waitFor(() => frag().open === 0, 'freed on disconnect (not after expireMs, 60 s)', WAIT);
    assert.equal(frag().droppedOnDisconnect, dropped + 2);
    assert.equal(frag().openBytes, 0);
  });

  it('a legitimate member still sends large messages in fragments', async () => {
    const peer = await res.node('peer', { insecure: true, maxFrameBytes: 64 * KiB, maxMessageBytes: 256 * KiB });
    await joined(node, peer);
    const got: Buffer[] = [];
    node.onMessage((m) => {
      if (m.from.id === peer.local.id) got.push(m.bytes);
    });
    const big = Buffer.alloc(200 * KiB, 7);
    await peer.send(memberIn(peer, node), big, { options: 'use_ack,sync' });
    await waitFor(() => got.length === 1, 'the 200 KiB message', WAIT);
    assert.ok(got[0]!.equals(big));
  });
});

function memberIn(ch: Channel, target: Channel) {
  const m = ch.members().find((x) => x.id === target.local.id);
  assert.ok(m);
  return m;
}
