/**
 * Codec bombs over real sockets. Decoding cost 20–96 bytes of heap per input byte (an empty Map is
 * 2 bytes on the wire and ~190 bytes of heap): one frame under maxFrameBytes could take hundreds of
 * MiB. Now every decode has a budget (DECODE_BUDGET: 16× the input + 1 MiB of estimated heap) and
 * is refused past it with ERR_CLOWDER_CODEC_DECODE, counted in the channel's stats.
 */
import * as assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DECODE_BUDGET, decode } from '../../src/codec/index.js';
import { type Channel, ClusterError, ErrorCode, encode } from '../../src/index.js';
import { FrameType } from '../../src/wire/frame.js';
import { encodeHello } from '../../src/wire/hello.js';
import { dataFrame, joined, Resources, rawConnect, rawDescriptor } from '../helpers/raw-peer.js';
import { waitFor } from '../helpers/wait.js';

const MiB = 1024 * 1024;
const WAIT = { timeoutMs: 10_000 };

/** An encoded array of `n` copies of the 2-byte encoding `item` (e.g. an empty Map: 0x0d 0x00). */
export function bomb(n: number, item: number[]): Buffer {
  const head = [0x01, 0x0b];
  let v = n;
  while (v >= 0x80) {
    head.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 0x80);
  }
  head.push(v);
  const out = Buffer.alloc(head.length + n * item.length);
  Buffer.from(head).copy(out, 0);
  for (let i = 0, p = head.length; i < n; i++, p += item.length)
    for (let k = 0; k < item.length; k++) out[p + k] = item[k]!;
  return out;
}

describe('codec bombs', () => {
  const res = new Resources();
  let node: Channel;
  const outcomes: (Error | 'decoded')[] = [];
  before(async () => {
    node = await res.node('target', { insecure: true });
    node.onMessage((m) => {
      try {
        void m.value;
        outcomes.push('decoded');
      } catch (err) {
        outcomes.push(err as Error);
      }
    });
  });
  after(() => res.close());

  for (const [what, item] of [
    ['empty Maps', [0x0d, 0x00]],
    ['empty Sets', [0x0e, 0x00]],
    ['empty byte arrays', [0x0a, 0x00]],
    ['empty objects', [0x0c, 0x00]],
  ] as const) {
    it(`a 1 MiB frame of ${what} is refused and counted, not decoded`, async () => {
      const before = node.stats().codec.decodeBudgetRefusals;
      const n = outcomes.length;
      const conn = await rawConnect(res, node.local.port);
      conn.socket.write(encodeHello(FrameType.HELLO, rawDescriptor(res.group.domain), undefined, false).frame);
      conn.socket.write(dataFrame(0, 0, bomb(MiB / 2, [...item])));
      await waitFor(() => outcomes.length > n, 'the message handled', WAIT);
      const out = outcomes[n]!;
      assert.ok(out instanceof ClusterError, `refused (got ${out === 'decoded' ? 'a decoded value' : out})`);
      assert.equal(out.code, ErrorCode.CODEC_DECODE);
      assert.match(out.message, /memory/);
      assert.equal(node.stats().codec.decodeBudgetRefusals, before + 1);
      conn.socket.destroy();
    });
  }

  it('legitimate data far larger than the budget base still decodes (200,000 small objects, ~8 MB in fragments)', async () => {
    const peer = await res.node('peer', { insecure: true });
    await joined(node, peer);
    const value = Array.from({ length: 200_000 }, (_, i) => ({ id: i, name: `user-${i}`, tags: ['a', 'b'] }));
    const n = outcomes.length;
    const to = peer.members().find((m) => m.id === node.local.id)!;
    await peer.send(to, value, { options: 'use_ack,sync' });
    await waitFor(() => outcomes.length > n, 'the message handled', WAIT);
    assert.equal(outcomes[n], 'decoded');
    // The worst ordinary shape, a long list of one-property objects, costs exactly the ratio.
    const ones = encode(Array.from({ length: 500_000 }, (_, i) => ({ x: i % 64 })));
    assert.ok(ones.length > DECODE_BUDGET.base / 4);
    assert.equal((decode(ones) as unknown[]).length, 500_000);
  });
});
