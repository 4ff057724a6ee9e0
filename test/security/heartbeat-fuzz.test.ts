/**
 * Fuzzing the multicast membership service over real sockets (group on 127.0.0.1, TTL 0): random
 * datagrams and mutations of a member's real heartbeat, sent to the group, never crash a node nor
 * cost it its live peer. Without a key (`insecure: true`) mutated heartbeats reach the membership
 * logic; with a key they stop at authentication. Short by default; CLOWDER_FUZZ_RUNS=N for more.
 */
import * as assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import type { Channel } from '../../src/index.js';
import { HeartbeatKind } from '../../src/wire/heartbeat.js';
import { PROTOCOL_VERSION } from '../../src/wire/member.js';
import { fuzzRuns } from '../helpers/fuzz.js';
import { joined, Resources } from '../helpers/raw-peer.js';
import { Spoofer } from '../helpers/spoofer.js';
import { freePorts, waitFor } from '../helpers/wait.js';

const KEY = '9f2c4e6a8b0d1f3e5a7c9b2d4f6e8a0c1b3d5f7e9a2c4e6b8d0f1a3c5e7b9d2f'; // random-looking: used as it is (a passphrase would be stretched)
const WAIT = { timeoutMs: 10_000 };
/** Heartbeat header bytes before the member descriptor, and the descriptor's host-length offset. */
const FIXED = 25;
const HOST_LEN_AT = FIXED + 16 + 1 + 2 + 8;
const PORT_AT = FIXED + 16 + 1;

const mutation = fc.oneof(
  fc.record({ op: fc.constant('set' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ op: fc.constant('cut' as const), at: fc.nat() }),
  fc.record({ op: fc.constant('append' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
);
type Mutation = typeof mutation extends fc.Arbitrary<infer T> ? T : never;

/**
 * Mutates a real heartbeat, leaving its receiver host and port alone: a node connects to whatever
 * address a heartbeat names, and a test must reach nothing but itself (no name lookups, no other
 * process's port).
 */
function mutate(datagram: Buffer, mutations: readonly Mutation[]): Buffer {
  const hostEnd = HOST_LEN_AT + 1 + datagram[HOST_LEN_AT]!;
  const fixedPart = (i: number) => (i >= HOST_LEN_AT && i < hostEnd) || i === PORT_AT || i === PORT_AT + 1;
  let out = Buffer.from(datagram);
  for (const m of mutations) {
    if (m.op === 'set' && out.length > 0 && !fixedPart(m.at % out.length)) out[m.at % out.length] = m.value;
    else if (m.op === 'cut') out = out.subarray(0, m.at % (out.length + 1));
    else if (m.op === 'append') out = Buffer.concat([out, m.bytes]);
  }
  return out;
}

for (const keyed of [false, true]) {
  describe(`membership under fuzzed multicast datagrams (${keyed ? 'cluster key' : 'insecure: true'})`, () => {
    const res = new Resources();
    const spoofer = new Spoofer(res.group.port, keyed ? KEY : undefined);
    const extra = keyed ? { clusterKey: KEY } : { insecure: true };
    let a: Channel;
    let b: Channel;
    before(async () => {
      await spoofer.start();
      a = await res.node('a', extra);
      b = await res.node('b', extra);
      await joined(a, b);
      await waitFor(() => spoofer.last(b.local.id), 'a heartbeat of b captured', WAIT);
    });
    after(async () => {
      spoofer.close();
      await res.close();
    });

    it('random and mutated datagrams crash nothing, and the live peer stays', async () => {
      const removed: string[] = [];
      a.on('memberRemoved', (m) => {
        if (m.id === b.local.id) removed.push(m.id);
      });
      const datagram = fc.oneof(
        fc.uint8Array({ maxLength: 600 }),
        fc.array(mutation, { minLength: 1, maxLength: 6 }).map((ms) => mutate(spoofer.last(b.local.id)!.raw, ms)),
      );
      let refused = a.stats().membership.heartbeatsRefused;
      await fc.assert(
        fc.asyncProperty(fc.array(datagram, { minLength: 1, maxLength: 10 }), async (batch) => {
          const heard = spoofer.received;
          for (const d of batch) await spoofer.send(d);
          if (keyed) {
            // With a key nothing can be forged: every datagram is refused and counted once (an
            // unchanged copy of b's heartbeat as a replay).
            refused += batch.length;
            await waitFor(() => a.stats().membership.heartbeatsRefused === refused, 'the batch refused', WAIT);
          } else {
            // Paced: the spoofer hears the group when a does (a burst of thousands would overflow
            // a's receive buffer: lost, so not tested).
            await waitFor(() => spoofer.received >= heard + batch.length, 'the batch delivered', WAIT);
          }
        }),
        fuzzRuns(30),
      );
      if (!keyed) {
        // A sentinel after them all: a new member at a free port. Datagrams reach a's socket in
        // the order sent, so once a has added it, a has handled every fuzzed datagram.
        const [port] = await freePorts(1);
        const sentinel = {
          id: randomBytes(16).toString('hex'),
          protocolVersion: PROTOCOL_VERSION,
          host: '127.0.0.1',
          port: port!,
          name: 'sentinel',
          domain: res.group.domain,
          startTime: Date.now(),
          payload: new Uint8Array(0),
        };
        let added = false;
        a.on('memberAdded', (m) => {
          if (m.id === sentinel.id) added = true;
        });
        await spoofer.forge(HeartbeatKind.ALIVE, 1n, sentinel);
        await waitFor(() => added, 'the sentinel added', WAIT);
      }
      assert.ok(
        a.members().some((m) => m.id === b.local.id),
        'b is still a member',
      );
      assert.deepEqual(removed, []);
      // And the pair still talks.
      const got: unknown[] = [];
      b.onMessage((m) => {
        got.push(m.value);
      });
      await a.send(
        a.members().find((m) => m.id === b.local.id),
        'still here',
        { options: 'use_ack,sync' },
      );
      assert.deepEqual(got, ['still here']);
    });
  });
}
